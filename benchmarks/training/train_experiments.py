"""Training and evaluation experiments: variants, imbalance, metadata, held-out night, repeats.

Runs the real `edgeped` commands on one dataset and records every command and the resulting
tables, with the provenance keys of `benchmarks.harness`, in
benchmarks/results/training/training-<YYYYMMDD>[-LABEL].{json,md}.

    python -m benchmarks.training.train_experiments --data runs/demo/data --out runs/experiments

Experiments (each a run directory under --out):
  variants    teacher, student (labels), distilled student, QAT int8, PTQ int8, pruned
  weight      student with natural mix + (n_neg/n_pos)^0.5 positive weight (vs "sample")
  focal       student with natural mix + focal loss
  imageonly   student without the metadata input
  nonight     student trained without night drives, tested on all (night slice)
  repeat      the variants run's student stage again with the same seed
plus side evaluations of the distilled/QAT models with metadata dropped at test time.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import harness


def _toml(stages_epochs: dict[str, int], extra: str = "") -> str:
    lines = [
        "[teacher_stage]",
        f"epochs = {stages_epochs.get('teacher', 3)}",
        "learning_rate = 0.002",
        "[student_stage]",
        f"epochs = {stages_epochs.get('student', 6)}",
        "learning_rate = 0.003",
        "[qat_stage]",
        f"epochs = {stages_epochs.get('qat', 1)}",
        "learning_rate = 0.0003",
        "[prune_stage]",
        f"epochs = {stages_epochs.get('prune', 2)}",
        "learning_rate = 0.0005",
    ]
    return extra + "\n" + "\n".join(lines) + "\n"


class Recorder:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.commands: list[dict] = []

    def run(self, *args: str) -> None:
        cmd = ["edgeped", *args]
        start = time.perf_counter()
        print("$", shlex.join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        self.commands.append(
            {"command": shlex.join(cmd), "seconds": round(time.perf_counter() - start, 1)}
        )


def result_record(dataset: str, commands: list[dict], comparison: dict, record: dict) -> dict:
    """The experiments as a result: the provenance record (`harness.provenance`), the
    commands with their seconds, and `edgeped compare`'s rows."""
    return {**record, "dataset": dataset, "commands": commands, "rows": comparison["rows"]}


def markdown(comparison_md: str, commands: list[dict]) -> str:
    """`edgeped compare`'s table, then the commands that made it."""
    return (
        comparison_md
        + "\n\nCommands:\n\n"
        + "\n".join(f"- `{c['command']}` ({c['seconds']} s)" for c in commands)
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder (edgeped data synth ...)")
    parser.add_argument("--out", default="runs/experiments")
    parser.add_argument("--only", nargs="*", help="run only these experiments")
    parser.add_argument(
        "--reuse",
        help="a run (e.g. the demo's) whose teacher, distilled and QAT "
        "students seed the variants run; its student epochs must match",
    )
    parser.add_argument(
        "--label",
        default="",
        help="qualifier of the results files "
        "(training-<YYYYMMDD>-LABEL.json), to keep an earlier record of the same day",
    )
    args = parser.parse_args(argv)
    provenance = harness.provenance("training", argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rec = Recorder(out)
    chosen = set(args.only or ["variants", "weight", "focal", "imageonly", "nonight", "repeat"])

    def config(name: str, extra: str = "", **epochs) -> Path:
        path = out / f"{name}.toml"
        path.write_text(_toml(epochs, extra))
        return path

    def train_eval(name: str, stages: str, cfg: Path) -> Path:
        run = out / name
        rec.run("train", str(run), "--data", args.data, "--config", str(cfg), "--stages", stages)
        rec.run("convert", str(run))
        rec.run("eval", str(run))
        return run

    if "variants" in chosen:
        stages = "teacher,student,student_distilled,student_qat,student_pruned"
        if args.reuse:
            import shutil

            shutil.copytree(args.reuse, out / "variants", dirs_exist_ok=True)
            stages = "student,student_pruned"
        run = train_eval("variants", stages, config("variants"))
        for frac, tag in ((1.0, "nometa"), (0.5, "halfmeta")):
            rec.run(
                "eval",
                str(run),
                "--metadata-dropout",
                str(frac),
                "--tag",
                tag,
                "--only",
                "student_distilled_float32",
                "--only",
                "student_qat_int8",
            )
    if "weight" in chosen:
        train_eval("weight", "student", config("weight", 'imbalance = "weight"'))
    if "focal" in chosen:
        train_eval("focal", "student", config("focal", 'imbalance = "none"\nloss = "focal"'))
    if "imageonly" in chosen:
        cfg = config("imageonly")
        cfg.write_text(
            cfg.read_text() + '[student]\narchitecture = "student"\nuse_metadata = false\n'
        )
        train_eval("imageonly", "student", cfg)
    if "nonight" in chosen:
        train_eval("nonight", "student", config("nonight", 'exclude = ["lighting=night"]'))
    if "repeat" in chosen:
        train_eval("repeat", "student", config("repeat"))

    sources = [
        f"{name}={out / name}"
        for name in ("variants", "weight", "focal", "imageonly", "nonight", "repeat")
        if (out / name / "metrics.json").exists()
    ]
    sources += [
        f"variants-{tag}={out / 'variants' / f'metrics-{tag}.json'}"
        for tag in ("nometa", "halfmeta")
        if (out / "variants" / f"metrics-{tag}.json").exists()
    ]
    rec.run(
        "compare",
        *sources,
        "--out",
        str(out / "comparison"),
        "--slice",
        "lighting=night",
        "--slice",
        "weather=rain",
        "--slice",
        "hard_negative=cyclist",
        "--slice",
        "hard_negative=pole",
    )
    comparison = json.loads((out / "comparison" / "comparison.json").read_text())
    record = result_record(args.data, rec.commands, comparison, harness.finish(provenance))
    path = harness.result_path("training", "training", args.label)
    text = markdown((out / "comparison" / "comparison.md").read_text(), rec.commands)
    harness.write_result(path, record, text)
    print(f"recorded {path} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
