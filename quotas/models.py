"""The quotas app stores nothing in the database: counters live in Redis (see :mod:`quotas.ledger`).

:class:`UserQuota` is a proxy of the user model that exists only so the Django admin has a "Quotas" page
(and permissions for it) under this app.
"""
from django.contrib.auth.models import User


class UserQuota(User):
    class Meta:
        proxy = True
        verbose_name = "quota"
        verbose_name_plural = "quotas"
