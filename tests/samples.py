"""Real photos and crafted image files for tests.

Photos that are always present come from scikit-image's wheel: ``astronaut.png`` (Eileen Collins, a public-domain
NASA portrait: one woman's face), ``camera.png`` (the "cameraman": one man, grayscale) and ``chelsea.png`` (a cat:
no human face). The larger shared data (``../shared/data``) is optional: :func:`shared_data` returns ``None``
where it is absent, as in a user's fresh clone, and the tests that need it skip.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import skimage
from PIL import Image

SKIMAGE_DATA = Path(skimage.__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]


def photo_bytes(name: str) -> bytes:
    return (SKIMAGE_DATA / name).read_bytes()


def photo(name: str) -> Image.Image:
    return Image.open(SKIMAGE_DATA / name).convert("RGB")


def encode(image: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def astronaut_jpeg(**params) -> bytes:
    return encode(photo("astronaut.png"), "JPEG", quality=90, **params)


def with_exif_orientation(image: Image.Image, orientation: int) -> bytes:
    """A JPEG whose pixels are stored rotated, with the EXIF tag that tells a viewer how to turn it upright."""
    stored = {6: image.transpose(Image.Transpose.ROTATE_90), 8: image.transpose(Image.Transpose.ROTATE_270),
              3: image.transpose(Image.Transpose.ROTATE_180)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "JPEG", quality=90, exif=exif.tobytes())


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""
    raw = encode(Image.new("L", (1, 1)), "PNG")
    ihdr_data = struct.pack(">II", width, height) + raw[24:29]
    chunk = b"IHDR" + ihdr_data
    return raw[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + raw[33:]


def shared_data() -> Path | None:
    """``../shared/data`` beside the project (or $GENDERAPI_SHARED_DATA), or None when absent."""
    path = Path(os.environ.get("GENDERAPI_SHARED_DATA", ROOT.parent / "shared" / "data"))
    return path if (path / "utkface" / "UTKFace.zip").exists() else None


def noise_image(size=(64, 64), seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (*size[::-1], 3), dtype=np.uint8))
