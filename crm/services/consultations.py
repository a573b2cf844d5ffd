from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from crm import text
from crm.events import student_facts_changed
from crm.models import AuditAction, Consultation, ConsultationChannel, Intent, Role, Student, User
from crm.roles import require_campus, require_role
from crm.services.audit import audit
from crm.services.date_ranges import consulted_at_problem, follow_up_problem


@transaction.atomic
def consultation_log(
    *,
    actor: User,
    student: Student,
    channel: str,
    content: str,
    intent: str = Intent.MEDIUM,
    outcome: str = "",
    next_follow_up_at: dt.datetime | None = None,
    consulted_at: dt.datetime | None = None,
) -> Consultation:
    """Log a consultation. If it is the latest, its next follow-up replaces the student's open one;
    a backdated consultation typed in afterwards leaves a later conversation's follow-up alone.

    A student with no owner is taken by the consultant who logs the first conversation.
    """
    require_role(actor, Role.FRONT_DESK, Role.MANAGER)
    require_campus(actor, student.campus_id)
    now = timezone.now()
    consulted_at = consulted_at or now
    errors: dict[str, str] = {}
    content = text.clean(errors, "content", content, Consultation)
    outcome = text.clean(errors, "outcome", outcome, Consultation)
    if channel not in ConsultationChannel.values:
        errors["channel"] = _("Choose how the consultation happened.")
    if intent not in Intent.values:
        errors["intent"] = _("Choose an intent level.")
    if not content:
        errors["content"] = _("Write down what was discussed.")
    problem = consulted_at_problem(consulted_at, now=now)
    if problem:
        errors["consulted_at"] = problem
    problem = follow_up_problem(next_follow_up_at, consulted_at=consulted_at) if next_follow_up_at else None
    if problem:
        errors["next_follow_up_at"] = problem
    if errors:
        raise ValidationError(errors)

    student = Student.objects.select_for_update().get(pk=student.pk)
    latest = Consultation.objects.filter(student=student).aggregate(latest=Max("consulted_at"))["latest"]
    consultation = Consultation.objects.create(
        student=student,
        consultant=actor,
        channel=channel,
        content=content,
        intent=intent,
        outcome=outcome,
        next_follow_up_at=next_follow_up_at,
        consulted_at=consulted_at,
    )
    update_fields = ["updated_at"]
    if latest is None or consulted_at >= latest:
        student.next_follow_up_at = next_follow_up_at
        update_fields.append("next_follow_up_at")
    if student.owner_id is None and actor.role == Role.FRONT_DESK:
        student.owner = actor
        update_fields.append("owner")
    student.save(update_fields=update_fields)
    audit(actor=actor, action=AuditAction.CONSULTATION_LOG, student=student, consultation=consultation.pk)
    student_facts_changed([student.pk])
    return consultation
