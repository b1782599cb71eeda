"""The process's one gender pipeline: built on first use (or at worker start-up) and shared by all threads.

Loading imports TensorFlow and reads the model (seconds), so it happens once per process, under a lock. If it
fails (model file missing, unreadable...), callers get :class:`PipelineUnavailable` and the next attempt is
made only after ``RETRY_LOAD_AFTER`` seconds, so a broken deployment answers 503s quickly instead of queueing
every request behind a doomed reload.

Tests replace :func:`get_pipeline` (or :func:`load_pipeline`) with a fake; nothing here imports TensorFlow
until a pipeline is actually built.
"""
from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

logger = logging.getLogger(__name__)

RETRY_LOAD_AFTER = 30.0

_lock = threading.Lock()
_pipeline = None
_failure: tuple[float, str] | None = None  # (monotonic time, reason) of the last failed load


class PipelineUnavailable(Exception):
    """The pipeline could not be built; ``str(exc)`` says why."""


def load_pipeline():
    """Build a pipeline from the settings (slow: imports TensorFlow, loads and warms the model)."""
    from predictions.ml.pipeline import GenderPipeline

    return GenderPipeline.load(model_path=settings.MODEL_PATH, max_faces=settings.MAX_FACES,
                               max_pixels=settings.MAX_IMAGE_PIXELS, threads=settings.INFERENCE_THREADS or None)


def get_pipeline():
    """Return the process's pipeline, building it on first call; raise :class:`PipelineUnavailable`."""
    global _pipeline, _failure
    if _pipeline is not None:
        return _pipeline
    with _lock:
        if _pipeline is not None:
            return _pipeline
        if _failure is not None and time.monotonic() - _failure[0] < RETRY_LOAD_AFTER:
            raise PipelineUnavailable(_failure[1])
        started = time.perf_counter()
        try:
            _pipeline = load_pipeline()
        except Exception as exc:
            reason = f"model could not be loaded from {settings.MODEL_PATH}: {exc}"
            _failure = (time.monotonic(), reason)
            logger.exception("prediction pipeline unavailable: %s", reason)
            raise PipelineUnavailable(reason) from exc
        _failure = None
        logger.info("prediction pipeline loaded from %s in %.1f s", settings.MODEL_PATH,
                    time.perf_counter() - started)
        return _pipeline


def pipeline_status() -> tuple[bool, str]:
    """``(loaded, detail)`` without trying to load: what the readiness probe reports."""
    if _pipeline is not None:
        return True, "loaded"
    if _failure is not None:
        return False, _failure[1]
    return False, "not loaded yet"


def warm_up() -> None:
    """Build the pipeline now (at worker start-up), logging rather than raising a failure."""
    try:
        get_pipeline()
    except PipelineUnavailable:
        pass  # already logged; /readyz reports it and /predict/ answers 503 until a retry succeeds


def forget() -> None:
    """Drop the cached pipeline and any remembered failure (tests)."""
    global _pipeline, _failure
    with _lock:
        _pipeline = None
        _failure = None
