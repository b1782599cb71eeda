"""/healthz and /readyz: no authentication; readiness needs the pipeline loaded and Redis answering."""
from __future__ import annotations

import pytest

from predictions import runtime


@pytest.fixture
def loaded_pipeline(monkeypatch):
    monkeypatch.setattr(runtime, "load_pipeline", lambda: object())
    runtime.get_pipeline()


@pytest.mark.parametrize("path", ["/healthz", "/healthz/"])
def test_healthz_answers_without_auth(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_200_when_pipeline_loaded_and_redis_answers(client, loaded_pipeline):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_readyz_is_503_before_the_pipeline_is_loaded(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"error": "Not ready: pipeline: not loaded yet"}


def test_readyz_reports_why_the_pipeline_failed_to_load(client, monkeypatch, settings):
    monkeypatch.setattr(runtime, "load_pipeline", lambda: (_ for _ in ()).throw(OSError("no such file")))
    runtime.warm_up()
    response = client.get("/readyz/")
    assert response.status_code == 503
    assert "no such file" in response.json()["error"]
    assert settings.MODEL_PATH in response.json()["error"]


def test_readyz_is_503_when_redis_is_down(client, loaded_pipeline, broken_redis):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"].startswith("Not ready: quota store:")
