"""The former numpy JPEG round trip (benchmarks' codec comparison), against Pillow's codec."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image as pil

from benchmarks.robustness.jpeg_numpy import jpeg_roundtrip


def _crop() -> np.ndarray:
    """A smooth, structured crop (random pixels would hide the compression)."""
    yy, xx = np.mgrid[0:128, 0:64]
    base = 110 + 60 * np.sin(xx / 5) * np.cos(yy / 8)
    person = ((np.abs(xx - 32) < 10) & (yy > 20)).astype(float) * 50
    rgb = np.stack([base + person, base * 0.9, base * 0.8 - person], -1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def test_numpy_jpeg_matches_pillow():
    image = _crop()
    for quality in (90, 30, 8):
        buf = io.BytesIO()
        pil.fromarray(image).save(buf, "JPEG", quality=quality, subsampling=2)
        reference = np.array(pil.open(buf)).astype(float)
        ours = jpeg_roundtrip(image, quality).astype(float)
        assert np.abs(ours - reference).mean() < 2.5
    assert np.abs(jpeg_roundtrip(image, 5).astype(float) - image).mean() > 4
