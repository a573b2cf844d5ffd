"""The student list, and the forms recording a fact about a student with what each records:
shared by the persona card (personas.views.card, the student page) and the board's drop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from crm import services
from crm.forms import (
    CloseLostForm,
    ConsultationForm,
    ContractForm,
    GuardianAddForm,
    TrialBookingForm,
)
from crm.models import Stage, Student, User
from crm.phones import phone_display
from crm.selectors import courses_of, student_search, teachers_of
from crm.views.access import FRONT_OFFICE, role_required


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
