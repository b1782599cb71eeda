"""Brute force on password sign-in: failures counted per username and per client address in Redis, 429 +
Retry-After before any password check past the threshold, nothing that tells users apart, no cost on the
happy path."""
from __future__ import annotations

import re
import statistics
import time

import pytest
import redis
from django.contrib.auth.hashers import MD5PasswordHasher
from django.test import Client

from genderapi.lockout import client_address
from quotas.ledger import QuotaLedger

from .conftest import ADMIN_PASSWORD, PINPIN_PASSWORD, basic_auth


@pytest.fixture
def thresholds(settings):
    settings.AUTH_LOCKOUT_USER_FAILURES = 3
    settings.AUTH_LOCKOUT_ADDRESS_FAILURES = 100
    settings.AUTH_LOCKOUT_SECONDS = 600
    return settings


@pytest.fixture
def hasher_runs(monkeypatch) -> list:
    """Every run of the (test) password hasher, whether checking a password or hashing a dummy one."""
    runs = []
    original = MD5PasswordHasher.encode
    monkeypatch.setattr(MD5PasswordHasher, "encode", lambda self, *a, **k: runs.append(1) or original(self, *a, **k))
    return runs


@pytest.fixture
def redis_round_trips(monkeypatch) -> list:
    """One entry per request sent to Redis (a command, or a whole pipeline)."""
    trips = []
    original = redis.connection.AbstractConnection.send_packed_command
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command",
                        lambda self, *a, **k: trips.append(1) or original(self, *a, **k))
    return trips


def get_quota(client, username, password, **extra):
    return client.get("/quota/", **basic_auth(username, password), **extra)


def fail(client, username, times, **extra):
    for _ in range(times):
        assert get_quota(client, username, "wrong-guess", **extra).status_code == 401


def test_past_the_username_threshold_sign_in_gets_429_with_retry_after_before_any_password_check(
        client, pinpin, thresholds, hasher_runs):
    fail(client, "pinpin", 3)
    assert len(hasher_runs) == 3
    response = get_quota(client, "pinpin", PINPIN_PASSWORD)  # even the right password
    assert response.status_code == 429
    assert response.json() == {"error": f"Too many failed sign-in attempts; retry in {response['Retry-After']} "
                                        "seconds."}
    assert 590 <= int(response["Retry-After"]) <= 600
    assert "WWW-Authenticate" not in response
    assert len(hasher_runs) == 3, "a locked attempt must not reach the password hasher"


def test_a_locked_out_prediction_is_refused_before_the_quota_is_charged(client, pinpin, thresholds, fake_pipeline):
    fail(client, "pinpin", 3)
    response = client.post("/predict/", **basic_auth("pinpin", PINPIN_PASSWORD))
    assert response.status_code == 429 and response["Retry-After"]
    assert QuotaLedger().usage(pinpin).used == 0 and fake_pipeline.received == []


def test_unknown_and_existing_usernames_are_counted_and_locked_alike(client, pinpin, thresholds):
    def attempts(username):
        return [get_quota(client, username, "wrong-guess") for _ in range(4)]

    known, unknown = attempts("pinpin"), attempts("nobody")
    assert [r.status_code for r in known] == [r.status_code for r in unknown] == [401, 401, 401, 429]
    for a, b in zip(known, unknown):
        assert re.sub(rb"\d+", b"N", a.content) == re.sub(rb"\d+", b"N", b.content)
        assert a.get("WWW-Authenticate") == b.get("WWW-Authenticate")
    assert abs(int(known[3]["Retry-After"]) - int(unknown[3]["Retry-After"])) <= 1


def test_the_address_threshold_counts_failures_across_usernames(client, pinpin, settings):
    settings.AUTH_LOCKOUT_USER_FAILURES = 100
    settings.AUTH_LOCKOUT_ADDRESS_FAILURES = 5
    for i in range(5):
        fail(client, f"user{i}", 1, REMOTE_ADDR="203.0.113.7")
    assert get_quota(client, "pinpin", PINPIN_PASSWORD, REMOTE_ADDR="203.0.113.7").status_code == 429
    assert get_quota(client, "pinpin", PINPIN_PASSWORD, REMOTE_ADDR="203.0.113.8").status_code == 200


