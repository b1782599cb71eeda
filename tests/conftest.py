"""Shared fixtures.

Every test gets, automatically:
- a fresh in-memory Redis (``fake_redis``) behind the ledger, so counters never leak between tests;
- fast password hashing (MD5) and an empty Basic-auth credential cache;
- a guard that makes building the real pipeline fail (no TensorFlow in unit tests) unless the test is
  marked ``real_pipeline``.

Tests that need a prediction use ``fake_pipeline`` (it replaces ``predictions.runtime.get_pipeline``).
"""
from __future__ import annotations

import base64
import os
import socket
import uuid

import fakeredis
import pytest
import redis

from genderapi.authentication import verified_credentials
from genderapi.settings import redis_cache_config
from predictions import runtime
from quotas import ledger as ledger_module

# Captured before any fixture replaces it: the real_redis fixture puts it back.
ORIGINAL_REDIS_CLIENT = ledger_module.redis_client

PINPIN_PASSWORD = "azerty"
ADMIN_PASSWORD = "admin_password"


def basic_auth(username: str, password: str) -> dict:
    """Headers for the Django test client carrying HTTP Basic credentials."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


@pytest.fixture(autouse=True)
def fake_redis(monkeypatch):
    """A fresh FakeServer-backed client that the ledger (and so every view and command) uses."""
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    monkeypatch.setattr(ledger_module, "redis_client", lambda: client)
    yield client
    client.close()


@pytest.fixture
def broken_redis(monkeypatch, settings):
    """Point the ledger, through django-redis configured as in production, at a port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.CACHES = {"default": redis_cache_config(f"redis://127.0.0.1:{port}/0")}
    monkeypatch.setattr(ledger_module, "redis_client", ORIGINAL_REDIS_CLIENT)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _empty_credential_cache():
    verified_credentials.clear()
    yield
    verified_credentials.clear()


@pytest.fixture(autouse=True)
def _no_real_pipeline(request, monkeypatch):
    runtime.forget()
    if "real_pipeline" not in request.keywords:
        def refuse():
            raise RuntimeError("unit tests must not build the real pipeline; use the fake_pipeline fixture")
        monkeypatch.setattr(runtime, "load_pipeline", refuse)
    yield
    runtime.forget()


@pytest.fixture
def pinpin(db, django_user_model):
    return django_user_model.objects.create_user("pinpin", password=PINPIN_PASSWORD)


@pytest.fixture
def admin_user(db, django_user_model):
    return django_user_model.objects.create_superuser("admin", password=ADMIN_PASSWORD)


@pytest.fixture
def pinpin_auth(pinpin) -> dict:
    return basic_auth("pinpin", PINPIN_PASSWORD)


@pytest.fixture
def admin_auth(admin_user) -> dict:
    return basic_auth("admin", ADMIN_PASSWORD)


class FakeAnalysis:
    def __init__(self, faces: int = 1):
        self.faces = faces

    def to_dict(self) -> dict:
        face = {"gender": "female", "confidence": 0.9, "probabilities": {"male": 0.1, "female": 0.9},
                "box": {"x": 1, "y": 2, "width": 30, "height": 30}}
        return {"gender": "female", "confidence": 0.9, "faces": [face] * self.faces,
                "image": {"width": 64, "height": 64}, "model_version": "fake-1",
                "timings_ms": {"total": 1.0}}


class FakePipeline:
    """Stands in for GenderPipeline: records what it analysed, returns a fixed analysis or raises ``error``."""

    def __init__(self):
        self.received: list[bytes] = []
        self.error: Exception | None = None

    def analyse(self, data: bytes):
        self.received.append(data)
        if self.error is not None:
            raise self.error
        return FakeAnalysis()


@pytest.fixture
def fake_pipeline(monkeypatch) -> FakePipeline:
    pipeline = FakePipeline()
    monkeypatch.setattr(runtime, "get_pipeline", lambda: pipeline)
    return pipeline


# --- integration -------------------------------------------------------------------------------------

REAL_REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


@pytest.fixture
def real_redis(monkeypatch, settings):
    """The real Redis through django-redis, as in production, under a key prefix unique to this test.

    Deletes only its own keys afterwards. Unreachable Redis: fail under CI=true, skip otherwise.
    """
    probe = redis.Redis.from_url(REAL_REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        probe.ping()
    except redis.RedisError as exc:
        message = f"Redis at {REAL_REDIS_URL} is not reachable: {exc}"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip(message)
    prefix = f"genderapi-test-{uuid.uuid4().hex}"
    settings.QUOTA_KEY_PREFIX = prefix
    settings.CACHES = {"default": redis_cache_config(REAL_REDIS_URL)}
    monkeypatch.setattr(ledger_module, "redis_client", ORIGINAL_REDIS_CLIENT)
    yield probe
    keys = list(probe.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        probe.delete(*keys)
    probe.close()


# --- the real pipeline with a stand-in model ---------------------------------------------------------

@pytest.fixture(scope="session")
def stand_in_model(tmp_path_factory) -> str:
    """Path of a ``model.h5`` with the production architecture and untrained (seeded) weights.

    For tests that need the real pipeline (decoding, face detection, crops, one forward pass) for what it does
    with an input -- status codes, shapes, quota accounting -- and never for what it predicts, so they hold
    whatever model.h5 is committed, or none. Builds it with Keras (TensorFlow import: seconds).
    """
    import keras

    from predictions.ml.classifier import ClassifierConfig, write_config
    from predictions.ml.training import build_model

    path = str(tmp_path_factory.mktemp("stand-in-model") / "model.h5")
    keras.utils.set_random_seed(0)
    build_model(64, width=0.25).save(path)
    write_config(path, ClassifierConfig())
    return path


@pytest.fixture(scope="session")
def stand_in_pipeline(stand_in_model):
    """A GenderPipeline (real decoder and detector) over :func:`stand_in_model`, loaded once per session."""
    from predictions.ml.pipeline import GenderPipeline

    return GenderPipeline.load(stand_in_model)
