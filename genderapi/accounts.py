"""The service's two built-in accounts, whose passwords come from the environment at deploy time."""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction


def default_accounts() -> list[dict]:
    return [
        {"username": "pinpin", "password": settings.PINPIN_PASSWORD, "is_staff": False, "is_superuser": False},
        {"username": "admin", "password": settings.ADMIN_PASSWORD, "is_staff": True, "is_superuser": True},
    ]


@transaction.atomic
def ensure_default_users() -> list[tuple[str, str]]:
    """Create or update the built-in accounts; return ``(username, what happened)`` for each.

    A created account gets its configured password. An existing one gets it only when its variable is set
    (``settings.ENFORCED_PASSWORDS``), so a password changed in the admin is not undone at the next start.
    Idempotent: the password is re-hashed only when it no longer matches, so re-running it at every start
    keeps existing sessions and the cached Basic-auth credentials valid. ``is_active`` is left alone, so an
    account deactivated in the admin stays deactivated across restarts. An account that still has the
    guide's well-known password is reported as such.
    """
    User = get_user_model()
    report = []
    for account in default_accounts():
        user, created = User._default_manager.get_or_create(username=account["username"])
        changed = created
        enforced = account["username"] in settings.ENFORCED_PASSWORDS
        if created or (enforced and not user.check_password(account["password"])):
            user.set_password(account["password"])
            changed = True
        for flag in ("is_staff", "is_superuser"):
            if getattr(user, flag) != account[flag]:
                setattr(user, flag, account[flag])
                changed = True
        if changed:
            user.save()
        outcome = "created" if created else "updated" if changed else "unchanged"
        if user.check_password(settings.GUIDE_PASSWORDS[user.username]):
            outcome += " (the guide's default password: set a new one before exposing the service)"
        report.append((user.username, outcome))
    return report
