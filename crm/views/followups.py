from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from crm.models import User
from crm.pages import followup_sections
from crm.selectors import followups_for
from crm.views.access import FRONT_OFFICE, role_required


@role_required(*FRONT_OFFICE)
def followups(request: HttpRequest) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    now = timezone.now()
    result = followups_for(viewer=viewer, now=now)
    return render(
        request,
        "crm/followups.html",
        {
            "escalated": result.escalated,
            "overdue": result.overdue,
            "today": result.today,
            "sections": followup_sections(viewer),
            "now": now,
            "nav": "followups",
        },
    )
