"""Cut the classifier's input out of a photo: one function, used both by training and by serving, so the
model sees at training time exactly what it sees in production.

The crop is a square centred on the detector's box, ``margin`` times the box's larger side, rotated so the
eyes are level, resampled to ``size`` x ``size`` pixels. Parts that fall outside the photo are black.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image

from .detector import DetectedFace

DEFAULT_MARGIN = 1.5
DEFAULT_SIZE = 64


def crop_face(image: Image.Image, face: DetectedFace, size: int = DEFAULT_SIZE,
              margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """Return the aligned face crop as a ``(size, size, 3)`` uint8 array."""
    cx, cy = face.x + face.width / 2, face.y + face.height / 2
    side = margin * max(face.width, face.height, 1.0)
    right_eye, left_eye = face.keypoints[0], face.keypoints[1]
    angle = math.atan2(float(left_eye[1] - right_eye[1]), float(left_eye[0] - right_eye[0]))
    # Work on an axis-aligned region around the rotated square (crop() pads outside the photo with black),
    # shrunk with a box filter first when the face is much larger than the output, so it does not alias.
    half = side * 0.75  # > side * sqrt(2) / 2
    x0, y0 = math.floor(cx - half), math.floor(cy - half)
    region = image.crop((x0, y0, math.ceil(cx + half), math.ceil(cy + half)))
    factor = max(1, int(side / size / 2))
    if factor > 1:
        region = region.reduce(factor)
    rcx, rcy = (cx - x0) / factor, (cy - y0) / factor
    step = side / factor / size
    cos, sin = math.cos(angle) * step, math.sin(angle) * step
    # output pixel (u, v) samples region point centre + R(angle) . ((u, v) - size / 2) * step
    a, b, d, e = cos, -sin, sin, cos
    c = rcx - (a + b) * size / 2
    f = rcy - (d + e) * size / 2
    out = region.transform((size, size), Image.AFFINE, (a, b, c, d, e, f), resample=Image.BILINEAR)
    return np.asarray(out, dtype=np.uint8)
