"""Staff pages of the parents' side: the trial requests parents sent, in the follow-up list
(crm's page, through `crm.pages`), and the front desk's "booked" / "close" on each."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from crm.models import User
from crm.pages import Section
from crm.views.access import FRONT_OFFICE, role_required
from parents.selectors import trial_requests_for
from parents.services.trial_requests import trial_request_close

# The follow-up list shows this many requests; the rest wait their turn.
REQUESTS_SHOWN = 50


def trial_requests_section(viewer: User) -> Section | None:
    if viewer.role not in FRONT_OFFICE:
        return None
    rows = list(trial_requests_for(viewer).prefetch_related("student__guardians")[:REQUESTS_SHOWN])
    return Section("parents/_followup_trial_requests.html", {"rows": rows, "limit": REQUESTS_SHOWN})


@require_POST
@role_required(*FRONT_OFFICE)
def trial_request_handle(request: HttpRequest, pk: int) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    trial_request = get_object_or_404(trial_requests_for(viewer), pk=pk)
    booked = request.POST.get("outcome") == "booked"
    trial_request_close(actor=viewer, request=trial_request, booked=booked)
    messages.success(request, _("The trial request is marked booked.") if booked else _("The trial request is closed."))
    return redirect("followups")
