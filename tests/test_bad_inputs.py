"""The bad-input table: every bad input gets its own clear error, and destroys nothing.

Each row is a command (run in-process with click's CliRunner; a few also through
the installed entry point), the exit code it must give, a phrase its message must
contain, and the files that must be byte-identical afterwards. Every row also
checks that no traceback is printed. `kind` says which way the input used to
fail: a traceback, an unclear message, silent acceptance, data loss, or a case
added past the issue's list (`added`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgeped.cli import main
from edgeped.errors import ExitCode

KINDS = ("traceback", "unclear", "silent", "data_loss", "added")


@dataclass
class Env:
    """One row's sandbox: a copy of the good dataset, scratch space, and what was built."""

    root: Path
    data: Path
    paths: dict[str, Path] = field(default_factory=dict)

    def p(self, name: str) -> Path:
        return self.root / name

    def fmt(self, text: str) -> str:
        names = {"data": self.data, "root": self.root, **self.paths}
        return text.format(**{k: str(v) for k, v in names.items()})


@dataclass(frozen=True)
class Row:
    id: str
    command: str
    kind: str
    args: tuple[str, ...]
    exit_code: int
    phrase: str
    setup: Callable[[Env], None] | None = None
    unchanged: tuple[str, ...] = ("{data}",)
    needs: str = ""  # "" (dataset only), "run" (a trained tiny run), "models" (tiny .tflite)
    # Rows marked False check the message alone (no `fix:` line expected).
    fix_line: bool = True


# A row's exit code REFUSED means the command must refuse the input: exit 64 when click
# rejects the command line itself (usage), 65 when edgeped refuses a file or value
# (error:/fix:). Any other code (1, the gate's 2) is checked as written.
REFUSED = -1


def _expected(row: Row, output: str) -> int:
    if row.exit_code != REFUSED:
        return row.exit_code
    return int(ExitCode.USAGE) if "Usage:" in output else int(ExitCode.INPUT)


# --- builders ---------------------------------------------------------------------------


def _png(path: Path, seed: int, size=(48, 96)) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def _csv(env: Env, lines: list[str], images: int = 6) -> None:
    for i in range(images):
        _png(env.p(f"crops/c{i}.png"), i)
    env.p("crops/crops.csv").write_text("\n".join(lines) + "\n")
    env.paths["csv"] = env.p("crops/crops.csv")


_GOOD_CSV = [
    "path,label,split",
    "c0.png,1,train",
    "c1.png,0,train",
    "c2.png,1,val",
    "c3.png,0,val",
    "c4.png,1,test",
    "c5.png,0,test",
]


def _frames(env: Env, n: int = 24) -> list[str]:
    names = []
    for i in range(n):
        _png(env.p(f"frames/f{i:03d}.png"), 100 + i, size=(320, 240))
        names.append(f"f{i:03d}.png")
    return names


