"""predictions.runtime: one pipeline per process, built once, failures remembered briefly."""
from __future__ import annotations

import sys
import threading
import time
import types

import pytest

from predictions import runtime


def test_it_builds_the_pipeline_once_across_threads(monkeypatch):
    built = []

    def load():
        time.sleep(0.05)
        built.append(object())
        return built[-1]

    monkeypatch.setattr(runtime, "load_pipeline", load)
    results = []
    threads = [threading.Thread(target=lambda: results.append(runtime.get_pipeline())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1
    assert all(r is built[0] for r in results)
    assert runtime.pipeline_status() == (True, "loaded")


def test_a_failed_load_raises_pipeline_unavailable_and_is_not_retried_at_once(monkeypatch):
    attempts = []
    monkeypatch.setattr(runtime, "load_pipeline", lambda: attempts.append(1) or 1 / 0)
    for _ in range(3):
        with pytest.raises(runtime.PipelineUnavailable, match="division by zero"):
            runtime.get_pipeline()
    assert len(attempts) == 1


def test_it_retries_a_failed_load_after_the_back_off(monkeypatch):
    outcomes = iter([OSError("not yet"), "pipeline"])

    def load():
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(runtime, "load_pipeline", load)
    monkeypatch.setattr(runtime, "RETRY_LOAD_AFTER", 0.0)
    with pytest.raises(runtime.PipelineUnavailable):
        runtime.get_pipeline()
    assert runtime.get_pipeline() == "pipeline"


@pytest.mark.real_pipeline  # lifts the autouse guard; the module it imports is faked below
def test_load_pipeline_passes_the_settings_to_gender_pipeline(monkeypatch, settings):
    calls = []
    fake = types.ModuleType("predictions.ml.pipeline")
    fake.GenderPipeline = type("GenderPipeline", (), {"load": staticmethod(lambda **kw: calls.append(kw))})
    monkeypatch.setitem(sys.modules, "predictions.ml.pipeline", fake)
    settings.MODEL_PATH, settings.MAX_FACES, settings.MAX_IMAGE_PIXELS = "/m.h5", 3, 1234
    settings.INFERENCE_THREADS = 1
    runtime.load_pipeline()
    settings.INFERENCE_THREADS = 0  # TensorFlow's own default
    runtime.load_pipeline()
    assert calls == [{"model_path": "/m.h5", "max_faces": 3, "max_pixels": 1234, "threads": 1},
                     {"model_path": "/m.h5", "max_faces": 3, "max_pixels": 1234, "threads": None}]
