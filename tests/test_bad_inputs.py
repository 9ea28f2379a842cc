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
# rejects the command line itself (usage), 64 or 65 when edgeped refuses an option value
# or a file (error:/fix:, 64 for a bad option value). Any other code (1, the gate's 2) is
# checked as written.
REFUSED = -1


def _expected(row: Row, output: str, got: int | None = None) -> int:
    if row.exit_code != REFUSED:
        return row.exit_code
    if "Usage:" in output:
        return int(ExitCode.USAGE)
    if got == ExitCode.USAGE and "error: " in output:
        return int(ExitCode.USAGE)  # an option value refused by edgeped (error:/fix:)
    return int(ExitCode.INPUT)


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

# ---- options: every command, values checked before any work starts ---------------------
# Positional arguments name files that exist, so only the option is wrong.

_M = "{data}/manifest.json"  # an existing file where a command wants one
FLOAT_OPTIONS = {
    "data synth": (
        ("data", "synth", "{root}/out"),
        (
            "--positive-rate",
            "--missing-rate",
            "--difficulty",
            "--hard-negative-rate",
            "--night-rate",
            "--rain-rate",
            "--fog-rate",
            "--construction-rate",
        ),
    ),
    "data import coco": (
        ("data", "import", "coco", _M, "{root}/out", "--images", "{data}"),
        ("--min-height", "--margin"),
    ),
    "data import kitti": (
        ("data", "import", "kitti", "{data}", "{root}/out", "--images", "{data}"),
        ("--min-height", "--margin"),
    ),
    "eval": (("eval", "{data}"), ("--max-fpr", "--min-recall", "--metadata-dropout")),
    "bench": (("bench", _M), ("--min-seconds", "--timeout")),
    "deploy": (("deploy", _M), ("--min-seconds", "--timeout")),
    "drift": (
        ("drift", "{data}", "{data}"),
        ("--psi-warn", "--psi-alert", "--ks-alpha", "--ks-min-d", "--missing-warn"),
    ),
    "shadow run": (("shadow", "run", _M, _M), ("--timeout",)),
    "demo": (("demo", "--out", "{root}/demo"), ("--epochs-scale",)),
    "doctor": (("doctor", "--only", "python"), ("--timeout",)),
    "install": (("install", "{data}", "--host", "local", "--root", "{root}/dev"), ("--wait",)),
    "rollback": (("rollback", "--host", "local", "--root", "{root}/dev"), ("--wait",)),
}

INT_OPTIONS = {
    "data synth": (
        ("data", "synth", "{root}/out"),
        ("--drives", "--crops-per-drive", "--seed", "--workers", "--shard-records"),
    ),
    "data stats": (("data", "stats", "{data}", "--out", "{root}/s"), ("--samples",)),
    "data import coco": (
        ("data", "import", "coco", _M, "{root}/out", "--images", "{data}"),
        ("--jitter", "--near-miss", "--background", "--seed"),
    ),
    "train": (
        ("train", "{root}/r", "--data", "{data}"),
        (
            "--teacher-epochs",
            "--student-epochs",
            "--qat-epochs",
            "--steps-per-epoch",
            "--batch-size",
            "--seed",
        ),
    ),
    "convert": (("convert", "{data}"), ("--calibration-samples",)),
    "eval": (("eval", "{data}"), ("--threads",)),
    "bench": (("bench", _M), ("--threads", "--batch", "--runs", "--warmup", "--load-threads")),
    "deploy": (("deploy", _M), ("--threads", "--batch", "--runs", "--warmup")),
    "drift": (("drift", "{data}", "{data}"), ("--min-window", "--min-slice")),
    "shadow run": (
        ("shadow", "run", _M, _M),
        ("--limit", "--repeat", "--fsync-every", "--cost-runs", "--min-slice-crops", "--gallery"),
    ),
    "shadow report": (("shadow", "report", "{data}"), ("--min-slice-crops", "--gallery")),
    "status": (("status", "--host", "local", "--root", "{root}/dev"), ("--history",)),
    "install": (("install", "{data}", "--host", "local", "--root", "{root}/dev"), ("--attempts",)),
    "demo": (("demo", "--out", "{root}/demo"), ("--drives",)),
}

