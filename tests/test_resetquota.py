"""manage.py resetquota: one user, --all, and the errors."""
from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from quotas.ledger import QuotaLedger
from quotas.models import QuotaReset


@pytest.fixture(autouse=True)
def shared_store(settings):
    """As with REDIS_URL set: the command and the server share one store (here the test's fakeredis)."""
    settings.QUOTA_STORE_EMBEDDED = False


def run(*args) -> str:
    out = StringIO()
    call_command("resetquota", *args, stdout=out)
    return out.getvalue()


def spend(user, n):
    for _ in range(n):
        QuotaLedger().charge(user)


def test_it_resets_one_user_and_prints_the_previous_count(pinpin, admin_user):
    spend(pinpin, 3)
    spend(admin_user, 2)
    assert run("pinpin") == "pinpin: 3 -> 0\n"
    assert QuotaLedger().usage(pinpin).used == 0
    assert QuotaLedger().usage(admin_user).used == 2


def test_all_resets_every_user(pinpin, admin_user):
    spend(pinpin, 3)
    spend(admin_user, 2)
    assert run("--all") == "admin: 2 -> 0\npinpin: 3 -> 0\n"
    assert QuotaLedger().usage(pinpin).used == QuotaLedger().usage(admin_user).used == 0


def test_unknown_user_is_a_command_error(db):
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        run("ghost")


@pytest.mark.parametrize("args", [(), ("pinpin", "--all")])
def test_it_needs_exactly_one_of_username_or_all(pinpin, args):
    with pytest.raises(CommandError, match="either a username or --all"):
        run(*args)


def test_redis_down_is_a_command_error(pinpin, broken_redis):
    with pytest.raises(CommandError, match="quota store unavailable"):
        run("pinpin")


def test_each_reset_is_recorded_as_the_command_with_the_shell_account(pinpin, admin_user, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "deploy")
    spend(pinpin, 3)
    run("pinpin")
    run("--all")
    records = list(QuotaReset.objects.order_by("pk").values_list("username", "previous_used", "actor_name",
                                                                  "source"))
    assert records == [("pinpin", 3, "deploy", "command"), ("admin", 0, "deploy", "command"),
                       ("pinpin", 0, "deploy", "command")]


def test_with_the_embedded_store_it_refuses_and_records_nothing(pinpin, settings):
    settings.QUOTA_STORE_EMBEDDED = True  # no REDIS_URL: the server's counters are out of this process's reach
    spend(pinpin, 3)
    with pytest.raises(CommandError, match="REDIS_URL is not set.*reset_quota"):
        run("pinpin")
    assert QuotaLedger().usage(pinpin).used == 3
    assert not QuotaReset.objects.exists()


def test_it_warns_when_the_store_has_no_counter_of_today_at_all(pinpin, admin_user):
    err = StringIO()
    call_command("resetquota", "pinpin", stdout=StringIO(), stderr=err)
    assert "holds no quota counter for today" in err.getvalue()
    spend(admin_user, 1)  # someone has a counter today: this is a store the server uses
    err = StringIO()
    call_command("resetquota", "pinpin", stdout=StringIO(), stderr=err)
    assert err.getvalue() == ""
