"""The UTKFace training data, turned into the face crops the classifier learns from.

Each 200-px chip is padded (edge pixels repeated) to 400 px so the face sits at the scale the detector sees in whole photos,
run through the service's own detector and cropped by the service's own :func:`crop_face`, slightly wider than the
serving crop so training can jitter the framing. The crops are cached as one ``.npz`` so training runs do not
repeat the detection. The fixed TEST split rule comes from ``shared/data/README.md``.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .detector import DetectedFace, FaceDetector
from .faces import crop_face
from .images import decode_image

CHIP_PAD = 100
GENDERS = ("male", "female")  # UTKFace's 0 and 1; the model's output is P(female)
RACES = ("White", "Black", "Asian", "Indian", "Others")


def is_test(basename: str) -> bool:
    """The project's fixed test split: first byte of sha1(basename) < 26 (about 10%)."""
    return hashlib.sha1(basename.encode()).digest()[0] < 26


def is_validation(basename: str) -> bool:
    """Validation split carved out of the non-test files, by another byte of the same hash."""
    return hashlib.sha1(basename.encode()).digest()[1] < 26


@dataclass(frozen=True)
class Record:
    member: str
    basename: str
    age: int
    gender: int
    race: int


def utkface_records(zip_path: str) -> list[Record]:
    """Every well-formed member of the UTKFace zip, with labels parsed from its name."""
    records = []
    with zipfile.ZipFile(zip_path) as archive:
        for member in archive.namelist():
            base = os.path.basename(member)
            if not base.endswith(".jpg"):
                continue
            parts = base.split("_")
            try:
                age, gender, race = int(parts[0]), int(parts[1]), int(parts[2])
            except (ValueError, IndexError):
                continue  # a handful of UTKFace names lack a field
            if gender not in (0, 1) or race not in range(5):
                continue
            records.append(Record(member, base, age, gender, race))
    records.sort(key=lambda r: r.basename)
    return records


def chip_crop(data: bytes, detector: FaceDetector, size: int, margin: float) -> tuple[np.ndarray, bool]:
    """Crop one UTKFace chip as serving would crop a photo; fall back to the chip's centre if no face is found."""
    chip = np.asarray(decode_image(data))
    padded = Image.fromarray(np.pad(chip, ((CHIP_PAD, CHIP_PAD), (CHIP_PAD, CHIP_PAD), (0, 0)), mode="edge"))
    faces = detector.detect(padded)
    if faces:
        return crop_face(padded, faces[0], size=size, margin=margin), True
    h, w = chip.shape[:2]
    centre = DetectedFace(CHIP_PAD + w * 0.2, CHIP_PAD + h * 0.25, w * 0.6, h * 0.6,
                          np.array([[0, 0], [1, 0]] + [[0, 0]] * 4, dtype=np.float32), 0.0)
    return crop_face(padded, centre, size=size, margin=margin), False


def _crop_worker(args):
    zip_path, members, size, margin = args
    detector = FaceDetector()
    out, found = [], []
    with zipfile.ZipFile(zip_path) as archive:
        for member in members:
            crop, ok = chip_crop(archive.read(member), detector, size, margin)
            out.append(crop)
            found.append(ok)
    return np.stack(out), np.array(found)


def build_crop_cache(zip_path: str, cache_path: str, size: int, margin: float, workers: int = 2,
                     limit: int | None = None) -> dict:
    """Detect and crop every chip once; save arrays (crops, labels, split flags) to ``cache_path``."""
    records = utkface_records(zip_path)
    if limit:
        records = records[:limit]
    chunks = [records[i:i + 500] for i in range(0, len(records), 500)]
    jobs = [(zip_path, [r.member for r in chunk], size, margin) for chunk in chunks]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_crop_worker, jobs))
    else:
        results = [_crop_worker(job) for job in jobs]
    arrays = dict(
        crops=np.concatenate([r[0] for r in results]),
        detected=np.concatenate([r[1] for r in results]),
        gender=np.array([r.gender for r in records], dtype=np.int8),
        age=np.array([r.age for r in records], dtype=np.int16),
        race=np.array([r.race for r in records], dtype=np.int8),
        test=np.array([is_test(r.basename) for r in records]),
        validation=np.array([is_validation(r.basename) for r in records]),
        names=np.array([r.basename for r in records]),
        size=np.array(size), margin=np.array(margin),
    )
    os.makedirs(os.path.dirname(os.path.abspath(cache_path)), exist_ok=True)
    np.savez(cache_path, **arrays)
    return arrays


def load_crop_cache(cache_path: str) -> dict:
    with np.load(cache_path) as data:
        return {key: data[key] for key in data.files}
