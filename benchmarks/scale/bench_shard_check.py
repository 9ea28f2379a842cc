"""What checking shards where they are read costs: the per-open check against the manifest
(size + sha256 of the first 64 KiB), the full-sha256 fallback for manifests without
`head_sha256`, and reading the whole dataset, on one synthetic dataset.

    python -m benchmarks.scale.bench_shard_check [--work /tmp/edgeped-bench-shards] [--drives 300]
        [--out benchmarks/results/scale/shard-check-<YYYYMMDD>.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import harness

TOPIC, SUBJECT = "scale", "shard-check"


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def summarise(records: int, entries: list[dict], median_ms: dict[str, float]) -> dict[str, Any]:
    """The measured part of the result, with the head check's share of a full read."""
    return {
        "dataset": {
            "records": records,
            "shards": len(entries),
            "bytes": sum(e["bytes"] for e in entries),
        },
        "median_ms": {
            **median_ms,
            "head_check_share_of_read": median_ms["head_check_all_shards"]
            / median_ms["read_all_records_with_checks"],
        },
    }


def main(argv: list[str] | None = None) -> int:
    from edgeped.data import shards
    from edgeped.data.schema import SPLITS
    from edgeped.data.shards import Dataset, check_shard_matches
    from edgeped.data.synthetic import SynthConfig, write_synthetic

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/edgeped-bench-shards")
    ap.add_argument("--drives", type=int, default=300)
    ap.add_argument("--crops-per-drive", type=int, default=50)
    ap.add_argument("--shard-records", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--out",
        type=Path,
        help="JSON file [default: benchmarks/results/scale/shard-check-<day>.json]",
    )
    args = ap.parse_args(argv)

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    data = work / "data"
    config = SynthConfig(drives=args.drives, crops_per_drive=args.crops_per_drive, workers=1)
    write_synthetic(str(data), config, shard_records=args.shard_records)
    ds = Dataset.open(data)
    entries = [e for s in SPLITS for e in ds.manifest["splits"][s]["shards"]]
    paths = [data / e["file"] for e in entries]

    def head_checks():
        for path, entry in zip(paths, entries, strict=True):
            check_shard_matches(path, entry)

    def full_checks():
        shards._FULLY_CHECKED.clear()  # as a fresh process would
        for path, entry in zip(paths, entries, strict=True):
            check_shard_matches(path, {k: v for k, v in entry.items() if k != "head_sha256"})

    def read_all():
        return sum(len(b) for s in SPLITS for b in ds.iter_batches(s))

    record = harness.provenance("shard_check", argv)
    records = read_all()
    median_ms = {
        "head_check_all_shards": _median_ms(head_checks, args.repeat),
        "full_sha256_check_all_shards": _median_ms(full_checks, args.repeat),
        "read_all_records_with_checks": _median_ms(read_all, args.repeat),
    }
    result = harness.finish({**record, **summarise(records, entries, median_ms)})
    out = args.out or harness.result_path(TOPIC, SUBJECT)
    harness.write_result(out, result)
    print(json.dumps(result["median_ms"], indent=2))
    print(f"wrote {out}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