OPTION_ROWS: list[Row] = [
    *[
        Row(
            f"{cmd.replace(' ', '-')}-{opt[2:]}-{name}",
            cmd,
            "silent",
            (*prefix, opt, value),
            int(ExitCode.USAGE),
            "is not a finite number",
            fix_line=False,
        )
        for cmd, (prefix, options) in FLOAT_OPTIONS.items()
        for opt in options
        for name, value in (("nan", "nan"), ("inf", "inf"))
    ],
    *[
        Row(
            f"{cmd.replace(' ', '-')}-{opt[2:]}-not-an-integer",
            cmd,
            "added",
            (*prefix, opt, "ten"),
            int(ExitCode.USAGE),
            "is not a valid integer",
            fix_line=False,
        )
        for cmd, (prefix, options) in INT_OPTIONS.items()
        for opt in options
    ],
]
ROWS += OPTION_ROWS


def _opt(cmd, prefix, cases, kind="added", setup=None, unchanged=("{data}",)):
    """Rows for one command: (id, extra args, phrase) each, the command refusing them."""
    return [
        Row(
            f"{cmd.replace(' ', '-')}-{name}",
            cmd,
            kind,
            (*prefix, *extra),
            REFUSED,
            phrase,
            setup=setup,
            unchanged=unchanged,
        )
        for name, extra, phrase in cases
    ]


_FAKE_MODEL = "{cardrun}/student_qat_int8.tflite"


def _cardrun(e: Env) -> None:
    _card_run(e, str(e.data))


