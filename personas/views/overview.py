"""The overview at /personas/: how a campus's students spread over stages, value tiers and RFM
segments, each group's typical profile and a representative's card one click away.

Managers (their campus) and administrators (a campus picker) read it and may ask for a fresh
snapshot; the front desk reads its own campus's; teachers have no use for it (403).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from crm.models import Campus, Role, User
from crm.views.access import FRONT_OFFICE, role_required
from personas.selectors import overview_for
from personas.services.overview import overview_refresh_request

REFRESHING_ROLES = (Role.MANAGER, Role.ADMIN)


def _campus_id(raw: str | None) -> int | None:
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


@role_required(*FRONT_OFFICE)
def overview(request: HttpRequest) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    data = overview_for(viewer=viewer, campus_id=_campus_id(request.GET.get("campus")))
    context = {
        "overview": data,
        "can_refresh": viewer.role in REFRESHING_ROLES,
        "nav": "overview",
    }
    return render(request, "personas/overview.html", context)


@require_POST
@role_required(*REFRESHING_ROLES)
def overview_refresh(request: HttpRequest) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    campus_id = _campus_id(request.POST.get("campus"))
    if campus_id is None:
        raise Http404
    try:
        campus = overview_refresh_request(campus_id=campus_id, actor=viewer)
    except Campus.DoesNotExist:
        raise Http404 from None
    messages.success(request, _("The overview is being computed again; reload the page in a moment."))
    return redirect(f"{reverse('personas_overview')}?campus={campus.pk}")
