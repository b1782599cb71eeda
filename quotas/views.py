"""Quota endpoints: a user reads their own quota; staff read anyone's and reset them. All go through the
ledger; :class:`LedgerAPIView` turns an unreachable store into a 503 for every view that uses it.

The staff endpoints ask what the quota console in the admin asks: staff status and ``quotas.view_userquota`` to
read, and also ``quotas.reset_quota`` to reset (a superuser, like the built-in ``admin``, has both)."""
from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from genderapi.errors import error_response

from .ledger import QuotaLedger, QuotaState, QuotaStoreUnavailable
from .models import QuotaReset

logger = logging.getLogger(__name__)


class LedgerAPIView(APIView):
    """An APIView whose handlers may raise :class:`QuotaStoreUnavailable`: it becomes 503 + Retry-After."""

    def handle_exception(self, exc):
        if isinstance(exc, QuotaStoreUnavailable):
            logger.warning("%s %s: %s", self.request.method, self.request.path, exc)
            return error_response("The quota service is temporarily unavailable; retry shortly.", 503,
                                  {"Retry-After": str(exc.retry_after)})
        return super().handle_exception(exc)


class CanReadQuotas(IsAdminUser):
    """Staff with the permission to see the quota console."""

    required = ("quotas.view_userquota",)

    def has_permission(self, request, view):
        return super().has_permission(request, view) and request.user.has_perms(self.required)


class CanResetQuotas(CanReadQuotas):
    """Staff with the permissions to see the quota console and to reset quotas there."""

    required = ("quotas.view_userquota", "quotas.reset_quota")


def quota_body(user, state: QuotaState) -> dict:
    return {"username": user.get_username(), **state.to_dict()}


def user_named(username: str):
    User = get_user_model()
    try:
        return User._default_manager.get_by_natural_key(username)
    except User.DoesNotExist:
        shown = username if len(username) <= 150 else username[:150] + "..."  # 150: the longest username
        raise NotFound(f"No user named {shown!r}.") from None


class MyQuotaView(LedgerAPIView):
    """GET: the caller's own quota for today (reading it costs nothing)."""

    def get(self, request):
        return Response(quota_body(request.user, QuotaLedger().usage(request.user)))


class AllQuotasView(LedgerAPIView):
    """GET (staff): every user's quota for today."""

    permission_classes = [CanReadQuotas]

    def get(self, request):
        return Response({"users": [quota_body(user, state) for user, state in QuotaLedger().all_users()]})


class UserQuotaView(LedgerAPIView):
    """GET (staff): one user's quota for today."""

    permission_classes = [CanReadQuotas]

    def get(self, request, username):
        user = user_named(username)
        return Response(quota_body(user, QuotaLedger().usage(user)))


class ResetQuotaView(LedgerAPIView):
    """POST (staff): set one user's count for today back to zero (recorded as a QuotaReset); the body says
    what it was."""

    permission_classes = [CanResetQuotas]

    def post(self, request, username):
        user = user_named(username)
        ledger = QuotaLedger()
        previous = ledger.reset(user, actor=request.user, source=QuotaReset.Source.API)
        logger.info("quota of %s reset by %s (was %d)", user.get_username(), request.user.get_username(),
                    previous)
        return Response({**quota_body(user, ledger.usage(user)), "previous_used": previous})