VALUE_ROWS: list[Row] = [
    *_opt(
        "data synth",
        ("data", "synth", "{root}/out"),
        (
            ("positive-rate-1.5", ("--positive-rate", "1.5"), "positive_rate must be in [0, 1]"),
            ("missing-rate-negative", ("--missing-rate", "-0.1"), "must be in [0, 1]"),
            ("night-rate-2", ("--night-rate", "2"), "night_rate must be in [0, 1]"),
            ("workers-negative", ("--workers", "-1"), "workers must be in 0..256"),
            ("workers-100000", ("--workers", "100000"), "workers must be in 0..256"),
            ("seed-negative", ("--seed", "-1"), "seed must be >= 0"),
            ("drives-0", ("--drives", "0"), "drives must be >= 1"),
            ("drives-ten-million", ("--drives", "10000000"), "drives must be <= 999999"),
            ("crops-per-drive-0", ("--crops-per-drive", "0"), "crops_per_drive must be >= 1"),
            ("crops-per-drive-100000", ("--crops-per-drive", "100000"), "must be <= 9999"),
            (
                "fleet-difficulty-3",
                ("--generator", "fleet", "--difficulty", "3"),
                "difficulty must be in [0, 1]",
            ),
            ("fleet-seed-negative", ("--generator", "fleet", "--seed", "-1"), "seed must be >= 0"),
            (
                "fleet-workers-100000",
                ("--generator", "fleet", "--workers", "100000"),
                "workers must be in 0..256",
            ),
        ),
        kind="silent",
    ),
    *_opt(
        "train",
        ("train", "{root}/r", "--data", "{data}"),
        (
            ("batch-size-0", ("--batch-size", "0"), "batch_size must be in 1..8192"),
            ("batch-size-1e9", ("--batch-size", "1000000000"), "batch_size must be in 1..8192"),
            ("batch-size-past-split", ("--batch-size", "5000"), "larger than the train split"),
            ("teacher-epochs-negative", ("--teacher-epochs", "-1"), "epochs must be >= 0"),
            ("steps-per-epoch-0", ("--steps-per-epoch", "0"), "steps_per_epoch must be >= 1"),
            ("seed-negative", ("--seed", "-1"), "seed must be in 0..4294967295"),
            ("unknown-stage", ("--stage", "nosuch"), "unknown stage(s) ['nosuch']"),
        ),
        kind="silent",
    ),
    *_opt(
        "data stats",
        ("data", "stats", "{data}", "--out", "{root}/s"),
        (
            ("samples-0", ("--samples", "0"), "--samples must be >= 1"),
            ("samples-negative", ("--samples", "-1"), "--samples must be >= 1"),
            ("samples-100000", ("--samples", "100000"), "is out of range 1..64"),
        ),
    ),
    *_opt(
        "drift",
        ("drift", "{data}", "{data}"),
        (
            ("psi-warn-negative", ("--psi-warn", "-1"), "psi_warn must be a number > 0"),
            (
                "psi-alert-below-warn",
                ("--psi-warn", "0.5", "--psi-alert", "0.1"),
                "psi_alert must be >= psi_warn",
            ),
            ("ks-alpha-2", ("--ks-alpha", "2"), "ks_alpha must be in (0, 1)"),
            ("min-window-0", ("--min-window", "0"), "min_window must be an integer >= 2"),
            ("min-slice-negative", ("--min-slice", "-5"), "min_slice must be an integer >= 2"),
            ("missing-alert-negative", ("--missing-alert", "-1"), "must be a number > 0"),
        ),
    ),
    *_opt(
        "shadow report",
        ("shadow", "report", "{data}"),
        (
            ("min-slice-crops-0", ("--min-slice-crops", "0"), "min_slice_crops must be"),
            ("gallery-negative", ("--gallery", "-1"), "gallery_max must be an integer >= 0"),
        ),
    ),
    *_opt(
        "shadow run",
        ("shadow", "run", _FAKE_MODEL, _FAKE_MODEL, "--out", "{root}/o"),
        (
            ("repeat-0", ("--repeat", "0"), "repeat must be an integer >= 1"),
            ("fsync-every-0", ("--fsync-every", "0"), "fsync_every must be an integer >= 1"),
            ("timeout-negative", ("--timeout", "-1"), "timeout_s must be > 0"),
            ("cost-runs-negative", ("--cost-runs", "-1"), "cost_runs must be an integer >= 1"),
            ("min-slice-crops-0", ("--min-slice-crops", "0"), "min_slice_crops must be"),
            ("limit-negative", ("--limit", "-1"), "x>=1"),
            ("limit-0", ("--limit", "0"), "x>=1"),
        ),
        setup=_cardrun,
        unchanged=("{data}", "{cardrun}"),
    ),
    *_opt(
        "bench",
        ("bench", _FAKE_MODEL),
        (
            ("batch-100000", ("--batch", "100000"), "batch must be <= 4096"),
            ("threads-1000", ("--threads", "1000"), "threads must be <= 256"),
            ("warmup-negative", ("--warmup", "-1"), "warmup must be >= 0"),
            ("timeout-negative", ("--timeout", "-5"), "timeout_s > 0"),
            ("min-seconds-negative", ("--min-seconds", "-1"), "min_seconds must be >= 0"),
            ("load-threads-100000", ("--load-threads", "100000"), "load_threads must be <= 256"),
            ("pin-negative", ("--pin", "-1"), "pin must list CPU numbers >= 0"),
            ("core-a99", ("--core", "a99"), "is not one of"),
            ("unknown-target", ("--target", "nosuch"), "unknown target 'nosuch'"),
        ),
        setup=_cardrun,
        unchanged=("{data}", "{cardrun}"),
    ),
    *_opt(
        "deploy",
        ("deploy", _FAKE_MODEL),
        (
            ("batch-100000", ("--host", "local", "--batch", "100000"), "batch must be <= 4096"),
            ("timeout-0", ("--host", "local", "--timeout", "0"), "timeout_s > 0"),
            ("warmup-negative", ("--host", "local", "--warmup", "-3"), "warmup must be >= 0"),
            ("unknown-host", ("--host", "nosuch"), "unknown target 'nosuch'"),
        ),
        setup=_cardrun,
        unchanged=("{data}", "{cardrun}"),
    ),
    *_opt(
        "eval",
        ("eval", "{cardrun}"),
        (
            ("max-fpr-2", ("--max-fpr", "2"), "max_fpr must be in (0, 1)"),
            ("min-recall-negative", ("--min-recall", "-1"), "min_recall must be in (0, 1]"),
            ("metadata-dropout-1.5", ("--metadata-dropout", "1.5"), "must be in [0, 1]"),
            ("threads-0", ("--threads", "0"), "batch and threads must be >= 1"),
            ("threads-100000", ("--threads", "100000"), "threads must be <= 256"),
            (
                "severity-9",
                ("--corruptions", "fog", "--severities", "9"),
                "severities must be a subset of (1, 2, 3, 4, 5)",
            ),
            ("unknown-corruption", ("--corruptions", "nosuch"), "unknown corruption(s) nosuch"),
            ("unknown-runner", ("--runner", "nosuch"), "is not one of 'local', 'beam'"),
        ),
        setup=_cardrun,
        unchanged=("{data}", "{cardrun}"),
    ),
    *_opt(
        "data import coco",
        ("data", "import", "coco", _M, "{root}/out", "--images", "{data}"),
        (
            ("split-fractions-two", ("--split-fractions", "0.5,0.5"), "is not three shares"),
            ("split-fractions-sum-3", ("--split-fractions", "1,1,1"), "is not three shares"),
            ("margin-negative", ("--margin", "-1"), "margin must be in [0, 1]"),
            ("min-height-0", ("--min-height", "0"), "min_height must be >= 8 pixels"),
            ("jitter-negative", ("--jitter", "-1"), "jitter_copies must be >= 0"),
            ("jitter-100000", ("--jitter", "100000"), "jitter_copies must be <= 1000"),
        ),
    ),
    *_opt(
        "data import kitti",
        ("data", "import", "kitti", "{data}", "{root}/out", "--images", "{data}"),
        (
            ("near-miss-negative", ("--near-miss", "-2"), "near_miss_per_person must be >= 0"),
            ("background-negative", ("--background", "-2"), "background_per_frame must be >= 0"),
            ("background-100000", ("--background", "100000"), "must be <= 1000"),
            ("margin-100", ("--margin", "100"), "margin must be in [0, 1]"),
        ),
    ),
    *_opt(
        "doctor",
        ("doctor",),
        (
            ("unknown-check", ("--only", "nosuch"), "unknown doctor check(s) ['nosuch']"),
            ("timeout-negative", ("--only", "python", "--timeout", "-1"), "timeout_s must be > 0"),
        ),
    ),
    *_opt(
        "demo",
        ("demo", "--out", "{root}/demo"),
        (
            ("drives-0", ("--drives", "0"), "drives must be >= 1"),
            ("epochs-scale-negative", ("--epochs-scale", "-1"), "epochs_scale must be > 0"),
        ),
    ),
    *_opt(
        "install",
        ("install", "{data}", "--host", "local", "--root", "{root}/dev"),
        (("attempts-0", ("--attempts", "0"), "--attempts must be >= 1"),),
    ),
    *_opt(
        "release",
        ("release",),
        (
            ("run-missing", ("{root}/nope",), "run directory not found"),
            ("without-gate-verdict", ("{data}",), "no gate verdict"),
        ),
    ),
    *_opt(
        "convert",
        ("convert", "{data}"),
        (("calibration-samples-0", ("--calibration-samples", "0"), "must be >= 1"),),
    ),
]
ROWS += VALUE_ROWS


