"""GET /quota/ for anyone; the staff endpoints of the guide, with and without trailing slash."""
from __future__ import annotations

import pytest

from quotas.ledger import QuotaLedger
from quotas.models import DailyLimitOverride, QuotaReset

from .conftest import basic_auth

STAFF_READS = ["/users/quotas/", "/users/quotas", "/user/pinpin/quota", "/user/pinpin/quota/"]
RESETS = ["/user/pinpin/reset_quota", "/user/pinpin/reset_quota/"]


def spend(user, n):
    ledger = QuotaLedger()
    for _ in range(n):
        ledger.charge(user)


@pytest.mark.parametrize("path", ["/quota/", "/quota"])
def test_a_user_reads_their_own_quota_without_spending_it(client, pinpin, pinpin_auth, path, settings):
    spend(pinpin, 2)
    body = client.get(path, **pinpin_auth).json()
    assert body["username"] == "pinpin"
    assert (body["used"], body["limit"], body["remaining"]) == (2, settings.QUOTA_DAILY_LIMIT,
                                                                settings.QUOTA_DAILY_LIMIT - 2)
    assert body["resets_at"] == QuotaLedger().usage(pinpin).resets_at.isoformat()
    assert client.get(path, **pinpin_auth).json()["used"] == 2


@pytest.mark.parametrize("path", STAFF_READS)
def test_staff_read_endpoints_answer_200(client, admin_auth, pinpin, path):
    assert client.get(path, **admin_auth).status_code == 200


@pytest.mark.parametrize("path", STAFF_READS)
def test_staff_read_endpoints_refuse_non_staff_with_403_json(client, pinpin_auth, path):
    response = client.get(path, **pinpin_auth)
    assert response.status_code == 403
    assert list(response.json()) == ["error"]


@pytest.mark.parametrize("path", RESETS)
def test_reset_refuses_non_staff_with_403_and_keeps_the_count(client, pinpin, pinpin_auth, path):
    spend(pinpin, 1)
    response = client.post(path, **pinpin_auth)
    assert response.status_code == 403
    assert list(response.json()) == ["error"]
    assert QuotaLedger().usage(pinpin).used == 1


@pytest.fixture
def clerk(db, django_user_model):
    """Staff, but with no quota permission yet."""
    return django_user_model.objects.create_user("clerk", password="clerk-pw", is_staff=True)


def grant(user, *codenames):
    from django.contrib.auth.models import Permission

    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="quotas", codename__in=codenames))


@pytest.mark.parametrize("path", STAFF_READS)
def test_staff_without_the_console_permission_cannot_read_quotas(client, clerk, pinpin, path):
    assert client.get(path, **basic_auth("clerk", "clerk-pw")).status_code == 403
    grant(clerk, "view_userquota")
    assert client.get(path, **basic_auth("clerk", "clerk-pw")).status_code == 200


@pytest.mark.parametrize("path", RESETS)
def test_resetting_takes_the_reset_permission_as_in_the_console(client, clerk, pinpin, path):
    spend(pinpin, 1)
    grant(clerk, "view_userquota")
    refused = client.post(path, **basic_auth("clerk", "clerk-pw"))
    assert refused.status_code == 403 and QuotaLedger().usage(pinpin).used == 1
    grant(clerk, "reset_quota")
    assert client.post(path, **basic_auth("clerk", "clerk-pw")).json()["previous_used"] == 1


@pytest.mark.parametrize("path", ["/user/ghost/quota", "/user/ghost/quota/"])
def test_user_quota_of_an_unknown_user_is_404_json(client, admin_auth, path):
    response = client.get(path, **admin_auth)
    assert response.status_code == 404
    assert response.json() == {"error": "No user named 'ghost'."}


@pytest.mark.parametrize("path", ["/user/ghost/reset_quota", "/user/ghost/reset_quota/"])
def test_reset_of_an_unknown_user_is_404_json(client, admin_auth, path):
    response = client.post(path, **admin_auth)
    assert response.status_code == 404
    assert response.json() == {"error": "No user named 'ghost'."}


def test_non_staff_cannot_probe_usernames(client, pinpin_auth):
    assert client.get("/user/ghost/quota", **pinpin_auth).status_code == 403


