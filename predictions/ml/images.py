"""Turn uploaded bytes into an upright 8-bit RGB image, or refuse them with a clear reason.

Decoding is where hostile input meets the service: the pixel count is checked from the header before any pixel
is decoded (decompression bombs), the EXIF orientation is applied so boxes are in the orientation a person sees,
and every mode Pillow can hand back (palette, 16-bit, CMYK, alpha) ends as plain RGB.

A large JPEG (a 12-megapixel phone photo) can be decoded at 1/2, 1/4 or 1/8 of its size by the JPEG decoder
itself (:func:`decode_for_analysis`, ``work_side``): several times faster and smaller in memory than decoding
every pixel, and the detector and the 64-px face crops need no more. The caller maps boxes back to the
displayed size.
"""
from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .errors import ImageTooLarge, InvalidImage, UnsupportedImageFormat

#: Formats decoded. Others that Pillow happens to know (PSD, ICO, PDF...) are refused with 415.
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"})
ACCEPTED_NAMES = "JPEG, PNG, WebP, GIF, BMP or TIFF"
DEFAULT_MAX_PIXELS = 40_000_000

# We check the pixel count ourselves, before decoding; Pillow's own guard would warn or raise later.
Image.MAX_IMAGE_PIXELS = None

_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")


def _looks_like_heif(data: bytes) -> bool:
    return len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  #: upright RGB, possibly reduced
    displayed_size: tuple[int, int]  #: (width, height) of the full image as a person sees it (EXIF applied)

    @property
    def scale(self) -> tuple[float, float]:
        """Factors from ``image`` pixels to displayed pixels (1.0 when not reduced)."""
        return self.displayed_size[0] / self.image.width, self.displayed_size[1] / self.image.height


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``data`` to an upright RGB image at full size; raise an :class:`ImageRejected` subclass if it
    cannot be."""
    return decode_for_analysis(data, max_pixels).image


def decode_for_analysis(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                        work_side: int | None = None) -> DecodedImage:
    """Like :func:`decode_image`; with ``work_side``, a JPEG whose longer side is at least twice that is
    decoded reduced (by 2, 4 or 8, by the JPEG decoder), keeping the longer side at least ``work_side``."""
    if not data:
        raise InvalidImage("The uploaded file is empty.")
    if _looks_like_heif(data):
        raise UnsupportedImageFormat(f"HEIC/HEIF/AVIF images are not supported; send {ACCEPTED_NAMES}.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InvalidImage(f"The uploaded file is not an image this service can read ({ACCEPTED_NAMES}).") from None
    except Exception:
        raise InvalidImage("The uploaded file could not be read as an image.") from None
    if image.format not in ACCEPTED_FORMATS:
        raise UnsupportedImageFormat(
            f"{image.format} images are not supported; send {ACCEPTED_NAMES}.")
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidImage("The image has no pixels.")
    if max(width, height) > 10 * min(width, height):  # a strip, not a photo; the detector's tiles blow up on it
        raise InvalidImage(f"The image is {width}x{height} pixels: too elongated for a photo (at most 10:1).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if work_side and image.format in ("JPEG", "MPO") and max(width, height) >= 2 * work_side:
                factor = work_side / max(width, height)
                image.draft(image.mode, (math.ceil(width * factor), math.ceil(height * factor)))
    except Exception:
        raise InvalidImage("The image data is truncated or corrupt.") from None
    # The limit is on the pixels actually decoded: a 48-MP phone JPEG decoded at 1/4 passes, a JPEG bomb
    # (65500 x 65500, still 67 MP at 1/8) does not.
    if image.width * image.height > max_pixels:
        raise ImageTooLarge(
            f"The image is {width}x{height} pixels; at most {max_pixels:,} pixels are accepted"
            + (" (JPEG: after decoding at up to 1/8 size)." if image.size != (width, height) else "."))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            transposed = image.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8)
            image.load()  # first frame only for animations
            image = ImageOps.exif_transpose(image)
            displayed = (height, width) if transposed else (width, height)
            return DecodedImage(_to_rgb(image), displayed)
    except (ImageTooLarge, InvalidImage):
        raise
    except Exception:
        raise InvalidImage("The image data is truncated or corrupt.") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        # 16-bit and float grayscale: Pillow's convert() would clip everything above 255 to white.
        values = np.asarray(image, dtype=np.float64)
        top = values.max() if values.size else 0.0
        scale = 255.0 / 65535.0 if top > 255 else 1.0
        gray = np.clip(values * scale, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
