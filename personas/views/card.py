"""The persona card at /students/<id>/: the student page, with the front desk's record forms.

It replaces crm's plain student page under the same URL names (`student_detail`,
`student_action`); the forms and what each records stay crm's (`crm.views.students`), shared
with the board's drop.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from crm.forms import apply_service_errors
from crm.models import User
from crm.roles import sees_full_phones
from crm.selectors import student_get
from crm.views.access import ANY_STAFF, FRONT_OFFICE, role_required
from crm.views.students import ACTIONS, action_forms
from lifecycle.selectors import days_label
from personas.selectors import persona_card, timeline_for


def _page_number(raw: str | None) -> int:
    try:
        return max(int(raw or 1), 1)
    except ValueError:
        return 1


def _suggest(forms_: dict[str, forms.Form], form_name: str, suggestion: str) -> None:
    """Open the suggested action's form ready to record it: its content prefilled, focused."""
    form = forms_[form_name]
    if suggestion and "content" in form.fields:
        form.initial = {**form.initial, "content": suggestion}
    first = "content" if "content" in form.fields else next(iter(form.fields))
    form.fields[first].widget.attrs["autofocus"] = True


def _render_card(
    request: HttpRequest,
    pk: int,
    forms_: dict[str, forms.Form] | None = None,
    open_form: str = "",
    status: int = 200,
) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    card = persona_card(viewer=viewer, student_id=pk, page=_page_number(request.GET.get("page")))
    can_act = viewer.role in FRONT_OFFICE
    forms_ = (forms_ or action_forms(card.student)) if can_act else {}
    action = card.next_action
    if can_act and action and not open_form and request.GET.get("do") == action.code:
        _suggest(forms_, action.form, action.suggestion)
        open_form = action.form
    context: dict[str, Any] = {
        "card": card,
        "s": card.student,
        "days_in_stage_label": days_label(card.days_in_stage),
        "forms": forms_,
        "can_act": can_act,
        "open_form": open_form,
        "full_phones": sees_full_phones(viewer),
        "nav": "students",
    }
    return render(request, "personas/card.html", context, status=status)


@role_required(*ANY_STAFF)
def student_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _render_card(request, pk)


@role_required(*ANY_STAFF)
def student_timeline(request: HttpRequest, pk: int) -> HttpResponse:
    """A further page of the card's timeline (htmx's "older" button appends it)."""
    viewer: User = request.user  # type: ignore[assignment]
    student, page = timeline_for(viewer=viewer, student_id=pk, page=_page_number(request.GET.get("page")))
    return render(request, "personas/partials/timeline_entries.html", {"s": student, "timeline": page})


@require_POST
@role_required(*FRONT_OFFICE)
def student_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """One POST endpoint per fact a person records on the card; errors re-render the card with
    the form open and its errors shown."""
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
    return _render_card(request, pk, forms_, open_form=action, status=400)