# ---- inputs: paths that leave their folder, damaged shards, JSON of the wrong shape,
# images and metadata that do not mean what they say --------------------------------------


def _secret(env: Env) -> Path:
    """A file outside every root a command is given: nothing may read it."""
    return _png(env.p("outside/secret.png"), 99, size=(320, 240))


def _symlink(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


def _csv_with(env: Env, name: str, extra: Callable[[Env], None] = lambda e: None) -> None:
    _csv(env, [*_GOOD_CSV, f"{name},0,test"])
    extra(env)


def _bomb(path: Path) -> None:
    """72 megapixels in a few kilobytes: a 1-bit PNG whose header alone says too much."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("1", (9000, 8000)).save(path)


def _float_image(path: Path, value: float) -> None:
    pixels = np.full((96, 48), 0.5, np.float32)
    pixels[3, 4] = value
    Image.fromarray(pixels, mode="F").save(path)


def _shard(env: Env, split: str) -> Path:
    entry = json.loads((env.data / "manifest.json").read_text())["splits"][split]["shards"][0]
    return env.data / entry["file"]


def _foreign_shard(env: Env, split: str = "val") -> None:
    """Another shard's bytes cut to this shard's size: same size, other content."""
    target = _shard(env, split)
    other = _shard(env, "train" if split != "train" else "test").read_bytes()
    size = target.stat().st_size
    target.write_bytes((other * (size // len(other) + 1))[:size])


def _shard_linked_out(env: Env) -> None:
    shard = _shard(env, "val")
    moved = env.p("outside/moved.tfrecord")
    moved.parent.mkdir(parents=True, exist_ok=True)
    shard.rename(moved)
    shard.symlink_to(moved)


def _crc_lines(records: list[dict]) -> bytes:
    import zlib

    out = b""
    for record in records:
        body = json.dumps(record).encode()
        out += f"{zlib.crc32(body) & 0xFFFFFFFF:08x} ".encode() + body + b"\n"
    return out


_LOG_HEADER = {
    "t": "header",
    "kind": "edgeped.shadow_log",
    "schema_version": 1,
    "baseline": {"name": "a"},
    "candidate": {"name": "b"},
}
_LOG_CROP = {
    "t": "crop",
    "id": "c1",
    "b": {"p": 0.2, "y": 0, "ms": 1.0},
    "c": {"p": 0.7, "y": 1, "ms": 1.1},
    "meta": [None, 1, 2, 0.5, 0.5, 3],
    "img": [0.4, 0.1],
}


def _shadow_log(env: Env, crop_edit: Callable[[dict], None]) -> None:
    bad = json.loads(json.dumps(_LOG_CROP))
    crop_edit(bad)
    env.p("shadow_log.jsonl").write_bytes(_crc_lines([_LOG_HEADER, _LOG_CROP, bad]))
    env.paths["log"] = env.p("shadow_log.jsonl")


def _scores_run(env: Env, metrics: dict) -> None:
    run = env.p("srun")
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(metrics))
    np.savez(env.p("secret.npz"), crop_id=np.array(["a"]), label=np.array([1]))
    env.paths["srun"] = run


_METRICS = {"kind": "edgeped.metrics", "models": {"m": {"threshold": {"threshold": 0.5}}}}


def _reference(env: Env, payload) -> None:
    env.p("drift_reference.json").write_text(json.dumps(payload))
    env.paths["ref"] = env.p("drift_reference.json")


_REFERENCE = {
    "kind": "edgeped.drift_reference",
    "features": {"speed_mps": {"missing_rate": 0.0, "edges": [1.0], "shares": [0.5, 0.5]}},
    "slices": {},
    "scores": {},
}


def _run_config(env: Env, payload) -> None:
    _fake_run(env)
    (env.p("run") / "config.json").write_text(json.dumps(payload))


def _card_edit(env: Env, edit: Callable[[dict], None]) -> None:
    _card_run(env, str(env.data))
    path = env.p("cardrun") / "student_qat_int8.card.json"
    card = json.loads(path.read_text())
    edit(card)
    path.write_text(json.dumps(card))


def _metadata_csv(env: Env, column: str, value: str, good: str = "1") -> None:
    lines = [f"{ln},{good}" for ln in _GOOD_CSV[1:]]
    lines[-1] = f"{_GOOD_CSV[-1]},{value}"
    _csv(env, [f"{_GOOD_CSV[0]},{column}", *lines])


_CROPS = ("data", "import", "crops", "{csv}", "{root}/out")
_COCO = ("data", "import", "coco", "{coco}", "{root}/out", "--images", "{frames}")
_KITTI = ("data", "import", "kitti", "{kitti}", "{root}/out", "--images", "{frames}")
_KITTI_LINE = "Pedestrian 0 0 0 100 40 160 190 1.7 0.6 0.8 1 1 10 0\n"


def _kitti_link(env: Env, which: str) -> None:
    _kitti(env, _KITTI_LINE)
    secret = _secret(env)
    if which == "image":
        (env.p("kitti") / "f900.txt").write_text(_KITTI_LINE)
        _symlink(env.p("frames/f900.png"), secret)
    else:
        label = env.p("outside/f900.txt")
        label.write_text(_KITTI_LINE)
        _png(env.p("frames/f900.png"), 7, size=(320, 240))
        _symlink(env.p("kitti/f900.txt"), label)


def _nothing(env: Env) -> None:
    pass


INPUT_ROWS: list[Row] = [
    # paths named in files stay inside their folder
    *[
        Row(
            f"csv-path-{name}",
            "data import crops",
            "added",
            _CROPS,
            REFUSED,
            "lie outside the CSV's folder",
            setup=setup,
        )
        for name, setup in (
            ("dotdot", lambda e: _csv_with(e, "../outside/secret.png", _secret)),
            (
                "absolute-elsewhere",
                lambda e: _csv_with(e, str(e.p("outside/secret.png")), _secret),
            ),
            (
                "symlink-out",
                lambda e: _csv_with(
                    e, "link.png", lambda e: _symlink(e.p("crops/link.png"), _secret(e))
                ),
            ),
        )
    ],
    Row(
        "coco-file-name-dotdot",
        "data import coco",
        "data_loss",
        _COCO,
        REFUSED,
        "lies outside",
        setup=lambda e: (
            _secret(e),
            _coco(e, lambda d: d["images"][0].update(file_name="../outside/secret.png")),
        ),
    ),
    Row(
        "coco-file-name-symlink-out",
        "data import coco",
        "added",
        _COCO,
        REFUSED,
        "is a symlink to",
        setup=lambda e: (
            _coco(e, lambda d: d["images"][0].update(file_name="link.png")),
            _symlink(e.p("frames/link.png"), _secret(e)),
        ),
    ),
    Row(
        "coco-file-name-absolute-elsewhere",
        "data import coco",
        "added",
        _COCO,
        REFUSED,
        "lies outside",
        setup=lambda e: _coco(e, lambda d: d["images"][0].update(file_name=str(_secret(e)))),
    ),
    Row(
        "kitti-image-symlink-out",
        "data import kitti",
        "added",
        _KITTI,
        REFUSED,
        "is a symlink to",
        setup=lambda e: _kitti_link(e, "image"),
    ),
    Row(
        "kitti-label-symlink-out",
        "data import kitti",
        "added",
        _KITTI,
        REFUSED,
        "is a symlink to",
        setup=lambda e: _kitti_link(e, "label"),
    ),
    Row(
        "stats-shard-symlink-out",
        "data stats",
        "added",
        ("data", "stats", "{data}", "--out", "{root}/s"),
        REFUSED,
        "is a symlink to",
        setup=_shard_linked_out,
    ),
    Row(
        "verify-shard-symlink-out",
        "data verify",
        "added",
        ("data", "verify", "{data}"),
        1,
        "outside",
        setup=_shard_linked_out,
        fix_line=False,
    ),
    Row(
        "shadow-report-scores-dotdot",
        "shadow report",
        "data_loss",
        ("shadow", "report", "{srun}", "--baseline", "m", "--candidate", "m"),
        REFUSED,
        "lies outside",
        setup=lambda e: _scores_run(
            e, {**_METRICS, "test_scores": {"file": "../secret.npz", "sha256": "0" * 64}}
        ),
        unchanged=("{data}", "{srun}"),
    ),
    # shards checked against the manifest where they are read
    *[
        Row(
            f"{cmd.replace(' ', '-')}-foreign-{split}-shard",
            cmd,
            "silent",
            args,
            REFUSED,
            "does not match the dataset's manifest",
            setup=lambda e, split=split, extra=extra: (extra(e), _foreign_shard(e, split)),
        )
        for cmd, args, split, extra in (
            ("data stats", ("data", "stats", "{data}", "--out", "{root}/s"), "val", _nothing),
            ("data stats", ("data", "stats", "{data}", "--out", "{root}/s"), "test", _nothing),
            ("train", ("train", "{root}/r", "--data", "{data}"), "val", _nothing),
            ("train", ("train", "{root}/r", "--data", "{data}"), "train", _nothing),
            ("drift", ("drift", "{ref}", "{data}"), "val", lambda e: _reference(e, _REFERENCE)),
        )
    ],
    Row(
        "verify-false-split-total",
        "data verify",
        "silent",
        ("data", "verify", "{data}"),
        1,
        "totals_mismatch",
        setup=lambda e: _manifest(
            e, lambda m: m["splits"]["val"].update(records=m["splits"]["val"]["records"] + 9)
        ),
        fix_line=False,
    ),
    Row(
        "verify-false-dataset-total",
        "data verify",
        "silent",
        ("data", "verify", "{data}"),
        1,
        "totals_mismatch",
        setup=lambda e: _manifest(e, lambda m: m.update(records=m["records"] + 1)),
        fix_line=False,
    ),
    Row(
        "verify-false-head-sha256",
        "data verify",
        "added",
        ("data", "verify", "{data}"),
        1,
        "head_mismatch",
        setup=lambda e: _manifest(
            e, lambda m: m["splits"]["test"]["shards"][0].update(head_sha256="0" * 64)
        ),
        fix_line=False,
    ),
    # JSON of the wrong shape names the file and the key
    Row(
        "train-config-json-list",
        "train",
        "traceback",
        ("train", "{root}/r", "--data", "{data}", "--config", "{root}/train.json"),
        REFUSED,
        "the top level is a list",
        setup=lambda e: e.p("train.json").write_text("[]"),
    ),
    Row(
        "convert-config-json-list",
        "convert",
        "traceback",
        ("convert", "{fakerun}"),
        REFUSED,
        "the top level: [] is array, expected object",
        setup=lambda e: _run_config(e, []),
        unchanged=("{data}", "{fakerun}"),
    ),
    Row(
        "convert-config-data-dir-number",
        "convert",
        "traceback",
        ("convert", "{fakerun}"),
        REFUSED,
        "config.data_dir: 5 is integer",
        setup=lambda e: _run_config(e, {"kind": "edgeped.train_config", "config": {"data_dir": 5}}),
        unchanged=("{data}", "{fakerun}"),
    ),
    Row(
        "compare-metrics-threshold-string",
        "compare",
        "traceback",
        ("compare", "{metrics}", "--out", "{root}/cmp"),
        REFUSED,
        "models.m.threshold",
        setup=lambda e: _metrics(
            e, {"kind": "edgeped.metrics", "models": {"m": {"threshold": {"threshold": "x"}}}}
        ),
    ),
    Row(
        "compare-metrics-models-list",
        "compare",
        "traceback",
        ("compare", "{metrics}", "--out", "{root}/cmp"),
        REFUSED,
        "models",
        setup=lambda e: _metrics(e, {"kind": "edgeped.metrics", "models": ["m"]}),
    ),
    Row(
        "shadow-report-metrics-models-list",
        "shadow report",
        "traceback",
        ("shadow", "report", "{srun}", "--baseline", "m", "--candidate", "m"),
        REFUSED,
        "models: ['m'] is array, expected object",
        setup=lambda e: _scores_run(e, {"kind": "edgeped.metrics", "models": ["m"]}),
        unchanged=("{data}", "{srun}"),
    ),
    *[
        Row(
            f"shadow-report-log-{name}",
            "shadow report",
            "traceback",
            ("shadow", "report", "{log}", "--out", "{root}/rep"),
            REFUSED,
            phrase,
            setup=lambda e, edit=edit: _shadow_log(e, edit),
            unchanged=("{data}", "{log}"),
        )
        for name, edit, phrase in (
            ("score-string", lambda c: c["b"].update(p="high"), "b.p: 'high' is string"),
            ("decision-2", lambda c: c["c"].update(y=2), "c.y: 2 is not one of [0, 1]"),
            ("meta-five-values", lambda c: c.update(meta=[1, 2, 3, 4, 5]), "meta: has 5 items"),
            ("no-image-stats", lambda c: c.pop("img"), "'img' is missing"),
        )
    ],
    *[
        Row(
            f"drift-reference-{name}",
            "drift",
            "traceback",
            ("drift", "{ref}", "{data}"),
            REFUSED,
            phrase,
            setup=lambda e, payload=payload: _reference(e, payload),
        )
        for name, payload, phrase in (
            ("features-list", {**_REFERENCE, "features": []}, "features: [] is array"),
            (
                "edges-string",
                {**_REFERENCE, "features": {"speed_mps": {"missing_rate": 0, "edges": "1,2"}}},
                "features.speed_mps.edges",
            ),
            ("no-slices", {k: v for k, v in _REFERENCE.items() if k != "slices"}, "'slices'"),
        )
    ],
    Row(
        "eval-card-threshold-string",
        "eval",
        "traceback",
        ("eval", "{cardrun}"),
        REFUSED,
        "threshold",
        setup=lambda e: _card_edit(e, lambda c: c.update(threshold={"score": "0.5"})),
        unchanged=("{data}", "{cardrun}"),
    ),
    Row(
        "shadow-run-card-threshold-string",
        "shadow run",
        "traceback",
        ("shadow", "run", _FAKE_MODEL, _FAKE_MODEL, "--out", "{root}/o", "--data", "{data}"),
        REFUSED,
        "is not a valid model card: threshold",
        setup=lambda e: _card_edit(e, lambda c: c.update(threshold={"score": "high"})),
        unchanged=("{data}", "{cardrun}"),
    ),
    Row(
        "bench-card-std-zero",
        "bench",
        "silent",
        ("bench", _FAKE_MODEL),
        REFUSED,
        "preprocessing.metadata.std[5]: 0 must be above 0",
        setup=lambda e: _card_edit(
            e,
            lambda c: c.update(
                preprocessing={"metadata": {"mean": [0] * 6, "std": [1] * 5 + [0], "clip": 4}}
            ),
        ),
        unchanged=("{data}", "{cardrun}"),
    ),
    Row(
        "bench-card-mean-strings",
        "bench",
        "traceback",
        ("bench", _FAKE_MODEL),
        REFUSED,
        "preprocessing.metadata.mean[",
        setup=lambda e: _card_edit(
            e,
            lambda c: c.update(
                preprocessing={"metadata": {"mean": ["a"] * 6, "std": [1] * 6, "clip": 4}}
            ),
        ),
        unchanged=("{data}", "{cardrun}"),
    ),
    # images decoded through Pillow's proper paths
    Row(
        "csv-decompression-bomb",
        "data import crops",
        "traceback",
        _CROPS,
        REFUSED,
        "too large to decode safely",
        setup=lambda e: _csv_with(e, "big.png", lambda e: _bomb(e.p("crops/big.png"))),
    ),
    Row(
        "coco-decompression-bomb",
        "data import coco",
        "traceback",
        _COCO,
        REFUSED,
        "too large to decode safely",
        setup=lambda e: (_coco(e), _bomb(e.p("frames/f003.png"))),
    ),
    *[
        Row(
            f"csv-float-image-{name}",
            "data import crops",
            "silent",
            _CROPS,
            REFUSED,
            phrase,
            setup=lambda e, value=value: _csv_with(
                e, "f.tiff", lambda e: _float_image(e.p("crops/f.tiff"), value)
            ),
        )
        for name, value, phrase in (
            ("nan", np.nan, "NaN or infinite pixel values"),
            ("inf", np.inf, "NaN or infinite pixel values"),
            ("above-255", 4000.0, "not [0, 1] or [0, 255]"),
            ("negative", -2.0, "not [0, 1] or [0, 255]"),
        )
    ],
    # metadata within physical bounds, the row and column named
    *[
        Row(
            f"csv-metadata-{name}",
            "data import crops",
            "silent",
            _CROPS,
            REFUSED,
            phrase,
            setup=lambda e, column=column, value=value: _metadata_csv(e, column, value),
        )
        for name, column, value, phrase in (
            ("tod-sin-7.5", "tod_sin", "7.5", "tod_sin outside its physical range [-1, 1]"),
            ("tod-cos-minus-3", "tod_cos", "-3", "tod_cos outside its physical range"),
            ("speed-minus-40", "speed_mps", "-40", "speed_mps outside its physical range"),
            ("speed-4000", "speed_mps", "4000", "row 7: 4000"),
            ("yaw-rate-90", "yaw_rate_rps", "90", "yaw_rate_rps outside its physical range"),
            ("exposure-negative", "exposure_ms", "-5", "exposure_ms outside"),
            ("gain-500", "analog_gain_db", "500", "analog_gain_db outside"),
            ("speed-inf", "speed_mps", "inf", "non-finite speed_mps on 1 row(s), e.g. row 7"),
            ("gain-nan", "analog_gain_db", "nan", "non-finite analog_gain_db"),
        )
    ],
    Row(
        "csv-metadata-tod-off-circle",
        "data import crops",
        "silent",
        _CROPS,
        REFUSED,
        "not a point of the unit circle",
        setup=lambda e: _csv(
            e,
            [f"{_GOOD_CSV[0]},tod_sin,tod_cos"]
            + [f"{ln},{'0.1,0.1' if i == 3 else '0.6,0.8'}" for i, ln in enumerate(_GOOD_CSV[1:])],
        ),
    ),
]
ROWS += INPUT_ROWS


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
    scratch_before = _scratch(tmp_path)
    result = CliRunner().invoke(main, [env.fmt(a) for a in row.args])
    output = result.output
    assert "Traceback" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n{output}"
    )
    assert result.exit_code == _expected(row, output, result.exit_code), output
    assert row.phrase in " ".join(output.split()), output
    if "Usage:" not in output and result.exit_code in (64, 65) and row.fix_line:
        assert "error:" in output and "fix:" in output, output
    assert _hashes(guarded) == before, "a guarded file changed"
    assert not list(tmp_path.glob("pwned")), "an option-like host reached ssh"
    leftovers = [p for g in guarded if g.is_dir() for p in g.rglob("*.tmp")]
    assert not leftovers, leftovers
    assert _scratch(tmp_path) <= scratch_before, "a temp file or staging folder was left"


def _scratch(root: Path) -> set[Path]:
    """Temp files and hidden staging folders (`.name.*`, `*.tmp`) anywhere under root."""
    return {p for p in root.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"}


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
    assert proc.returncode == _expected(row, proc.stderr, proc.returncode), proc.stderr
    assert row.phrase in " ".join(proc.stderr.split()), proc.stderr
    assert _hashes(guarded) == before
