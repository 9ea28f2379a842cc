"""Paths read from files stay inside their declared folder: one test per reader.

Each reader gets a `../` name and a symlink that leads out of its root; both must be
refused with an error naming the file, and the outside file must not be read.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeped.errors import EdgepedError
from edgeped.paths import resolve_inside


def _png(path: Path, seed: int = 0, size=(48, 96)) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


# --- the helper itself -------------------------------------------------------------------


def test_names_inside_the_root_resolve_to_the_joined_path(tmp_path):
    (tmp_path / "sub").mkdir()
    assert resolve_inside(tmp_path, "sub/a.png") == tmp_path / "sub" / "a.png"
    assert resolve_inside(tmp_path, "sub/../a.png") == tmp_path / "sub/../a.png"
    assert resolve_inside(tmp_path, tmp_path / "a.png") == tmp_path / "a.png"


@pytest.mark.parametrize("name", ["../a.png", "sub/../../a.png", "/etc/passwd", "", "a\x00b"])
def test_names_that_leave_the_root_are_refused(tmp_path, name):
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(EdgepedError) as info:
        resolve_inside(root, name, what="image", source="list.csv")
    assert "list.csv" in str(info.value) and "fix:" in str(info.value)


def test_a_symlink_out_of_the_root_is_refused_and_one_inside_is_not(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    (root / "inside.txt").write_text("ok")
    os.symlink(tmp_path / "secret.txt", root / "out.txt")
    os.symlink(root / "inside.txt", root / "in.txt")
    os.symlink(tmp_path, root / "dirlink")
    with pytest.raises(EdgepedError, match="symlink"):
        resolve_inside(root, "out.txt")
    with pytest.raises(EdgepedError, match="symlink"):
        resolve_inside(root, "dirlink/secret.txt")
    assert resolve_inside(root, "in.txt") == root / "in.txt"


# --- readers -----------------------------------------------------------------------------


def _csv_folder(tmp_path: Path, extra: str) -> Path:
    folder = tmp_path / "crops"
    for i in range(6):
        _png(folder / f"c{i}.png", i)
    rows = ["path,label,split"] + [
        f"c{i}.png,{i % 2},{s}" for i, s in enumerate(["train", "train", "val", "val", "test"])
    ]
    (folder / "crops.csv").write_text("\n".join([*rows, extra]) + "\n")
    return folder / "crops.csv"


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_crops_csv_refuses_images_outside_its_folder(tmp_path, kind):
    from edgeped.data.importers.crops_csv import import_crops

    secret = _png(tmp_path / "secret.png", 9)
    name = {"dotdot": "../secret.png", "absolute": str(secret), "symlink": "link.png"}[kind]
    csv = _csv_folder(tmp_path, f"{name},0,test")
    if kind == "symlink":
        os.symlink(secret, csv.parent / "link.png")
    with pytest.raises(EdgepedError, match="outside the CSV's folder"):
        import_crops(csv, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def _coco_files(tmp_path: Path, name: str) -> tuple[Path, Path]:
    frames = tmp_path / "frames"
    names = []
    for i in range(4):
        _png(frames / f"f{i}.png", i, size=(320, 240))
        names.append(f"f{i}.png")
    names.append(name)
    data = {
        "images": [
            {"id": i + 1, "file_name": n, "width": 320, "height": 240} for i, n in enumerate(names)
        ],
        "annotations": [],
        "categories": [{"id": 1, "name": "person"}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(data))
    return tmp_path / "coco.json", frames


@pytest.mark.parametrize("kind", ["dotdot", "symlink"])
def test_coco_refuses_file_names_outside_images(tmp_path, kind):
    from edgeped.data.importers.coco import load_coco

    secret = _png(tmp_path / "secret.png", 9, size=(320, 240))
    ann, frames = _coco_files(tmp_path, "../secret.png" if kind == "dotdot" else "link.png")
    if kind == "symlink":
        os.symlink(secret, frames / "link.png")
    with pytest.raises(EdgepedError, match="outside") as info:
        load_coco(ann, frames)
    assert "coco.json" in str(info.value)


@pytest.mark.parametrize("which", ["image", "label"])
def test_kitti_refuses_a_symlink_out_of_its_folders(tmp_path, which):
    from edgeped.data.importers.kitti import load_kitti

    labels, images = tmp_path / "label_2", tmp_path / "image_2"
    labels.mkdir()
    line = "Pedestrian 0 0 0 100 40 160 190 1.7 0.6 0.8 1 1 10 0\n"
    for i in range(3):
        _png(images / f"{i:06d}.png", i, size=(320, 240))
        (labels / f"{i:06d}.txt").write_text(line)
    outside = tmp_path / "elsewhere"
    if which == "image":
        _png(outside / "000009.png", 9, size=(320, 240))
        (labels / "000009.txt").write_text(line)
        os.symlink(outside / "000009.png", images / "000009.png")
    else:
        outside.mkdir()
        (outside / "x.txt").write_text(line)
        os.symlink(outside / "x.txt", labels / "000009.txt")
    with pytest.raises(EdgepedError, match="symlink"):
        load_kitti(labels, images)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Path:
    from edgeped.data.synthetic import SynthConfig, write_synthetic

    out = tmp_path_factory.mktemp("paths") / "data"
    write_synthetic(
        str(out), SynthConfig(drives=20, crops_per_drive=6, positive_rate=0.3, workers=1)
    )
    return out


def test_a_shard_symlinked_out_of_the_dataset_is_refused_by_readers_and_verify(
    tmp_path, small_dataset
):
    from edgeped.data.shards import Dataset
    from edgeped.data.verify import verify

    data = tmp_path / "data"
    shutil.copytree(small_dataset, data)
    manifest = json.loads((data / "manifest.json").read_text())
    name = manifest["splits"]["val"]["shards"][0]["file"]
    moved = tmp_path / "moved.tfrecord"
    (data / name).rename(moved)
    os.symlink(moved, data / name)
    with pytest.raises(EdgepedError, match="symlink"):
        Dataset.open(data).read("val")
    statuses = {r.file: r.status for r in verify(data)}
    assert statuses[name] == "outside"


def test_a_shard_name_with_dotdot_is_refused_before_reading(tmp_path, small_dataset):
    from click.testing import CliRunner

    from edgeped.cli import main

    data = tmp_path / "data"
    shutil.copytree(small_dataset, data)
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["splits"]["val"]["shards"][0]["file"] = "../outside.tfrecord"
    (data / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(main, ["data", "stats", str(data), "--out", str(tmp_path / "s")])
    assert result.exit_code == 65, result.output
    assert "is not a file name" in result.output


def test_shadow_offline_refuses_a_scores_file_outside_the_run(tmp_path):
    from edgeped.rollout.shadow import records_from_run

    run = tmp_path / "run"
    run.mkdir()
    np.savez(tmp_path / "secret.npz", crop_id=np.array(["a"]), label=np.array([1]))
    metrics = {"kind": "edgeped.metrics", "test_scores": {"file": "../secret.npz"}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(EdgepedError, match="outside") as info:
        records_from_run(run, "m", "m")
    assert "metrics.json" in str(info.value)
