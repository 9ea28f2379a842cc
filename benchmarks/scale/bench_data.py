"""Data benchmarks: generator crops/s per core, shard write/read throughput, streaming
memory on a dataset 10x the default size, and the extrapolation to 12.5M crops.

    python -m benchmarks.scale.bench_data [--work /tmp/edgeped-bench-data] [--quick]
        [--out benchmarks/results/scale/data-<YYYYMMDD>.json]

Each measurement runs in a fresh child process so its peak RSS (VmHWM) is its own.
The 1x/10x streaming sets are built from one generated base set by listing its shard
files (hard links) 3x and 30x in a new manifest: readers open every listed file, so
the bytes streamed are real while the disk and generation cost stay small.
Writes benchmarks/results/scale/data-<YYYYMMDD>.json and the .csv beside it; a --quick
smoke run writes into the --work folder instead.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# benchmarks.harness is imported by the orchestrating process only (main), not by the
# measuring children, so their peak RSS stays what it was.
TOPIC, SUBJECT = "scale", "data"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CROPS = 600 * 50  # `edgeped data synth` default: 600 drives x 50 crops
FLEET_CROPS = 12_500_000


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- child measurements ---------------------------------------------------------------


def child_generate(generator: str, drives: int, crops: int) -> dict:
    import numpy as np

    if generator == "fleet":
        from edgeped.data.fleet import FleetConfig, generate_drive

        config = FleetConfig(drives=drives, crops_per_drive=crops, workers=1)
    else:
        from edgeped.data.synthetic import SynthConfig, generate_drive

        config = SynthConfig(drives=drives, crops_per_drive=crops, workers=1)
    generate_drive(config, 0)  # warm-up (imports, first allocations)
    start, cpu = time.perf_counter(), time.process_time()
    n = sum(len(generate_drive(config, d)) for d in range(1, drives))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "crops": n,
        "seconds": wall,
        "cpu_seconds": cpu,
        "crops_per_s_wall": n / wall,
        "crops_per_cpu_s": n / cpu,
        "rss_mb": _peak_rss_mb(),
        "np": np.__version__,
    }


def child_write_parallel(out: str, drives: int, workers: int) -> dict:
    from edgeped.data.fleet import FleetConfig, write_fleet

    start = time.perf_counter()
    m = write_fleet(
        out,
        FleetConfig(drives=drives, crops_per_drive=50, workers=workers),
        shard_records=1024,
        overwrite=True,
    )
    wall = time.perf_counter() - start
    size = sum(s["bytes"] for sp in m["splits"].values() for s in sp["shards"])
    return {
        "crops": m["records"],
        "seconds": wall,
        "crops_per_s": m["records"] / wall,
        "bytes": size,
        "bytes_per_crop": size / m["records"],
        "workers": workers,
        "rss_mb_parent": _peak_rss_mb(),
    }


def child_write_serial(src: str, out: str) -> dict:
    """Encode + write + hash only (records already in memory): the shard writer's own cost."""
    from edgeped.data.schema import CropBatch
    from edgeped.data.shards import Dataset
    from edgeped.data.writer import DatasetWriter

    ds = Dataset.open(src)
    batch = CropBatch.concat([ds.read(s) for s in ("train", "val", "test") if ds.count(s)])
    start, cpu = time.perf_counter(), time.process_time()
    writer = DatasetWriter(out, overwrite=True, shard_records=1024)
    writer.add(batch)
    m = writer.close()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "crops": m["records"],
        "seconds": wall,
        "crops_per_s": m["records"] / wall,
        "crops_per_cpu_s": m["records"] / cpu,
    }


def child_read_numpy(root: str) -> dict:
    from edgeped.data.shards import Dataset

    ds = Dataset.open(root)
    start, n = time.perf_counter(), 0
    for batch in ds.iter_batches("train"):
        n += len(batch)
    wall = time.perf_counter() - start
    return {"crops": n, "seconds": wall, "crops_per_s": n / wall, "peak_rss_mb": _peak_rss_mb()}


def child_read_tf(root: str, balanced: bool) -> dict:
    from edgeped.data.pipeline import PipelineOptions, make_dataset, positives_fit_in_memory
    from edgeped.data.preprocess import Preprocessing
    from edgeped.data.shards import Dataset

    ds = Dataset.open(root)
    prep = Preprocessing.from_manifest_stats(ds.metadata_stats())
    options = PipelineOptions(
        batch_size=64, shuffle_buffer=4096, positive_fraction=0.5 if balanced else None
    )
    pipe = make_dataset(ds, "train", prep, options, shuffle=True)
    steps = (ds.positives("train") * 2) // 64 if balanced else None
    rss_after_import = _peak_rss_mb()
    start, n, samples = time.perf_counter(), 0, []
    for i, (_, y, _) in enumerate(pipe):
        n += int(y.shape[0])
        if i % 200 == 0:
            samples.append(round(_peak_rss_mb(), 1))
        if steps is not None and i + 1 >= steps:
            break
    wall = time.perf_counter() - start
    cached = balanced and positives_fit_in_memory(ds, "train", options.cache_positives_mb)
    return {
        "crops": n,
        "seconds": wall,
        "crops_per_s": n / wall,
        "peak_rss_mb": _peak_rss_mb(),
        "rss_mb_before_stream": rss_after_import,
        "peak_rss_mb_every_200_batches": samples,
        "positives_cached_in_memory": cached,
    }


CHILDREN = {
    "generate": child_generate,
    "write_parallel": child_write_parallel,
    "write_serial": child_write_serial,
    "read_numpy": child_read_numpy,
    "read_tf": child_read_tf,
}


def _child(name: str, *args) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-m", __spec__.name, "--child", name, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- orchestration ----------------------------------------------------------------------


