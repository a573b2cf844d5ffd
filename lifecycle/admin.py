"""Admin for the lifecycle engine: thresholds per campus, stage history, kept activity.

Managers edit their own campus's thresholds (the form calls `thresholds_update`, which
audits and recomputes the campus in a task after commit) and can run the recomputation of
their campus now (an action calling `recompute_campus_now`); administrators see every campus. History
and activity are the engine's output: read-only. Access follows the staff role (crm's
role groups), not per-model permissions, and every list is scoped to the viewer's campus by
crm's rule (`crm.selectors.in_viewers_campuses`).
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.admin.utils import display_for_value
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm.admin.base import NOTHING_CHOSEN, ServiceModelForm, StudentSearchMixin
from crm.admin.paginators import EstimatedCountPaginator
from crm.models import Role, User
from crm.roles import sees_all_campuses
from crm.selectors import in_viewers_campuses
from lifecycle.models import LifecycleSettings, StageChange, StudentActivity
from lifecycle.reasons import flag_reasons, stage_reason_label
from lifecycle.selectors import days_label
from lifecycle.services.activity import AGGREGATE_COLUMNS
from lifecycle.services.facts import settings_ensure
from lifecycle.services.recompute import recompute_campus_now
from lifecycle.services.thresholds import THRESHOLD_FIELDS, thresholds_update


def viewer(request: HttpRequest) -> User:
    return cast(User, request.user)


class LifecycleAdmin(admin.ModelAdmin):
    """Role-based access, scoped by `campus_lookup`."""

    roles: tuple[str, ...] = (Role.MANAGER, Role.ADMIN)
    campus_lookup = "campus_id"
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def allowed(self, request: HttpRequest) -> bool:
        user = viewer(request)
        return user.is_active and user.is_staff and (user.is_superuser or user.role in self.roles)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.allowed(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request) and self.sees(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def sees(self, request: HttpRequest, obj: Any) -> bool:
        if obj is None or sees_all_campuses(viewer(request)):
            return True
        return self.get_queryset(request).filter(pk=obj.pk).exists()

    def get_action_choices(self, request: HttpRequest, default_choices: Any = None) -> Any:
        return super().get_action_choices(request, default_choices=NOTHING_CHOSEN)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if not self.allowed(request):
            return queryset.none()
        return in_viewers_campuses(queryset, viewer(request), campus_lookup=self.campus_lookup)


class ThresholdsForm(ServiceModelForm):
    """The thresholds are saved by `thresholds_update` (audited; the recomputation is a task)."""

    class Meta:
        model = LifecycleSettings
        fields = THRESHOLD_FIELDS

    def run_service(self) -> Model:
        changes = {name: self.cleaned_data[name] for name in self.changed_data if name in THRESHOLD_FIELDS}
        return thresholds_update(actor=self.actor, campus=self.instance.campus, **changes)


@admin.register(LifecycleSettings)
class LifecycleSettingsAdmin(LifecycleAdmin):
    list_display = (
        "campus",
        "active_days",
        "churn_days",
        "ended_grace_days",
        "stale_lead_days",
        "risk_window_days",
        "risk_drop_pct",
        "risk_consecutive_absences",
        "renewal_hours",
        "renewal_days",
    )
    readonly_fields = ("campus",)
    form = ThresholdsForm
    actions = ["recompute_now"]
    fieldsets = (
        (None, {"fields": ("campus",)}),
        (
            gettext_lazy("Stages"),
            {"fields": ("active_days", "churn_days", "ended_grace_days", "stale_lead_days")},
        ),
        (
            gettext_lazy("Flags"),
            {
                "fields": (
                    "risk_window_days",
                    "risk_drop_pct",
                    "risk_consecutive_absences",
                    "renewal_hours",
                    "renewal_days",
                )
            },
        ),
        (
            gettext_lazy("Lead pool"),
            {"fields": ("pool_follow_up_days", "pool_daily_claim_limit", "pool_reclaim_wait_days")},
        ),
    )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request) and self.sees(request, obj)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        settings_ensure()  # a campus created since has its row, with DESIGN.md's defaults
        return super().changelist_view(request, extra_context)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        cast(type[ThresholdsForm], form).actor = viewer(request)  # a fresh class per request (modelform_factory)
        return form

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """`thresholds_update` wrote it when the form was validated."""

    @admin.action(description=gettext_lazy("Recompute the stages of these campuses now"))
    def recompute_now(self, request: HttpRequest, queryset: QuerySet[LifecycleSettings]) -> None:
        for row in queryset.select_related("campus"):
            try:
                result = recompute_campus_now(campus=row.campus, actor=viewer(request))
            except PermissionDenied as exc:
                self.message_user(request, f"{row.campus}: {exc}", messages.ERROR)
                continue
            self.message_user(
                request,
                _("%(campus)s: %(decided)s students decided, %(changed)s stage changes.")
                % {"campus": row.campus, "decided": result.decided, "changed": result.changed},
                messages.SUCCESS,
            )


@admin.register(StageChange)
class StageChangeAdmin(StudentSearchMixin, LifecycleAdmin):
    roles = (Role.FRONT_DESK, Role.MANAGER, Role.ADMIN)
    campus_lookup = "student__campus_id"
    paginator = EstimatedCountPaginator
    list_display = (
        "changed_at",
        "student",
        "from_stage",
        "to_stage",
        "days_in_stage",
        "reason_words",
        "source",
        "actor",
        "won_back",
    )
    list_filter = ("to_stage", "source", "won_back")
    list_select_related = ("student__pipeline", "actor")
    # Newest first by key: rows are appended as they happen, and the key is indexed.
    ordering = ("-pk",)
    sortable_by = ()
    search_fields = ("student__name",)
    date_hierarchy = None
    readonly_fields = ("student", "from_stage", "to_stage", "changed_at", "reason", "source", "actor", "won_back")
    raw_id_fields = ("student",)

    @admin.display(description=gettext_lazy("reason"))
    def reason_words(self, obj: StageChange) -> str:
        return stage_reason_label(obj.reason)

    @admin.display(description=gettext_lazy("Days in this stage"))
    def days_in_stage(self, obj: StageChange) -> str:
        """On the change that put the student in their current stage: the days since it began."""
        current = obj.student.stage_row()
        if (current.stage, current.changed_at) != (obj.to_stage, obj.changed_at):
            return "-"
        return days_label(obj.student.days_in_stage(timezone.now()))


@admin.register(StudentActivity)
class StudentActivityAdmin(StudentSearchMixin, LifecycleAdmin):
    """The kept aggregates, with the stage and flags the engine decided from them."""

    roles = (Role.FRONT_DESK, Role.MANAGER, Role.ADMIN)
    campus_lookup = "student__campus_id"
    paginator = EstimatedCountPaginator
    list_display = ("student", "stage", "at_risk", "renewal_due", "last_present_at", "active_hours_remaining")
    list_filter = (
        ("student__pipeline__at_risk", admin.BooleanFieldListFilter),
        ("student__pipeline__renewal_due", admin.BooleanFieldListFilter),
    )
    list_select_related = ("student__pipeline",)
    search_fields = ("student__name",)
    readonly_fields = (
        "student",
        *AGGREGATE_COLUMNS,
        "stage",
        "at_risk",
        "renewal_due",
        "flag_reasons_words",
        "recheck_at",
    )
    exclude = ()

    @admin.display(description=gettext_lazy("stage"))
    def stage(self, obj: StudentActivity) -> str:
        return obj.student.stage_row().get_stage_display()

    @admin.display(description=gettext_lazy("at risk"), boolean=True)
    def at_risk(self, obj: StudentActivity) -> bool:
        return obj.student.stage_row().at_risk

    @admin.display(description=gettext_lazy("renewal due"), boolean=True)
    def renewal_due(self, obj: StudentActivity) -> bool:
        return obj.student.stage_row().renewal_due

    @admin.display(description=gettext_lazy("decided again at"))
    def recheck_at(self, obj: StudentActivity) -> str:
        # Formatted here: the change page would show a method's datetime as str(), in UTC.
        return display_for_value(obj.student.stage_row().recheck_at, self.get_empty_value_display())

    @admin.display(description=gettext_lazy("why flagged"))
    def flag_reasons_words(self, obj: StudentActivity) -> str:
        return "; ".join(flag_reasons(obj.student.stage_row(), obj))
