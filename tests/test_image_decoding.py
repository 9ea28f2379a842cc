"""Source images decoded the way their files mean them, and metadata kept in physical range."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeped.data.importers import images
from edgeped.data.importers.images import image_size, load_rgb
from edgeped.errors import EdgepedError


def test_16_bit_grey_is_scaled_by_its_depth_not_clipped_to_white(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 32).reshape(32, 64).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    rgb = load_rgb(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (32, 64, 3)
    np.testing.assert_allclose(rgb[..., 0], ramp / 257.0, atol=1)
    assert (rgb < 250).mean() > 0.9  # a plain convert("RGB") made nearly all of it white


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_float_images_in_0_1_or_0_255_keep_their_levels(tmp_path, scale):
    values = np.linspace(0, 1, 32 * 16, dtype=np.float32).reshape(32, 16) * scale
    path = tmp_path / "float.tiff"
    Image.fromarray(values, mode="F").save(path)
    rgb = load_rgb(path)
    np.testing.assert_allclose(rgb[..., 1], values * (255.0 / scale), atol=1)


@pytest.mark.parametrize("value", [np.nan, 1e6, -3.0])
def test_float_images_out_of_range_are_refused(tmp_path, value):
    values = np.full((8, 8), 0.5, np.float32)
    values[2, 3] = value
    path = tmp_path / "float.tiff"
    Image.fromarray(values, mode="F").save(path)
    with pytest.raises(EdgepedError, match="float.tiff"):
        load_rgb(path)


def test_exif_orientation_is_applied_to_pixels_and_size(tmp_path):
    pixels = np.zeros((40, 20, 3), np.uint8)
    pixels[:5, :, 0] = 255  # a red band at the top of the stored image
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display it turned 90 degrees clockwise
    path = tmp_path / "phone.png"
    Image.fromarray(pixels).save(path, exif=exif)
    assert image_size(path) == (40, 20)
    rgb = load_rgb(path)
    assert rgb.shape == (20, 40, 3)
    assert rgb[:, -5:, 0].mean() > 250 and rgb[:, :5, 0].mean() < 5  # the band is now right


def test_a_decompression_bomb_is_a_clear_error_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((300, 300, 3), np.uint8)).save(path)
    monkeypatch.setattr(images, "MAX_PIXELS", 50_000)
    for read in (load_rgb, image_size):
        with pytest.raises(EdgepedError, match="too large to decode safely") as info:
            read(path)
        assert "300x300" in str(info.value) and "fix:" in str(info.value)


def test_pillows_own_bomb_limit_is_a_clear_error_too(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((300, 300, 3), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # past 2x: Pillow's own error
    with pytest.raises(EdgepedError, match="too large to decode safely"):
        load_rgb(path)


def test_a_damaged_file_is_an_edgeped_error(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(EdgepedError, match="cannot read image"):
        load_rgb(path)


def _crops(tmp_path: Path, header: str, values: list[str]) -> Path:
    rng = np.random.default_rng(0)
    rows = [header]
    for i, v in enumerate(values):
        Image.fromarray(rng.integers(0, 255, (96, 48, 3), dtype=np.uint8)).save(
            tmp_path / f"c{i}.png"
        )
        rows.append(f"c{i}.png,{i % 2},{('train', 'val', 'test')[i % 3]},{v}")
    (tmp_path / "crops.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "crops.csv"


@pytest.mark.parametrize(
    "column, value, phrase",
    [
        ("tod_sin", "7.5", "tod_sin outside its physical range [-1, 1]"),
        ("tod_cos", "-1.2", "tod_cos outside its physical range [-1, 1]"),
        ("speed_mps", "-40", "speed_mps outside its physical range [0, 100]"),
        ("speed_mps", "4000", "speed_mps outside its physical range"),
        ("exposure_ms", "-1", "exposure_ms outside"),
        ("yaw_rate_rps", "inf", "non-numeric or non-finite yaw_rate_rps"),
        ("analog_gain_db", "nan", "non-numeric or non-finite analog_gain_db"),
    ],
)
def test_metadata_out_of_physical_range_names_row_and_column(tmp_path, column, value, phrase):
    from edgeped.data.importers.crops_csv import import_crops

    good = {"tod_sin": "0.5", "tod_cos": "0.5", "speed_mps": "10"}.get(column, "1")
    csv = _crops(tmp_path, f"path,label,split,{column}", [good] * 5 + [value])
    with pytest.raises(EdgepedError) as info:
        import_crops(csv, str(tmp_path / "out"))
    text = " ".join(str(info.value).split())
    assert phrase in text and "row 7" in text, text
    assert not (tmp_path / "out").exists()


def test_time_of_day_off_the_unit_circle_is_refused(tmp_path):
    from edgeped.data.importers.crops_csv import import_crops

    rng = np.random.default_rng(0)
    rows = ["path,label,split,tod_sin,tod_cos"]
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (96, 48, 3), dtype=np.uint8)).save(
            tmp_path / f"c{i}.png"
        )
        pair = "0.1,0.1" if i == 4 else "0.6,0.8"
        rows.append(f"c{i}.png,{i % 2},{('train', 'val', 'test')[i % 3]},{pair}")
    (tmp_path / "crops.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(EdgepedError, match="unit circle") as info:
        import_crops(tmp_path / "crops.csv", str(tmp_path / "out"))
    assert "row 6" in str(info.value)


def test_inf_metadata_in_a_batch_names_the_field_and_record():
    from helpers import make_batch

    from edgeped.data.schema import TAG_FIELDS, CropBatch

    batch = make_batch(4)
    meta = batch.metadata.copy()
    meta[2, 3] = np.inf
    arrays = {f: getattr(batch, f) for f in ("images", "labels", "drive_id", "crop_id")}
    tags = {t: batch.tags(t) for t in TAG_FIELDS}
    with pytest.raises(EdgepedError, match="tod_sin of record 2"):
        CropBatch.validated(metadata=meta, **arrays, **tags)
