"""What happened to each student: consultations, trials, contracts, attendance; and lessons.

Each fact is recorded by its service through the add form and is read-only afterwards; the
actions (cancel a trial, refund a contract) call services too.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm import text
from crm.admin.base import (
    CrmModelAdmin,
    FactAdmin,
    ScopedRelatedFieldListFilter,
    ServiceModelForm,
    StudentSearchMixin,
    action_with_form,
    actor_of,
)
from crm.admin.imports import ConsultationImportExportMixin, ContractImportExportMixin
from crm.admin.paginators import EstimatedCountPaginator
from crm.forms import AttendanceCorrectForm
from crm.models import Attendance, Consultation, Contract, Lesson, TrialLesson
from crm.services import (
    attendance_correct,
    attendance_record,
    consultation_log,
    contract_refund,
    contract_sign,
    trial_book,
    trial_cancel,
)

# --- forms -------------------------------------------------------------------------------


class ConsultationLogForm(ServiceModelForm):
    class Meta:
        model = Consultation
        fields = ("student",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["consulted_at"].required = False
        self.fields["consulted_at"].help_text = _("Leave empty for now.")

    def run_service(self) -> Model:
        data = self.cleaned_data
        return consultation_log(
            actor=self.actor,
            student=data["student"],
            channel=data["channel"],
            content=data["content"],
            intent=data["intent"],
            outcome=data.get("outcome", ""),
            next_follow_up_at=data.get("next_follow_up_at"),
            consulted_at=data.get("consulted_at"),
        )


class TrialBookForm(ServiceModelForm):
    class Meta:
        model = TrialLesson
        fields = ("student",)

    def run_service(self) -> Model:
        data = self.cleaned_data
        return trial_book(
            actor=self.actor,
            student=data["student"],
            course=data["course"],
            teacher=data["teacher"],
            scheduled_at=data["scheduled_at"],
            duration_minutes=data["duration_minutes"],
        )


class ContractSignForm(ServiceModelForm):
    class Meta:
        model = Contract
        fields = ("student",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["signed_at"].required = False
        self.fields["signed_at"].help_text = _("Leave empty for now.")

    def run_service(self) -> Model:
        data = self.cleaned_data
        return contract_sign(
            actor=self.actor,
            student=data["student"],
            course=data["course"],
            hours_bought=data["hours_bought"],
            amount=data["amount"],
            paid_amount=data["paid_amount"],
            signed_at=data.get("signed_at"),
            valid_until=data.get("valid_until"),
        )


class AttendanceRecordForm(ServiceModelForm):
    class Meta:
        model = Attendance
        fields = ("student",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, help_text in (
            ("contract", _("Leave empty to take the hours from the oldest active contract.")),
            ("lesson_at", _("Leave empty for the lesson's time, or now.")),
            ("teacher", _("Leave empty for the lesson's teacher.")),
            ("hours", _("Leave empty for the lesson's hours. Leave costs no hours whatever is entered.")),
        ):
            self.fields[name].required = False
            self.fields[name].help_text = help_text

    def run_service(self) -> Model:
        data = self.cleaned_data
        return attendance_record(
            actor=self.actor,
            student=data["student"],
            hours=data.get("hours"),
            status=data["status"],
            lesson=data.get("lesson"),
            contract=data.get("contract"),
            lesson_at=data.get("lesson_at"),
            teacher=data.get("teacher"),
            feedback=data.get("feedback", ""),
        )


class RefundForm(forms.Form):
    amount = forms.DecimalField(label=gettext_lazy("refund amount"), max_digits=12, decimal_places=2, min_value=0)
    reason = forms.CharField(label=gettext_lazy("refund reason"), max_length=text.LINE)


class CancelForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("reason"), max_length=text.LINE, required=False)


# --- admins ------------------------------------------------------------------------------

STUDENT_CAMPUS_FILTER = (("student__campus", ScopedRelatedFieldListFilter),)


@admin.register(Consultation)
class ConsultationAdmin(ConsultationImportExportMixin, StudentSearchMixin, FactAdmin):
    list_display = ("student", "consulted_at", "consultant", "channel", "intent", "outcome", "next_follow_up_at")
    list_select_related = ("student", "consultant")
    list_filter = (
        "channel",
        "intent",
        ("consultant", ScopedRelatedFieldListFilter),
        ("consulted_at", admin.DateFieldListFilter),
        ("next_follow_up_at", admin.DateFieldListFilter),
    )
    admin_only_list_filter = STUDENT_CAMPUS_FILTER
    ordering = ("-id",)
    sortable_by = ()
    search_fields = ("student__name",)
    autocomplete_fields = ("student",)
    add_form = ConsultationLogForm
    add_fieldsets = (
        (
            None,
            {"fields": ("student", "channel", "content", "intent", "outcome", "next_follow_up_at", "consulted_at")},
        ),
    )
    fields = (
        "student",
        "consultant",
        "channel",
        "content",
        "intent",
        "outcome",
        "next_follow_up_at",
        "consulted_at",
        "created_at",
    )


@admin.register(TrialLesson)
class TrialLessonAdmin(StudentSearchMixin, FactAdmin):
    list_display = ("student", "scheduled_at", "course", "teacher", "status", "rating", "recommended_level")
    list_select_related = ("student", "course", "teacher")
    list_filter = (
        "status",
        ("course", ScopedRelatedFieldListFilter),
        ("teacher", ScopedRelatedFieldListFilter),
        ("scheduled_at", admin.DateFieldListFilter),
    )
    admin_only_list_filter = STUDENT_CAMPUS_FILTER
    ordering = ("-id",)
    sortable_by = ()
    search_fields = ("student__name",)
    autocomplete_fields = ("student", "course", "teacher")
    actions = ("cancel",)
    add_form = TrialBookForm
    add_fieldsets = ((None, {"fields": ("student", "course", "teacher", "scheduled_at", "duration_minutes")}),)
    fields = (
        "student",
        "course",
        "teacher",
        "scheduled_at",
        "duration_minutes",
        "status",
        "rating",
        "comment",
        "recommended_level",
        "feedback_at",
        "booked_by",
        "created_at",
    )

    @admin.action(description=gettext_lazy("Cancel the trial…"), permissions=("cancel",))
    def cancel(self, request: HttpRequest, queryset: QuerySet[TrialLesson]) -> HttpResponse | None:
        actor = actor_of(request)
        return action_with_form(
            self,
            request,
            queryset,
            form_class=CancelForm,
            title=_("Cancel the trial"),
            apply=lambda trial, data: trial_cancel(actor=actor, trial=trial, reason=data["reason"]),
        )

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return self.uses_admin(request) and actor_of(request).has_perm("crm.change_triallesson")


@admin.register(Contract)
class ContractAdmin(ContractImportExportMixin, StudentSearchMixin, FactAdmin):
    list_display = (
        "student",
        "course",
        "signed_at",
        "hours_bought",
        "hours_consumed",
        "hours_left",
        "amount",
        "paid_amount",
        "status",
        "valid_until",
    )
    list_select_related = ("student", "course")
    list_filter = (
        "status",
        ("course", ScopedRelatedFieldListFilter),
        ("signed_at", admin.DateFieldListFilter),
    )
    admin_only_list_filter = STUDENT_CAMPUS_FILTER
    ordering = ("-id",)
    sortable_by = ()
    search_fields = ("student__name",)
    autocomplete_fields = ("student", "course")
    actions = ("refund",)
    add_form = ContractSignForm
    add_fieldsets = (
        (
            None,
            {"fields": ("student", "course", "hours_bought", "amount", "paid_amount", "signed_at", "valid_until")},
        ),
    )
    fields = (
        "student",
        "course",
        "hours_bought",
        "hours_consumed",
        "amount",
        "paid_amount",
        "signed_at",
        "valid_until",
        "status",
        "refund_amount",
        "refund_reason",
        "refunded_at",
        "signed_by",
        "created_at",
    )

    @admin.display(description=gettext_lazy("hours left"))
    def hours_left(self, obj: Contract) -> Decimal:
        return obj.hours_remaining

    @admin.action(description=gettext_lazy("Refund the contract…"), permissions=("refund",))
    def refund(self, request: HttpRequest, queryset: QuerySet[Contract]) -> HttpResponse | None:
        actor = actor_of(request)
        return action_with_form(
            self,
            request,
            queryset,
            form_class=RefundForm,
            title=_("Refund the contract"),
            single=True,
            apply=lambda contract, data: contract_refund(
                actor=actor, contract=contract, amount=data["amount"], reason=data["reason"]
            ),
        )

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return self.uses_admin(request) and actor_of(request).has_perm("crm.change_contract")


@admin.register(Attendance)
class AttendanceAdmin(StudentSearchMixin, FactAdmin):
    list_display = ("student", "lesson_at", "course", "status", "hours", "teacher")
    list_select_related = ("student", "teacher", "contract__course")
    list_filter = (
        "status",
        ("teacher", ScopedRelatedFieldListFilter),
        ("lesson_at", admin.DateFieldListFilter),
    )
    admin_only_list_filter = STUDENT_CAMPUS_FILTER
    ordering = ("-id",)
    sortable_by = ()
    search_fields = ("student__name",)
    autocomplete_fields = ("student", "contract", "lesson", "teacher")
    add_form = AttendanceRecordForm
    add_fieldsets = (
        (None, {"fields": ("student", "lesson", "contract", "lesson_at", "status", "hours", "teacher", "feedback")}),
    )
    fields = (
        "student",
        "contract",
        "lesson",
        "lesson_at",
        "status",
        "hours",
        "teacher",
        "feedback",
        "recorded_by",
        "created_at",
    )

    actions = ("correct",)

    @admin.display(description=gettext_lazy("course"))
    def course(self, obj: Attendance) -> str:
        return str(obj.contract.course)

    @admin.action(description=gettext_lazy("Correct the attendance…"), permissions=("correct",))
    def correct(self, request: HttpRequest, queryset: QuerySet[Attendance]) -> HttpResponse | None:
        actor = actor_of(request)
        return action_with_form(
            self,
            request,
            queryset,
            form_class=AttendanceCorrectForm,
            title=_("Correct the attendance"),
            single=True,
            apply=lambda attendance, data: attendance_correct(
                actor=actor, attendance=attendance, status=data["status"], hours=data["hours"], reason=data["reason"]
            ),
        )

    def has_correct_permission(self, request: HttpRequest) -> bool:
        # Whoever may record attendance may correct it; the service says which records and when.
        return self.uses_admin(request) and actor_of(request).has_perm("crm.add_attendance")


@admin.register(Lesson)
class LessonAdmin(CrmModelAdmin):
    """The timetable: a schedule, not a fact about a student, so it is edited here directly
    (there is no lesson service); attendance against it goes through attendance_record."""

    paginator = EstimatedCountPaginator
    list_display = ("course", "starts_at", "teacher", "duration_minutes", "hours")
    list_select_related = ("course", "teacher")
    list_filter = (
        ("course", ScopedRelatedFieldListFilter),
        ("teacher", ScopedRelatedFieldListFilter),
        ("starts_at", admin.DateFieldListFilter),
    )
    admin_only_list_filter = (("course__campus", ScopedRelatedFieldListFilter),)
    ordering = ("-id",)
    sortable_by = ()
    search_fields = ("course__name",)
    autocomplete_fields = ("course", "teacher", "students")
