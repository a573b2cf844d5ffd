"""Quick lead capture, phone first, with a live duplicate check."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from crm import services
from crm.forms import LeadCaptureForm, apply_service_errors
from crm.models import Campus, Guardian, User
from crm.phones import try_normalize_phone
from crm.roles import sees_all_campuses
from crm.selectors import students_visible_to
from crm.services.families import guardian_change_refusal
from crm.views.access import FRONT_OFFICE, role_required


def _family_context(viewer: User, phone: str) -> dict[str, object]:
    e164 = try_normalize_phone(phone)
    if e164 is None:
        return {"phone_entered": bool(phone.strip()), "phone_valid": False}
    guardian = Guardian.objects.filter(phone=e164).first()
    if guardian is None:
        return {"phone_entered": True, "phone_valid": True, "guardian": None}
    children = list(
        students_visible_to(viewer)
        .filter(guardians=guardian)
        .select_related("pipeline")
        .only("id", "name", "grade", "pipeline__stage")
    )
    hidden = guardian.students.count() - len(children)
    campus_id = None if sees_all_campuses(viewer) else viewer.campus_id
    return {
        "phone_entered": True,
        "phone_valid": True,
        "guardian": guardian,
        "children": children,
        "hidden": hidden,
        "kept_elsewhere": guardian_change_refusal(guardian, campus_id=campus_id),
    }


@role_required(*FRONT_OFFICE)
def lead_capture(request: HttpRequest) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    form = LeadCaptureForm(request.POST or None, viewer=viewer)
    family: dict[str, object] = {}
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        campus: Campus = data.get("campus") or viewer.campus  # type: ignore[assignment]
        try:
            captured = services.lead_capture(
                actor=viewer,
                campus=campus,
                phone=data["phone"],
                student_name=data["student_name"],
                guardian_name=data["guardian_name"],
                relation=data["relation"],
                guardian_email=data["guardian_email"],
                channel=data["channel"],
                grade=data["grade"],
                school=data["school"],
                gender=data["gender"],
                birth_date=data["birth_date"],
                notes=data["notes"],
                add_to_family=data["add_to_family"],
                referral_code=data["referral_code"],
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, _("%(name)s is captured.") % {"name": captured.student.name})
            return redirect("student_detail", captured.student.pk)
    if request.method == "POST":
        family = _family_context(viewer, request.POST.get("phone", ""))
    return render(request, "crm/lead_capture.html", {"form": form, "nav": "capture", **family})


@role_required(*FRONT_OFFICE)
def lead_check_phone(request: HttpRequest) -> HttpResponse:
    """The htmx partial under the phone field: new family, or who is already there."""
    viewer: User = request.user  # type: ignore[assignment]
    context = _family_context(viewer, request.GET.get("phone", ""))
    return render(request, "crm/partials/family_check.html", context)
