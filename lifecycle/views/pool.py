"""The campus lead pool (公海) at /pool/: the list, claiming a lead, giving one back.

Thin: a scoped fetch (another campus's student is a 404), one service call, a message.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from crm.models import Student, User
from crm.selectors import student_get
from crm.views.access import FRONT_OFFICE, role_required
from lifecycle.services.pool import (
    campus_settings,
    claims_today,
    former_owners,
    pool_claim,
    pool_eligible,
    pool_list_for,
    pool_release,
)

PAGE_SIZE = 25


@role_required(*FRONT_OFFICE)
def pool_list(request: HttpRequest) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    page = Paginator(pool_list_for(viewer=viewer), PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    owners = former_owners(rows)
    for row in rows:
        row.former_owner = owners.get(row.former_owner_id)  # type: ignore[attr-defined]
    context: dict[str, object] = {"page": page, "rows": rows, "nav": "pool"}
    if viewer.campus_id is not None:
        context["claims_today"] = claims_today(user=viewer)
        context["claim_limit"] = campus_settings(viewer.campus_id).pool_daily_claim_limit
    context["my_leads"] = list(
        pool_eligible(Student.objects.filter(owner=viewer)).order_by("name", "pk").only("id", "name")[:200]
    )
    return render(request, "lifecycle/pool.html", context)


def _back_to_pool(request: HttpRequest) -> HttpResponse:
    page = request.POST.get("page", "")
    url = reverse("pool")
    return redirect(f"{url}?page={page}" if page.isdigit() else url)


@require_POST
@role_required(*FRONT_OFFICE)
def pool_claim_view(request: HttpRequest, pk: int) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    student = student_get(viewer=viewer, student_id=pk)
    try:
        pool_claim(actor=viewer, student=student)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            _("%(name)s is yours now: on your follow-ups for today.") % {"name": student.name},
        )
    return _back_to_pool(request)


@require_POST
@role_required(*FRONT_OFFICE)
def pool_release_view(request: HttpRequest) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    student_id = request.POST.get("student", "")
    if not student_id.isdigit():
        messages.error(request, _("Choose the lead to give back."))
        return _back_to_pool(request)
    student = student_get(viewer=viewer, student_id=int(student_id))
    try:
        pool_release(actor=viewer, student=student, reason=request.POST.get("reason", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("%(name)s is back in the pool.") % {"name": student.name})
    return _back_to_pool(request)


urlpatterns: list[URLPattern] = [
    path("", pool_list, name="pool"),
    path("<int:pk>/claim/", pool_claim_view, name="pool_claim"),
    path("release/", pool_release_view, name="pool_release"),
]
