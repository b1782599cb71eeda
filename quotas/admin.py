"""The quota console in the Django admin, all of it going through :class:`~quotas.ledger.QuotaLedger`.

- *Quotas* (:class:`UserQuotaAdmin`): every user with today's count, limit, remaining, reset time and a usage
  bar; search, sorting, an "exhausted" / "over 80%" filter, pagination; a reset button per row and a bulk
  reset action, both behind a confirmation page. Seeing it takes ``quotas.view_userquota``; resetting also
  ``quotas.reset_quota``.
- *Daily limit overrides*: a user's own daily limit, edited like any model.
- *Quota resets*: the read-only record of every reset, from here, the API or ``resetquota``.

A page reads the counters of the users it shows (one MGET). Sorting or filtering by usage needs every user's
count: then the ledger reads them all in MGET batches and the listing sorts and filters in SQL on that.
If Redis is unreachable the page still renders, with a banner, and resets answer with an error message.
"""
from __future__ import annotations

from collections import defaultdict

from django.contrib import admin, messages
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Case, F, FloatField, IntegerField, Q, Value, When
from django.db.models.functions import Cast, Greatest
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import dateformat
from django.utils.html import format_html

from .ledger import QuotaLedger, QuotaState, QuotaStoreUnavailable
from .models import DailyLimitOverride, QuotaReset, UserQuota

# list_display columns whose sorting needs every user's count for today.
USAGE_COLUMNS = {"used", "remaining", "usage"}
# How many users a bulk-reset confirmation page and success message name; the rest are counted.
NAMED_USERS = 20