def _coco(env: Env, edit: Callable[[dict], None] = lambda d: None) -> None:
    names = _frames(env)
    data = {
        "images": [
            {"id": i + 1, "file_name": n, "width": 320, "height": 240} for i, n in enumerate(names)
        ],
        "annotations": [
            {"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [100, 40, 60, 150]}
            for i in range(len(names))
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    edit(data)
    env.p("coco.json").write_text(json.dumps(data))
    env.paths["coco"] = env.p("coco.json")
    env.paths["frames"] = env.p("frames")


def _keep_two_images(data: dict) -> None:
    del data["images"][2:]
    del data["annotations"][2:]


def _kitti(env: Env, line: str) -> None:
    names = _frames(env)
    labels = env.p("kitti")
    labels.mkdir()
    for i, n in enumerate(names):
        text = "Pedestrian 0 0 0 100 40 160 190 1.7 0.6 0.8 1 1 10 0\n"
        (labels / f"{Path(n).stem}.txt").write_text(line if i == 0 else text)
    env.paths["kitti"] = labels
    env.paths["frames"] = env.p("frames")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _manifest(env: Env, edit: Callable[[dict], object]) -> None:
    path = env.data / "manifest.json"
    data = json.loads(path.read_text())
    result = edit(data)
    path.write_text(json.dumps(data if result is None else result))


def _train_toml(env: Env, text: str) -> None:
    env.p("train.toml").write_text(text)
    env.paths["toml"] = env.p("train.toml")


def _fake_run(env: Env) -> None:
    """A run directory that holds a run: config.json and a checkpoint."""
    run = env.p("run")
    run.mkdir()
    (run / "config.json").write_text(
        json.dumps({"kind": "edgeped.train_config", "config": {"data_dir": str(env.data)}})
    )
    (run / "teacher.h5").write_bytes(b"checkpoint")
    env.paths["fakerun"] = run


def _card_run(env: Env, dataset: str) -> None:
    """A run directory with one converted model and its card (no TensorFlow needed)."""
    run = env.p("cardrun")
    run.mkdir()
    model = run / "student_qat_int8.tflite"
    model.write_bytes(b"TFL3 not a real model")
    card = {
        "kind": "edgeped.model_card",
        "model": {"sha256": hashlib.sha256(model.read_bytes()).hexdigest()},
        "source": {"dataset": dataset, "dataset_manifest_sha256": "0" * 64},
    }
    (run / "student_qat_int8.card.json").write_text(json.dumps(card))
    env.paths["cardrun"] = run


def _budgets(env: Env, text: str) -> None:
    env.p("budgets.toml").write_text(text)
    env.paths["budgets"] = env.p("budgets.toml")


def _targets(env: Env, text: str) -> None:
    env.p("targets.toml").write_text(text)
    env.paths["targets"] = env.p("targets.toml")


def _metrics(env: Env, payload) -> None:
    env.p("metrics.json").write_text(json.dumps(payload))
    env.paths["metrics"] = env.p("metrics.json")


def _copy_run(env: Env) -> None:
    shutil.copytree(env.paths["tiny_run"], env.p("run"))
    env.paths["run"] = env.p("run")


def _float_card_says_int8(env: Env) -> None:
    _copy_run(env)
    card = env.p("run") / "teacher_float32.card.json"
    data = json.loads(card.read_text())
    data["outputs"][0].update(dtype="int8", scale=1 / 256, zero_point=-128)
    card.write_text(json.dumps(data))


def _card_for_other_model(env: Env) -> None:
    model = env.p("m/model.tflite")
    model.parent.mkdir()
    shutil.copy(env.paths["float_model"], model)
    card = {
        "model": {"sha256": "f" * 64},
        "preprocessing": {"metadata": {"mean": [0] * 6, "std": [1] * 6, "clip": 4.0}},
    }
    (model.parent / "model.card.json").write_text(json.dumps(card))
    env.paths["model"] = model


def _model(env: Env) -> None:
    env.paths["model"] = env.paths["float_model"]


MINIMAL_TRAIN = 'data_dir = "{data}"\n'

ROWS: list[Row] = [
    # ---- data loss -----------------------------------------------------------------
    Row(
        "synth-overwrite-that-fails-keeps-old",
        "data synth",
        "data_loss",
        ("data", "synth", "{data}", "--drives", "2", "--crops-per-drive", "5", "--overwrite"),
        REFUSED,
        "split(s) came out empty",
    ),
    Row(
        "import-crops-overwrite-truncated-png-keeps-old",
        "data import crops",
        "data_loss",
        ("data", "import", "crops", "{csv}", "{data}", "--overwrite"),
        REFUSED,
        "cannot read image",
        setup=lambda e: (_csv(e, _GOOD_CSV), _truncate(e.p("crops/c5.png"))),
    ),
    Row(
        "import-coco-overwrite-truncated-frame-keeps-old",
        "data import coco",
        "data_loss",
        ("data", "import", "coco", "{coco}", "{data}", "--images", "{frames}", "--overwrite"),
        REFUSED,
        "cannot read image",
        setup=lambda e: (_coco(e), _truncate(e.p("frames/f023.png"))),
    ),
    Row(
        "import-kitti-overwrite-bad-label-keeps-old",
        "data import kitti",
        "data_loss",
        ("data", "import", "kitti", "{kitti}", "{data}", "--images", "{frames}", "--overwrite"),
        REFUSED,
        "has 3 fields",
        setup=lambda e: _kitti(e, "Pedestrian 0 0\n"),
    ),
    Row(
        "train-into-existing-run-keeps-config",
        "train",
        "data_loss",
        ("train", "{fakerun}", "--data", "{data}"),
        REFUSED,
        "already holds a run",
        setup=_fake_run,
        unchanged=("{data}", "{fakerun}"),
    ),
    Row(
        "train-resume-with-another-config",
        "train",
        "added",
        ("train", "{fakerun}", "--data", "{data}", "--resume", "--seed", "5"),
        REFUSED,
        "--resume asks for another config",
        setup=_fake_run,
        unchanged=("{data}", "{fakerun}"),
    ),
    Row(
        "train-resume-and-overwrite",
        "train",
        "added",
        ("train", "{fakerun}", "--data", "{data}", "--resume", "--overwrite"),
        REFUSED,
        "exclude each other",
        setup=_fake_run,
        unchanged=("{data}", "{fakerun}"),
    ),
    Row(
        "synth-into-existing-dataset-without-overwrite",
        "data synth",
        "added",
        ("data", "synth", "{data}", "--drives", "20", "--crops-per-drive", "5"),
        REFUSED,
        "already holds a dataset",
    ),
    Row(
        "import-into-a-file",
        "data import crops",
        "added",
        ("data", "import", "crops", "{csv}", "{csv}"),
        REFUSED,
        "is a file",
        setup=lambda e: _csv(e, _GOOD_CSV),
        unchanged=("{data}", "{csv}"),
    ),
    # ---- tracebacks: train configs ----------------------------------------------------
    *[
        Row(
            f"train-config-{name}",
            "train",
            "traceback",
            ("train", "{root}/newrun", "--config", "{toml}"),
            REFUSED,
            phrase,
            setup=lambda e, text=text: _train_toml(e, e.fmt(MINIMAL_TRAIN) + text),
        )
        for name, text, phrase in (
            ("qat-stage-learning-rate-0", "[qat_stage]\nlearning_rate = 0\n", "qat_stage"),
            ("epochs-string", '[teacher_stage]\nepochs = "three"\n', "epochs"),
            ("distill-misspelt", "[distill]\ntemprature = 3.0\n", "temprature"),
            ("stage-not-a-table", "teacher_stage = 5\n", "teacher_stage"),
            ("seed-string", 'seed = "zero"\n', "seed"),
            ("epochs-float", "[teacher_stage]\nepochs = 2.5\n", "epochs"),
        )
    ],
    Row(
        # A partial table fills from the defaults: the config loads, and the command goes
        # on to its next check (here: the run directory already holds a run).
        "train-config-partial-qat-stage",
        "train",
        "traceback",
        ("train", "{fakerun}", "--config", "{toml}"),
        REFUSED,
        "already holds a run",
        setup=lambda e: (
            _fake_run(e),
            _train_toml(e, e.fmt(MINIMAL_TRAIN) + "[qat_stage]\nepochs = 2\n"),
        ),
        unchanged=("{data}", "{fakerun}"),
    ),
    # ---- tracebacks: COCO ---------------------------------------------------------------
    *[
        Row(
            f"coco-{name}",
            "data import coco",
            "traceback",
            ("data", "import", "coco", "{coco}", "{root}/out", "--images", "{frames}"),
            REFUSED,
            phrase,
            setup=lambda e, edit=edit: _coco(e, edit),
        )
        for name, edit, phrase in (
            (
                "box-outside-frame",
                lambda d: d["annotations"][0].update(bbox=[5000, 5000, 50, 120]),
                "lies outside the 320x240 image",
            ),
            (
                "declared-size-larger-than-file",
                lambda d: d["images"][0].update(width=4000, height=3000),
                "declare 4000x3000",
            ),
            (
                "width-not-a-number",
                lambda d: d["images"][0].update(width="wide"),
                "declares width 'wide'",
            ),
            (
                "bbox-1e308",
                lambda d: d["annotations"][0].update(bbox=[0, 0, 1e308, 1e308]),
                "lies outside",
            ),
        )
    ],
    # ---- tracebacks: manifests of the wrong shape -------------------------------------
    *[
        Row(
            f"{cmd.replace(' ', '-')}-manifest-{name}",
            cmd,
            "traceback",
            args,
            REFUSED,
            phrase,
            setup=lambda e, edit=edit, extra=extra: (_manifest(e, edit), extra(e)),
        )
        for name, edit, phrase in (
            ("list", lambda m: [], "the top level is a list"),
            ("null-split", lambda m: m["splits"].update(val=None), "splits.val is null"),
            (
                "shard-without-sha",
                lambda m: m["splits"]["train"]["shards"][0].update(sha256=None),
                "sha256 is null",
            ),
        )
        for cmd, args, extra in (
            ("data verify", ("data", "verify", "{data}"), lambda e: None),
            ("data stats", ("data", "stats", "{data}", "--out", "{root}/card"), lambda e: None),
            (
                "eval",
                ("eval", "{cardrun}", "--data", "{data}"),
                lambda e: _card_run(e, str(e.data)),
            ),
        )
    ],
    # ---- tracebacks: CSV, compare, fleet --------------------------------------------
    Row(
        "csv-row-longer-than-header",
        "data import crops",
        "traceback",
        ("data", "import", "crops", "{csv}", "{root}/out"),
        REFUSED,
        "more fields than the header",
        setup=lambda e: _csv(e, [*_GOOD_CSV, "c1.png,0,train,extra"]),
    ),
    Row(
        "compare-metrics-list",
        "compare",
        "traceback",
        ("compare", "{metrics}", "--out", "{root}/cmp"),
        REFUSED,
        "is not an edgeped metrics file",
        setup=lambda e: _metrics(e, []),
    ),
    Row(
        "compare-metrics-null-section",
        "compare",
        "traceback",
        ("compare", "{metrics}", "--out", "{root}/cmp"),
        REFUSED,
        "lacks a section",
        setup=lambda e: _metrics(
            e, {"kind": "edgeped.metrics", "config": None, "models": {"m": {"test": None}}}
        ),
    ),
    Row(
        "fleet-shard-records-0",
        "data synth",
        "traceback",
        ("data", "synth", "{root}/out", "--generator", "fleet", "--shard-records", "0"),
        REFUSED,
        "--shard-records",
    ),
    # ---- silent acceptance -------------------------------------------------------------
    Row(
        "csv-duplicate-rows",
        "data import crops",
        "silent",
        ("data", "import", "crops", "{csv}", "{root}/out"),
        REFUSED,
        "the same image listed twice",
        setup=lambda e: _csv(e, [*_GOOD_CSV, "c1.png,0,train"]),
    ),
    Row(
        "csv-same-image-train-1-test-0",
        "data import crops",
        "silent",
        ("data", "import", "crops", "{csv}", "{root}/out"),
        REFUSED,
        "the same image in two splits",
        setup=lambda e: (
            _csv(e, [*_GOOD_CSV, "copy.png,0,test"]),
            shutil.copy(e.p("crops/c0.png"), e.p("crops/copy.png")),
        ),
    ),
    Row(
        "csv-drive-in-two-splits",
        "data import crops",
        "added",
        ("data", "import", "crops", "{csv}", "{root}/out"),
        REFUSED,
        "a drive in two splits",
        setup=lambda e: _csv(
            e,
            ["path,label,split,drive_id"]
            + [
                f"c{i}.png,{i % 2},{s},{d}"
                for i, (s, d) in enumerate(
                    [
                        ("train", "a"),
                        ("train", "b"),
                        ("val", "c"),
                        ("val", "a"),
                        ("test", "e"),
                        ("test", "f"),
                    ]
                )
            ],
        ),
    ),
    Row(
        "csv-same-image-two-labels",
        "data import crops",
        "added",
        ("data", "import", "crops", "{csv}", "{root}/out"),
        REFUSED,
        "the same image with two labels",
        setup=lambda e: (
            _csv(e, [*_GOOD_CSV, "copy.png,1,train"]),
            shutil.copy(e.p("crops/c1.png"), e.p("crops/copy.png")),
        ),
    ),
    Row(
        "csv-empty-val-split",
        "data import crops",
        "silent",
        ("data", "import", "crops", "{csv}", "{root}/out"),
        REFUSED,
        "the val split(s) would be empty",
        setup=lambda e: _csv(e, [ln for ln in _GOOD_CSV if ",val" not in ln]),
    ),
    Row(
        "synth-empty-val-test",
        "data synth",
        "silent",
        ("data", "synth", "{root}/out", "--drives", "2", "--crops-per-drive", "5"),
        REFUSED,
        "came out empty",
    ),
    Row(
        "coco-empty-val-test",
        "data import coco",
        "silent",
        ("data", "import", "coco", "{coco}", "{root}/out", "--images", "{frames}"),
        REFUSED,
        "would be empty",
        setup=lambda e: _coco(e, _keep_two_images),
    ),
    Row(
        "coco-duplicate-image-id",
        "data import coco",
        "added",
        ("data", "import", "coco", "{coco}", "{root}/out", "--images", "{frames}"),
        REFUSED,
        "image id 1 is listed twice",
        setup=lambda e: _coco(e, lambda d: d["images"].append(dict(d["images"][0]))),
    ),
    Row(
        "coco-same-file-twice",
        "data import coco",
        "added",
        ("data", "import", "coco", "{coco}", "{root}/out", "--images", "{frames}"),
        REFUSED,
        "twice",
        setup=lambda e: _coco(e, lambda d: d["images"].append({**d["images"][0], "id": 999})),
    ),
    Row(
        "coco-copied-image-under-two-names",
        "data import coco",
        "added",
        ("data", "import", "coco", "{coco}", "{root}/out", "--images", "{frames}"),
        REFUSED,
        "are the same image",
        setup=lambda e: (
            _coco(e),
            shutil.copy(e.p("frames/f000.png"), e.p("frames/f001.png")),
        ),
    ),
    Row(
        "kitti-box-outside-frame",
        "data import kitti",
        "added",
        ("data", "import", "kitti", "{kitti}", "{root}/out", "--images", "{frames}"),
        REFUSED,
        "lies outside the 320x240 image",
        setup=lambda e: _kitti(e, "Pedestrian 0 0 0 900 40 960 190 1.7 0.6 0.8 1 1 10 0\n"),
    ),
    Row(
        "budgets-fallback-ops-string",
        "gate",
        "silent",
        ("gate", "{fakerun}", "--budgets", "{budgets}"),
        REFUSED,
        "allowed_fallback_ops",
        setup=lambda e: (_fake_run(e), _budgets(e, '[device]\nallowed_fallback_ops = "TOPK_V2"\n')),
        unchanged=("{data}", "{fakerun}", "{budgets}"),
    ),
    Row(
        "bench-min-seconds-beyond-timeout",
        "bench",
        "silent",
        ("bench", "{model}", "--min-seconds", "60", "--timeout", "2"),
        REFUSED,
        "does not fit in timeout_s 2",
        setup=_model,
        needs="models",
    ),
    Row(
        "bench-card-for-another-model",
        "bench",
        "silent",
        ("bench", "{model}", "--runs", "1", "--warmup", "0", "--out", "{root}/bench.json"),
        REFUSED,
        "was made for the model with sha256 ffffffffffff",
        setup=_card_for_other_model,
        needs="models",
    ),
    Row(
        "compare-unknown-slice",
        "compare",
        "silent",
        ("compare", "{run}", "--out", "{root}/cmp", "--slice", "nonsense"),
        REFUSED,
        "is not TAG=VALUE",
        setup=_copy_run,
        needs="run",
    ),
    Row(
        "compare-slice-nobody-has",
        "compare",
        "added",
        ("compare", "{run}", "--out", "{root}/cmp", "--slice", "lighting=moonlit"),
        REFUSED,
        "no metrics file has the slice",
        setup=_copy_run,
        needs="run",
    ),
    Row(
        "eval-int8-threshold-into-float-card",
        "eval",
        "silent",
        ("eval", "{run}", "--only", "teacher_float32"),
        REFUSED,
        "the card describes a int8 output",
        setup=_float_card_says_int8,
        unchanged=("{data}", "{run}"),
        needs="run",
    ),
    # ---- misleading messages -----------------------------------------------------------
    Row(
        "eval-only-unknown-model",
        "eval",
        "unclear",
        ("eval", "{cardrun}", "--only", "nosuch"),
        REFUSED,
        "no model named nosuch",
        setup=lambda e: _card_run(e, str(e.data)),
        unchanged=("{data}", "{cardrun}"),
    ),
    Row(
        "eval-moved-relative-data-dir",
        "eval",
        "unclear",
        ("eval", "{cardrun}"),
        REFUSED,
        "pass --data",
        setup=lambda e: _card_run(e, "data/moved-away"),
        unchanged=("{data}", "{cardrun}"),
    ),
    Row(
        "gate-unknown-model",
        "gate",
        "unclear",
        ("gate", "{cardrun}", "--model", "nosuch", "--budgets", "{budgets}"),
        REFUSED,
        "no model named 'nosuch'",
        setup=lambda e: (_card_run(e, str(e.data)), _budgets(e, "")),
        unchanged=("{data}", "{cardrun}"),
    ),
    Row(
        "targets-no-python",
        "bench",
        "unclear",
        ("bench", "{root}/m.tflite", "--target", "ecu", "--targets", "{targets}"),
        REFUSED,
        "python",
        setup=lambda e: _targets(e, '[targets.ecu]\nkind = "ssh"\nhost = "10.0.0.2"\n'),
    ),
    Row(
        "targets-string-port",
        "bench",
        "unclear",
        ("bench", "{root}/m.tflite", "--target", "ecu", "--targets", "{targets}"),
        REFUSED,
        "port",
        setup=lambda e: _targets(
            e, '[targets.ecu]\nhost = "10.0.0.2"\nport = "22"\npython = "/usr/bin/python3"\n'
        ),
    ),
    Row(
        "budgets-core-a99",
        "gate",
        "unclear",
        ("gate", "{fakerun}", "--budgets", "{budgets}"),
        REFUSED,
        "cortex-a53, cortex-a72, cortex-a76",
        setup=lambda e: (
            _fake_run(e),
            _budgets(e, '[cost.max_instructions_per_invoke]\n"cortex-a99" = 1000\n'),
        ),
        unchanged=("{data}", "{fakerun}", "{budgets}"),
    ),
    # ---- SSH -----------------------------------------------------------------------------
    *[
        Row(
            f"ssh-{key}-starting-with-dash",
            "deploy",
            "unclear",
            ("deploy", "{root}/m.tflite", "--host", "ecu", "--targets", "{targets}"),
            REFUSED,
            "would reach ssh as an option",
            setup=lambda e, key=key: _targets(
                e,
                f'[targets.ecu]\n{key} = "-oProxyCommand=touch {e.root}/pwned"\n'
                'python = "/usr/bin/python3"\n',
            ),
        )
        for key in ("host", "ssh_alias")
    ],
    Row(
        "eval-card-is-a-list",
        "eval",
        "added",
        ("eval", "{cardrun}"),
        REFUSED,
        "is not an edgeped model card",
        setup=lambda e: (
            _card_run(e, str(e.data)),
            (e.p("cardrun") / "student_qat_int8.card.json").write_text("[]"),
        ),
        unchanged=("{data}", "{cardrun}"),
    ),
    Row(
        "eval-card-without-model-section",
        "eval",
        "added",
        ("eval", "{cardrun}"),
        REFUSED,
        "has no model.sha256",
        setup=lambda e: (
            _card_run(e, str(e.data)),
            (e.p("cardrun") / "student_qat_int8.card.json").write_text(
                json.dumps({"kind": "edgeped.model_card"})
            ),
        ),
        unchanged=("{data}", "{cardrun}"),
    ),
    Row(
        "verify-json-over-the-manifest",
        "data verify",
        "added",
        ("data", "verify", "{data}", "--json", "{data}/manifest.json"),
        REFUSED,
        "would overwrite an input",
    ),
    Row(
        "gate-json-over-metrics",
        "gate",
        "added",
        ("gate", "{cardrun}", "--budgets", "{budgets}", "--json", "{cardrun}/metrics.json"),
        REFUSED,
        "would overwrite an input",
        setup=lambda e: (
            _card_run(e, str(e.data)),
            _budgets(e, ""),
            (e.p("cardrun") / "metrics.json").write_text("{}"),
        ),
        unchanged=("{data}", "{cardrun}"),
    ),
    Row(
        "gate-json-over-budgets",
        "gate",
        "added",
        ("gate", "{cardrun}", "--budgets", "{budgets}", "--summary", "{budgets}"),
        REFUSED,
        "would overwrite an input",
        setup=lambda e: (_card_run(e, str(e.data)), _budgets(e, "")),
        unchanged=("{data}", "{cardrun}", "{budgets}"),
    ),
    Row(
        "gate-two-reports-one-file",
        "gate",
        "added",
        (
            "gate",
            "{cardrun}",
            "--budgets",
            "{budgets}",
            "--json",
            "{root}/v",
            "--junit",
            "{root}/v",
        ),
        REFUSED,
        "would overwrite the --json output",
        setup=lambda e: (_card_run(e, str(e.data)), _budgets(e, "")),
        unchanged=("{data}", "{cardrun}", "{budgets}"),
    ),
    Row(
        "bench-out-over-the-model",
        "bench",
        "added",
        (
            "bench",
            "{cardrun}/student_qat_int8.tflite",
            "--out",
            "{cardrun}/student_qat_int8.tflite",
        ),
        REFUSED,
        "is a file",
        setup=lambda e: _card_run(e, str(e.data)),
        unchanged=("{data}", "{cardrun}"),
    ),
    Row(
        "bench-out-over-the-card",
        "bench",
        "added",
        (
            "bench",
            "{cardrun}/student_qat_int8.tflite",
            "--out",
            "{cardrun}/student_qat_int8.card.json",
        ),
        REFUSED,
        "is a file",
        setup=lambda e: _card_run(e, str(e.data)),
        unchanged=("{data}", "{cardrun}"),
    ),
    Row(
        "synth-v1-fleet-only-option",
        "data synth",
        "added",
        ("data", "synth", "{root}/out", "--fog-rate", "0.1"),
        int(ExitCode.USAGE),  # an option the generator does not take
        "does not take --fog-rate",
    ),
    Row(
        "verify-json-into-missing-dataset",
        "data verify",
        "added",
        ("data", "verify", "{root}/nope", "--json", "{root}/v.json"),
        REFUSED,
        "dataset folder not found",
    ),
]

# Rows also run through the installed console script, as a user's shell would.
ENTRY_POINT_ROWS = (
    "import-crops-overwrite-truncated-png-keeps-old",
    "coco-box-outside-frame",
    "data-verify-manifest-list",
    "ssh-host-starting-with-dash",
)


def _hashes(paths: list[Path]) -> dict[str, str]:
    out = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def good_dataset(tmp_path_factory) -> Path:
    from edgeped.data.synthetic import SynthConfig, write_synthetic

    out = tmp_path_factory.mktemp("bad_inputs") / "data"
    write_synthetic(
        str(out), SynthConfig(drives=20, crops_per_drive=6, positive_rate=0.3, workers=1)
    )
    return out


def _env(tmp_path: Path, good_dataset: Path, request, row: Row) -> Env:
    env = Env(tmp_path, tmp_path / "data")
    shutil.copytree(good_dataset, env.data)
    if row.needs == "run":
        env.paths["tiny_run"] = request.getfixturevalue("tiny_run")
    if row.needs == "models":
        env.paths["float_model"] = request.getfixturevalue("device_models")["float"]
    if row.setup:
        row.setup(env)
    return env


def _params(rows):
    marks = {"run": [pytest.mark.slow], "models": [pytest.mark.slow]}
    return [pytest.param(r, id=r.id, marks=marks.get(r.needs, [])) for r in rows]


def test_table_is_well_formed():
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids))
    assert {r.kind for r in ROWS} <= set(KINDS)
    assert set(ENTRY_POINT_ROWS) <= set(ids)


@pytest.mark.parametrize("row", _params(ROWS))
def test_bad_input(row: Row, tmp_path, good_dataset, request, monkeypatch):
    env = _env(tmp_path, good_dataset, request, row)
    monkeypatch.chdir(tmp_path)
    guarded = [Path(env.fmt(p)) for p in row.unchanged]
    before = _hashes(guarded)
    result = CliRunner().invoke(main, [env.fmt(a) for a in row.args])
    output = result.output
    assert "Traceback" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n{output}"
    )
    assert result.exit_code == _expected(row, output), output
    assert row.phrase in " ".join(output.split()), output
    if result.exit_code == ExitCode.INPUT and row.fix_line:
        assert "error:" in output and "fix:" in output, output
    assert _hashes(guarded) == before, "a guarded file changed"
    assert not list(tmp_path.glob("pwned")), "an option-like host reached ssh"
    leftovers = [p for g in guarded if g.is_dir() for p in g.rglob("*.tmp")]
    assert not leftovers, leftovers


@pytest.mark.parametrize("row", _params([r for r in ROWS if r.id in ENTRY_POINT_ROWS]))
def test_bad_input_through_the_entry_point(row: Row, tmp_path, good_dataset, request):
    env = _env(tmp_path, good_dataset, request, row)
    guarded = [Path(env.fmt(p)) for p in row.unchanged]
    before = _hashes(guarded)
    exe = Path(sys.executable).with_name("edgeped")
    argv = [str(exe)] if exe.is_file() else [sys.executable, "-m", "edgeped"]
    proc = subprocess.run(
        [*argv, *(env.fmt(a) for a in row.args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.returncode == _expected(row, proc.stderr), proc.stderr
    assert row.phrase in " ".join(proc.stderr.split()), proc.stderr
    assert _hashes(guarded) == before
