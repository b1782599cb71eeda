"""The ledger and the API against the real Redis (REDIS_URL, default redis://127.0.0.1:6379/0), through
django-redis configured as in production. Each test uses its own key prefix and deletes only its keys."""
from __future__ import annotations


import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from quotas.ledger import QuotaLedger
from tests.helpers import charge_concurrently

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_charge_refund_reset_round_trip(real_redis, pinpin, settings):
    ledger = QuotaLedger()
    assert ledger.charge(pinpin).used == 1
    assert ledger.charge(pinpin).used == 2
    assert ledger.refund(pinpin).used == 1
    state = ledger.usage(pinpin)
    key = ledger._key(state.day, pinpin.pk)
    assert key.startswith(settings.QUOTA_KEY_PREFIX + ":quota:")
    assert 0 < real_redis.ttl(key) <= state.seconds_to_reset
    assert ledger.reset(pinpin) == 1
    assert real_redis.exists(key) == 0


def test_concurrent_charges_never_exceed_the_limit(real_redis, pinpin, settings):
    settings.QUOTA_DAILY_LIMIT = 25
    accepted = charge_concurrently(pinpin, threads=10, charges_per_thread=10)
    assert accepted.count(True) == 25
    assert QuotaLedger().usage(pinpin).used == 25


def test_all_users_reads_real_counters(real_redis, pinpin, admin_user):
    QuotaLedger().charge(pinpin)
    rows = {u.username: s.used for u, s in QuotaLedger().all_users()}
    assert rows == {"admin": 0, "pinpin": 1}


def test_predict_quota_and_429_over_real_redis(real_redis, client, pinpin_auth, fake_pipeline, settings):
    settings.QUOTA_DAILY_LIMIT = 2
    upload = lambda: {"file": SimpleUploadedFile("a.jpg", b"img")}  # noqa: E731
    assert [client.post("/predict/", upload(), **pinpin_auth).status_code for _ in range(3)] == [200, 200, 429]


def test_readyz_pings_real_redis(real_redis, client, monkeypatch):
    from predictions import runtime

    monkeypatch.setattr(runtime, "load_pipeline", lambda: object())
    runtime.get_pipeline()
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize("value", [b"abc", b"5.0", b" 7", b"1e3", b"-5", b"99999999999999999999", "hash"], ids=repr)
def test_hand_written_counters_heal_on_real_redis(real_redis, pinpin, admin_user, settings, value):
    from quotas.ledger import _refused_key

    settings.QUOTA_REFUSED_PER_HOUR = 5
    ledger = QuotaLedger()
    day = ledger.usage(pinpin).day
    counter = ledger._key(day, pinpin.pk)
    for key in (counter, _refused_key(ledger.prefix, counter), ledger._key(day, admin_user.pk)):
        real_redis.hset(key, "used", 3) if value == "hash" else real_redis.set(key, value)
    assert ledger.usage(pinpin).used == 0
    assert ledger.charge(pinpin).used == 1  # the Lua script replaced both of pinpin's keys
    assert ledger.refund(pinpin, refused=True).used == 0
    assert real_redis.get(_refused_key(ledger.prefix, counter)) == b"1"
    assert [count for _, count in ledger.reset_many([pinpin, admin_user])] == [0, 0]
    assert real_redis.exists(counter, ledger._key(day, admin_user.pk)) == 0


def test_refused_uploads_cap_on_real_redis(real_redis, pinpin, settings):
    settings.QUOTA_REFUSED_PER_HOUR = 1
    ledger = QuotaLedger()
    ledger.charge(pinpin)
    ledger.refund(pinpin, refused=True)
    state = ledger.charge(pinpin)
    assert not state.allowed and 0 < state.cooldown <= 3600
    assert [k.decode() for k in real_redis.scan_iter(f"{settings.QUOTA_KEY_PREFIX}:refused:*")] != []
