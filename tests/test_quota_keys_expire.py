"""No key the service writes to the real Redis ever lives without an expiry: quota counters (after charges,
refunds down to zero, a reset and charges again, a refused charge), counts of refused uploads and sign-in
failure counters alike. The
expiry is set by the same atomic operation that writes the key (a Lua script, a MULTI), so a worker dying
between two commands cannot leave a key behind forever."""
from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from predictions.ml.errors import NoFaceFound
from quotas.ledger import QuotaLedger

from .conftest import basic_auth

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def keys_and_ttls(real_redis, settings) -> dict:
    return {key.decode(): real_redis.ttl(key) for key in real_redis.scan_iter(match=f"{settings.QUOTA_KEY_PREFIX}:*")}


def test_every_key_the_service_writes_has_an_expiry(real_redis, settings, client, pinpin, pinpin_auth, admin_auth,
                                                    fake_pipeline):
    settings.QUOTA_DAILY_LIMIT = 2

    def predict(error=None):
        fake_pipeline.error = error
        return client.post("/predict/", {"file": SimpleUploadedFile("a.jpg", b"img")}, **pinpin_auth).status_code

    def assert_every_key_expires(step, expected_keys):
        keys = keys_and_ttls(real_redis, settings)
        assert len(keys) == expected_keys, (step, keys)
        assert all(ttl > 0 for ttl in keys.values()), (step, keys)

    assert predict(NoFaceFound("none")) == 422  # charged to 1, refunded to 0: the key stays, at 0
    assert QuotaLedger().usage(pinpin).used == 0
    assert_every_key_expires("refunded to zero", 2)  # + the count of refused uploads
    assert [predict(), predict(), predict()] == [200, 200, 429]  # charged again, then refused at the limit
    assert_every_key_expires("charged again and refused", 2)
    assert client.post("/user/pinpin/reset_quota", **admin_auth).status_code == 200
    assert_every_key_expires("reset", 0)
    assert predict() == 200
    assert_every_key_expires("charged after the reset", 1)

    assert client.get("/quota/", **basic_auth("pinpin", "wrong")).status_code == 401
    assert_every_key_expires("a failed sign-in", 3)  # + the username's and the address's failure counters
    assert 0 < real_redis.ttl(next(real_redis.scan_iter(match=f"{settings.QUOTA_KEY_PREFIX}:lockout:*"))) \
        <= settings.AUTH_LOCKOUT_SECONDS


def test_a_counter_left_without_expiry_gets_one_on_its_next_charge(real_redis, pinpin):
    ledger = QuotaLedger()
    key = ledger._key(ledger.usage(pinpin).day, pinpin.pk)
    real_redis.set(key, 3)  # as an operator's SET, or an older version, might leave it
    assert real_redis.ttl(key) == -1
    state = ledger.charge(pinpin)
    assert state.used == 4
    assert 0 < real_redis.ttl(key) <= state.seconds_to_reset