def replicate(base: Path, out: Path, copies: int) -> dict:
    """A dataset listing every shard of `base` `copies` times (hard links, same bytes)."""
    import shutil

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    manifest = json.loads((base / "manifest.json").read_text())
    for info in manifest["splits"].values():
        shards = []
        for k in range(copies):
            for s in info["shards"]:
                name = f"{k:03d}-{s['file']}"
                os.link(base / s["file"], out / name)
                shards.append({**s, "file": name})
        info["shards"] = shards
        for key in ("records", "positives", "hard_negatives"):
            info[key] = info.get(key, 0) * copies
    manifest["records"] *= copies
    manifest["source"] = {**manifest["source"], "replicated_from": str(base), "copies": copies}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def cpu_model() -> str:
    """The CPU's model name (what `platform` does not say on Linux)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
        platform.processor(),
    )


def out_path(quick: bool, work: Path, out: Path | None = None) -> Path:
    """Where the JSON goes: --out, else the work folder for a --quick smoke run (only full
    runs are results), else today's benchmarks/results/scale/data-<YYYYMMDD>.json."""
    from benchmarks import harness

    if out is not None:
        return out
    path = harness.result_path(TOPIC, SUBJECT)
    return work / path.name if quick else path


def extrapolate(results: dict[str, Any]) -> dict[str, Any]:
    """The 12.5M-crop fleet set from the measured rates (linear: shards are independent)."""
    fleet = results["generate_fleet_1proc"]
    per_crop = results["write_parallel_fleet"]["bytes_per_crop"]
    return {
        "crops": FLEET_CROPS,
        "disk_gb": FLEET_CROPS * per_crop / 1e9,
        "generate_core_hours": FLEET_CROPS / fleet["crops_per_cpu_s"] / 3600,
        "generate_hours_on_2_cores": FLEET_CROPS / fleet["crops_per_cpu_s"] / 2 / 3600,
        "generate_hours_on_32_cores": FLEET_CROPS / fleet["crops_per_cpu_s"] / 32 / 3600,
        "write_hours_serial_encode": FLEET_CROPS
        / results["write_serial"]["crops_per_cpu_s"]
        / 3600,
        "epoch_hours_tf_data_here": FLEET_CROPS / results["read_tf_10x"]["crops_per_s"] / 3600,
        "verify_or_stats_hours_numpy_reader": FLEET_CROPS
        / results["read_numpy_10x"]["crops_per_s"]
        / 3600,
        "basis": "single-process fleet crops per CPU-second, bytes per crop of the parallel write, "
        "tf.data and numpy read rates on the 10x set; linear in crops (shards are independent)",
    }


def csv_table(results: dict[str, Any]) -> str:
    """One row per measurement: crops, seconds, crops/s, peak RSS (the CSV beside the JSON)."""
    buffer = io.StringIO(newline="")
    w = csv.writer(buffer)
    w.writerow(["measurement", "crops", "seconds", "crops_per_s", "peak_rss_mb"])
    for key, r in results.items():
        if isinstance(r, dict) and "crops" in r and key != "extrapolation_12_5M":
            w.writerow(
                [
                    key,
                    r["crops"],
                    round(r["seconds"], 2),
                    round(r.get("crops_per_s", r.get("crops_per_s_wall", 0)), 1),
                    round(r.get("peak_rss_mb", r.get("rss_mb", float("nan"))), 1),
                ]
            )
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/edgeped-bench-data")
    parser.add_argument("--quick", action="store_true", help="smaller sets (a smoke run)")
    parser.add_argument("--out", type=Path, help="JSON file (the CSV goes beside it)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="?", help=argparse.SUPPRESS)
    a = parser.parse_args(argv)
    if a.child:
        print(json.dumps(CHILDREN[a.child](*json.loads(a.args))))
        return
    from benchmarks import harness
    from edgeped.fileio import write_text_atomic

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    out = out_path(a.quick, work, a.out)
    results = harness.provenance("data", argv)
    results["cpu_model"] = cpu_model()
    gen_drives = 6 if a.quick else 16
    print("generator, one process each ...", flush=True)
    results["generate_fleet_1proc"] = _child("generate", "fleet", gen_drives, 50)
    results["generate_v1_1proc"] = _child("generate", "v1", gen_drives, 50)
    base_drives = 20 if a.quick else 200  # 10,000 crops, ~240 MB
    print("parallel fleet write (generate + encode + write, 2 workers) ...", flush=True)
    base = work / "base"
    results["write_parallel_fleet"] = _child("write_parallel", str(base), base_drives, 2)
    print("serial shard write (encode + write + sha256 only) ...", flush=True)
    results["write_serial"] = _child("write_serial", str(base), str(work / "rewrite"))
    copies_1x = max(1, round(DEFAULT_CROPS / (base_drives * 50)))
    for label, copies in (("1x", copies_1x), ("10x", 10 * copies_1x)):
        m = replicate(base, work / f"stream_{label}", copies)
        print(
            f"streaming {label}: {m['records']} crops, train {m['splits']['train']['records']} ...",
            flush=True,
        )
        results[f"stream_{label}_records"] = m["records"]
        results[f"read_tf_{label}"] = _child("read_tf", str(work / f"stream_{label}"), False)
        if label == "10x":
            results[f"read_tf_balanced_{label}"] = _child(
                "read_tf", str(work / f"stream_{label}"), True
            )
            results[f"read_numpy_{label}"] = _child("read_numpy", str(work / f"stream_{label}"))
    results["extrapolation_12_5M"] = extrapolate(results)
    harness.finish(results)
    harness.write_result(out, results)
    write_text_atomic(out.with_suffix(".csv"), csv_table(results))
    print(json.dumps(results, indent=2, sort_keys=True))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
