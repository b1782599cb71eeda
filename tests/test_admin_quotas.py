"""The quota console in the Django admin (test client): listing, sorting, filters, pagination, permissions,
the row reset and the bulk action with their confirmation steps, the audit record, Redis down."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from quotas.admin import until
from quotas.ledger import QuotaLedger
from quotas.models import DailyLimitOverride, QuotaReset

from .conftest import ADMIN_PASSWORD

PAGE = "/admin/quotas/userquota/"


@pytest.fixture
def admin_client(admin_user):
    client = Client()
    assert client.login(username="admin", password=ADMIN_PASSWORD)
    return client


@pytest.fixture
def staff_client(django_user_model):
    """A client logged in as a staff user (not superuser) holding the given quotas permissions."""
    def make(*codenames):
        user = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
        user.user_permissions.set(Permission.objects.filter(content_type__app_label="quotas",
                                                            codename__in=codenames))
        client = Client()
        client.force_login(user)
        return client
    return make


def spend(user, n):
    ledger = QuotaLedger()
    for _ in range(n):
        ledger.charge(user)


def usernames(response) -> list[str]:
    return [user.username for user in response.context["cl"].result_list]


def column(response, name) -> int:
    return response.context["cl"].list_display.index(name)


def action(pks, **extra) -> dict:
    return {"action": "reset_selected", "_selected_action": [str(pk) for pk in pks], **extra}


# --- the listing ---------------------------------------------------------------------------------------

def test_admin_logs_in_with_the_form(client, admin_user):
    response = client.post("/admin/login/?next=/admin/",
                           {"username": "admin", "password": ADMIN_PASSWORD}, follow=True)
    assert response.status_code == 200
    assert response.wsgi_request.user.is_authenticated


def test_admin_index_links_to_the_quota_pages(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert "View site" not in html  # nothing is served at /, so no link to it
    for page in (PAGE, "/admin/quotas/dailylimitoverride/", "/admin/quotas/quotareset/"):
        assert page in html


def test_page_lists_every_user_with_staff_used_limit_remaining_and_bar(admin_client, pinpin, settings):
    spend(pinpin, 7)
    response = admin_client.get(PAGE)
    assert response.status_code == 200
    assert usernames(response) == ["admin", "pinpin"]
    html = response.content.decode()
    limit = settings.QUOTA_DAILY_LIMIT
    assert '<td class="field-used">7</td>' in html
    assert f'<td class="field-limit">{limit}</td>' in html
    assert f'<td class="field-remaining">{limit - 7}</td>' in html
    assert 'class="quota-bar quota-bar-ok"' in html and f'title="7 of {limit} used"' in html
    assert 'alt="True"' in html and 'alt="False"' in html  # the staff column's icons


def test_reset_column_shows_local_midnight_and_the_time_left(admin_client, pinpin, settings, monkeypatch):
    settings.TIME_ZONE = "Europe/Paris"
    # 18:47:30 UTC is 20:47:30 in Paris (summer time): 3 h 12 min 30 s to midnight.
    now = datetime(2026, 6, 15, 18, 47, 30, tzinfo=timezone.utc)
    monkeypatch.setattr("django.utils.timezone.now", lambda: now)
    html = admin_client.get(PAGE).content.decode()
    assert 'title="Tuesday 2026-06-16 00:00 CEST">00:00 CEST</time>' in html
    assert '<span class="quota-until">in 3 h 12 min</span>' in html


@pytest.mark.parametrize("seconds, text", [
    (18_720, "in 5 h 12 min"), (18_779, "in 5 h 12 min"), (3_600, "in 1 h 0 min"), (125, "in 2 min"),
    (59, "in under a minute"),
])
def test_until_says_hours_and_minutes_left(seconds, text):
    assert until(seconds) == text


def test_limit_column_shows_a_users_override(admin_client, pinpin):
    DailyLimitOverride.objects.create(user=pinpin, daily_limit=7)
    spend(pinpin, 7)
    response = admin_client.get(PAGE)
    html = response.content.decode()
    assert '<td class="field-limit">7</td>' in html and '<td class="field-remaining">0</td>' in html
    assert 'class="quota-bar quota-bar-full"' in html


def test_search_finds_users_by_username(admin_client, pinpin, django_user_model):
    django_user_model.objects.create_user("pinpon")
    response = admin_client.get(PAGE, {"q": "pinp"})
    assert usernames(response) == ["pinpin", "pinpon"]


@pytest.fixture
def three_users(django_user_model):
    """user_a 1 of 2 used (50%), user_b (staff) 5 of 50 (10%), user_c 3 of 3 (exhausted)."""
    a = django_user_model.objects.create_user("user_a")
    b = django_user_model.objects.create_user("user_b", is_staff=True)
    c = django_user_model.objects.create_user("user_c")
    DailyLimitOverride.objects.create(user=a, daily_limit=2)
    DailyLimitOverride.objects.create(user=c, daily_limit=3)
    spend(a, 1)
    spend(b, 5)
    spend(c, 3)
    return a, b, c


@pytest.mark.parametrize("name, ascending", [
    ("username", ["user_a", "user_b", "user_c"]),
    ("used", ["user_a", "user_c", "user_b"]),
    ("limit", ["user_a", "user_c", "user_b"]),
    ("remaining", ["user_c", "user_a", "user_b"]),
    ("usage", ["user_b", "user_a", "user_c"]),
])
def test_every_column_sorts_both_ways(admin_client, three_users, name, ascending):
    index = column(admin_client.get(PAGE), name)
    assert usernames(admin_client.get(PAGE, {"q": "user_", "o": str(index)})) == ascending
    assert usernames(admin_client.get(PAGE, {"q": "user_", "o": f"-{index}"})) == ascending[::-1]


def test_staff_column_sorts(admin_client, three_users):
    index = column(admin_client.get(PAGE), "staff")
    assert usernames(admin_client.get(PAGE, {"q": "user_", "o": f"-{index}"}))[0] == "user_b"
    assert usernames(admin_client.get(PAGE, {"q": "user_", "o": str(index)}))[-1] == "user_b"


def test_exhausted_filter_keeps_users_at_their_limit(admin_client, three_users, django_user_model):
    blocked = django_user_model.objects.create_user("user_blocked")
    DailyLimitOverride.objects.create(user=blocked, daily_limit=0)
    assert usernames(admin_client.get(PAGE, {"quota": "exhausted"})) == ["user_blocked", "user_c"]


def test_over_80_filter_keeps_users_past_80_percent(admin_client, three_users, django_user_model, settings):
    settings.QUOTA_DAILY_LIMIT = 50
    d = django_user_model.objects.create_user("user_d")
    e = django_user_model.objects.create_user("user_e")
    spend(d, 41)  # 82%
    spend(e, 40)  # exactly 80%: not over
    assert usernames(admin_client.get(PAGE, {"quota": "over80"})) == ["user_c", "user_d"]


def test_10000_users_page_sort_and_filter_read_counters_in_batches(admin_client, django_user_model, fake_redis,
                                                                    monkeypatch):
    django_user_model.objects.bulk_create(django_user_model(username=f"u{i:05d}") for i in range(10_000))
    # Every user has used 1 to 40 of 50 today, but u07777 has used 49.
    ledger = QuotaLedger()
    day = ledger.usage(django_user_model.objects.get(username="admin")).day
    heavy = django_user_model.objects.get(username="u07777")
    pks = django_user_model.objects.values_list("pk", flat=True)
    fake_redis.mset({ledger._key(day, pk): 1 + pk % 40 for pk in pks})
    fake_redis.set(ledger._key(day, heavy.pk), 49)
    calls = []
    original = fake_redis.mget
    monkeypatch.setattr(fake_redis, "mget", lambda keys: calls.append(len(keys)) or original(keys))
    monkeypatch.setattr(fake_redis, "get", lambda key: pytest.fail("the page must not GET counters one by one"))

    response = admin_client.get(PAGE)
    assert response.context["cl"].result_count == 10_001
    assert len(usernames(response)) == 100
    assert calls == [100]  # only the page shown

    calls.clear()
    response = admin_client.get(PAGE, {"o": f"-{column(response, 'used')}"})
    assert usernames(response)[0] == "u07777"
    assert max(calls) <= 500 and sum(calls) == 10_001 + 100  # every user once in batches, then the page
    assert usernames(admin_client.get(PAGE, {"quota": "over80"})) == ["u07777"]


def test_query_count_does_not_grow_with_the_page(admin_client, django_user_model):
    def queries_for_page():
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(PAGE).status_code == 200
        return len(captured)

    django_user_model.objects.bulk_create(django_user_model(username=f"a{i:03d}") for i in range(5))
    few = queries_for_page()
    django_user_model.objects.bulk_create(django_user_model(username=f"b{i:03d}") for i in range(150))
    assert queries_for_page() == few


def test_pages_hold_100_users(admin_client, django_user_model):
    django_user_model.objects.bulk_create(django_user_model(username=f"u{i:03d}") for i in range(149))
    assert usernames(admin_client.get(PAGE, {"p": "2"})) == [f"u{i:03d}" for i in range(99, 149)]


# --- permissions ---------------------------------------------------------------------------------------

def test_non_staff_cannot_see_the_page(client, pinpin):
    client.force_login(pinpin)
    response = client.get(PAGE)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_without_the_view_permission_are_refused(staff_client, pinpin):
    client = staff_client()
    assert client.get(PAGE).status_code == 403
    assert client.get(f"{PAGE}{pinpin.pk}/reset/").status_code == 403
    assert PAGE not in client.get("/admin/").content.decode()


def test_staff_with_view_only_see_the_page_without_reset_buttons_or_action(staff_client, pinpin):
    client = staff_client("view_userquota")
    spend(pinpin, 2)
    response = client.get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="button quota-reset"' not in html and "reset_selected" not in html
    assert client.get(f"{PAGE}{pinpin.pk}/reset/").status_code == 403
    assert client.post(f"{PAGE}{pinpin.pk}/reset/").status_code == 403
    client.post(PAGE, action([pinpin.pk], post="yes", index="0"))
    assert QuotaLedger().usage(pinpin).used == 2


def test_staff_with_the_reset_permission_can_reset(staff_client, pinpin):
    client = staff_client("view_userquota", "reset_quota")
    spend(pinpin, 2)
    assert 'class="button quota-reset"' in client.get(PAGE).content.decode()
    client.post(f"{PAGE}{pinpin.pk}/reset/")
    assert QuotaLedger().usage(pinpin).used == 0
    assert QuotaReset.objects.get().actor_name == "ops"


# --- the row button -------------------------------------------------------------------------------------

def test_row_button_leads_to_a_confirmation_page_that_resets_nothing(admin_client, pinpin):
    spend(pinpin, 3)
    assert f'href="{PAGE}{pinpin.pk}/reset/"' in admin_client.get(PAGE).content.decode()
    response = admin_client.get(f"{PAGE}{pinpin.pk}/reset/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<strong id="quota-used">3</strong>' in html and 'value="Yes, reset"' in html
    assert QuotaLedger().usage(pinpin).used == 3
    assert not QuotaReset.objects.exists()


def test_confirming_resets_that_user_only_and_says_from_what(admin_client, pinpin, admin_user):
    spend(pinpin, 3)
    spend(admin_user, 1)
    response = admin_client.post(f"{PAGE}{pinpin.pk}/reset/", follow=True)
    assert response.redirect_chain[-1][0] == PAGE
    assert "Reset the quota of pinpin (3 used → 0)." in response.content.decode()
    assert QuotaLedger().usage(pinpin).used == 0
    assert QuotaLedger().usage(admin_user).used == 1


def test_row_reset_is_recorded_with_who_whom_when_and_the_count_before(admin_client, pinpin, admin_user):
    spend(pinpin, 3)
    admin_client.post(f"{PAGE}{pinpin.pk}/reset/")
    record = QuotaReset.objects.get()
    assert (record.user, record.username, record.previous_used) == (pinpin, "pinpin", 3)
    assert (record.actor, record.actor_name, record.source) == (admin_user, "admin", QuotaReset.Source.ADMIN_PAGE)
    assert record.day == QuotaLedger().usage(pinpin).day and record.reset_at is not None


def test_reset_returns_to_the_same_search_and_sort(admin_client, pinpin):
    html = admin_client.get(PAGE, {"q": "pin", "o": "-3"}).content.decode()
    link = f"{PAGE}{pinpin.pk}/reset/?_changelist_filters=q%3Dpin%26o%3D-3"
    assert f'href="{link}"' in html
    assert admin_client.post(link)["Location"] == f"{PAGE}?q=pin&o=-3"


def test_reset_requires_a_csrf_token(admin_user, pinpin):
    client = Client(enforce_csrf_checks=True)
    client.login(username="admin", password=ADMIN_PASSWORD)
    spend(pinpin, 2)
    assert client.post(f"{PAGE}{pinpin.pk}/reset/").status_code == 403
    assert client.post(PAGE, action([pinpin.pk], post="yes")).status_code == 403
    assert QuotaLedger().usage(pinpin).used == 2


def test_reset_of_an_unknown_user_goes_back_with_a_message(admin_client, db):
    response = admin_client.post(f"{PAGE}999999/reset/", follow=True)
    assert response.status_code == 200
    assert "doesn’t exist" in response.content.decode()


# --- the bulk action ------------------------------------------------------------------------------------

def test_bulk_action_first_asks_for_confirmation(admin_client, pinpin, admin_user):
    spend(pinpin, 3)
    spend(admin_user, 2)
    response = admin_client.post(PAGE, action([pinpin.pk, admin_user.pk], index="0"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<strong>pinpin</strong>: 3 of" in html and "<strong>admin</strong>: 2 of" in html
    assert 'name="post" value="yes"' in html
    assert QuotaLedger().usage(pinpin).used == 3 and not QuotaReset.objects.exists()


def test_bulk_action_resets_the_selected_users_and_names_them(admin_client, pinpin, admin_user,
                                                               django_user_model):
    bystander = django_user_model.objects.create_user("bystander")
    spend(pinpin, 3)
    spend(admin_user, 2)
    spend(bystander, 1)
    response = admin_client.post(PAGE, action([pinpin.pk, admin_user.pk], post="yes"), follow=True)
    assert ("Reset the quotas of 2 users: admin (2 used → 0), pinpin (3 used → 0)."
            in response.content.decode())
    assert QuotaLedger().usage(pinpin).used == QuotaLedger().usage(admin_user).used == 0
    assert QuotaLedger().usage(bystander).used == 1
    records = {r.username: (r.previous_used, r.actor_name, r.source) for r in QuotaReset.objects.all()}
    assert records == {"pinpin": (3, "admin", "admin-action"), "admin": (2, "admin", "admin-action")}


def test_bulk_action_across_all_pages_resets_what_the_filter_selects(admin_client, three_users):
    a, b, c = three_users
    response = admin_client.post(f"{PAGE}?quota=exhausted",
                                 action([c.pk], post="yes", select_across="1"), follow=True)
    assert "Reset the quota of 1 user: user_c (3 used → 0)." in response.content.decode()
    assert [QuotaLedger().usage(u).used for u in (a, b, c)] == [1, 5, 0]


# --- Redis unreachable ----------------------------------------------------------------------------------

def test_page_renders_with_a_banner_when_redis_is_down(admin_client, pinpin, broken_redis):
    response = admin_client.get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="errornote quota-store-banner"' in html and "quota store unavailable" in html
    assert usernames(response) == ["admin", "pinpin"]


def test_usage_sort_and_filter_still_render_when_redis_is_down(admin_client, pinpin, broken_redis):
    used = column(admin_client.get(PAGE), "used")
    for params in ({"o": f"-{used}"}, {"quota": "exhausted"}):
        response = admin_client.get(PAGE, params)
        assert response.status_code == 200
        assert "quota-store-banner" in response.content.decode()


def test_row_reset_fails_with_a_message_when_redis_is_down(admin_client, pinpin, broken_redis):
    assert "reset will fail" in admin_client.get(f"{PAGE}{pinpin.pk}/reset/").content.decode()
    response = admin_client.post(f"{PAGE}{pinpin.pk}/reset/", follow=True)
    assert response.status_code == 200
    assert "Could not reset the quota of pinpin: quota store unavailable" in response.content.decode()
    assert not QuotaReset.objects.exists()


def test_bulk_reset_fails_with_a_message_when_redis_is_down(admin_client, pinpin, broken_redis):
    response = admin_client.post(PAGE, action([pinpin.pk], post="yes"), follow=True)
    assert response.status_code == 200
    assert "Could not reset the quotas: quota store unavailable" in response.content.decode()
    assert not QuotaReset.objects.exists()


# --- overrides and the reset record ---------------------------------------------------------------------

def test_an_override_added_in_the_admin_is_the_users_limit(admin_client, pinpin):
    response = admin_client.post("/admin/quotas/dailylimitoverride/add/",
                                 {"user": pinpin.pk, "daily_limit": 120, "reason": "demo"})
    assert response.status_code == 302
    assert QuotaLedger().usage(pinpin).limit == 120
    assert '<td class="field-limit">120</td>' in admin_client.get(PAGE, {"q": "pinpin"}).content.decode()


def test_reset_records_are_listed_and_read_only(admin_client, pinpin, admin_user):
    spend(pinpin, 4)
    QuotaLedger().reset(pinpin, actor=admin_user, source=QuotaReset.Source.API)
    record = QuotaReset.objects.get()
    listing = admin_client.get("/admin/quotas/quotareset/").content.decode()
    assert "pinpin" in listing and "API (POST /user/&lt;username&gt;/reset_quota)" in listing
    assert admin_client.get("/admin/quotas/quotareset/add/").status_code == 403
    detail = admin_client.get(f"/admin/quotas/quotareset/{record.pk}/change/")
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    admin_client.post(f"/admin/quotas/quotareset/{record.pk}/change/", {"previous_used": 0, "username": "x"})
    assert admin_client.post(f"/admin/quotas/quotareset/{record.pk}/delete/").status_code == 403
    record.refresh_from_db()
    assert (record.username, record.previous_used) == ("pinpin", 4)


def test_admin_static_files_are_served(client):
    response = client.get("/static/admin/css/base.css")
    assert response.status_code == 200