def test_x_forwarded_for_cannot_dodge_the_address_count_without_trusted_proxies(client, pinpin, settings):
    settings.AUTH_LOCKOUT_USER_FAILURES = 100
    settings.AUTH_LOCKOUT_ADDRESS_FAILURES = 3
    for i in range(3):
        fail(client, "pinpin", 1, REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
    response = get_quota(client, "pinpin", PINPIN_PASSWORD, REMOTE_ADDR="203.0.113.7",
                         HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert response.status_code == 429


def test_with_one_trusted_proxy_the_address_is_the_one_it_forwarded(rf, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.4")
    assert client_address(request) == "198.51.100.4"


def test_ipv6_clients_are_counted_per_64_and_ipv4_mapped_ones_as_ipv4(rf):
    def address(remote):
        return client_address(rf.get("/", REMOTE_ADDR=remote))

    assert address("2001:db8:1:2:aaaa::1") == address("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address("2001:db8:1:3::1") != address("2001:db8:1:2::1")
    assert address("::ffff:192.0.2.1") == "192.0.2.1"


def test_a_success_clears_its_usernames_failures_but_not_its_addresses(client, pinpin, settings):
    settings.AUTH_LOCKOUT_USER_FAILURES = 3
    settings.AUTH_LOCKOUT_ADDRESS_FAILURES = 4
    fail(client, "pinpin", 2)
    assert get_quota(client, "pinpin", PINPIN_PASSWORD).status_code == 200
    fail(client, "pinpin", 2)  # the username count started again: 2 < 3, but the address is at 4
    assert get_quota(client, "nobody", "x").status_code == 429


def test_an_already_verified_client_keeps_working_while_its_username_is_locked(client, pinpin, thresholds):
    assert get_quota(client, "pinpin", PINPIN_PASSWORD).status_code == 200
    fail(client, "pinpin", 3, REMOTE_ADDR="203.0.113.66")
    assert get_quota(client, "pinpin", "another-guess").status_code == 429
    assert get_quota(client, "pinpin", PINPIN_PASSWORD).status_code == 200


def test_the_lockout_costs_no_redis_round_trip_once_credentials_are_verified(
        client, pinpin, fake_pipeline, redis_round_trips):
    def predict():
        return client.post("/predict/", {"file": fake_upload()}, **basic_auth("pinpin", PINPIN_PASSWORD))

    assert predict().status_code == 200  # cache miss: the lockout read, then the charge (+ script load)
    redis_round_trips.clear()
    assert predict().status_code == 200
    assert len(redis_round_trips) == 1, "a verified client's prediction is one round trip: the charge"


def test_a_checked_sign_in_costs_one_lockout_round_trip(client, pinpin, redis_round_trips):
    QuotaLedger().ping()  # the connection's handshake is not the request's
    redis_round_trips.clear()
    assert get_quota(client, "pinpin", PINPIN_PASSWORD).status_code == 200
    assert len(redis_round_trips) == 2  # the lockout read, then the quota read


def test_failure_counters_expire(client, pinpin, thresholds, fake_redis):
    fail(client, "pinpin", 1)
    keys = fake_redis.keys("*:lockout:*")
    assert len(keys) == 2  # the username's and the address's
    assert all(0 < fake_redis.ttl(key) <= 600 for key in keys)


def test_the_admin_login_form_is_locked_out_too(admin_user, thresholds, hasher_runs):
    browser = Client()
    for _ in range(3):
        page = browser.post("/admin/login/?next=/admin/", {"username": "admin", "password": "wrong"})
        assert page.status_code == 200 and not page.wsgi_request.user.is_authenticated
    runs = len(hasher_runs)
    page = browser.post("/admin/login/?next=/admin/", {"username": "admin", "password": ADMIN_PASSWORD})
    assert page.status_code == 200 and not page.wsgi_request.user.is_authenticated
    assert "Too many failed sign-in attempts" in page.content.decode()
    assert len(hasher_runs) == runs


def test_sign_in_still_works_without_the_lockout_when_redis_is_down(client, pinpin, broken_redis):
    assert get_quota(client, "pinpin", "wrong-guess").status_code == 401
    assert get_quota(client, "pinpin", PINPIN_PASSWORD).status_code == 503  # signed in; the quota store is down


def test_unknown_user_and_wrong_password_take_the_same_order_of_time(client, settings, django_user_model):
    # The production hasher (PBKDF2, ~0.3 s here): an unknown user must cost a hash too.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    django_user_model.objects.create_user("pinpin", password=PINPIN_PASSWORD)

    def seconds(username):
        started = time.perf_counter()
        assert get_quota(client, username, "wrong-guess").status_code == 401
        return time.perf_counter() - started

    wrong, unknown = [], []
    for _ in range(3):
        wrong.append(seconds("pinpin"))
        unknown.append(seconds("nobody"))
    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 1 / 3 < ratio < 3, (wrong, unknown)
    assert min(unknown) > 0.01, "an unknown user must go through the hasher"


def fake_upload():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("a.jpg", b"img")


def test_a_failure_counter_written_by_hand_is_dropped_instead_of_failing_sign_in(client, pinpin, thresholds,
                                                                                  fake_redis):
    fail(client, "pinpin", 1)
    keys = fake_redis.keys(f"{thresholds.QUOTA_KEY_PREFIX}:lockout:*")
    assert len(keys) == 2  # the username's and the address's
    for key in keys:
        fake_redis.set(key, b"abc")
    assert get_quota(client, "pinpin", PINPIN_PASSWORD).status_code == 200
    assert get_quota(client, "pinpin", "wrong-guess").status_code == 401
    assert sorted(fake_redis.get(key) for key in keys) == [b"1", b"1"]  # counting resumed from scratch
