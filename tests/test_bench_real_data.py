"""benchmarks/training/bench_real_data.py: every recipe variant is a config `edgeped train` accepts.

A variant with a misspelt key or stage would otherwise fail only when its run starts, often
an hour into a benchmark round; these checks need no training.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from benchmarks.training import bench_real_data as brd
from edgeped.train.config import DEFAULT_STAGES, TrainConfig
from edgeped.train.profiles import profile_config


def _config(name: str, work: Path) -> TrainConfig:
    path = brd.config_file(name, work)
    overrides = tomllib.loads(path.read_text()) if path is not None else {}
    stages = (brd.VARIANTS[name][1] or ",".join(DEFAULT_STAGES)).split(",")
    config = profile_config("default", "data", overrides, where=name)
    return config.with_overrides(stages=tuple(stages))


@pytest.mark.parametrize("name", sorted(brd.VARIANTS))
def test_every_variant_is_a_valid_train_config(name, tmp_path):
    config = _config(name, tmp_path)
    assert config.stages[-1] == "student_qat", "the benchmark's headline is the QAT int8 model"


def test_a_misspelt_variant_key_is_refused(tmp_path, monkeypatch):
    monkeypatch.setitem(brd.VARIANTS, "typo", ("[student_stage]\npatiense = 3\n", None))
    with pytest.raises(ValueError, match="patiense"):
        _config("typo", tmp_path)


def test_distill_mobilenet_teaches_the_fused_student_it_was_measured_with(tmp_path):
    config = _config("distill-mobilenet", tmp_path)
    assert config.teacher.architecture == "mobilenet" and config.teacher.width == 1.0
    assert (config.student.architecture, config.student.width) == ("student_fused", 1.5)
    assert "student_distilled" in config.stages and "student" not in config.stages


_CAMERA = brd.CAMERA_AUGMENT_KEYS


def test_variants_measured_before_the_camera_default_keep_those_augmentations_off(tmp_path):
    # The recipe before 2026-12-07, spelled out: every camera augmentation off although the
    # default now turns them on, so its recorded rows can be made again.
    before = _config("fixed-noaug", tmp_path)
    assert all(getattr(before.augment, key) == 0.0 for key in _CAMERA)
    # ... and its checkpoints chosen on clean val, as then (the default since 2026-12-08
    # adds an augmented draw).
    assert before.checkpoint_on == "clean"
    # A variant naming one of them keeps its own value and gets the rest off.
    heavy = _config("default-heavy-aug", tmp_path).augment
    assert heavy.blur == 0.15 and heavy.occlude == 0.0 and heavy.speckle == 0.0
    # A variant with no [augment] table gets one, and the top-level pin lands before tables.
    assert _config("student-w0.75", tmp_path).augment.dark == 0.0
    assert _config("student-w0.75", tmp_path).checkpoint_on == "clean"


def test_default_variant_is_the_shipped_default_and_select_haze_cast_spells_it_out(tmp_path):
    default = _config("default", tmp_path)
    assert default == TrainConfig("data")
    spelled = _config("select-haze-cast", tmp_path)
    assert spelled.augment == default.augment and spelled.image_rule == default.image_rule
    assert spelled.checkpoint_on == default.checkpoint_on == "clean+augmented"
    assert any(getattr(default.augment, key) > 0.0 for key in _CAMERA)
    # The default of 2026-12-07, as measured: haze and cast off, checkpoints on clean val.
    before = _config("fixed-half-local", tmp_path)
    assert before.augment.haze == before.augment.cast == 0.0 and before.checkpoint_on == "clean"
    assert before.augment.speckle == default.augment.speckle > 0.0


def test_a76_count_reads_the_result_edgeped_bench_writes_into_its_out_folder(tmp_path, monkeypatch):
    # `edgeped bench --out` names a folder and writes <model>.<target>.json inside it (the
    # benchmark once passed a file name and failed reading the folder the CLI made of it).
    from edgeped.targets.emulated import EmulatedArm64Target
    from edgeped.targets.suite import result_name

    calls = []

    def fake_edgeped(*args, log):
        calls.append(args)
        folder = Path(args[args.index("--out") + 1])
        folder.mkdir(parents=True)
        target = EmulatedArm64Target(core=args[args.index("--core") + 1])
        name = result_name(Path(args[1]), target)
        (folder / f"{name}.json").write_text('{"instructions_per_invoke": 1290254}')
        (folder / f"{name}.latency.png").write_bytes(b"png")

    monkeypatch.setattr(brd, "edgeped", fake_edgeped)
    run = tmp_path / "s0"
    run.mkdir()
    assert brd.a76_instructions(run, tmp_path / "bench.log") == 1290254
    assert brd.a76_instructions(run, tmp_path / "bench.log") == 1290254  # counted once
    assert len(calls) == 1 and calls[0][1] == str(run / f"{brd.HEADLINE}.tflite")
