"""The student list and the student page, with the front desk's actions on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from crm import services
from crm.forms import (
    CloseLostForm,
    ConsultationForm,
    ContractForm,
    GuardianAddForm,
    TrialBookingForm,
    apply_service_errors,
)
from crm.models import Stage, Student, User
from crm.phones import phone_display
from crm.roles import sees_full_phones
from crm.selectors import courses_of, student_get, student_profile, student_search, teachers_of
from crm.views.access import ANY_STAFF, FRONT_OFFICE, role_required


@role_required(*FRONT_OFFICE)
def student_list(request: HttpRequest) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    query = request.GET.get("q", "")
    stage = request.GET.get("stage", "")
    students = student_search(viewer=viewer, query=query, stage=stage if stage in Stage.values else "")
    page = Paginator(students, 30).get_page(request.GET.get("page"))
    return render(
        request,
        "crm/student_list.html",
        {"page": page, "q": query, "stage": stage, "stages": Stage.choices, "nav": "students"},
    )


def action_forms(student: Student, data: dict[str, Any] | None = None, bound: str = "") -> dict[str, forms.Form]:
    """The forms recording a fact about the student (the student page's and the board's drop)."""
    courses = courses_of(student.campus_id)
    builders: dict[str, Callable[[Any], forms.Form]] = {
        "consultation": lambda d: ConsultationForm(d, prefix="c"),
        "trial": lambda d: TrialBookingForm(d, prefix="t", courses=courses, teachers=teachers_of(student.campus_id)),
        "contract": lambda d: ContractForm(d, prefix="k", courses=courses),
        "lost": lambda d: CloseLostForm(d, prefix="l"),
        "guardian": lambda d: GuardianAddForm(d, prefix="g"),
    }
    return {name: build(data if name == bound else None) for name, build in builders.items()}


def _render_student(
    request: HttpRequest, student_id: int, forms_: dict[str, forms.Form] | None = None, open_form: str = "", status=200
) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    profile = student_profile(viewer=viewer, student_id=student_id)
    can_act = viewer.role in FRONT_OFFICE
    days = profile.student.days_in_stage(timezone.now())
    return render(
        request,
        "crm/student_detail.html",
        {
            "p": profile,
            "s": profile.student,
            "days_in_stage": days,
            "days_in_stage_label": ngettext("%(days)d day", "%(days)d days", days) % {"days": days},
            "forms": (forms_ or action_forms(profile.student)) if can_act else {},
            "can_act": can_act,
            "open_form": open_form,
            "full_phones": sees_full_phones(viewer),
            "nav": "students",
        },
        status=status,
    )


@role_required(*ANY_STAFF)
def student_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _render_student(request, pk)


def _run_consultation(actor: User, student: Student, data: dict[str, Any]) -> str:
    services.consultation_log(actor=actor, student=student, **data)
    return _("Consultation logged.")


def _run_trial(actor: User, student: Student, data: dict[str, Any]) -> str:
    trial = services.trial_book(actor=actor, student=student, **data)
    return _("Trial booked with %(teacher)s on %(when)s.") % {
        "teacher": trial.teacher,
        "when": trial.scheduled_at.astimezone().strftime("%Y-%m-%d %H:%M"),
    }


def _run_contract(actor: User, student: Student, data: dict[str, Any]) -> str:
    services.contract_sign(actor=actor, student=student, **data)
    return _("Contract signed.")


def _run_lost(actor: User, student: Student, data: dict[str, Any]) -> str:
    services.lead_close_lost(actor=actor, student=student, reason=data["reason"])
    return _("Closed as lost.")


def _run_guardian(actor: User, student: Student, data: dict[str, Any]) -> str:
    guardian = services.guardian_add(actor=actor, student=student, **data)
    return _("%(name)s added to the family.") % {"name": guardian.name or phone_display(guardian.phone)}


ACTIONS: dict[str, Callable[[User, Student, dict[str, Any]], str]] = {
    "consultation": _run_consultation,
    "trial": _run_trial,
    "contract": _run_contract,
    "lost": _run_lost,
    "guardian": _run_guardian,
}


@require_POST
@role_required(*FRONT_OFFICE)
def student_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """One POST endpoint per fact a person records on the student page; errors re-render
    the page with the form open and its errors shown."""
    viewer: User = request.user  # type: ignore[assignment]
    if action not in ACTIONS:
        raise PermissionDenied
    student = student_get(viewer=viewer, student_id=pk)
    forms_ = action_forms(student, request.POST, bound=action)
    form = forms_[action]
    if form.is_valid():
        try:
            message = ACTIONS[action](viewer, student, form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, message)
            return redirect("student_detail", pk)
    return _render_student(request, pk, forms_, open_form=action, status=400)
