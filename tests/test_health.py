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


def test_readyz_says_the_pipeline_failed_without_showing_paths_or_errors(client, monkeypatch, settings):
    monkeypatch.setattr(runtime, "load_pipeline", lambda: (_ for _ in ()).throw(OSError("no such file")))
    runtime.warm_up()
    response = client.get("/readyz/")
    assert response.status_code == 503
    assert response.json() == {"error": "Not ready: pipeline: failed to load (details in the server log)"}
    assert "no such file" not in response.content.decode() and settings.MODEL_PATH not in response.content.decode()


def test_readyz_is_503_when_redis_is_down(client, loaded_pipeline, broken_redis):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"error": "Not ready: quota store: unreachable (details in the server log)"}


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_whatever_the_host_header_as_kubernetes_sends_the_pod_ip(client, loaded_pipeline, path):
    response = client.get(path, HTTP_HOST="10.244.1.17:8000")
    assert response.status_code == 200
    assert client.get("/quota/", HTTP_HOST="10.244.1.17:8000").status_code == 400  # the rest still checks it


def test_probes_refuse_other_methods_with_405(client):
    response = client.post("/healthz")
    assert response.status_code == 405 and "error" in response.json()


def test_with_fail_open_readyz_stays_ready_while_redis_is_down(client, loaded_pipeline, broken_redis, settings):
    settings.QUOTA_FAIL_OPEN = True  # predictions are served uncounted, so the pod must stay in rotation
    assert client.get("/readyz").status_code == 200
    settings.QUOTA_FAIL_OPEN = False
    assert client.get("/readyz").status_code == 503
