"""The crops a model gets wrong at its operating threshold, as pictures and a list.

Missed pedestrians (false negatives, lowest score first) and background taken for a
pedestrian (false positives, highest score first), overall and per slice value, each
crop shown with its score and tags. ``select_errors`` picks (pure), ``fetch_crops``
reads the chosen images from the dataset in one streaming pass, ``write_gallery``
renders ``gallery/errors.png``, one ``gallery/by_<tag>.png`` per tag with errors, and
``gallery/errors.json`` with every error crop (not only the ones drawn).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeped.data.shards import Dataset
from edgeped.evaluate.names import slice_label, tag_title
from edgeped.fileio import write_json_atomic
from edgeped.provenance import stamp

GALLERY_KIND = "edgeped.gallery"


@dataclass(frozen=True)
class ErrorCrop:
    crop_id: str
    kind: str  # "false_negative" | "false_positive"
    score: float
    tags: dict[str, str]

    def caption(self) -> str:
        tags = self.tags
        words = [tags.get(t, "") for t in ("lighting", "weather", "scene")]
        kind = tags.get("hard_negative")
        second = slice_label("hard_negative", kind) if kind and kind != "none" else ""
        return f"p={self.score:.3f}\n{' '.join(w for w in words if w)}\n{second}".rstrip()


@dataclass(frozen=True)
class Section:
    title: str
    false_negatives: tuple[ErrorCrop, ...]
    false_positives: tuple[ErrorCrop, ...]
    total_false_negatives: int
    total_false_positives: int


@dataclass(frozen=True)
class GallerySelection:
    model: str
    threshold: float
    overall: Section
    by_tag: dict[str, tuple[Section, ...]]
    all_errors: tuple[ErrorCrop, ...]

    def crop_ids(self) -> set[str]:
        ids = {c.crop_id for c in self.overall.false_negatives + self.overall.false_positives}
        for sections in self.by_tag.values():
            for s in sections:
                ids |= {c.crop_id for c in s.false_negatives + s.false_positives}
        return ids


def select_errors(
    model: str,
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    tags: dict[str, np.ndarray],
    crop_ids: np.ndarray,
    *,
    overall_per_kind: int = 24,
    slice_per_kind: int = 6,
) -> GallerySelection:
    """Picks the worst false negatives and false positives, overall and per slice value.

    Args:
        model: the model's name (titles only).
        labels, scores, crop_ids: per test crop.
        threshold: the operating threshold (pedestrian when score >= threshold).
        tags: tag name -> per-crop values.
        overall_per_kind: crops of each kind in the overall section.
        slice_per_kind: crops of each kind per slice value.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=float)
    crop_ids = np.asarray(crop_ids).astype(str)
    tag_arrays = {t: np.asarray(v).astype(str) for t, v in tags.items()}
    predicted = scores >= threshold
    fn_index = np.flatnonzero(labels & ~predicted)
    fp_index = np.flatnonzero(~labels & predicted)
    fn_index = fn_index[np.argsort(scores[fn_index], kind="stable")]  # most confident miss first
    fp_index = fp_index[np.argsort(-scores[fp_index], kind="stable")]

    def crop(i: int, kind: str) -> ErrorCrop:
        return ErrorCrop(
            crop_ids[i], kind, float(scores[i]), {t: v[i] for t, v in tag_arrays.items()}
        )

    def section(title: str, mask: np.ndarray | None, per_kind: int) -> Section:
        fns = fn_index if mask is None else fn_index[mask[fn_index]]
        fps = fp_index if mask is None else fp_index[mask[fp_index]]
        return Section(
            title,
            tuple(crop(i, "false_negative") for i in fns[:per_kind]),
            tuple(crop(i, "false_positive") for i in fps[:per_kind]),
            int(fns.size),
            int(fps.size),
        )

    by_tag = {}
    for tag, values in tag_arrays.items():
        sections = []
        for value in sorted(np.unique(values)):
            s = section(slice_label(tag, value), values == value, slice_per_kind)
            if s.total_false_negatives or s.total_false_positives:
                sections.append(s)
        if sections:
            by_tag[tag] = tuple(sections)
    everything = tuple(crop(i, "false_negative") for i in fn_index) + tuple(
        crop(i, "false_positive") for i in fp_index
    )
    return GallerySelection(
        model,
        float(threshold),
        section("all test crops", None, overall_per_kind),
        by_tag,
        everything,
    )


