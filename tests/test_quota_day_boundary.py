"""The quota day at its edges, with a controlled clock: zones whose DST change happens at midnight (so a midnight is
skipped, or an hour before it repeats), and the HTTP answers around a DST midnight. test_ledger.py already pins
the plain cases (a new local day, local not UTC, 23- and 25-hour days in Europe/Paris)."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone as django_timezone

from quotas.ledger import QuotaLedger
from tests.helpers import Clock

SANTIAGO = ZoneInfo("America/Santiago")  # DST starts and ends at midnight
PARIS = ZoneInfo("Europe/Paris")



@pytest.fixture
def limit(settings):
    settings.QUOTA_DAILY_LIMIT = 2
    return 2


def test_a_skipped_midnight_ends_the_day_at_the_first_instant_of_the_next(pinpin, limit, fake_redis):
    # 2026-09-06 00:00 does not exist in Santiago: clocks go from 23:59:59 (-04) to 01:00 (-03).
    clock = Clock(datetime(2026, 9, 5, 23, 59, 59, tzinfo=SANTIAGO))
    ledger = QuotaLedger(clock=clock, tz="America/Santiago")
    for _ in range(limit):
        ledger.charge(pinpin)
    refused = ledger.charge(pinpin)
    assert not refused.allowed and refused.seconds_to_reset == 1
    assert refused.resets_at.timestamp() == datetime(2026, 9, 6, 4, 0, tzinfo=timezone.utc).timestamp()

    clock.now = datetime(2026, 9, 6, 1, 0, tzinfo=SANTIAGO)  # one second later
    state = ledger.charge(pinpin)
    assert (state.allowed, state.used, state.day.isoformat()) == (True, 1, "2026-09-06")
    assert state.seconds_to_reset == 23 * 3600
    assert fake_redis.ttl(ledger._key(state.day, pinpin.pk)) == 23 * 3600


def test_the_repeated_hour_before_a_midnight_stays_on_the_same_day(pinpin, limit, fake_redis):
    # 2026-04-05 00:00 (-03) in Santiago: clocks go back to 2026-04-04 23:00 (-04); 23:30 happens twice.
    first = datetime(2026, 4, 4, 23, 30, tzinfo=SANTIAGO)
    second = datetime(2026, 4, 4, 23, 30, fold=1, tzinfo=SANTIAGO)
    clock = Clock(first)
    ledger = QuotaLedger(clock=clock, tz="America/Santiago")
    one = ledger.charge(pinpin)
    clock.now = second
    two = ledger.charge(pinpin)
    assert one.day == two.day and two.used == 2
    assert (one.seconds_to_reset, two.seconds_to_reset) == (90 * 60, 30 * 60)
    assert fake_redis.ttl(ledger._key(one.day, pinpin.pk)) == 90 * 60  # set by the first charge of the day
    clock.now = datetime(2026, 4, 5, 0, 0, tzinfo=SANTIAGO)
    assert ledger.charge(pinpin).used == 1


def test_over_http_a_spent_quota_comes_back_at_local_midnight_on_a_25_hour_day(
        client, pinpin_auth, fake_pipeline, limit, settings, monkeypatch):
    settings.TIME_ZONE = "Europe/Paris"
    clock = Clock(datetime(2026, 10, 25, 23, 59, 59, tzinfo=PARIS))  # the day clocks went back
    monkeypatch.setattr(django_timezone, "now", clock)

    def predict():
        return client.post("/predict/", {"file": SimpleUploadedFile("a.jpg", b"img")}, **pinpin_auth)

    assert [predict().status_code for _ in range(limit)] == [200] * limit
    refused = predict()
    midnight = int(datetime(2026, 10, 26, 0, 0, tzinfo=PARIS).timestamp())
    assert refused.status_code == 429
    assert refused["Retry-After"] == "1" and refused["X-RateLimit-Reset"] == str(midnight)

    clock.now = datetime(2026, 10, 26, 0, 0, 0, tzinfo=PARIS)
    allowed = predict()
    assert allowed.status_code == 200 and allowed.json()["quota"]["used"] == 1
    assert allowed["X-RateLimit-Reset"] == str(midnight + 24 * 3600)
