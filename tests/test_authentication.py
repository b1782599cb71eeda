"""HTTP Basic authentication: the 401 shape, and the cache that spares the password hasher."""
from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import User

from genderapi.authentication import VerifiedCredentials, verified_credentials

from .conftest import basic_auth


def test_missing_credentials_get_401_json_with_basic_challenge(client, pinpin):
    response = client.get("/quota/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="genderapi"'
    assert response["Content-Type"] == "application/json"
    assert list(response.json()) == ["error"]


def test_wrong_password_gets_401_with_basic_challenge(client, pinpin):
    response = client.get("/quota/", **basic_auth("pinpin", "wrong"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="genderapi"'
    assert response.json() == {"error": "Invalid username/password."}


def test_unknown_user_and_wrong_password_get_identical_responses(client, pinpin):
    unknown = client.get("/quota/", **basic_auth("nobody", "azerty"))
    wrong = client.get("/quota/", **basic_auth("pinpin", "nope"))
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.content == wrong.content
    assert unknown["WWW-Authenticate"] == wrong["WWW-Authenticate"]


def test_malformed_header_gets_401_json(client, pinpin):
    response = client.get("/quota/", HTTP_AUTHORIZATION="Basic !!!not-base64")
    assert response.status_code == 401
    assert "error" in response.json()


def test_inactive_user_gets_the_same_401_as_a_wrong_password(client, pinpin):
    pinpin.is_active = False
    pinpin.save()
    inactive = client.get("/quota/", **basic_auth("pinpin", "azerty"))
    wrong = client.get("/quota/", **basic_auth("pinpin", "nope"))
    assert inactive.status_code == 401 and inactive.content == wrong.content


def count_password_checks(monkeypatch) -> list:
    calls = []
    original = User.check_password
    monkeypatch.setattr(User, "check_password", lambda self, raw: calls.append(1) or original(self, raw))
    return calls


def test_second_request_skips_the_password_hasher(client, pinpin_auth, monkeypatch):
    checks = count_password_checks(monkeypatch)
    assert client.get("/quota/", **pinpin_auth).status_code == 200
    assert client.get("/quota/", **pinpin_auth).status_code == 200
    assert len(checks) == 1


def test_wrong_password_is_never_cached(client, pinpin, monkeypatch):
    checks = count_password_checks(monkeypatch)
    for _ in range(2):
        assert client.get("/quota/", **basic_auth("pinpin", "nope")).status_code == 401
    assert len(checks) == 2
    assert len(verified_credentials) == 0


def test_password_change_invalidates_cached_credentials(client, pinpin, pinpin_auth):
    assert client.get("/quota/", **pinpin_auth).status_code == 200
    pinpin.set_password("new-secret")
    pinpin.save()
    assert client.get("/quota/", **pinpin_auth).status_code == 401
    assert client.get("/quota/", **basic_auth("pinpin", "new-secret")).status_code == 200


def test_deactivation_invalidates_cached_credentials(client, pinpin, pinpin_auth):
    assert client.get("/quota/", **pinpin_auth).status_code == 200
    pinpin.is_active = False
    pinpin.save()
    assert client.get("/quota/", **pinpin_auth).status_code == 401


def test_rename_invalidates_cached_credentials(client, pinpin, pinpin_auth):
    assert client.get("/quota/", **pinpin_auth).status_code == 200
    pinpin.username = "pinpin2"
    pinpin.save()
    assert client.get("/quota/", **pinpin_auth).status_code == 401


def test_cache_never_holds_the_password(client, pinpin_auth):
    client.get("/quota/", **pinpin_auth)
    stored = repr(list(verified_credentials._entries.items()))
    assert "azerty" not in stored and b"azerty".hex() not in stored


def test_password_and_authorization_header_are_not_logged(client, pinpin, caplog):
    caplog.set_level(logging.DEBUG)
    client.get("/quota/", **basic_auth("pinpin", "s3cr3t-guess"))
    header = basic_auth("pinpin", "s3cr3t-guess")["HTTP_AUTHORIZATION"]
    assert any("sign-in failed: user='pinpin'" in r.getMessage() for r in caplog.records)
    assert "s3cr3t-guess" not in caplog.text and header.split()[1] not in caplog.text


class TestVerifiedCredentials:
    def test_entries_expire_after_the_ttl(self):
        now = [0.0]
        cache = VerifiedCredentials(ttl_seconds=10, clock=lambda: now[0])
        cache.put(b"k", 1, b"fp")
        now[0] = 9.9
        assert cache.get(b"k") == (1, b"fp")
        now[0] = 10.0
        assert cache.get(b"k") is None

    def test_it_evicts_the_least_recently_used_past_its_bound(self):
        cache = VerifiedCredentials(max_entries=2)
        cache.put(b"a", 1, b"")
        cache.put(b"b", 2, b"")
        cache.get(b"a")
        cache.put(b"c", 3, b"")
        assert cache.get(b"b") is None
        assert cache.get(b"a") and cache.get(b"c")
        assert len(cache) == 2


@pytest.mark.parametrize("path", ["/quota/", "/users/quotas/", "/user/pinpin/quota"])
def test_every_api_endpoint_demands_credentials(client, pinpin, path):
    assert client.get(path).status_code == 401
