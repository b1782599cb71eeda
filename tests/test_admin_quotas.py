"""The Django admin's Quotas page: listing through the ledger, per-user reset by POST with CSRF."""
from __future__ import annotations

import pytest
from django.test import Client

from quotas.ledger import QuotaLedger

from .conftest import ADMIN_PASSWORD

PAGE = "/admin/quotas/userquota/"


@pytest.fixture
def admin_client(admin_user):
    client = Client()
    assert client.login(username="admin", password=ADMIN_PASSWORD)
    return client


def spend(user, n):
    for _ in range(n):
        QuotaLedger().charge(user)


def test_admin_logs_in_with_the_form(client, admin_user):
    response = client.post("/admin/login/?next=/admin/",
                           {"username": "admin", "password": ADMIN_PASSWORD}, follow=True)
    assert response.status_code == 200
    assert response.wsgi_request.user.is_authenticated


def test_admin_index_links_to_the_quotas_page(admin_client):
    assert PAGE.encode() in admin_client.get("/admin/").content


def test_page_lists_every_user_with_used_limit_remaining(admin_client, pinpin, settings):
    spend(pinpin, 7)
    response = admin_client.get(PAGE)
    assert response.status_code == 200
    rows = {user.username: state for user, state in response.context["rows"]}
    assert rows["pinpin"].used == 7 and rows["admin"].used == 0
    html = response.content.decode()
    assert "<td>pinpin</td>" in html and f"<td>{settings.QUOTA_DAILY_LIMIT - 7}</td>" in html


def test_reset_button_resets_that_user_only(admin_client, pinpin, admin_user):
    spend(pinpin, 3)
    spend(admin_user, 1)
    response = admin_client.post(f"{PAGE}{pinpin.pk}/reset/", follow=True)
    assert response.status_code == 200
    assert "Reset the quota of pinpin (3 used -&gt; 0)." in response.content.decode()
    assert QuotaLedger().usage(pinpin).used == 0
    assert QuotaLedger().usage(admin_user).used == 1


def test_reset_requires_a_csrf_token(admin_user, pinpin):
    client = Client(enforce_csrf_checks=True)
    client.login(username="admin", password=ADMIN_PASSWORD)
    spend(pinpin, 2)
    assert client.post(f"{PAGE}{pinpin.pk}/reset/").status_code == 403
    assert QuotaLedger().usage(pinpin).used == 2


def test_reset_by_get_is_refused(admin_client, pinpin):
    spend(pinpin, 2)
    assert admin_client.get(f"{PAGE}{pinpin.pk}/reset/").status_code == 405
    assert QuotaLedger().usage(pinpin).used == 2


def test_non_staff_cannot_see_the_page(client, pinpin):
    client.force_login(pinpin)
    response = client.get(PAGE)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_page_shows_the_error_when_redis_is_down(admin_client, broken_redis):
    response = admin_client.get(PAGE)
    assert response.status_code == 200
    assert "quota store unavailable" in response.content.decode()


def test_admin_static_files_are_served(client):
    response = client.get("/static/admin/css/base.css")
    assert response.status_code == 200
