"""Beam data pipelines on the multi-processing FnApiRunner (2 workers): same bytes as local."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgeped.data.beam_pipeline import (
    import_crops_beam,
    import_frames_beam,
    plan_slices,
    verify_beam,
    write_fleet_beam,
    write_streamed,
)
from edgeped.data.beam_runtime import BeamConfig, pipeline_options
from edgeped.data.beam_sources import V1Source
from edgeped.data.positives import write_positive_index
from edgeped.data.synthetic import SynthConfig, iter_drives, write_synthetic
from edgeped.data.verify import verify
from edgeped.data.writer import DatasetWriter
from edgeped.errors import EdgepedError

pytest.importorskip("apache_beam")

TWO = BeamConfig(("direct_num_workers=2",))


def _same_folder(a: Path, b: Path, min_shards: int = 2) -> None:
    """Same files, same bytes: shards, manifest, positive companions and their index."""
    write_positive_index(a)  # the local import path writes it after the dataset
    names = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    assert len([n for n in names if n.endswith(".tfrecord") and "/" not in n]) >= min_shards
    assert "positives/index.json" in names
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_v1_synth_with_straddling_shards_is_byte_identical(tmp_path):
    # 40 drives of 10 crops into 64-record shards: drives straddle shards, three
    # statistics batches (16 drives each) span several shards.
    config = SynthConfig(drives=40, crops_per_drive=10, positive_rate=0.2, seed=5, workers=1)
    writer = DatasetWriter(tmp_path / "local", shard_records=64, source=V1Source(config).source())
    for batch in iter_drives(config):
        writer.add(batch)
    writer.close()
    write_streamed(tmp_path / "beam", V1Source(config), TWO, shard_records=64)
    _same_folder(tmp_path / "local", tmp_path / "beam")
    with pytest.raises(EdgepedError, match="already holds a dataset"):
        write_streamed(tmp_path / "beam", V1Source(config), TWO)


@pytest.mark.slow
def test_fleet_synth_is_byte_identical(tmp_path):
    from edgeped.data.fleet import FleetConfig, write_fleet

    config = FleetConfig(drives=12, crops_per_drive=8, positive_rate=0.2, seed=2, workers=1)
    write_fleet(str(tmp_path / "local"), config, shard_records=16)
    write_fleet_beam(tmp_path / "beam", config, TWO, shard_records=16)
    _same_folder(tmp_path / "local", tmp_path / "beam")


@pytest.mark.slow
def test_imports_are_byte_identical(tmp_path):
    from PIL import Image

    from edgeped.data.importers.coco import load_coco
    from edgeped.data.importers.crops_csv import import_crops
    from edgeped.data.importers.frames import FrameImportConfig, import_frames

    rng = np.random.default_rng(0)
    rows = ["path,label,drive_id,speed_mps"]
    for i in range(30):
        Image.fromarray(rng.integers(0, 256, (40, 20, 3), np.uint8)).save(tmp_path / f"c{i}.png")
        rows.append(f"c{i}.png,{i % 3 == 0:d},drv{i},{i * 0.5 if i % 4 else ''}")
    (tmp_path / "crops.csv").write_text("\n".join(rows) + "\n")
    import_crops(tmp_path / "crops.csv", str(tmp_path / "csv_local"))
    import_crops_beam(tmp_path / "crops.csv", tmp_path / "csv_beam", TWO, shard_records=4096)
    _same_folder(tmp_path / "csv_local", tmp_path / "csv_beam", min_shards=1)

    images = tmp_path / "frames"
    images.mkdir()
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]}
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (240, 320, 3), np.uint8)).save(images / f"f{i}.png")
        coco["images"].append({"id": i, "file_name": f"f{i}.png", "width": 320, "height": 240})
        coco["annotations"].append(
            {"id": i, "image_id": i, "category_id": 1, "bbox": [40 + 10 * i, 30, 50, 120]}
        )
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    frames = load_coco(tmp_path / "coco.json", images)
    config = FrameImportConfig(source_name="t")
    local = import_frames(frames, str(tmp_path / "coco_local"), config, source={"importer": "c"})
    beam = import_frames_beam(frames, tmp_path / "coco_beam", config, TWO, source={"importer": "c"})
    # Same counts (the manifests are compared as files below).
    assert replace(local, manifest=None) == replace(beam, manifest=None)
    _same_folder(tmp_path / "coco_local", tmp_path / "coco_beam")


def test_verify_reports_the_same_problems(tmp_path, tiny_dataset):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    train = sorted(data.glob("train-*.tfrecord"))[0]
    raw = bytearray(train.read_bytes())
    raw[100] ^= 0xFF
    train.write_bytes(bytes(raw))
    (data / "val-00000.tfrecord").unlink()
    (data / "stray.tfrecord").write_bytes(b"x")
    local, beam = verify(data), verify_beam(data, TWO)
    assert [r.__dict__ for r in beam] == [r.__dict__ for r in local]
    assert {r.status for r in beam} >= {"hash_mismatch", "missing", "unlisted", "ok"}


def test_plan_slices_cuts_each_split_in_source_order():
    tasks = plan_slices([["train"] * 3, ["val"] * 2, ["train"] * 3], shard_records=4)
    assert [(t.split, t.file, t.parts) for t in tasks] == [
        ("train", "train-00000.tfrecord", ((0, (0, 1, 2)), (2, (0,)))),
        ("train", "train-00001.tfrecord", ((2, (1, 2)),)),
        ("val", "val-00000.tfrecord", ((1, (0, 1)),)),
    ]


def test_beam_options_are_checked():
    with pytest.raises(ValueError, match="K=V"):
        BeamConfig(("direct_num_workers",))
    with pytest.raises(ValueError, match="direct_num_workers"):
        BeamConfig(("direct_num_workers=0",))
    with pytest.raises(EdgepedError, match="unknown Beam option"):
        pipeline_options(BeamConfig(("no_such_option=1",)))
    opts = pipeline_options(BeamConfig(("direct_num_workers=3",))).get_all_options()
    assert opts["direct_running_mode"] == "multi_processing" and opts["direct_num_workers"] == 3
    flink = BeamConfig(("runner=FlinkRunner", "flink_master=host:8081"))
    assert not flink.is_local
    assert pipeline_options(flink).get_all_options()["flink_master"] == "host:8081"


def test_cli_runner_beam_writes_what_the_local_command_writes(tmp_path):
    from click.testing import CliRunner

    from edgeped.cli import main

    runner = CliRunner()
    common = [
        "--drives",
        "10",
        "--crops-per-drive",
        "5",
        "--positive-rate",
        "0.3",
        "--workers",
        "1",
    ]
    for out, extra in (
        ("local", []),
        ("beam", ["--runner", "beam", "--beam-option", "direct_num_workers=2"]),
    ):
        result = runner.invoke(main, ["data", "synth", str(tmp_path / out), *common, *extra])
        assert result.exit_code == 0, result.output
    names = sorted(str(p.relative_to(tmp_path / "local")) for p in (tmp_path / "local").rglob("*"))
    assert "positives/index.json" in names
    for name in names:
        if (tmp_path / "local" / name).is_file():
            assert (tmp_path / "local" / name).read_bytes() == (
                tmp_path / "beam" / name
            ).read_bytes(), name
    result = runner.invoke(
        main, ["data", "verify", str(tmp_path / "beam"), "--runner", "beam", "--json", "-"]
    )
    assert result.exit_code == 0, result.output
    assert '"ok": true' in result.output
    result = runner.invoke(
        main, ["data", "verify", str(tmp_path / "beam"), "--beam-option", "direct_num_workers=2"]
    )
    assert result.exit_code == 64 and "--beam-option needs --runner beam" in result.output


def test_beam_imports_refuse_what_the_local_importers_refuse_before_writing(tmp_path):
    from PIL import Image

    from edgeped.data.importers.coco import load_coco

    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 20, 3), np.uint8)).save(tmp_path / f"c{i}.png")
    (tmp_path / "c0copy.png").write_bytes((tmp_path / "c0.png").read_bytes())
    leaks = {
        "drive": "c0.png,1,train,d1\nc1.png,0,val,d1\nc2.png,0,test,d2\n",
        "same image": "c0.png,1,train,d1\nc0copy.png,1,val,d2\nc2.png,0,test,d3\n",
        "listed twice": "c0.png,1,train,d1\nc0.png,1,train,d1\nc1.png,0,val,d2\n",
    }
    for what, body in leaks.items():
        csv = tmp_path / f"{what.replace(' ', '_')}.csv"
        csv.write_text("path,label,split,drive_id\n" + body)
        with pytest.raises(EdgepedError, match=what):
            import_crops_beam(csv, tmp_path / "out", TWO)
    with pytest.raises(EdgepedError, match="would be empty"):
        (tmp_path / "few.csv").write_text("path,label,drive_id\nc0.png,1,d1\nc1.png,0,d1\n")
        import_crops_beam(tmp_path / "few.csv", tmp_path / "out", TWO)

    Image.fromarray(rng.integers(0, 256, (240, 320, 3), np.uint8)).save(tmp_path / "f0.png")
    (tmp_path / "f1.png").write_bytes((tmp_path / "f0.png").read_bytes())
    coco = {
        "images": [
            {"id": i, "file_name": f"f{i}.png", "width": 320, "height": 240} for i in range(2)
        ],
        "annotations": [],
        "categories": [{"id": 1, "name": "person"}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    frames = load_coco(tmp_path / "coco.json", tmp_path)
    with pytest.raises(EdgepedError, match="are the same image"):
        import_frames_beam(frames, tmp_path / "out", _frame_config(), TWO, source={})
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.*"))  # no staging folder left behind


def _frame_config():
    from edgeped.data.importers.frames import FrameImportConfig

    return FrameImportConfig(source_name="t")


def test_beam_overwrite_keeps_the_old_dataset_until_the_new_one_is_complete(tmp_path):
    config = SynthConfig(drives=24, crops_per_drive=4, positive_rate=0.3, seed=1, workers=1)
    out = tmp_path / "data"
    write_synthetic(str(out), config, shard_records=32)
    write_positive_index(out)
    (out / "notes.txt").write_text("mine")
    before = (out / "manifest.json").read_bytes()
    # One drive leaves val and test empty: the manifest step fails inside the pipeline ...
    with pytest.raises(EdgepedError, match="came out empty"):
        write_streamed(out, V1Source(replace(config, drives=1)), TWO, overwrite=True)
    assert (out / "manifest.json").read_bytes() == before
    assert not list(tmp_path.glob(".data.*"))
    # ... and a complete one replaces it, keeping the user's own files, not stale companions.
    write_streamed(out, V1Source(replace(config, seed=2)), TWO, overwrite=True, shard_records=32)
    assert (out / "manifest.json").read_bytes() != before
    assert (out / "notes.txt").read_text() == "mine"
    assert verify(out) and all(r.ok for r in verify(out))
    index = json.loads((out / "positives" / "index.json").read_text())
    assert sorted(p.name for p in (out / "positives").glob("*.tfrecord")) == sorted(
        e["source"] for e in index["shards"]
    )