def fetch_crops(dataset: Dataset, split: str, crop_ids: set[str]) -> dict[str, np.ndarray]:
    """The uint8 images of ``crop_ids`` from one streaming pass over ``split``."""
    found: dict[str, np.ndarray] = {}
    if not crop_ids:
        return found
    for batch in dataset.iter_batches(split, batch_records=1024):
        ids = np.asarray(batch.crop_id).astype(str)
        for i in np.flatnonzero(np.isin(ids, list(crop_ids))):
            found[ids[i]] = np.array(batch.images[i])
        if len(found) == len(crop_ids):
            break
    return found


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def render_sections(
    title: str, sections: list[Section], images: dict[str, np.ndarray], path: Path, columns: int
) -> Path:
    """One block per section: a row band of false negatives, then one of false positives."""
    from edgeped.evaluate.plots import _save

    plt = _figure()
    bands = []  # (heading, crops)
    for s in sections:
        for kind, crops, total in (
            ("missed pedestrians (FN)", s.false_negatives, s.total_false_negatives),
            ("false alarms (FP)", s.false_positives, s.total_false_positives),
        ):
            if total == 0:
                continue
            shown = f"{len(crops)} of {total}" if len(crops) < total else f"all {total}"
            for start in range(0, max(len(crops), 1), columns):
                heading = f"{s.title}: {kind}, {shown}" if start == 0 else ""
                bands.append((heading, crops[start : start + columns]))
    rows = max(len(bands), 1)
    columns = max(1, min(columns, max((len(c) for _, c in bands), default=1)))
    cell_w, cell_h = 1.0, 2.35
    width = max(columns * cell_w + 0.4, 9.0)  # room for the title when few crops are shown
    fig = plt.figure(figsize=(width, rows * cell_h + 0.5))
    fig.suptitle(title, fontsize=10, y=1 - 0.12 / (rows * cell_h + 0.5))
    grid = fig.add_gridspec(
        rows,
        columns,
        hspace=0.42,
        wspace=0.08,
        top=1 - 0.5 / (rows * cell_h + 0.5),
        bottom=0.35 / (rows * cell_h + 0.5),
        left=0.2 / width,
        right=(columns * cell_w + 0.2) / width,
    )
    for r, (heading, crops) in enumerate(bands):
        for c in range(columns):
            ax = fig.add_subplot(grid[r, c])
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(crops):
                item = crops[c]
                image = images.get(item.crop_id)
                if image is not None:
                    ax.imshow(image)
                else:
                    ax.text(0.5, 0.5, "image\nnot found", ha="center", va="center", fontsize=6)
                colour = "#c0392b" if item.kind == "false_positive" else "#2471a3"
                for spine in ax.spines.values():
                    spine.set_edgecolor(colour)
                    spine.set_linewidth(2)
                ax.set_xlabel(item.caption(), fontsize=5.5, labelpad=2)
            else:
                ax.axis("off")
            if c == 0 and heading:
                ax.set_title(heading, fontsize=7.5, loc="left", ha="left", x=0.0)
    if not bands:
        fig.text(0.5, 0.5, "no errors at this threshold", ha="center", va="center")
    return _save(fig, plt, path, tight=False)


def write_gallery(
    dataset: Dataset, split: str, selection: GallerySelection, out_dir: Path, columns: int = 12
) -> dict[str, Path]:
    """Renders the gallery PNGs and errors.json into ``out_dir``; returns the paths.

    The PNGs show the worst crops of each kind; errors.json lists every one.
    """
    images = fetch_crops(dataset, split, selection.crop_ids())
    threshold = f"threshold {selection.threshold:.4g}"
    paths = {
        "gallery": render_sections(
            f"{selection.model}: errors on {split} at the operating {threshold} "
            "(blue frame: missed pedestrian, red: false alarm)",
            [selection.overall],
            images,
            out_dir / "errors.png",
            columns,
        )
    }
    for tag, sections in selection.by_tag.items():
        paths[f"gallery_{tag}"] = render_sections(
            f"{selection.model}: errors by {tag_title(tag)} ({threshold}; blue: missed "
            "pedestrian, red: false alarm)",
            list(sections),
            images,
            out_dir / f"by_{tag}.png",
            columns,
        )
    paths["gallery_list"] = out_dir / "errors.json"
    write_json_atomic(
        paths["gallery_list"],
        {
            **stamp(GALLERY_KIND),
            "model": selection.model,
            "split": split,
            "threshold": selection.threshold,
            "false_negatives": selection.overall.total_false_negatives,
            "false_positives": selection.overall.total_false_positives,
            "errors": [
                {"crop_id": c.crop_id, "kind": c.kind, "score": c.score, "tags": c.tags}
                for c in selection.all_errors
            ],
        },
    )
    return paths
