"""The gender classifier: a small Keras CNN saved as ``model.h5``, plus the settings it was trained with.

``model.h5`` holds only built-in Keras layers, so it loads without custom objects. What serving must know to feed
it exactly as training did (input size, crop margin) and how to read its output (the calibration temperature,
the labels) is stored in the same file as an HDF5 attribute, so the weights and their contract travel together.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field

import numpy as np

from .errors import ModelUnavailable

logger = logging.getLogger(__name__)

CONFIG_ATTR = "genderapi_config"
LABELS = ("male", "female")


@dataclass
class ClassifierConfig:
    input_size: int = 64
    margin: float = 1.3
    temperature: float = 1.0
    flip_average: bool = False
    low_confidence_below: float = 0.65
    labels: tuple = LABELS
    report: dict = field(default_factory=dict)

    def to_json(self) -> str:
        data = dict(self.__dict__)
        data["labels"] = list(self.labels)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> "ClassifierConfig":
        data = json.loads(text)
        data["labels"] = tuple(data.get("labels", LABELS))
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def write_config(path: str, config: ClassifierConfig) -> None:
    import h5py

    with h5py.File(path, "a") as handle:
        handle.attrs[CONFIG_ATTR] = config.to_json()


def read_config(path: str) -> ClassifierConfig:
    import h5py

    with h5py.File(path, "r") as handle:
        raw = handle.attrs.get(CONFIG_ATTR)
    if raw is None:
        return ClassifierConfig()
    return ClassifierConfig.from_json(raw if isinstance(raw, str) else raw.decode())


def file_version(path: str) -> str:
    """A short content hash of the model file: the ``model_version`` clients see."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()[:12]


def set_tensorflow_threads(threads: int) -> bool:
    """Size TensorFlow's intra-op and inter-op thread pools for this process. It must come before TensorFlow
    runs its first operation; afterwards the pools are fixed, and this logs a warning and returns False."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as exc:
        logger.warning("TensorFlow's thread pools are already running; %d thread(s) not applied: %s", threads, exc)
        return False
    return True


class GenderClassifier:
    """``predict(crops)`` maps uint8 crops ``(n, size, size, 3)`` to calibrated P(female), shape ``(n,)``."""

    def __init__(self, model, config: ClassifierConfig, version: str = "unsaved"):
        import tensorflow as tf

        self.model = model
        self.config = config
        self.version = version
        size = config.input_size
        temperature = float(config.temperature)
        flip = bool(config.flip_average)

        # One traced graph for any batch size: a direct call in a tf.function costs a few ms for one crop,
        # where model.predict() pays ~80 ms of per-call setup meant for large batches.
        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)], reduce_retracing=True)
        def _probabilities(crops):
            x = tf.cast(crops, tf.float32)
            logits = model(x, training=False)[:, 0]
            if flip:
                logits = (logits + model(tf.reverse(x, axis=[2]), training=False)[:, 0]) / 2.0
            return tf.sigmoid(logits / temperature)

        self._probabilities = _probabilities
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str) -> "GenderClassifier":
        if not os.path.exists(path):
            raise ModelUnavailable(f"Model file not found: {path}. Train one with `python manage.py trainmodel`.")
        import keras

        try:
            model = keras.models.load_model(path, compile=False)
            config = read_config(path)
        except Exception as exc:  # a truncated or foreign file
            raise ModelUnavailable(f"Model file {path} could not be loaded: {exc}") from exc
        return cls(model, config, file_version(path))

    def predict(self, crops: np.ndarray) -> np.ndarray:
        crops = np.asarray(crops, dtype=np.uint8)
        if crops.shape[0] == 0:
            return np.zeros((0,), dtype=np.float32)
        return self._probabilities(crops).numpy()

    def warm_up(self) -> None:
        """Trace the graph now, so the first request does not pay for it."""
        size = self.config.input_size
        self.predict(np.zeros((1, size, size, 3), dtype=np.uint8))
        self.predict(np.zeros((3, size, size, 3), dtype=np.uint8))
