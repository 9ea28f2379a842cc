"""Positive-only companion shards: exact copies, bound to the manifest, read by balanced sampling."""

from __future__ import annotations

import json
import shutil

import numpy as np

from edgeped.data.positives import FOLDER, INDEX, positive_files, write_positive_index
from edgeped.data.shards import Dataset
from edgeped.data.tfrecord import decode_example, iter_records, write_record


def _payloads(path):
    with open(path, "rb") as handle:
        return list(iter_records(handle, path.name))


def test_companions_hold_each_shards_positives_and_go_stale_with_the_manifest(
    tmp_path, tiny_dataset
):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    index = write_positive_index(data)
    ds = Dataset.open(data)
    files = positive_files(ds, "train")
    assert files and len(files) == len(index["shards"])
    for entry in ds.manifest["splits"]["train"]["shards"]:
        expected = [
            p for p in _payloads(data / entry["file"]) if decode_example(p)["label"][0] == 1
        ]
        assert _payloads(data / FOLDER / entry["file"]) == expected
    assert positive_files(ds, "val") is None

    manifest = json.loads((data / "manifest.json").read_text())
    manifest["source"]["note"] = "changed"
    (data / "manifest.json").write_text(json.dumps(manifest))
    assert positive_files(Dataset.open(data), "train") is None  # index of another manifest


def test_balanced_sampling_reads_the_companions(tmp_path, tiny_dataset):
    from edgeped.data.pipeline import PipelineOptions, make_dataset
    from edgeped.data.preprocess import Preprocessing

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    index = write_positive_index(data)
    # Keep one positive per companion: if sampling reads the companions, every
    # positive it draws is one of these.
    kept = []
    for entry in index["shards"]:
        path = data / entry["file"]
        first = _payloads(path)[0]
        kept.append(np.frombuffer(decode_example(first)["image"][0], np.uint8))
        with open(path, "wb") as handle:
            write_record(handle, first)
        entry["bytes"] = path.stat().st_size
    (data / FOLDER / INDEX).write_text(json.dumps(index))
    ds = Dataset.open(data)
    prep = Preprocessing.from_manifest_stats(ds.metadata_stats())
    options = PipelineOptions(batch_size=32, positive_fraction=0.5, use_metadata=False, seed=1)
    seen = 0
    for inputs, labels, _ in make_dataset(ds, "train", prep, options, shuffle=True).take(3):
        images = np.round(inputs["image"].numpy() * 128 + 128).astype(np.uint8)
        for image, label in zip(images, labels.numpy()[:, 0], strict=True):
            if label == 1:
                assert any(np.array_equal(image.reshape(-1), k) for k in kept)
                seen += 1
    assert seen > 10
