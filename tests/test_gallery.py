"""The error gallery: which crops are picked, that their images are found, and the files."""

import numpy as np

from edgeped.data.shards import Dataset
from edgeped.evaluate.gallery import fetch_crops, select_errors, write_gallery
from edgeped.fileio import read_json


def _arrays():
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    scores = np.array([0.9, 0.1, 0.3, 0.8, 0.2, 0.95, 0.6, 0.05])
    tags = {
        "lighting": np.array(["day", "night", "day", "night", "day", "day", "night", "night"]),
        "hard_negative": np.array(["none", "none", "none", "pole", "pole", "cone", "pole", "none"]),
    }
    ids = np.array([f"c{i}" for i in range(8)])
    return labels, scores, tags, ids


def test_selects_worst_misses_and_false_alarms_overall_and_per_slice():
    labels, scores, tags, ids = _arrays()
    sel = select_errors("m", labels, scores, 0.5, tags, ids, overall_per_kind=2, slice_per_kind=1)
    # Misses: c7 (0.05), c1 (0.1), c2 (0.3) -> lowest score first; false alarms highest first.
    assert [c.crop_id for c in sel.overall.false_negatives] == ["c7", "c1"]
    assert [c.crop_id for c in sel.overall.false_positives] == ["c5", "c3"]
    assert sel.overall.total_false_negatives == 3 and sel.overall.total_false_positives == 3
    night = {s.title: s for s in sel.by_tag["lighting"]}["lighting=night"]
    assert [c.crop_id for c in night.false_negatives] == ["c7"] and night.total_false_negatives == 2
    assert [c.crop_id for c in night.false_positives] == ["c3"] and night.total_false_positives == 2
    kinds = [s.title for s in sel.by_tag["hard_negative"]]
    assert kinds == ["kind=cone", "kind=pedestrian", "kind=pole"]
    assert {c.crop_id for c in sel.all_errors} == {"c1", "c2", "c7", "c3", "c5", "c6"}
    caption = sel.overall.false_positives[0].caption()
    assert caption.startswith("p=0.950") and "kind=cone" in caption


def test_gallery_of_a_real_dataset_shows_the_crops(tiny_dataset, tmp_path):
    dataset = Dataset.open(tiny_dataset)
    batches = list(dataset.iter_batches("test"))
    labels = np.concatenate([b.labels for b in batches])
    ids = np.concatenate([b.crop_id for b in batches]).astype(str)
    tags = {t: np.concatenate([b.tags(t) for b in batches]) for t in ("lighting", "hard_negative")}
    rng = np.random.default_rng(0)
    scores = labels * 0.3 + rng.random(labels.size) * 0.5
    sel = select_errors("tiny", labels, scores, 0.45, tags, ids, overall_per_kind=8)
    assert sel.overall.total_false_negatives and sel.overall.total_false_positives
    wanted = sel.crop_ids()
    images = fetch_crops(dataset, "test", wanted)
    assert set(images) == wanted and all(im.shape == (128, 64, 3) for im in images.values())
    paths = write_gallery(dataset, "test", sel, tmp_path)
    import matplotlib.image as mpimg

    picture = mpimg.imread(paths["gallery"])
    assert picture.shape[1] > 900 and picture.std() > 0.05
    assert (tmp_path / "by_lighting.png").is_file() and (
        tmp_path / "by_hard_negative.png"
    ).is_file()
    listed = read_json(paths["gallery_list"], "gallery")
    assert listed["false_negatives"] == int(((scores < 0.45) & (labels == 1)).sum())
    assert len(listed["errors"]) == listed["false_negatives"] + listed["false_positives"]
