"""Which config changes a --resume may carry: only keys that the stages being run alone read,
with every checkpoint built on them run again; such a run trains in a copy and swaps in."""

import json

import pytest

from edgeped.errors import EdgepedError
from edgeped.train.run_dir import run_output

RECORDED = {
    "data_dir": "/data",
    "augment": {"flip": 0.5},
    "stages": ["student", "student_qat"],
    "teacher_stage": {"learning_rate": 0.002},
    "qat_stage": {"learning_rate": 0.0003, "epochs": 8},
}


def _run(tmp_path, checkpoints=("student", "student_qat")):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": RECORDED}))
    for name in checkpoints:
        (run / f"{name}.h5").write_text(f"old {name}")
    return run


def _changed(**sections):
    config = json.loads(json.dumps(RECORDED))
    for section, values in sections.items():
        if isinstance(values, dict):
            config[section].update(values)
        else:
            config[section] = values
    return config


def _snapshot(run):
    return {p.name: p.read_bytes() for p in sorted(run.iterdir())}


def test_the_same_config_resumes_in_place(tmp_path):
    run = _run(tmp_path)
    with run_output(run, RECORDED, resume=True, stages=("student_qat",)) as target:
        assert target == run


def test_only_the_default_stage_list_changed_resumes_in_place(tmp_path):
    run = _run(tmp_path)
    config = _changed(stages=["student", "student_qat", "student_pruned"])
    with run_output(run, config, resume=True, stages=("student_pruned",)) as target:
        assert target == run


def test_a_qat_change_reruns_qat_in_a_copy_swapped_in_when_done(tmp_path):
    run = _run(tmp_path)
    config = _changed(qat_stage={"learning_rate": 3e-5})
    with run_output(run, config, resume=True, stages=("student_qat",)) as target:
        assert target != run and target.parent == run.parent
        assert (target / "student.h5").read_text() == "old student"  # the copy starts full
        (target / "student_qat.h5").write_text("new student_qat")
        assert (run / "student_qat.h5").read_text() == "old student_qat"  # old kept meanwhile
    assert (run / "student_qat.h5").read_text() == "new student_qat"
    assert (run / "student.h5").read_text() == "old student"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no copy left behind


def test_a_failed_retune_leaves_the_old_run_and_no_copy(tmp_path):
    run = _run(tmp_path)
    before = _snapshot(run)
    config = _changed(qat_stage={"epochs": 2})
    with pytest.raises(KeyboardInterrupt):
        with run_output(run, config, resume=True, stages=("student_qat",)) as target:
            (target / "student_qat.h5").write_text("half-trained")
            raise KeyboardInterrupt
    assert _snapshot(run) == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


@pytest.mark.parametrize(
    "checkpoints, changed, stages, needs",
    [
        # The changed key's own stage is not run.
        (("student", "student_qat"), {"qat_stage": {"epochs": 2}}, ("student",), "student_qat"),
        # The teacher changes, and the QAT model built on the old student line is kept.
        (
            ("teacher", "student", "student_distilled", "student_qat"),
            {"teacher_stage": {"learning_rate": 0.01}},
            ("teacher", "student_distilled"),
            "student_qat",
        ),
        (
            ("teacher", "student", "student_distilled"),
            {"teacher_stage": {"learning_rate": 0.01}},
            ("teacher",),
            "student_distilled",
        ),
    ],
)
def test_a_change_without_its_stage_or_what_is_built_on_it_is_refused(
    tmp_path, checkpoints, changed, stages, needs
):
    run = _run(tmp_path, checkpoints)
    before = _snapshot(run)
    with pytest.raises(EdgepedError, match=f"need stage\\(s\\) {needs} run again"):
        with run_output(run, _changed(**changed), resume=True, stages=stages):
            pytest.fail("a refused resume must not yield a folder")
    assert _snapshot(run) == before


def test_a_change_the_float_student_reads_is_refused_whatever_runs(tmp_path):
    run = _run(tmp_path)
    config = _changed(augment={"flip": 0.0})
    with pytest.raises(EdgepedError, match="augment reaches the float student") as err:
        with run_output(run, config, resume=True, stages=("student", "student_qat")):
            pytest.fail("a refused resume must not yield a folder")
    assert "differs: augment.flip" in str(err.value)


def test_a_teacher_change_with_every_stage_built_on_it_run_again(tmp_path):
    run = _run(tmp_path, ("teacher", "student", "student_distilled", "student_qat"))
    config = _changed(teacher_stage={"learning_rate": 0.01})
    stages = ("teacher", "student_distilled", "student_qat")
    with run_output(run, config, resume=True, stages=stages) as target:
        assert target != run
