"""The dataset card: counts, slices, metadata missing rates and distributions, sample crops.

One streaming pass over every shard (numpy + protobuf, no TensorFlow); memory is
bounded by one batch, a fixed-size reservoir of metadata values per field, and a
few sample crops per (class, condition) cell, so it runs on a 12.5M-crop set.
`compute_stats` returns plain data; `write_card` writes Markdown, JSON and a PNG.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeped.data.schema import METADATA_FIELDS, SPLITS, TAG_FIELDS, CropBatch
from edgeped.data.shards import Dataset
from edgeped.errors import EdgepedError, ExitCode
from edgeped.fileio import atomic_output, write_json_atomic, write_text_atomic
from edgeped.provenance import stamp

CLASSES = ("pedestrian", "near_miss", "background")
RESERVOIR = 50_000
PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


def crop_class(batch: CropBatch) -> np.ndarray:
    """pedestrian / near_miss (a tagged hard negative) / background, per record."""
    hard = ~np.isin(batch.hard_negative, ("none", "background", "unknown"))
    return np.where(batch.labels == 1, "pedestrian", np.where(hard, "near_miss", "background"))


@dataclass
class _Reservoir:
    """Uniform sample of up to `size` values from a stream (Algorithm R, vectorised)."""

    size: int
    rng: np.random.Generator
    values: np.ndarray
    seen: int = 0

    @classmethod
    def new(cls, size: int, seed: int) -> _Reservoir:
        return cls(size, np.random.default_rng(seed), np.empty(0, np.float32))

    def add(self, x: np.ndarray) -> None:
        room = self.size - self.values.size
        if room > 0:
            self.values = np.concatenate([self.values, x[:room]])
            self.seen += min(room, x.size)
            x = x[room:]
        if x.size:
            idx = self.rng.integers(0, self.seen + np.arange(1, x.size + 1))
            keep = idx < self.size
            self.values[idx[keep]] = x[keep]
            self.seen += x.size


# Crops per grid cell: past this the sample grid is an image too wide to render or view.
MAX_SAMPLES_PER_CELL = 64


def compute_stats(root: str | os.PathLike, samples_per_cell: int = 4) -> tuple[dict, dict]:
    """Streams the dataset once; returns (stats, sample crops by (class, condition)).

    Raises:
        EdgepedError: `samples_per_cell` out of 1..MAX_SAMPLES_PER_CELL (usage), or the
            dataset cannot be opened or a shard is missing or corrupt.
    """
    if not 1 <= samples_per_cell <= MAX_SAMPLES_PER_CELL:
        raise EdgepedError(
            f"--samples {samples_per_cell} is out of range 1..{MAX_SAMPLES_PER_CELL}: the grid "
            "shows that many crops per class and condition in one image",
            "pass e.g. 4",
            exit_code=ExitCode.USAGE,
        )
    ds = Dataset.open(root)
    counts: dict[str, Counter] = {s: Counter() for s in SPLITS}
    slices: dict[str, dict[str, Counter]] = {t: defaultdict(Counter) for t in TAG_FIELDS}
    missing = np.zeros(len(METADATA_FIELDS), np.int64)
    whole_missing = some_missing = total = 0
    sums = np.zeros(len(METADATA_FIELDS))
    sq = np.zeros(len(METADATA_FIELDS))
    present = np.zeros(len(METADATA_FIELDS), np.int64)
    lo = np.full(len(METADATA_FIELDS), np.inf)
    hi = np.full(len(METADATA_FIELDS), -np.inf)
    reservoirs = [_Reservoir.new(RESERVOIR, j) for j in range(len(METADATA_FIELDS))]
    by_lighting: dict[str, list] = defaultdict(
        lambda: [np.zeros(len(METADATA_FIELDS)), np.zeros(len(METADATA_FIELDS), np.int64)]
    )
    brightness: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    samples: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
    for split in SPLITS:
        if ds.count(split) == 0:
            continue
        for batch in ds.iter_batches(split):
            n = len(batch)
            total += n
            cls = crop_class(batch)
            counts[split].update({"records": n, "positives": int(batch.labels.sum())})
            counts[split].update(f"kind:{k}" for k in batch.hard_negative)
            for tag in TAG_FIELDS:
                for value, label in zip(batch.tags(tag), batch.labels, strict=True):
                    slices[tag][value]["records"] += 1
                    slices[tag][value]["positives"] += int(label)
            meta = batch.metadata
            nan = np.isnan(meta)
            missing += nan.sum(axis=0)
            whole_missing += int(nan.all(axis=1).sum())
            some_missing += int(nan.any(axis=1).sum())
            filled = np.where(nan, 0.0, meta).astype(np.float64)
            sums += filled.sum(axis=0)
            sq += (filled**2).sum(axis=0)
            present += (~nan).sum(axis=0)
            lo = np.minimum(lo, np.where(nan, np.inf, meta).min(axis=0))
            hi = np.maximum(hi, np.where(nan, -np.inf, meta).max(axis=0))
            for j, r in enumerate(reservoirs):
                r.add(meta[~nan[:, j], j])
            means = batch.images.mean(axis=(1, 2, 3))
            for light in np.unique(batch.lighting):
                m = batch.lighting == light
                acc = by_lighting[light]
                acc[0] += filled[m].sum(axis=0)
                acc[1] += (~nan[m]).sum(axis=0)
                brightness[light][0] += float(means[m].sum())
                brightness[light][1] += int(m.sum())
            condition = np.char.add(
                np.char.add(batch.lighting.astype(str), "/"), batch.weather.astype(str)
            )
            for i in range(n):
                cell = samples[(cls[i], condition[i])]
                if len(cell) < samples_per_cell:
                    cell.append(batch.images[i])
    fields = {}
    for j, name in enumerate(METADATA_FIELDS):
        k = int(present[j])
        mean = sums[j] / k if k else None
        fields[name] = {
            "missing_rate": float(missing[j] / max(total, 1)),
            "present": k,
            "mean": mean,
            "std": float(np.sqrt(max(sq[j] / k - mean**2, 0.0))) if k else None,
            "min": float(lo[j]) if k else None,
            "max": float(hi[j]) if k else None,
            "percentiles": (
                {
                    f"p{p}": float(v)
                    for p, v in zip(
                        PERCENTILES, np.percentile(reservoirs[j].values, PERCENTILES), strict=True
                    )
                }
                if k
                else None
            ),
            "mean_by_lighting": {
                light: (float(acc[0][j] / acc[1][j]) if acc[1][j] else None)
                for light, acc in sorted(by_lighting.items())
            },
        }
    stats = {
        **stamp("edgeped.dataset_card"),
        "dataset": str(Path(root)),
        "manifest_sha256": ds.manifest_sha256,
        "source": ds.manifest.get("source", {}),
        "records": total,
        "splits": {
            s: {
                "records": c["records"],
                "positives": c["positives"],
                "negatives": c["records"] - c["positives"],
                "hard_negative": {
                    k.split(":", 1)[1]: v for k, v in sorted(c.items()) if k.startswith("kind:")
                },
            }
            for s, c in counts.items()
        },
        "slices": {
            t: {
                v: {"records": c["records"], "positives": c["positives"]}
                for v, c in sorted(vals.items())
            }
            for t, vals in slices.items()
        },
        "metadata": {
            "records_with_any_missing": some_missing / max(total, 1),
            "records_all_missing": whole_missing / max(total, 1),
            "records_some_but_not_all_missing": (some_missing - whole_missing) / max(total, 1),
            "fields": fields,
        },
        "mean_pixel_by_lighting": {k: v[0] / v[1] for k, v in sorted(brightness.items()) if v[1]},
        "samples_per_cell": samples_per_cell,
    }
    return stats, dict(samples)


def render_markdown(stats: dict, grid_name: str) -> str:
    """The card as Markdown (tables of counts, slices, metadata)."""
    lines = [
        f"# Dataset card: `{stats['dataset']}`",
        "",
        f"{stats['records']} crops; source `{stats['source'].get('generator') or stats['source'].get('importer', '?')}`; "
        f"manifest sha256 `{stats['manifest_sha256'][:16]}`.",
        "",
        "## Splits",
        "",
        "| split | crops | pedestrians | background | prevalence |",
        "|---|---:|---:|---:|---:|",
    ]
    for s, c in stats["splits"].items():
        prev = c["positives"] / c["records"] if c["records"] else 0.0
        lines.append(f"| {s} | {c['records']} | {c['positives']} | {c['negatives']} | {prev:.2%} |")
    kinds = sorted({k for c in stats["splits"].values() for k in c["hard_negative"]})
    lines += [
        "",
        "## Hard-negative kind (`none` = pedestrian)",
        "",
        "| kind | " + " | ".join(stats["splits"]) + " |",
        "|---|" + "---:|" * len(stats["splits"]),
    ]
    for k in kinds:
        lines.append(
            f"| {k} | "
            + " | ".join(str(c["hard_negative"].get(k, 0)) for c in stats["splits"].values())
            + " |"
        )
    lines += [
        "",
        "## Slices (all splits)",
        "",
        "| tag | value | crops | pedestrians |",
        "|---|---|---:|---:|",
    ]
    for tag, values in stats["slices"].items():
        if tag == "hard_negative":
            continue
        for v, c in values.items():
            lines.append(f"| {tag} | {v} | {c['records']} | {c['positives']} |")
    meta = stats["metadata"]
    lines += [
        "",
        "## Metadata",
        "",
        f"Records with any field missing: {meta['records_with_any_missing']:.2%} "
        f"(whole record {meta['records_all_missing']:.2%}, some fields only "
        f"{meta['records_some_but_not_all_missing']:.2%}).",
        "",
        "| field | missing | mean | std | p5 | p50 | p95 | mean by lighting |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, f in meta["fields"].items():
        if f["present"] == 0:
            lines.append(f"| {name} | {f['missing_rate']:.2%} | - | - | - | - | - | - |")
            continue
        p = f["percentiles"]
        by = ", ".join(f"{k} {v:.3g}" for k, v in f["mean_by_lighting"].items() if v is not None)
        lines.append(
            f"| {name} | {f['missing_rate']:.2%} | {f['mean']:.4g} | {f['std']:.4g} | "
            f"{p['p5']:.4g} | {p['p50']:.4g} | {p['p95']:.4g} | {by} |"
        )
    lines += [
        "",
        "Mean pixel value by lighting: "
        + ", ".join(f"{k} {v:.1f}" for k, v in stats["mean_pixel_by_lighting"].items())
        + ".",
        "",
        "## Sample crops",
        "",
        f"![samples per class and condition]({grid_name})",
        "",
    ]
    return "\n".join(lines)


def render_grid(samples: dict, per_cell: int) -> bytes:
    """PNG bytes: one row per condition (lighting/weather), a block of columns per class."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conditions = sorted({c for _, c in samples})
    blank = np.full((128, 64, 3), 255, np.uint8)
    rows = []
    for cond in conditions:
        tiles = []
        for cls in CLASSES:
            cell = samples.get((cls, cond), [])
            tiles += cell + [blank] * (per_cell - len(cell))
            tiles.append(np.full((128, 8, 3), 255, np.uint8))
        rows.append(np.concatenate(tiles[:-1], axis=1))
    mosaic = np.concatenate(rows, axis=0) if rows else blank
    fig, ax = plt.subplots(figsize=(mosaic.shape[1] / 80 + 1.5, mosaic.shape[0] / 80 + 0.8), dpi=80)
    ax.imshow(mosaic, interpolation="nearest")
    block = per_cell * 64 + 8
    ax.set_xticks([block * i + per_cell * 32 for i in range(len(CLASSES))], CLASSES)
    ax.set_yticks([128 * i + 64 for i in range(len(conditions))], conditions)
    ax.tick_params(length=0)
    ax.set_title("sample crops per class (columns) and lighting/weather (rows)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def write_card(
    stats: dict, samples: dict, out_dir: str | os.PathLike, name: str = "dataset_card"
) -> dict[str, Path]:
    """Writes `<name>.json`, `<name>.md` and `<name>_samples.png` atomically; returns the paths."""
    out = Path(out_dir)
    paths = {
        "json": out / f"{name}.json",
        "markdown": out / f"{name}.md",
        "grid": out / f"{name}_samples.png",
    }
    with atomic_output(paths["grid"]) as handle:
        handle.write(render_grid(samples, stats["samples_per_cell"]))
    write_json_atomic(paths["json"], stats)
    write_text_atomic(paths["markdown"], render_markdown(stats, paths["grid"].name))
    return paths
