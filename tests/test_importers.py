import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgeped.cli import main
from edgeped.data.importers.coco import load_coco
from edgeped.data.importers.crops_csv import import_crops
from edgeped.data.importers.frames import Frame, FrameImportConfig, crops_for_frame
from edgeped.data.importers.geometry import (
    WindowRules,
    background_windows,
    coverage,
    extract_crop,
    fill,
    iou,
    jitter_windows,
    near_miss_windows,
    window_from_box,
)
from edgeped.data.importers.kitti import load_kitti, parse_label_file
from edgeped.data.shards import Dataset
from edgeped.errors import EdgepedError

PENNFUDAN = Path(__file__).resolve().parents[2] / "shared" / "data" / "pennfudan"
RULES = WindowRules()
PEOPLE = np.array([(100.0, 50.0, 140.0, 150.0), (300.0, 80.0, 330.0, 160.0)])


def test_positive_window_is_2_to_1_with_margin():
    x0, y0, x1, y1 = window_from_box((100, 50, 140, 150), margin=0.15)
    assert (y1 - y0) == pytest.approx(130) and (x1 - x0) == pytest.approx(65)
    assert (x0 + x1) / 2 == pytest.approx(120) and (y0 + y1) / 2 == pytest.approx(100)


def test_jitter_copies_stay_close_to_the_person():
    rng = np.random.default_rng(0)
    base = window_from_box(tuple(PEOPLE[0]), RULES.margin)
    copies = jitter_windows(tuple(PEOPLE[0]), RULES, rng, 20)
    assert len(copies) == 20
    assert all(iou(w, np.array([base]))[0] >= RULES.jitter_min_iou for w in copies)
    assert all(abs((w[3] - w[1]) - 2 * (w[2] - w[0])) < 1e-6 for w in copies)
    assert len({round(w[0], 3) for w in copies}) > 10  # they do move


def test_near_misses_sit_in_the_iou_band_for_every_person():
    rng = np.random.default_rng(1)
    windows = near_miss_windows(tuple(PEOPLE[0]), PEOPLE, RULES, rng, 30, (640, 480))
    assert len(windows) >= 20
    person_windows = np.array([window_from_box(tuple(b), RULES.margin) for b in PEOPLE])
    for w in windows:
        best = iou(w, person_windows).max()
        assert RULES.near_miss_iou[0] <= best <= RULES.near_miss_iou[1]
        assert coverage(w, PEOPLE).max() <= RULES.near_miss_max_coverage


def test_background_never_holds_more_than_a_sliver_of_a_person():
    rng = np.random.default_rng(2)
    windows = background_windows(PEOPLE, RULES, rng, 40, (640, 480), (60.0, 300.0))
    assert len(windows) == 40
    person_windows = np.array([window_from_box(tuple(b), RULES.margin) for b in PEOPLE])
    for w in windows:
        assert iou(w, person_windows).max() <= RULES.background_max_iou
        assert coverage(w, PEOPLE).max() <= RULES.background_max_coverage
        assert fill(w, PEOPLE) <= RULES.background_max_fill
        assert 0 <= w[0] and w[2] <= 640 and 0 <= w[1] and w[3] <= 480


def test_small_people_and_ignore_regions_give_no_crop_but_are_avoided():
    small = (500.0, 300.0, 510.0, 330.0)  # 30 px: below min_height
    crowd = (0.0, 0.0, 200.0, 480.0)
    frame = Frame(Path("f.png"), people=(tuple(PEOPLE[1]), small), ignore=(crowd,), size=(640, 480))
    windows, counts = crops_for_frame(frame, FrameImportConfig(background_per_frame=20))
    assert counts["positives"] == 1 and counts["skipped_small"] == 1
    avoid = np.array([PEOPLE[1], small, crowd])
    for w, label, kind in windows:
        if kind == "background":
            assert coverage(w, avoid).max() <= RULES.background_max_coverage
            assert fill(w, avoid) <= RULES.background_max_fill
        if label == 1:
            assert iou(w, np.array([window_from_box(tuple(PEOPLE[1]), RULES.margin)]))[0] >= 0.6


def test_extract_crop_pads_the_frame_edge():
    frame = np.zeros((100, 60, 3), np.uint8)
    frame[:, :30] = 200
    crop = extract_crop(frame, (-30.0, -20.0, 30.0, 100.0))
    assert crop.shape == (128, 64, 3)
    assert crop[:, :10].mean() > 190  # left of the frame repeats the bright edge column


def _coco(tmp_path, **override) -> Path:
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 200, "height": 160}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [50, 20, 30, 100]}],
        "categories": [{"id": 1, "name": "person"}],
    }
    data.update(override)
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_reads_people_and_crowds(tmp_path):
    path = _coco(
        tmp_path,
        annotations=[
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [50, 20, 30, 100]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 40, 40], "iscrowd": 1},
        ],
    )
    (frame,) = load_coco(path, tmp_path)
    assert frame.people == ((50.0, 20.0, 80.0, 120.0),) and len(frame.ignore) == 1
    assert frame.size == (200, 160) and frame.image == tmp_path / "a.png"