def test_all_quotas_lists_every_user(client, admin_auth, pinpin, settings):
    spend(pinpin, 3)
    body = client.get("/users/quotas/", **admin_auth).json()
    rows = {row["username"]: row for row in body["users"]}
    assert set(rows) == {"admin", "pinpin"}
    assert rows["pinpin"]["used"] == 3 and rows["admin"]["used"] == 0
    assert rows["pinpin"]["remaining"] == settings.QUOTA_DAILY_LIMIT - 3
    assert {"used", "limit", "remaining", "resets_at"} <= set(rows["pinpin"])


def test_user_quota_shows_that_users_count(client, admin_auth, pinpin):
    spend(pinpin, 4)
    body = client.get("/user/pinpin/quota", **admin_auth).json()
    assert (body["username"], body["used"]) == ("pinpin", 4)


@pytest.mark.parametrize("path", RESETS)
def test_reset_returns_the_previous_count_and_zeroes_it(client, admin_auth, pinpin, path):
    spend(pinpin, 5)
    response = client.post(path, **admin_auth)
    assert response.status_code == 200
    body = response.json()
    assert (body["username"], body["previous_used"], body["used"]) == ("pinpin", 5, 0)
    assert QuotaLedger().usage(pinpin).used == 0


def test_reset_lets_a_blocked_user_predict_again(client, admin_auth, pinpin, pinpin_auth, settings,
                                                  fake_pipeline):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.QUOTA_DAILY_LIMIT = 1
    upload = lambda: {"file": SimpleUploadedFile("a.jpg", b"img")}  # noqa: E731
    assert client.post("/predict/", upload(), **pinpin_auth).status_code == 200
    assert client.post("/predict/", upload(), **pinpin_auth).status_code == 429
    client.post("/user/pinpin/reset_quota", **admin_auth)
    assert client.post("/predict/", upload(), **pinpin_auth).status_code == 200


def test_reset_is_post_only(client, admin_auth, pinpin):
    response = client.get("/user/pinpin/reset_quota", **admin_auth)
    assert response.status_code == 405
    assert "error" in response.json()


def test_quota_endpoints_answer_503_when_redis_is_down(client, admin_auth, pinpin, broken_redis):
    for response in (client.get("/quota/", **admin_auth), client.get("/users/quotas/", **admin_auth),
                     client.post("/user/pinpin/reset_quota", **admin_auth)):
        assert response.status_code == 503
        assert response["Retry-After"]
        assert list(response.json()) == ["error"]


def test_reset_endpoint_records_who_reset_whom_from_what(client, admin_auth, admin_user, pinpin):
    spend(pinpin, 4)
    client.post("/user/pinpin/reset_quota", **admin_auth)
    record = QuotaReset.objects.get()
    assert (record.username, record.previous_used, record.actor, record.source) == ("pinpin", 4, admin_user, "api")


def test_endpoints_and_predict_use_the_users_limit_override(client, admin_auth, pinpin, pinpin_auth,
                                                           fake_pipeline):
    from django.core.files.uploadedfile import SimpleUploadedFile

    DailyLimitOverride.objects.create(user=pinpin, daily_limit=1)
    upload = lambda: {"file": SimpleUploadedFile("a.jpg", b"img")}  # noqa: E731
    assert client.post("/predict/", upload(), **pinpin_auth).status_code == 200
    refused = client.post("/predict/", upload(), **pinpin_auth)
    assert refused.status_code == 429 and refused["X-RateLimit-Limit"] == "1"
    assert client.get("/user/pinpin/quota", **admin_auth).json()["limit"] == 1
    rows = {row["username"]: row for row in client.get("/users/quotas/", **admin_auth).json()["users"]}
    assert (rows["pinpin"]["limit"], rows["pinpin"]["remaining"]) == (1, 0)


def test_a_hand_written_counter_gives_no_500_and_a_reset_repairs_it(client, admin_auth, pinpin, pinpin_auth,
                                                                     fake_redis):
    ledger = QuotaLedger()
    fake_redis.set(ledger._key(ledger.usage(pinpin).day, pinpin.pk), b"abc")
    assert client.get("/quota/", **pinpin_auth).json()["used"] == 0
    assert client.get("/users/quotas/", **admin_auth).status_code == 200
    reset = client.post("/user/pinpin/reset_quota", **admin_auth)
    assert reset.status_code == 200 and reset.json()["previous_used"] == 0
    assert QuotaReset.objects.filter(username="pinpin").exists()


def test_an_unknown_username_is_not_echoed_at_any_length(client, admin_auth):
    response = client.get("/user/" + "a" * 3000 + "/quota", **admin_auth)
    assert response.status_code == 404
    assert response.json() == {"error": f"No user named {'a' * 150 + '...'!r}."}
