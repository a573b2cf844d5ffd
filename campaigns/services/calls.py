"""A campaign's call task, done: the consultant records the call as a consultation (crm's one
service for it, with its rules) and the task is closed with it, in one transaction."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import CallTask, CallTaskStatus
from crm.models import ConsultationChannel, Role, User
from crm.roles import require_campus, sees_all_campuses
from crm.services.consultations import consultation_log


@transaction.atomic
def call_task_complete(
    *,
    actor: User,
    task: CallTask,
    content: str,
    intent: str,
    outcome: str = "",
    next_follow_up_at: dt.datetime | None = None,
) -> CallTask:
    """The student's consultant (or a manager of the campus) records the call; once."""
    task = CallTask.objects.select_for_update().select_related("student", "campaign").get(pk=task.pk)
    require_campus(actor, task.student.campus_id)
    if actor.role == Role.FRONT_DESK and task.consultant_id not in (None, actor.pk):
        raise PermissionDenied(_("This call is another consultant's."))
    if actor.role not in (Role.FRONT_DESK, Role.MANAGER) and not sees_all_campuses(actor):
        raise PermissionDenied(_("Your role may not do this."))
    if task.status != CallTaskStatus.OPEN:
        raise ValidationError(_("This call has already been recorded."))
    consultation = consultation_log(
        actor=actor,
        student=task.student,
        channel=ConsultationChannel.PHONE,
        content=content,
        intent=intent,
        outcome=outcome,
        next_follow_up_at=next_follow_up_at,
    )
    task.status = CallTaskStatus.DONE
    task.consultation = consultation
    task.done_at = timezone.now()
    task.save(update_fields=["status", "consultation", "done_at"])
    return task