@pytest.mark.parametrize(
    "override, match",
    [
        ({"images": None}, "missing or non-list key 'images'"),
        (
            {"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3]}]},
            "expected \\[x, y, width, height\\]",
        ),
        (
            {"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, "w", 4]}]},
            "bbox",
        ),
        (
            {"annotations": [{"id": 1, "image_id": 9, "category_id": 1, "bbox": [1, 2, 3, 4]}]},
            "image_id 9",
        ),
        (
            {"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 0, 4]}]},
            "non-positive",
        ),
        ({"annotations": [{"id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}]}, "lacks image_id"),
        ({"categories": [{"id": 1, "name": "car"}]}, "no category named"),
        ({"images": [{"id": 1}]}, "lacks id/name/file_name"),
    ],
)
def test_malformed_coco_is_a_clear_error(tmp_path, override, match):
    with pytest.raises(EdgepedError, match=match):
        load_coco(_coco(tmp_path, **override), tmp_path)


def test_coco_that_is_not_json_fails_cleanly_through_the_cli(tmp_path):
    bad = tmp_path / "ann.json"
    bad.write_text("{not json")
    result = CliRunner().invoke(
        main, ["data", "import", "coco", str(bad), str(tmp_path / "out"), "--images", str(tmp_path)]
    )
    assert result.exit_code == 65 and "not valid JSON" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out" / "manifest.json").exists()


KITTI_LINE = "{kind} 0.00 0 -1.5 {l} {t} {r} {b} 1.7 0.6 0.8 1.0 1.6 10.0 -1.5"


def _kitti(tmp_path, n_frames: int = 6) -> tuple[Path, Path]:
    labels, images = tmp_path / "label_2", tmp_path / "image_2"
    labels.mkdir()
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n_frames):
        frame = rng.integers(60, 120, (240, 400, 3), dtype=np.uint8)
        frame[40:200, 100:160] = (200, 40, 40)  # the pedestrian
        Image.fromarray(frame).save(images / f"{i:06d}.png")
        lines = [
            KITTI_LINE.format(kind="Pedestrian", l=100, t=40, r=160, b=200),
            KITTI_LINE.format(kind="Cyclist", l=260, t=60, r=320, b=190),
            KITTI_LINE.format(kind="DontCare", l=0, t=0, r=40, b=60),
            KITTI_LINE.format(kind="Car", l=330, t=150, r=399, b=230),
        ]
        (labels / f"{i:06d}.txt").write_text("\n".join(lines) + "\n")
    return labels, images


def test_kitti_import_end_to_end(tmp_path):
    labels, images = _kitti(tmp_path)
    frames = load_kitti(labels, images)
    assert len(frames) == 6 and len(frames[0].people) == 1 and len(frames[0].cyclists) == 1
    result = CliRunner().invoke(
        main,
        [
            "data",
            "import",
            "kitti",
            str(labels),
            str(tmp_path / "ds"),
            "--images",
            str(images),
            "--jitter",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    ds = Dataset.open(tmp_path / "ds")
    batch = [ds.read(s) for s in ("train", "val", "test") if ds.count(s)]
    kinds = set(np.concatenate([b.hard_negative for b in batch]))
    assert {"none", "cyclist", "partial_person", "background"} <= kinds
    positives = np.concatenate([b.images[b.labels == 1] for b in batch])
    assert positives.shape[0] == 12  # one person + one jitter copy per frame
    assert positives[:, 30:100, 24:40, 0].mean() > 150  # the red pedestrian fills the centre


def test_frame_import_split_fractions_decide_where_each_image_goes(tmp_path):
    from edgeped.data.shards import split_for_drive

    labels, images = _kitti(tmp_path, n_frames=30)
    argv = ["data", "import", "kitti", str(labels), str(tmp_path / "ds"), "--images", str(images)]
    result = CliRunner().invoke(main, [*argv, "--split-fractions", "0.4,0.3,0.3"])
    assert result.exit_code == 0, result.output
    ds = Dataset.open(tmp_path / "ds")
    assert ds.manifest["split_rule"]["fractions"] == [0.4, 0.3, 0.3]
    for split in ("train", "val", "test"):
        for drive in set(ds.read(split).drive_id) if ds.count(split) else ():
            assert split_for_drive(drive, (0.4, 0.3, 0.3)) == split, drive
    assert ds.count("val") + ds.count("test") > 0


@pytest.mark.parametrize("value", ["0.6,0.2", "0.6,0.3,0.3", "a,b,c", "1.2,-0.1,-0.1"])
def test_bad_split_fractions_are_a_usage_error_before_anything_is_written(tmp_path, value):
    labels, images = _kitti(tmp_path, n_frames=2)
    out = tmp_path / "ds"
    result = CliRunner().invoke(
        main,
        ["data", "import", "kitti", str(labels), str(out), "--images", str(images),
         "--split-fractions", value],
    )  # fmt: skip
    assert result.exit_code == 64 and "--split-fractions" in result.output, result.output
    assert "0.6,0.2,0.2" in result.output and not out.exists()


@pytest.mark.parametrize(
    "line, match",
    [
        ("Pedestrian 0 0 -1 10 20 30", "has 7 fields"),
        (KITTI_LINE.format(kind="Pedestrian", l="x", t=1, r=2, b=3), "non-numeric"),
        (KITTI_LINE.format(kind="Alien", l=1, t=1, r=2, b=3), "unknown object type"),
        (KITTI_LINE.format(kind="Pedestrian", l=50, t=10, r=40, b=30), "inverted box"),
        (KITTI_LINE.format(kind="Pedestrian", l="nan", t=10, r=40, b=30), "non-finite"),
    ],
)
def test_malformed_kitti_is_a_clear_error(tmp_path, line, match):
    path = tmp_path / "000001.txt"
    path.write_text(line + "\n")
    with pytest.raises(EdgepedError, match=match) as info:
        parse_label_file(path)
    assert "000001.txt:1" in str(info.value)


def test_kitti_frame_without_image_is_a_clear_error(tmp_path):
    labels, images = _kitti(tmp_path, n_frames=1)
    (images / "000000.png").unlink()
    with pytest.raises(EdgepedError, match="no image for label file 000000.txt"):
        load_kitti(labels, images)


def _crops_folder(tmp_path, rows: list[str]) -> Path:
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png", "c.png", "d.png"):
        Image.fromarray(rng.integers(0, 255, (96, 48, 3), dtype=np.uint8)).save(tmp_path / name)
    csv = tmp_path / "crops.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


def test_crops_csv_import_keeps_splits_tags_and_metadata(tmp_path):
    csv = _crops_folder(
        tmp_path,
        [
            "path,label,split,lighting,speed_mps,analog_gain_db",
            "a.png,1,train,night,12.5,20",
            "b.png,0,train,day,,3",
            "c.png,pedestrian,test,,4,",
            "d.png,0,val,,,",
        ],
    )
    import_crops(csv, str(tmp_path / "ds"))
    ds = Dataset.open(tmp_path / "ds")
    train, test = ds.read("train"), ds.read("test")
    assert list(train.labels) == [1, 0] and list(test.labels) == [1]
    assert list(train.lighting) == ["night", "day"] and test.lighting[0] == "unknown"
    assert train.metadata[0, 0] == pytest.approx(12.5) and np.isnan(train.metadata[1, 0])
    assert np.isnan(train.metadata[:, 2]).all()  # exposure_ms column absent
    assert train.images.shape[1:] == (128, 64, 3)


def test_crops_csv_reports_every_bad_row_and_writes_nothing(tmp_path):
    csv = _crops_folder(
        tmp_path, ["path,label,weather", "a.png,maybe,clear", "missing.png,1,clear", "b.png,0,snow"]
    )
    with pytest.raises(EdgepedError) as info:
        import_crops(csv, str(tmp_path / "ds"))
    message = str(info.value)
    assert (
        "unknown label" in message
        and "missing image file" in message
        and "unknown weather" in message
    )
    assert not (tmp_path / "ds" / "manifest.json").exists()


@pytest.mark.skipif(
    not (PENNFUDAN / "annotations.json").is_file(),
    reason=f"Penn-Fudan not found at {PENNFUDAN} (shared data folder absent)",
)
def test_pennfudan_import_end_to_end(tmp_path):
    out = tmp_path / "pf"
    result = CliRunner().invoke(
        main,
        [
            "data",
            "import",
            "coco",
            str(PENNFUDAN / "annotations.json"),
            str(out),
            "--images",
            str(PENNFUDAN / "images"),
            "--jitter",
            "0",
            "--near-miss",
            "1",
            "--background",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    ds = Dataset.open(out)
    batches = {s: ds.read(s) for s in ("train", "val", "test") if ds.count(s)}
    positives = sum(int(b.labels.sum()) for b in batches.values())
    assert 400 <= positives <= 423  # every annotated pedestrian >= 50 px tall
    drives = {s: set(b.drive_id) for s, b in batches.items()}
    splits = list(drives)
    for i, a in enumerate(splits):
        for b in splits[i + 1 :]:
            assert not drives[a] & drives[b], "a source image leaks across splits"
    assert sum(len(d) for d in drives.values()) == 170
    verify = CliRunner().invoke(main, ["data", "verify", str(out)])
    assert verify.exit_code == 0, verify.output


def test_a_close_up_inside_a_person_is_not_background():
    person = np.array([(100.0, 0.0, 300.0, 400.0)])  # a big person, close to the camera
    close_up = (150.0, 100.0, 200.0, 200.0)  # a head-and-shoulders window: small IoU and coverage
    windows = np.array([window_from_box(tuple(person[0]), RULES.margin)])
    assert iou(close_up, windows).max() < RULES.background_max_iou
    assert coverage(close_up, person).max() < RULES.background_max_coverage
    assert fill(close_up, person) == pytest.approx(1.0)
    assert fill((0.0, 0.0, 50.0, 100.0), person) == 0.0
    from edgeped.data.importers.geometry import is_background

    assert not is_background(close_up, windows, person, RULES)
    assert is_background((0.0, 300.0, 40.0, 380.0), windows, person, RULES)
