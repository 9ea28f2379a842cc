"""Scale-out benchmarks: Beam vs local data and eval throughput, 1 vs 2 training workers.

    nice -n 10 python -m benchmarks.scale.bench_scale [--work /tmp/edgeped-bench-scale] [--quick]
        [--out benchmarks/results/scale/scale-<YYYYMMDD>.json] [--table benchmarks/scale/scale.md]

All figures come from one run, so ratios compare like with like on the same
(shared) machine:

- data: fleet synth, crops-CSV import and verify, locally (1 and 2 processes)
  and as Beam pipelines on the FnApiRunner multi-processing runner (1 and 2
  workers); crops/s and Beam/local ratios;
- eval: scoring val+test with an int8 student through LiteRT, in-process vs Beam
  (1 and 2 workers); crops/s;
- train: the student stage under MultiWorkerMirroredStrategy with 1 and 2
  worker processes on localhost (TF_CONFIG), global batch fixed; steps/s from
  the second epoch (the first builds the graphs);
- an extrapolation to 12.5M crops and one training epoch on N workers from
  the measured per-worker rates.

Writes benchmarks/results/scale/scale-<YYYYMMDD>.json and the tables in
benchmarks/scale/scale.md, where docs/scale.md points (`--render JSON` rewrites the tables
from a results file, which it leaves as it is).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from benchmarks import harness

HERE = Path(__file__).resolve().parent
ROOT = harness.REPO_ROOT
TOPIC, SUBJECT = "scale", "scale"
TABLE = HERE / "scale.md"  # docs/scale.md points here
PACKAGES = ("apache-beam", "tensorflow", "ai-edge-litert", "numpy")
CONTENTION = (
    "shared 2-core machine; other jobs (model training at higher priority, test suites) ran "
    "during the benchmark, which itself ran at nice {nice}"
)
FLEET_CROPS = 12_500_000
TRAIN_SHARE = 0.7


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_data(work: Path, drives: int) -> dict:
    import numpy as np
    from PIL import Image

    from edgeped.data.beam_pipeline import import_crops_beam, verify_beam, write_fleet_beam
    from edgeped.data.beam_runtime import BeamConfig
    from edgeped.data.fleet import FleetConfig, write_fleet
    from edgeped.data.importers.crops_csv import import_crops
    from edgeped.data.shards import Dataset
    from edgeped.data.verify import verify

    out: dict = {}
    crops = 0
    # synth (fleet generator: the one that models the 12.5M-crop fleet set)
    for label, fn in (
        (
            "local_1",
            lambda d: write_fleet(d, FleetConfig(drives=drives, workers=1), shard_records=512),
        ),
        (
            "local_2",
            lambda d: write_fleet(d, FleetConfig(drives=drives, workers=2), shard_records=512),
        ),
        *(
            (
                f"beam_{n}",
                lambda d, n=n: write_fleet_beam(
                    d,
                    FleetConfig(drives=drives, workers=1),
                    BeamConfig((f"direct_num_workers={n}",)),
                    shard_records=512,
                ),
            )
            for n in (1, 2)
        ),
    ):
        target = work / f"synth_{label}"
        shutil.rmtree(target, ignore_errors=True)
        seconds = _timed(lambda fn=fn, target=target: fn(str(target)))
        crops = Dataset.open(target).manifest["records"]
        out.setdefault("synth", {})[label] = {"seconds": seconds, "crops_per_s": crops / seconds}
    data = work / "synth_local_1"

    # import: the crops of the synth set as PNG files listed in a CSV
    src = work / "csv"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir()
    rows = ["path,label,drive_id"]
    ds = Dataset.open(data)
    n = 0
    # Every split: the importer refuses a CSV whose drives leave val or test empty.
    for split in ("train", "val", "test"):
        for batch in ds.iter_batches(split):
            for i in range(len(batch)):
                Image.fromarray(batch.images[i]).save(src / f"{n}.png")
                rows.append(f"{n}.png,{int(batch.labels[i])},{batch.drive_id[i]}")
                n += 1
    (src / "crops.csv").write_text("\n".join(rows) + "\n")
    for label, fn in (
        ("local_1", lambda d: import_crops(src / "crops.csv", d)),
        *(
            (
                f"beam_{k}",
                lambda d, k=k: import_crops_beam(
                    src / "crops.csv", d, BeamConfig((f"direct_num_workers={k}",))
                ),
            )
            for k in (1, 2)
        ),
    ):
        target = work / f"import_{label}"
        shutil.rmtree(target, ignore_errors=True)
        seconds = _timed(lambda fn=fn, target=target: fn(str(target)))
        out.setdefault("import", {})[label] = {"seconds": seconds, "crops_per_s": n / seconds}
    out["import"]["crops"] = n

    for label, fn in (
        ("local_1", lambda: verify(data)),
        *(
            (f"beam_{k}", lambda k=k: verify_beam(data, BeamConfig((f"direct_num_workers={k}",))))
            for k in (1, 2)
        ),
    ):
        seconds = _timed(fn)
        out.setdefault("verify", {})[label] = {"seconds": seconds, "crops_per_s": crops / seconds}
    out["synth"]["crops"] = out["verify"]["crops"] = crops
    assert np.isfinite(crops)
    return out


TRAIN_TOML = """
batch_size = 64
seed = 0
data_dir = "{data}"
[student]
architecture = "student"
[student_stage]
epochs = {epochs}
learning_rate = 0.002
steps_per_epoch = {steps}
"""


def _run(args, env=None, timeout=1800) -> str:
    proc = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(ROOT)
    )
    if proc.returncode:
        raise RuntimeError(f"{args[:3]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def _env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def bench_eval(work: Path, data: Path) -> dict:
    """Trains a student for a few steps (scoring speed does not depend on weights), converts
    it to int8, then times scoring val+test in-process vs Beam."""
    from edgeped.data.beam_runtime import BeamConfig
    from edgeped.data.shards import Dataset
    from edgeped.evaluate.beam_score import beam_scorer
    from edgeped.evaluate.run import EvalConfig, find_models, score_local

    run = work / "eval_run"
    shutil.rmtree(run, ignore_errors=True)
    config = work / "eval_train.toml"
    config.write_text(TRAIN_TOML.format(data=data, epochs=1, steps=4))
    edgeped = [sys.executable, "-c", "from edgeped.cli import main; main()"]
    _run([*edgeped, "train", str(run), "--config", str(config), "--stages", "student"], _env())
    _run([*edgeped, "convert", str(run), "--only", "student_ptq_int8"], _env())
    models = find_models(run, ("student_ptq_int8",))
    dataset = Dataset.open(data)
    crops = dataset.count("val") + dataset.count("test")
    cfg = EvalConfig(threads=1)
    out = {"crops": crops, "model": "student_ptq_int8", "interpreter_threads": 1}
    for label, scorer in (
        ("local_1", score_local),
        ("beam_1", beam_scorer(BeamConfig(("direct_num_workers=1",)))),
        ("beam_2", beam_scorer(BeamConfig(("direct_num_workers=2",)))),
    ):
        seconds = _timed(lambda scorer=scorer: scorer(dataset, models, cfg, lambda _: None))
        out[label] = {"seconds": seconds, "crops_per_s": crops / seconds}
    return out


WORKER = textwrap.dedent(
    """
    import json, sys, time
    from edgeped.config import load_mapping
    from edgeped.train.config import TrainConfig
    from edgeped.train.distributed import train_distributed

    stamps = []
    def progress(message):
        if ": epoch " in message:
            stamps.append(time.perf_counter())
    config = TrainConfig.from_dict(load_mapping(sys.argv[1]))
    train_distributed(sys.argv[2], config, stages=("student",), progress=progress,
                      worker_dir=sys.argv[3])
    print("STAMPS " + json.dumps(stamps))
    """
)


def _ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def bench_train(work: Path, data: Path, steps: int) -> dict:
    config = work / "dist_train.toml"
    config.write_text(TRAIN_TOML.format(data=data, epochs=2, steps=steps))
    script = work / "dist_worker.py"
    script.write_text(WORKER)
    out: dict = {"global_batch": 64, "steps_per_epoch": steps, "architecture": "student"}
    for workers in (1, 2):
        cluster = {"worker": [f"127.0.0.1:{p}" for p in _ports(workers)]}
        procs = []
        for index in range(workers):
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            run = work / f"dist_{workers}"
            shutil.rmtree(run, ignore_errors=True)
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(script),
                        str(config),
                        str(run),
                        str(work / f"dist_{workers}_w{index}"),
                    ],
                    env=_env(TF_CONFIG=tf_config),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=str(ROOT),
                )
            )
        logs = [p.communicate(timeout=3600) for p in procs]
        for p, (_stdout, stderr) in zip(procs, logs, strict=True):
            if p.returncode:
                raise RuntimeError(f"training worker failed:\n{stderr[-3000:]}")
        stamps = json.loads(
            next(line for line in logs[0][0].splitlines() if line.startswith("STAMPS "))[7:]
        )
        epoch = stamps[1] - stamps[0]  # second epoch: steps plus one pass over val
        out[f"workers_{workers}"] = {
            "second_epoch_seconds": epoch,
            "steps_per_s": steps / epoch,
            "examples_per_s": steps * 64 / epoch,
        }
    return out


def extrapolate(data: dict, eval_: dict, train: dict) -> dict:
    """Wall time on N workers from the measured per-worker rates.

    A Beam worker runs the same render/score functions as the in-process path, so the
    per-worker rate is the in-process 1-process rate; what Beam adds at this size is a
    fixed start-up cost per pipeline (worker processes, stage fusion), measured as
    Beam-1-worker time minus local time and added once. Training uses the 1-worker
    examples/s and the measured 2-worker efficiency for every N > 1.
    """
    out = {}
    for key, rows in (("generate", data["synth"]), ("evaluate", eval_)):
        local = rows["local_1"]
        out[key] = {
            "per_worker_crops_per_s": local["crops_per_s"],
            "beam_fixed_seconds": max(0.0, rows["beam_1"]["seconds"] - local["seconds"]),
        }
    step = train["workers_1"]["examples_per_s"]
    eff = train["workers_2"]["examples_per_s"] / (2 * step)
    epoch_examples = FLEET_CROPS * TRAIN_SHARE
    rows = {}
    for n in (1, 8, 32, 128):
        rows[str(n)] = {
            **{
                f"{key}_12.5M_hours": (
                    FLEET_CROPS / (v["per_worker_crops_per_s"] * n) + v["beam_fixed_seconds"]
                )
                / 3600
                for key, v in out.items()
            },
            "train_epoch_hours": epoch_examples / (step * n * (eff if n > 1 else 1.0)) / 3600,
        }
    return {
        "assumption": "Beam workers at the in-process per-worker rate plus the measured fixed "
        "pipeline start-up; training at the 1-worker rate times N times the measured 2-worker "
        "efficiency; all-reduce and shared-storage costs beyond localhost are not measured",
        "per_worker": out,
        "train_examples_per_s_one_worker": step,
        "train_two_worker_efficiency": eff,
        "train_epoch_examples": epoch_examples,
        "workers": rows,
    }


def _loads(values: list[float] | None) -> str:
    return " ".join(f"{x:.2f}" for x in values or [])


def render(result: dict) -> str:
    """benchmarks/scale/scale.md: the figures of one run as tables."""
    m, v = result["machine"], result["tool_versions"]
    d, e, t, x = (result[k] for k in ("data", "eval", "train", "extrapolation"))
    before, after = result["loadavg_before_after"]
    lines = [
        "# Scale-out benchmark (Beam, tf.distribute)",
        "",
        f"`{result['command']}` on {m['host']} ({m['cpu_count']} cores, Python {v['python']}), "
        f"{result['date_utc']}; apache-beam {v['apache-beam']}, tensorflow "
        f"{v['tensorflow']}, ai-edge-litert {v['ai-edge-litert']}.",
        f"Contention: {result['contention']}; load average {_loads(before)} before, "
        f"{_loads(after)} after. Ratios come from one run; absolute rates on "
        "this machine are not a statement about an idle one. Figures in "
        f"`{result['file']}`.",
        "",
        "## Beam vs local throughput (crops/s; ratio to local with 1 process)",
        "",
        "| stage | crops | local 1 | local 2 | Beam 1 worker | Beam 2 workers | Beam 1 / local | Beam 2 / local |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for stage, rows in (
        ("synth (fleet)", d["synth"]),
        ("import (crops CSV)", d["import"]),
        ("verify", d["verify"]),
        ("eval (int8 student, LiteRT)", e),
    ):
        local2 = f"{rows['local_2']['crops_per_s']:.0f}" if "local_2" in rows else "-"
        base = rows["local_1"]["crops_per_s"]
        lines.append(
            f"| {stage} | {rows['crops']} | {base:.0f} | {local2} | "
            f"{rows['beam_1']['crops_per_s']:.0f} | {rows['beam_2']['crops_per_s']:.0f} | "
            f"{rows['beam_1']['crops_per_s'] / base:.2f} | {rows['beam_2']['crops_per_s'] / base:.2f} |"
        )
    w1, w2 = t["workers_1"], t["workers_2"]
    lines += [
        "",
        f"## Training: MultiWorkerMirroredStrategy, {t['architecture']}, global batch "
        f"{t['global_batch']}, {t['steps_per_epoch']} steps per epoch (second epoch timed)",
        "",
        "| workers | steps/s | examples/s | ratio |",
        "|---:|---:|---:|---:|",
        f"| 1 | {w1['steps_per_s']:.2f} | {w1['examples_per_s']:.0f} | 1.00 |",
        f"| 2 | {w2['steps_per_s']:.2f} | {w2['examples_per_s']:.0f} | "
        f"{w2['steps_per_s'] / w1['steps_per_s']:.2f} |",
        "",
        "## Extrapolation to the fleet set (12.5M crops) on N workers",
        "",
        f"Assumption: {x['assumption']}. Per-worker rates: generate "
        f"{x['per_worker']['generate']['per_worker_crops_per_s']:.0f} crops/s (+"
        f"{x['per_worker']['generate']['beam_fixed_seconds']:.0f} s Beam start-up), score "
        f"{x['per_worker']['evaluate']['per_worker_crops_per_s']:.0f} crops/s (+"
        f"{x['per_worker']['evaluate']['beam_fixed_seconds']:.0f} s), train "
        f"{x['train_examples_per_s_one_worker']:.0f} examples/s with 2-worker efficiency "
        f"{x['train_two_worker_efficiency']:.2f}. One epoch = "
        f"{x['train_epoch_examples']:.3g} train examples.",
        "",
        "| workers | generate 12.5M (h) | evaluate 12.5M (h) | one training epoch (h) |",
        "|---:|---:|---:|---:|",
    ]
    for n, row in x["workers"].items():
        lines.append(
            f"| {n} | {row['generate_12.5M_hours']:.2f} | {row['evaluate_12.5M_hours']:.2f} | "
            f"{row['train_epoch_hours']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def from_pre_harness(result: dict[str, Any]) -> dict[str, Any]:
    """A result written before benchmarks.harness (scale-20261201.json) in the harness keys
    `render` reads; the file itself is left as it is."""
    if "date_utc" in result:
        return result
    m = result["machine"]
    return {
        **result,
        "date_utc": result["date"],
        "machine": {"host": m["host"], "cpu_count": m["cpus"]},
        "tool_versions": {"python": m["python"], **result["versions"]},
        "loadavg_before_after": [
            [float(x) for x in m["loadavg_before"]],
            [float(x) for x in m["loadavg_after"]],
        ],
        "contention": m["contention"],
    }


def shown_path(path: Path) -> str:
    """`path` as the tables cite it: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def summarise(drives: int, data: dict, eval_: dict, train: dict) -> dict[str, Any]:
    """The measured part of the result: the figures, their ratios and the extrapolation."""
    return {
        "fleet_drives": drives,
        "data": data,
        "eval": eval_,
        "train": train,
        "ratios": {
            **{
                f"{stage}_beam_{n}_over_local_1": data[stage][f"beam_{n}"]["crops_per_s"]
                / data[stage]["local_1"]["crops_per_s"]
                for stage in ("synth", "import", "verify")
                for n in (1, 2)
            },
            "synth_local_2_over_local_1": data["synth"]["local_2"]["crops_per_s"]
            / data["synth"]["local_1"]["crops_per_s"],
            **{
                f"eval_beam_{n}_over_local_1": eval_[f"beam_{n}"]["crops_per_s"]
                / eval_["local_1"]["crops_per_s"]
                for n in (1, 2)
            },
            "train_2_workers_over_1_steps_per_s": train["workers_2"]["steps_per_s"]
            / train["workers_1"]["steps_per_s"],
        },
        "extrapolation": extrapolate(data, eval_, train),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/edgeped-bench-scale")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    parser.add_argument(
        "--out", type=Path, help="JSON file [default: benchmarks/results/scale/scale-<day>.json]"
    )
    parser.add_argument(
        "--table", type=Path, default=TABLE, help="Markdown tables [default: %(default)s]"
    )
    parser.add_argument("--render", metavar="JSON", help="only rewrite the tables from a result")
    args = parser.parse_args(argv)
    from edgeped.fileio import write_text_atomic

    if args.render:
        result = from_pre_harness(json.loads(Path(args.render).read_text()))
        # The extrapolation is a function of the recorded measurements: recompute it.
        result["extrapolation"] = extrapolate(result["data"], result["eval"], result["train"])
        write_text_atomic(args.table, render({**result, "file": shown_path(Path(args.render))}))
        return
    out = args.out or harness.result_path(TOPIC, SUBJECT)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    drives, steps = (8, 6) if args.quick else (24, 10)
    result = harness.provenance("scale", argv, packages=PACKAGES)
    result["contention"] = CONTENTION.format(nice=os.nice(0))
    started = time.time()
    data = bench_data(work, drives)
    eval_ = bench_eval(work, work / "synth_local_1")
    train = bench_train(work, work / "synth_local_1", steps)
    result.update(summarise(drives, data, eval_, train))
    result["seconds"] = time.time() - started
    harness.finish(result)
    harness.write_result(out, result)
    write_text_atomic(args.table, render({**result, "file": shown_path(out)}))
    print(json.dumps(result["ratios"], indent=2))
    print(out)


if __name__ == "__main__":
    main()
