"""manage.py ensureusers: the two built-in accounts, from the settings' passwords, idempotently."""
from __future__ import annotations

from io import StringIO

from django.contrib.auth.models import User
from django.core.management import call_command


GUIDE = " (the guide's default password: set a new one before exposing the service)"


def run() -> str:
    out = StringIO()
    call_command("ensureusers", stdout=out)
    return out.getvalue()


def test_it_creates_pinpin_and_a_superuser_admin(db):
    assert run() == f"pinpin: created{GUIDE}\nadmin: created{GUIDE}\n"
    pinpin, admin = User.objects.get(username="pinpin"), User.objects.get(username="admin")
    assert pinpin.check_password("azerty") and not pinpin.is_staff and not pinpin.is_superuser
    assert admin.check_password("admin_password") and admin.is_staff and admin.is_superuser


def test_it_is_idempotent(db):
    run()
    hashes = list(User.objects.order_by("username").values_list("password", flat=True))
    assert run() == f"pinpin: unchanged{GUIDE}\nadmin: unchanged{GUIDE}\n"
    assert list(User.objects.order_by("username").values_list("password", flat=True)) == hashes
    assert User.objects.count() == 2


def test_it_applies_a_password_set_in_the_environment_at_every_start(db, settings):
    run()
    settings.PINPIN_PASSWORD, settings.ENFORCED_PASSWORDS = "from-env", {"pinpin"}
    assert run() == f"pinpin: updated\nadmin: unchanged{GUIDE}\n"
    pinpin = User.objects.get(username="pinpin")
    pinpin.set_password("changed-in-the-admin")
    pinpin.save()
    run()
    assert User.objects.get(username="pinpin").check_password("from-env")


def test_a_password_changed_in_the_admin_survives_a_restart_without_the_variable(db, settings):
    settings.ENFORCED_PASSWORDS = frozenset()
    run()
    admin = User.objects.get(username="admin")
    admin.set_password("a-better-one")
    admin.save()
    assert run() == f"pinpin: unchanged{GUIDE}\nadmin: unchanged\n"
    assert User.objects.get(username="admin").check_password("a-better-one")


def test_it_restores_admin_rights_but_leaves_deactivation_alone(db):
    run()
    User.objects.filter(username="admin").update(is_superuser=False)
    User.objects.filter(username="pinpin").update(is_active=False)
    run()
    assert User.objects.get(username="admin").is_superuser
    assert not User.objects.get(username="pinpin").is_active
