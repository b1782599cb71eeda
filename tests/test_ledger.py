"""QuotaLedger against a fresh fakeredis per test, with a controlled clock."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from quotas.ledger import QuotaLedger, QuotaStoreUnavailable
from quotas.models import DailyLimitOverride, QuotaReset
from tests.helpers import Clock, charge_concurrently

PARIS = ZoneInfo("Europe/Paris")


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


@pytest.fixture
def ledger(fake_redis, settings):
    settings.QUOTA_DAILY_LIMIT = 3
    return QuotaLedger(clock=Clock(paris(2026, 6, 15, 12, 0)), tz="Europe/Paris")


def test_charge_counts_up_and_reports_remaining(ledger, pinpin):
    first = ledger.charge(pinpin)
    second = ledger.charge(pinpin)
    assert (first.used, first.remaining, first.allowed) == (1, 2, True)
    assert (second.used, second.remaining, second.allowed) == (2, 1, True)
    assert ledger.usage(pinpin).used == 2


def test_charge_refuses_at_the_limit_without_incrementing(ledger, pinpin, fake_redis):
    for _ in range(3):
        assert ledger.charge(pinpin).allowed
    refused = ledger.charge(pinpin)
    assert (refused.allowed, refused.used, refused.remaining) == (False, 3, 0)
    assert int(fake_redis.get(ledger._key(refused.day, pinpin.pk))) == 3


def test_counters_are_per_user(ledger, pinpin, admin_user):
    ledger.charge(pinpin)
    ledger.charge(pinpin)
    assert ledger.usage(admin_user).used == 0


def test_key_uses_prefix_local_date_and_user_pk(ledger, pinpin, fake_redis, settings):
    ledger.charge(pinpin)
    assert fake_redis.keys() == [f"{settings.QUOTA_KEY_PREFIX}:quota:2026-06-15:{pinpin.pk}".encode()]


def test_key_expires_at_the_next_local_midnight(ledger, pinpin, fake_redis):
    state = ledger.charge(pinpin)
    assert state.resets_at == paris(2026, 6, 16, 0, 0)
    assert fake_redis.ttl(ledger._key(state.day, pinpin.pk)) == 12 * 3600


def test_refund_gives_back_one_unit(ledger, pinpin):
    ledger.charge(pinpin)
    ledger.charge(pinpin)
    state = ledger.refund(pinpin)
    assert (state.used, state.remaining) == (1, 2)


def test_refund_never_goes_below_zero(ledger, pinpin):
    assert ledger.refund(pinpin).used == 0
    assert ledger.usage(pinpin).used == 0


def test_refund_of_yesterdays_charge_leaves_today_alone(ledger, pinpin):
    ledger._clock.now = paris(2026, 6, 15, 23, 59, 59)
    charged = ledger.charge(pinpin)
    ledger._clock.now = paris(2026, 6, 16, 0, 0, 1)
    ledger.charge(pinpin)  # today's first
    state = ledger.refund(pinpin, charged.day)
    assert state.used == 1
    ledger._clock.now = paris(2026, 6, 15, 23, 59, 59)
    assert ledger.usage(pinpin).used == 0


def test_reset_returns_the_previous_count_and_zeroes_it(ledger, pinpin):
    ledger.charge(pinpin)
    ledger.charge(pinpin)
    assert ledger.reset(pinpin) == 2
    assert ledger.usage(pinpin).used == 0
    assert ledger.reset(pinpin) == 0


def test_reset_all_zeroes_every_user(ledger, pinpin, admin_user):
    ledger.charge(pinpin)
    ledger.charge(admin_user)
    ledger.charge(admin_user)
    assert [(u.username, n) for u, n in ledger.reset_all()] == [("admin", 2), ("pinpin", 1)]
    assert ledger.usage(pinpin).used == ledger.usage(admin_user).used == 0


def test_all_users_lists_every_user_by_username(ledger, pinpin, admin_user):
    ledger.charge(pinpin)
    rows = ledger.all_users()
    assert [(u.username, s.used, s.remaining) for u, s in rows] == [("admin", 0, 3), ("pinpin", 1, 2)]


def test_all_users_reads_counters_in_one_mget_per_batch(ledger, fake_redis, django_user_model, monkeypatch):
    for i in range(5):
        django_user_model.objects.create_user(f"user{i}")
    calls = []
    original = fake_redis.mget
    monkeypatch.setattr(fake_redis, "mget", lambda keys: calls.append(len(keys)) or original(keys))
    monkeypatch.setattr(fake_redis, "get", lambda key: pytest.fail("all_users must not GET one by one"))
    assert len(ledger.all_users()) == 5
    assert calls == [5]


def test_limit_for_is_the_single_source_of_the_limit(ledger, pinpin, monkeypatch):
    monkeypatch.setattr(QuotaLedger, "limit_for", lambda self, user: 1)
    assert ledger.charge(pinpin).allowed
    assert not ledger.charge(pinpin).allowed
    assert ledger.usage(pinpin).limit == 1


def test_a_new_local_day_starts_a_new_count(ledger, pinpin):
    ledger._clock.now = paris(2026, 6, 15, 23, 59, 59)
    for _ in range(3):
        ledger.charge(pinpin)
    assert not ledger.charge(pinpin).allowed
    ledger._clock.now = paris(2026, 6, 16, 0, 0, 0)
    state = ledger.charge(pinpin)
    assert (state.allowed, state.used) == (True, 1)


def test_day_is_local_not_utc(ledger, pinpin):
    # 23:30 UTC on the 15th is already 01:30 on the 16th in Paris (summer time, UTC+2).
    ledger._clock.now = datetime(2026, 6, 15, 23, 30, tzinfo=timezone.utc)
    state = ledger.charge(pinpin)
    assert state.day.isoformat() == "2026-06-16"
    assert state.resets_at == paris(2026, 6, 17, 0, 0)


@pytest.mark.parametrize("day, hours", [
    ((2026, 3, 29), 23),  # spring forward: 02:00 -> 03:00
    ((2026, 10, 25), 25),  # fall back: 03:00 -> 02:00
])
def test_dst_day_resets_at_local_midnight_after_23_or_25_hours(ledger, pinpin, fake_redis, day, hours):
    ledger._clock.now = paris(*day, 0, 0)
    state = ledger.charge(pinpin)
    assert state.resets_at == paris(*day, 0, 0) + timedelta(days=1)
    assert state.resets_at.timestamp() - state.now.timestamp() == hours * 3600
    assert state.seconds_to_reset == hours * 3600
    assert fake_redis.ttl(ledger._key(state.day, pinpin.pk)) == hours * 3600


def test_dst_day_one_second_before_midnight_still_counts_on_that_day(ledger, pinpin):
    ledger._clock.now = paris(2026, 10, 25, 23, 59, 59)
    state = ledger.charge(pinpin)
    assert state.day.isoformat() == "2026-10-25"
    assert state.seconds_to_reset == 1


# Transactional: the threads read the user's limit from the database, so the data must be committed.
@pytest.mark.django_db(transaction=True)
def test_charge_is_atomic_under_concurrency(fake_redis, pinpin, settings):
    settings.QUOTA_DAILY_LIMIT = 20
    accepted = charge_concurrently(pinpin, threads=8, charges_per_thread=10)
    assert accepted.count(True) == 20
    assert QuotaLedger().usage(pinpin).used == 20


def test_store_errors_raise_quota_store_unavailable(broken_redis, pinpin):
    ledger = QuotaLedger()
    for verb in (ledger.charge, ledger.usage, ledger.refund, ledger.reset):
        with pytest.raises(QuotaStoreUnavailable):
            verb(pinpin)
    with pytest.raises(QuotaStoreUnavailable):
        ledger.ping()


# --- per-user limits, batch reads, reset records -------------------------------------------------------

def test_limit_for_is_the_users_override_else_the_default(ledger, pinpin, admin_user):
    DailyLimitOverride.objects.create(user=pinpin, daily_limit=7)
    assert ledger.limit_for(pinpin) == 7
    assert ledger.limit_for(admin_user) == 3
    assert ledger.limits_for([pinpin, admin_user]) == {pinpin.pk: 7, admin_user.pk: 3}


def test_charge_stops_at_the_users_override(ledger, pinpin):
    DailyLimitOverride.objects.create(user=pinpin, daily_limit=1)
    assert ledger.charge(pinpin).allowed
    refused = ledger.charge(pinpin)
    assert (refused.allowed, refused.limit) == (False, 1)


def test_a_zero_override_blocks_the_user(ledger, pinpin):
    DailyLimitOverride.objects.create(user=pinpin, daily_limit=0)
    assert not ledger.charge(pinpin).allowed


def test_charge_costs_one_database_query(ledger, pinpin, django_assert_num_queries):
    with django_assert_num_queries(1):
        ledger.charge(pinpin)


def test_charge_needs_no_query_for_users_read_with_their_limit(ledger, pinpin, admin_user, settings,
                                                                django_assert_num_queries):
    DailyLimitOverride.objects.create(user=pinpin, daily_limit=7)
    with_override = QuotaLedger.users().get(pk=pinpin.pk)
    without = QuotaLedger.users().get(pk=admin_user.pk)
    with django_assert_num_queries(0):
        assert ledger.charge(with_override).limit == 7
        assert ledger.charge(without).limit == settings.QUOTA_DAILY_LIMIT


def test_limit_expression_agrees_with_limit_for(ledger, pinpin, admin_user, django_user_model):
    DailyLimitOverride.objects.create(user=pinpin, daily_limit=9)
    limits = dict(django_user_model.objects.annotate(limit=QuotaLedger.limit_expression())
                  .values_list("pk", "limit"))
    assert limits == ledger.limits_for([pinpin, admin_user])


def test_usage_many_reads_a_page_in_one_mget_and_one_query(ledger, fake_redis, django_user_model, monkeypatch,
                                                            django_assert_num_queries):
    users = [django_user_model.objects.create_user(f"user{i}") for i in range(120)]
    ledger.charge(users[5])
    calls = []
    original = fake_redis.mget
    monkeypatch.setattr(fake_redis, "mget", lambda keys: calls.append(len(keys)) or original(keys))
    with django_assert_num_queries(1):
        states = ledger.usage_many(users)
    assert calls == [120]
    assert [s.used for s in states[4:7]] == [0, 1, 0] and states[5].remaining == 2


def test_counts_today_lists_only_users_with_a_count_in_mget_batches(ledger, fake_redis, pinpin, admin_user,
                                                                     monkeypatch):
    ledger.charge(pinpin)
    ledger.charge(pinpin)
    calls = []
    original = fake_redis.mget
    monkeypatch.setattr(fake_redis, "mget", lambda keys: calls.append(len(keys)) or original(keys))
    pks = [pinpin.pk, admin_user.pk, *range(10_000, 11_000)]
    assert ledger.counts_today(pks) == {pinpin.pk: 2}
    assert calls == [500, 500, 2]


def test_reset_records_who_whom_when_and_the_count_before(ledger, pinpin, admin_user):
    ledger.charge(pinpin)
    ledger.charge(pinpin)
    assert ledger.reset(pinpin, actor=admin_user, source=QuotaReset.Source.API) == 2
    record = QuotaReset.objects.get()
    assert (record.user, record.username) == (pinpin, "pinpin")
    assert (record.actor, record.actor_name) == (admin_user, "admin")
    assert (record.source, record.previous_used) == ("api", 2)
    assert record.reset_at == paris(2026, 6, 15, 12, 0) and record.day.isoformat() == "2026-06-15"


def test_reset_many_resets_and_records_each_user(ledger, pinpin, admin_user):
    ledger.charge(pinpin)
    assert [(u.username, n) for u, n in ledger.reset_many([pinpin, admin_user], actor_name="root")] == [
        ("pinpin", 1), ("admin", 0)]
    assert sorted(QuotaReset.objects.values_list("username", "previous_used", "actor_name")) == [
        ("admin", 0, "root"), ("pinpin", 1, "root")]


def test_a_reset_that_fails_records_nothing(broken_redis, pinpin):
    with pytest.raises(QuotaStoreUnavailable):
        QuotaLedger().reset(pinpin)
    assert not QuotaReset.objects.exists()


HAND_WRITTEN = [b"abc", b"1.5", b"5.0", b" 7", b"0x10", b"1e3", b"1e999", b"-5", b"99999999999999999999", "hash"]


def write_by_hand(client, key, value):
    if value == "hash":
        client.hset(key, "used", 3)
    else:
        client.set(key, value)


@pytest.mark.parametrize("value", HAND_WRITTEN, ids=repr)
def test_a_counter_that_is_not_a_count_reads_as_zero_and_the_next_script_replaces_it(ledger, pinpin, fake_redis,
                                                                                     value):
    key = ledger._key(ledger.usage(pinpin).day, pinpin.pk)
    write_by_hand(fake_redis, key, value)
    assert ledger.usage(pinpin).used == 0
    assert ledger.refund(pinpin).used == 0 and not fake_redis.exists(key)
    write_by_hand(fake_redis, key, value)
    charged = ledger.charge(pinpin)
    assert (charged.allowed, charged.used) == (True, 1)
    assert fake_redis.get(key) == b"1" and fake_redis.ttl(key) > 0


@pytest.mark.parametrize("value", HAND_WRITTEN, ids=repr)
def test_a_refused_uploads_count_written_by_hand_never_costs_a_unit(ledger, pinpin, fake_redis, settings, value):
    from quotas.ledger import _refused_key

    settings.QUOTA_REFUSED_PER_HOUR = 5
    key = ledger._key(ledger.usage(pinpin).day, pinpin.pk)
    write_by_hand(fake_redis, _refused_key(ledger.prefix, key), value)
    assert ledger.charge(pinpin).allowed
    assert ledger.refund(pinpin, refused=True).used == 0
    assert fake_redis.get(_refused_key(ledger.prefix, key)) == b"1"
    assert fake_redis.ttl(_refused_key(ledger.prefix, key)) > 0


def test_reset_repairs_counters_written_by_hand(ledger, pinpin, admin_user, fake_redis):
    day = ledger.usage(pinpin).day
    fake_redis.set(ledger._key(day, pinpin.pk), b"abc")
    fake_redis.hset(ledger._key(day, admin_user.pk), "used", 3)  # another type: GETDEL refuses it
    assert [count for _, count in ledger.reset_many([pinpin, admin_user])] == [0, 0]
    assert fake_redis.exists(ledger._key(day, pinpin.pk), ledger._key(day, admin_user.pk)) == 0
    assert QuotaReset.objects.filter(username__in=["pinpin", "admin"]).count() == 2
    assert ledger.charge(admin_user).used == 1


def test_refunds_of_refused_uploads_are_counted_for_an_hour_and_past_the_cap_a_charge_is_refused(
        ledger, pinpin, fake_redis, settings):
    settings.QUOTA_DAILY_LIMIT, settings.QUOTA_REFUSED_PER_HOUR = 10, 2
    for _ in range(2):
        ledger.charge(pinpin)
        ledger.refund(pinpin, refused=True)
    ledger.charge(pinpin)
    ledger.refund(pinpin)  # a refund for the service's own failure is not counted
    refused = ledger.charge(pinpin)
    assert (refused.allowed, refused.used) == (False, 0) and 0 < refused.cooldown <= 3600
    [key] = fake_redis.keys(f"{ledger.prefix}:refused:*")
    assert fake_redis.get(key) == b"2" and 0 < fake_redis.ttl(key) <= 3600
    settings.QUOTA_REFUSED_PER_HOUR = 3
    assert ledger.charge(pinpin).allowed


def test_the_refused_uploads_key_shares_the_counters_cluster_slot(ledger, pinpin):
    from redis.crc import key_slot

    from quotas.ledger import _refused_key

    counter = ledger._key(ledger.usage(pinpin).day, pinpin.pk)
    refused = _refused_key(ledger.prefix, counter)
    assert refused.startswith(ledger.prefix + ":")
    assert key_slot(refused.encode()) == key_slot(counter.encode())


def test_a_reset_also_lifts_a_refused_uploads_cooldown(ledger, pinpin, settings):
    settings.QUOTA_REFUSED_PER_HOUR = 1
    ledger.charge(pinpin)
    ledger.refund(pinpin, refused=True)
    assert ledger.charge(pinpin).cooldown > 0
    assert ledger.reset(pinpin) == 0
    assert ledger.charge(pinpin).allowed
