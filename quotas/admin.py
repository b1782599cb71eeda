"""The admin's "Quotas" page: every user's count for today, with a reset button per user. Both go through
the ledger; the page replaces the proxy model's usual changelist and has no add/change/delete views."""
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path

from .ledger import QuotaLedger, QuotaStoreUnavailable
from .models import UserQuota


@admin.register(UserQuota)
class UserQuotaAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        opts = self.model._meta
        prefix = f"{opts.app_label}_{opts.model_name}"
        return [
            path("", self.admin_site.admin_view(self.changelist_view), name=f"{prefix}_changelist"),
            path("<int:pk>/reset/", self.admin_site.admin_view(self.reset_view), name=f"{prefix}_reset"),
        ]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        rows, error = [], None
        try:
            rows = QuotaLedger().all_users()
        except QuotaStoreUnavailable as exc:
            error = str(exc)
        context = {
            **self.admin_site.each_context(request),
            "title": "Quotas",
            "opts": self.model._meta,
            "rows": rows,
            "error": error,
            "can_reset": self.has_change_permission(request),
        }
        return TemplateResponse(request, "admin/quotas/quotas.html", context)

    def reset_view(self, request, pk):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        user = get_object_or_404(UserQuota, pk=pk)
        try:
            previous = QuotaLedger().reset(user)
        except QuotaStoreUnavailable as exc:
            messages.error(request, f"Could not reset the quota of {user.get_username()}: {exc}")
        else:
            messages.success(request, f"Reset the quota of {user.get_username()} ({previous} used -> 0).")
        return redirect(f"admin:{self.model._meta.app_label}_{self.model._meta.model_name}_changelist")
