"""What the quotas app keeps in the database; the daily counters themselves live in Redis (see
:mod:`quotas.ledger`, the only code that reads or writes them, and these tables too).

- :class:`UserQuota`: a proxy of the user model, so the Django admin has a "Quotas" page under this app, and
  the permissions for it (the usual ``view_userquota``, plus ``reset_quota``).
- :class:`DailyLimitOverride`: a user's own daily limit, instead of ``settings.QUOTA_DAILY_LIMIT``.
- :class:`QuotaReset`: one row per reset of one user's count: who did it, to whom, when, the count before.
"""
from django.conf import settings
from django.contrib.auth.models import User
from django.db import models


class UserQuota(User):
    class Meta:
        proxy = True
        verbose_name = "quota"
        verbose_name_plural = "quotas"
        permissions = [("reset_quota", "Can reset users' daily quotas")]


class DailyLimitOverride(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="daily_limit_override")
    daily_limit = models.PositiveIntegerField(
        help_text="Predictions per day for this user, instead of the default (QUOTA_DAILY_LIMIT). "
                  "0 blocks the user.")
    reason = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "daily limit override"
        ordering = ["user__username"]

    def __str__(self):
        return f"{self.user.get_username()}: {self.daily_limit} per day"


class QuotaReset(models.Model):
    class Source(models.TextChoices):
        ADMIN_PAGE = "admin-page", "admin page, row button"
        ADMIN_ACTION = "admin-action", "admin page, bulk action"
        API = "api", "API (POST /user/<username>/reset_quota)"
        COMMAND = "command", "manage.py resetquota"
        OTHER = "other", "other"

    # The usernames are copied so the record still reads right after a user is renamed or deleted.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                             related_name="quota_resets")
    username = models.CharField("user", max_length=150)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_name = models.CharField("reset by", max_length=150, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.OTHER)
    previous_used = models.PositiveIntegerField("count before")
    day = models.DateField(help_text="The quota day whose counter was reset.")
    reset_at = models.DateTimeField("when", db_index=True)

    class Meta:
        verbose_name = "quota reset"
        ordering = ["-reset_at", "-pk"]

    def __str__(self):
        return f"{self.username}: {self.previous_used} -> 0 at {self.reset_at:%Y-%m-%d %H:%M}"