def until(seconds: int) -> str:
    """``"in 5 h 12 min"`` for a number of seconds ahead (whole minutes, rounded down)."""
    if seconds < 60:
        return "in under a minute"
    hours, minutes = divmod(seconds // 60, 60)
    return f"in {hours} h {minutes} min" if hours else f"in {minutes} min"


def describe_resets(reset: list[tuple[object, int]]) -> str:
    """``"alice (2 used → 0), bob (4 used → 0)"``, naming at most NAMED_USERS users."""
    named = ", ".join(f"{user.get_username()} ({previous} used → 0)" for user, previous in reset[:NAMED_USERS])
    more = len(reset) - NAMED_USERS
    return f"{named} and {more} more" if more > 0 else named


class ReadOnlyAdmin(admin.ModelAdmin):
    """A listing no one adds to, edits or deletes from, superusers included."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class QuotaStatusFilter(admin.SimpleListFilter):
    title = "quota used today"
    parameter_name = "quota"

    def lookups(self, request, model_admin):
        return [("exhausted", "Exhausted"), ("over80", "Over 80%")]

    def queryset(self, request, queryset):
        # used_today and daily_limit are annotations the changelist adds whenever this filter is active.
        exhausted = Q(used_today__gte=F("daily_limit"))
        if self.value() == "exhausted":
            return queryset.filter(exhausted)
        if self.value() == "over80":
            return (queryset.alias(used_x5=F("used_today") * 5, limit_x4=F("daily_limit") * 4)
                    .filter(Q(used_x5__gt=F("limit_x4")) | exhausted))
        return None


class QuotaChangeList(ChangeList):
    """A changelist that attaches each shown user's :class:`QuotaState` (``user.quota_state``, None when Redis
    is unreachable, with the reason in ``store_error``), and annotates every user's count for today only
    when the listing is sorted or filtered by usage."""

    store_error: str | None = None
    _usage_annotated = False

    def get_queryset(self, request, exclude_parameters=None):
        if not self._usage_annotated and self.orders_or_filters_by_usage():
            self.root_queryset = self.with_usage(self.root_queryset)
            self._usage_annotated = True
        return super().get_queryset(request, exclude_parameters)

    def orders_or_filters_by_usage(self) -> bool:
        columns = {self.list_display[i] for i in self.get_ordering_field_columns()
                   if 0 <= i < len(self.list_display)}
        return bool(columns & USAGE_COLUMNS) or QuotaStatusFilter.parameter_name in self.filter_params

    def with_usage(self, queryset):
        """``queryset`` annotated with ``used_today``, ``remaining_today`` and ``usage_ratio``.

        The counts come from the ledger; as an SQL CASE grouped by count (there are at most a limit's worth of
        distinct counts), users with none fall to the default 0. Unreachable Redis makes them NULL: nothing
        matches a usage filter, and the banner says why.
        """
        try:
            counts = QuotaLedger().counts_today(queryset.values_list("pk", flat=True))
        except QuotaStoreUnavailable as exc:
            self.store_error = str(exc)
            used = Value(None, output_field=IntegerField())
        else:
            by_count = defaultdict(list)
            for pk, count in counts.items():
                by_count[count].append(pk)
            used = Case(*(When(pk__in=pks, then=Value(count)) for count, pks in sorted(by_count.items())),
                        default=Value(0), output_field=IntegerField())
        return queryset.annotate(
            used_today=used,
            remaining_today=Greatest(F("daily_limit") - F("used_today"), Value(0)),
            usage_ratio=Case(When(daily_limit=0, then=Value(1.0)),
                             default=Cast("used_today", FloatField()) / Cast("daily_limit", FloatField()),
                             output_field=FloatField()),
        )

    def get_results(self, request):
        super().get_results(request)
        self.result_list = list(self.result_list)
        try:
            states = QuotaLedger().usage_many(self.result_list)
        except QuotaStoreUnavailable as exc:
            self.store_error = str(exc)
            states = [None] * len(self.result_list)
        for user, state in zip(self.result_list, states):
            user.quota_state = state
            user.quota_changelist_filters = self.preserved_filters  # so a reset returns to this very listing


@admin.register(UserQuota)
class UserQuotaAdmin(ReadOnlyAdmin):
    list_display = ["username", "staff", "used", "limit", "remaining", "resets", "usage", "reset_button"]
    list_display_links = None
    list_filter = [QuotaStatusFilter, "is_staff"]
    search_fields = ["username"]
    search_help_text = "Search by username."
    ordering = ["username"]
    list_per_page = 100
    actions = ["reset_selected"]
    show_facets = admin.ShowFacets.NEVER  # facet counts by usage would read every counter on every view

    # --- permissions: a view-only listing (ReadOnlyAdmin); resetting takes quotas.reset_quota --------

    def has_reset_permission(self, request) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.reset_quota")

    # --- the listing ---------------------------------------------------------------------------------

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(daily_limit=QuotaLedger.limit_expression())

    def get_changelist(self, request, **kwargs):
        return QuotaChangeList

    def get_list_display(self, request):
        columns = list(self.list_display)
        if not self.has_reset_permission(request):
            columns.remove("reset_button")
        return columns

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Quotas today", **(extra_context or {})})

    @staticmethod
    def _state(user) -> QuotaState | None:
        return getattr(user, "quota_state", None)

    @admin.display(description="staff", boolean=True, ordering="is_staff")
    def staff(self, user):
        return user.is_staff

    @admin.display(description="used", ordering="used_today")
    def used(self, user):
        state = self._state(user)
        return "?" if state is None else state.used

    @admin.display(description="limit", ordering="daily_limit")
    def limit(self, user):
        state = self._state(user)
        return state.limit if state is not None else user.daily_limit

    @admin.display(description="remaining", ordering="remaining_today")
    def remaining(self, user):
        state = self._state(user)
        return "?" if state is None else state.remaining

    @admin.display(description="resets")
    def resets(self, user):
        state = self._state(user)
        if state is None:
            return "?"
        # Always the next local midnight, so the time says it all; the date is in the tooltip.
        return format_html('<time datetime="{}" title="{}">{}</time><br><span class="quota-until">{}</span>',
                           state.resets_at.isoformat(), dateformat.format(state.resets_at, "l Y-m-d H:i T"),
                           dateformat.format(state.resets_at, "H:i T"), until(state.seconds_to_reset))

    @admin.display(description="usage", ordering="usage_ratio")
    def usage(self, user):
        state = self._state(user)
        if state is None:
            return "?"
        percent = 100 if state.limit == 0 else min(100, round(100 * state.used / state.limit))
        level = "full" if state.remaining == 0 else "high" if 5 * state.used > 4 * state.limit else "ok"
        return format_html(
            '<span class="quota-bar quota-bar-{}" role="progressbar" aria-valuemin="0" aria-valuemax="100" '
            'aria-valuenow="{}" title="{} of {} used"><span style="width: {}%"></span></span> {}%',
            level, percent, state.used, state.limit, percent, percent)

    @admin.display(description="")
    def reset_button(self, user):
        url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_reset", args=[user.pk],
                      current_app=self.admin_site.name)
        filters = getattr(user, "quota_changelist_filters", "")
        if filters:
            url = f"{url}?{filters}"
        return format_html('<a class="button quota-reset" href="{}">Reset…</a>', url)

    # --- resets: the row button's confirmation page, and the bulk action ------------------------------

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("", self.admin_site.admin_view(self.changelist_view), name=f"{prefix}_changelist"),
            path("<path:object_id>/reset/", self.admin_site.admin_view(self.reset_view), name=f"{prefix}_reset"),
        ]

    def _changelist_url(self, request) -> str:
        url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist",
                      current_app=self.admin_site.name)
        return add_preserved_filters({"preserved_filters": self.get_preserved_filters(request), "opts": self.opts},
                                     url)

    def reset_view(self, request, object_id):
        """GET: "reset this user's quota?" with today's count; POST: reset it, then back to the listing."""
        if not (self.has_view_permission(request) and self.has_reset_permission(request)):
            raise PermissionDenied
        user = self.get_object(request, unquote(object_id))
        if user is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        ledger = QuotaLedger()
        if request.method == "POST":
            try:
                previous = ledger.reset(user, actor=request.user, source=QuotaReset.Source.ADMIN_PAGE)
            except QuotaStoreUnavailable as exc:
                self.message_user(request, f"Could not reset the quota of {user.get_username()}: {exc}",
                                  messages.ERROR)
            else:
                self.message_user(request, f"Reset the quota of {user.get_username()} ({previous} used → 0).",
                                  messages.SUCCESS)
            return redirect(self._changelist_url(request))
        try:
            state, store_error = ledger.usage(user), None
        except QuotaStoreUnavailable as exc:
            state, store_error = None, str(exc)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Reset the quota of {user.get_username()}?",
            "opts": self.opts,
            "user_to_reset": user,
            "state": state,
            "store_error": store_error,
            "changelist_url": self._changelist_url(request),
        }
        return TemplateResponse(request, "admin/quotas/userquota/reset_confirmation.html", context)

    @admin.action(description="Reset the selected users' quotas", permissions=["reset"])
    def reset_selected(self, request, queryset):
        """First a confirmation page listing the users and their counts; its "Yes" posts back here."""
        users = list(queryset)
        ledger = QuotaLedger()
        if request.POST.get("post") == "yes":
            try:
                reset = ledger.reset_many(users, actor=request.user, source=QuotaReset.Source.ADMIN_ACTION)
            except QuotaStoreUnavailable as exc:
                self.message_user(request, f"Could not reset the quotas: {exc}", messages.ERROR)
            else:
                noun = "quota of 1 user" if len(reset) == 1 else f"quotas of {len(reset)} users"
                self.message_user(request, f"Reset the {noun}: {describe_resets(reset)}.", messages.SUCCESS)
            return None
        named = users[:NAMED_USERS]
        try:
            states, store_error = ledger.usage_many(named), None
        except QuotaStoreUnavailable as exc:
            states, store_error = [None] * len(named), str(exc)
        context = {
            **self.admin_site.each_context(request),
            "title": "Reset these quotas?",
            "opts": self.opts,
            "rows": list(zip(named, states)),
            "more": len(users) - len(named),
            "count": len(users),
            "selected_pks": [user.pk for user in named] if request.POST.get("select_across") == "1"
            else [user.pk for user in users],
            "select_across": request.POST.get("select_across") == "1",
            "store_error": store_error,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/quotas/userquota/reset_selected_confirmation.html", context)


@admin.register(DailyLimitOverride)
class DailyLimitOverrideAdmin(admin.ModelAdmin):
    list_display = ["user", "daily_limit", "reason", "updated_at"]
    list_select_related = ["user"]
    search_fields = ["user__username"]
    autocomplete_fields = ["user"]
    ordering = ["user__username"]


@admin.register(QuotaReset)
class QuotaResetAdmin(ReadOnlyAdmin):
    """The record of resets: read-only for everyone, superusers included."""

    list_display = ["reset_at", "username", "previous_used", "actor_name", "source", "day"]
    list_filter = ["source", "day"]
    search_fields = ["username", "actor_name"]
    date_hierarchy = "reset_at"
    list_per_page = 100

