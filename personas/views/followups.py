"""The care tasks in crm's follow-up list (through `crm.pages`), and their "done" form.

A detractor's satisfaction answer hands the child's consultant a call to make; the consultant
sees their own, a manager their campus's (those with no consultant included)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from crm.models import User
from crm.pages import Section
from crm.views.access import FRONT_OFFICE, role_required
from personas.models import CareTask, CareTaskStatus
from personas.selectors.satisfaction import care_tasks_for
from personas.services.satisfaction import care_task_close

# The follow-up list shows this many care tasks, oldest first; the rest wait their turn.
CARE_TASKS_SHOWN = 50


def care_tasks_section(viewer: User) -> Section | None:
    tasks = list(care_tasks_for(viewer)[:CARE_TASKS_SHOWN])
    return Section("personas/_followup_care.html", {"tasks": tasks, "limit": CARE_TASKS_SHOWN})


@require_POST
@role_required(*FRONT_OFFICE)
def care_task_done(request: HttpRequest, pk: int) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    task = care_tasks_for(viewer).filter(pk=pk).first()
    if task is None:
        # A colleague's task at the viewer's own campus is not theirs to close; anything else is not here.
        at_campus = CareTask.objects.filter(pk=pk, student__campus_id=viewer.campus_id or 0)
        if at_campus.filter(status=CareTaskStatus.OPEN).exists():
            raise PermissionDenied
        if not at_campus.exists():
            raise Http404
        messages.info(request, _("This care task is already done."))
        return redirect("followups")
    try:
        care_task_close(actor=viewer, task=task, note=request.POST.get("note", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Care task for %(student)s marked done.") % {"student": task.student.name})
    return redirect("followups")
