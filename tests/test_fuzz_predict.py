"""Property: whatever bytes are uploaded to POST /predict/ -- random, or a real image with bytes flipped, cut,
inserted, or its declared size changed -- the answer is a 2xx or a 4xx with the JSON error shape, never a 500,
and the quota moves by exactly one unit for an analysis and by none otherwise. Real pipeline, stand-in model.
"""
from __future__ import annotations

import struct

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, event, given, settings as hypothesis_settings, strategies as st
from PIL import Image

from predictions import runtime
from quotas.ledger import QuotaLedger

from .samples import encode, photo

pytestmark = pytest.mark.real_pipeline

FACE = photo("astronaut.png").crop((150, 40, 310, 220)).resize((48, 54))
SEEDS = [
    encode(FACE, "JPEG", quality=80),
    encode(FACE, "JPEG", quality=80, progressive=True),
    encode(FACE, "PNG"),
    encode(FACE.convert("P"), "PNG", transparency=0),
    encode(FACE, "GIF"),
    encode(FACE, "WEBP"),
    encode(FACE, "BMP"),
    encode(FACE, "TIFF"),
    encode(Image.new("L", (16, 16)), "PNG"),
]


@st.composite
def mutated_image(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "size"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[position] = draw(st.integers(0, 255))
        elif kind == "cut":
            data = data[:position] + data[position + draw(st.integers(1, 64)):]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "size" and len(data) >= 24:
            # overwrite 4 bytes where PNG keeps its width (offset 16) or anywhere else with a big number
            at = draw(st.sampled_from([16, 20, position if position + 4 <= len(data) else 16]))
            data[at:at + 4] = struct.pack(">I", draw(st.integers(0, 2**32 - 1)))
    return bytes(data)


UPLOADS = st.one_of(st.binary(max_size=512), mutated_image())


@pytest.fixture
def served(stand_in_pipeline, monkeypatch, settings):
    settings.QUOTA_DAILY_LIMIT = 1_000_000
    settings.QUOTA_REFUSED_PER_HOUR = 0  # the examples share one store: keep every upload reaching the pipeline
    monkeypatch.setattr(runtime, "get_pipeline", lambda: stand_in_pipeline)
    return stand_in_pipeline


@hypothesis_settings(max_examples=200, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=UPLOADS)
def test_random_and_mutated_uploads_get_only_2xx_or_4xx_and_exact_accounting(client, pinpin, pinpin_auth, served,
                                                                             data):
    before = QuotaLedger().usage(pinpin).used
    response = client.post("/predict/", {"file": SimpleUploadedFile("upload.jpg", data)}, **pinpin_auth)
    event(f"HTTP {response.status_code}")  # --hypothesis-show-statistics shows the mix
    assert 200 <= response.status_code < 500, (response.status_code, response.content[:200])
    body = response.json()
    if response.status_code == 200:
        assert body["faces"] and body["quota"]["used"] == before + 1
    else:
        assert list(body) == ["error"]
    assert QuotaLedger().usage(pinpin).used == before + (response.status_code == 200)
