"""Photo in, genders out: decode, detect, crop, classify, in one object that a server loads once and reuses.

:class:`GenderPipeline` is what the web layer calls. It raises :class:`~.errors.ImageRejected` subclasses for
input it refuses (each with its HTTP status), so an adapter needs no knowledge of images or models.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .classifier import GenderClassifier, set_tensorflow_threads
from .detector import DetectedFace, FaceDetector
from .errors import NoFaceFound
from .faces import crop_face
from .images import DEFAULT_MAX_PIXELS, decode_for_analysis

DEFAULT_MAX_FACES = 10
#: Large JPEGs are decoded reduced, keeping at least this many pixels on the longer side (see images.py).
WORK_SIDE = 1600


@dataclass
class FaceResult:
    gender: str
    confidence: float
    probabilities: dict
    low_confidence: bool
    box: dict
    detection_score: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Analysis:
    faces: list
    faces_detected: int
    image_width: int
    image_height: int
    model_version: str
    timings_ms: dict

    @property
    def gender(self) -> str:
        return self.faces[0].gender

    def to_dict(self) -> dict:
        top = self.faces[0]
        return {
            "gender": top.gender,
            "confidence": top.confidence,
            "low_confidence": top.low_confidence,
            "faces": [face.to_dict() for face in self.faces],
            "faces_detected": self.faces_detected,
            "image": {"width": self.image_width, "height": self.image_height},
            "model_version": self.model_version,
            "timings_ms": self.timings_ms,
        }


def _clipped_box(face: DetectedFace, width: int, height: int, scale: tuple[float, float] = (1.0, 1.0)) -> dict:
    """The face's box in displayed pixels (``scale`` maps analysed pixels to them), clipped to the image."""
    sx, sy = scale
    x0, y0 = max(0, round(face.x * sx)), max(0, round(face.y * sy))
    x1, y1 = min(width, round((face.x + face.width) * sx)), min(height, round((face.y + face.height) * sy))
    return {"x": x0, "y": y0, "width": max(0, x1 - x0), "height": max(0, y1 - y0)}


class GenderPipeline:
    def __init__(self, detector: FaceDetector, classifier: GenderClassifier,
                 max_faces: int = DEFAULT_MAX_FACES, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.detector = detector
        self.classifier = classifier
        self.max_faces = max_faces
        self.max_pixels = max_pixels

    @classmethod
    def load(cls, model_path: str, max_faces: int = DEFAULT_MAX_FACES,
             max_pixels: int = DEFAULT_MAX_PIXELS, warm: bool = True, threads: int | None = None) -> "GenderPipeline":
        """Load the detector and the classifier; ``threads`` sets TensorFlow's thread pools first (see
        :func:`~.classifier.set_tensorflow_threads`; None keeps TensorFlow's default)."""
        if threads:
            set_tensorflow_threads(threads)
        pipeline = cls(FaceDetector(), GenderClassifier.load(model_path), max_faces, max_pixels)
        if warm:
            pipeline.warm_up()
        return pipeline

    @property
    def model_version(self) -> str:
        return self.classifier.version

    def warm_up(self) -> None:
        self.classifier.warm_up()
        self.detector.detect(Image.new("RGB", (64, 64)))

    def analyse(self, data: bytes) -> Analysis:
        """Analyse an uploaded file; raise ImageRejected for input that cannot be analysed."""
        started = time.perf_counter()
        decoded = decode_for_analysis(data, self.max_pixels, WORK_SIDE)
        return self.analyse_image(decoded.image, started, decoded.displayed_size)

    def analyse_image(self, image: Image.Image, started: float | None = None,
                      displayed_size: tuple[int, int] | None = None) -> Analysis:
        """Analyse a decoded image; ``displayed_size`` is the full image's size when ``image`` is reduced."""
        started = time.perf_counter() if started is None else started
        decoded = time.perf_counter()
        faces = self.detector.detect(image)
        detected = time.perf_counter()
        if not faces:
            raise NoFaceFound("No face was found in the image.")
        kept = faces[: self.max_faces]
        config = self.classifier.config
        crops = np.stack([crop_face(image, f, config.input_size, config.margin) for f in kept])
        p_female = self.classifier.predict(crops)  # all faces of the photo in one forward pass
        classified = time.perf_counter()
        width, height = displayed_size or image.size
        scale = (width / image.width, height / image.height)
        results = []
        for face, p in zip(kept, p_female):
            p = float(p)
            probs = {config.labels[0]: round(1.0 - p, 4), config.labels[1]: round(p, 4)}
            label = config.labels[1] if p >= 0.5 else config.labels[0]
            confidence = max(p, 1.0 - p)
            results.append(FaceResult(
                gender=label, confidence=round(confidence, 4), probabilities=probs,
                low_confidence=confidence < config.low_confidence_below,
                box=_clipped_box(face, width, height, scale), detection_score=round(face.score, 4)))
        ms = lambda a, b: round((b - a) * 1000, 2)  # noqa: E731
        timings = {"decode": ms(started, decoded), "detect": ms(decoded, detected),
                   "classify": ms(detected, classified), "total": ms(started, classified)}
        return Analysis(results, len(faces), width, height, self.classifier.version, timings)
