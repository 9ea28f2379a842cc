"""Decoding a source image to 8-bit RGB the way its file means it.

`Image.convert("RGB")` alone gets three kinds of file wrong: a 16-bit or 32-bit
grey image is clipped (every value above 255 becomes white), a float image is
truncated, and a phone photo stored sideways with an EXIF orientation tag stays
sideways. Here the EXIF orientation is applied (`ImageOps.exif_transpose`), deep
images are scaled by their bit depth, and an image with more pixels than
`MAX_PIXELS` (a decompression bomb, or a file that is not what it says) is refused
before its pixels are decoded.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edgeped.errors import EdgepedError

# Larger than any camera frame the importers expect (a 50 MP sensor), far below
# what would exhaust memory: 64 MP of RGB is 192 MB.
MAX_PIXELS = 64_000_000


def _refused(path: Path, problem: str, fix: str = "replace or remove the file") -> EdgepedError:
    return EdgepedError(f"cannot read image {path} ({problem})", fix)


def image_size(path: Path) -> tuple[int, int]:
    """The (width, height) the image shows, after its EXIF orientation; reads the header only.

    Raises:
        EdgepedError: missing, unreadable, or more pixels than MAX_PIXELS.
    """
    with _open(path) as img:
        width, height = img.size
        if _orientation(img) in (5, 6, 7, 8):  # rotated by 90 degrees: the sides swap
            width, height = height, width
        return width, height


def load_rgb(path: Path) -> np.ndarray:
    """The image as uint8 RGB, oriented as its EXIF tag says, deep values scaled to 8 bits.

    Raises:
        EdgepedError: missing, unreadable, a decompression bomb, or float pixels that are
            not finite or not in [0, 1] or [0, 255].
    """
    from PIL import ImageOps

    with _open(path) as img:
        try:
            img.load()
            oriented = ImageOps.exif_transpose(img)
            return _to_rgb8(path, oriented)
        except OSError as exc:
            raise _refused(path, str(exc)) from exc


def _orientation(img) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except (OSError, ValueError, TypeError):
        return 1


def _to_rgb8(path: Path, img) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(img).astype(np.float64)
        # "I" holds 16-bit PNGs too: scale by the depth the values need, never clip.
        top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) <= 65535 else 2**32 - 1
        if values.min(initial=0) < 0:
            raise _refused(path, "it holds negative pixel values", "save it as 8- or 16-bit")
        grey = np.round(values * (255.0 / top)).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        values = np.asarray(img, np.float64)
        if not np.isfinite(values).all():
            raise _refused(path, "it holds NaN or infinite pixel values")
        low, high = values.min(initial=0), values.max(initial=0)
        if low < 0 or high > 255:
            raise _refused(
                path,
                f"float pixel values span [{low:g}, {high:g}], not [0, 1] or [0, 255]",
                "save it as an 8- or 16-bit image",
            )
        scale = 255.0 if high <= 1.0 else 1.0
        grey = np.round(values * scale).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"), np.uint8)


class _open:
    """`Image.open` with the bomb guard as a clear error and damage as an EdgepedError."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.img = None

    def __enter__(self):
        from PIL import Image, UnidentifiedImageError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                self.img = Image.open(self.path)
        except FileNotFoundError as exc:
            raise EdgepedError(
                f"image not found: {self.path}", "check the path (or --images) points at it"
            ) from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise self._bomb() from exc
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise _refused(self.path, str(exc), "replace or remove the damaged file") from exc
        width, height = self.img.size
        if width * height > MAX_PIXELS:
            self.img.close()
            raise self._bomb(width, height)
        return self.img

    def _bomb(self, width: int | None = None, height: int | None = None) -> EdgepedError:
        size = f"{width}x{height} pixels, " if width else ""
        return EdgepedError(
            f"image {self.path} is too large to decode safely ({size}more than "
            f"{MAX_PIXELS:,} pixels: a decompression bomb, or not the image it claims to be)",
            "downscale the image below that size, or remove it from the list",
        )

    def __exit__(self, *exc) -> None:
        if self.img is not None:
            self.img.close()
