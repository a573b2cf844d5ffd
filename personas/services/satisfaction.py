"""The parents' satisfaction answers and the care tasks a detractor's answer opens.

A parent answers "how likely are you to recommend us" (0-10) about one child when the campus's
rule says the question is due (personas.rules.satisfaction_due). The rule is checked again under
a lock on the child's row, so two taps of "send" (or two parents at once) make one answer. An
answer of 0-6 hands the child's consultant a care task in their follow-ups.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from crm import text
from crm.models import AuditAction, Guardian, Role, Student, StudentGuardian, User
from crm.roles import require_campus, require_role
from crm.services.audit import audit
from personas.models import CareTask, CareTaskStatus, NpsCategory, SatisfactionAnswer
from personas.rules import satisfaction_due
from personas.selectors.satisfaction import schedule_of, with_satisfaction_facts

SCORE_MIN, SCORE_MAX = 0, 10


def _score(value: Any) -> int:
    # bool is an int in Python; a JSON true is not a score.
    if isinstance(value, bool) or not isinstance(value, int) or not SCORE_MIN <= value <= SCORE_MAX:
        raise ValidationError({"score": _("Choose a score from 0 to 10.")})
    return value


def _not_due_message(student: Any, now: dt.datetime) -> str:
    schedule = schedule_of(student.campus)
    last = student.last_answered_at
    if last is not None and student.lessons_attended >= schedule.after_lessons:
        # The rule counts whole days from the moment of the last answer: so does the message.
        again = timezone.localtime(last + dt.timedelta(days=schedule.every_days))
        return _("You already told us about %(student)s on %(date)s; we will ask again from %(again)s.") % {
            "student": student.name,
            "date": formats.date_format(timezone.localdate(last), "Y-m-d"),
            "again": formats.date_format(again, "Y-m-d H:i"),
        }
    return _("We will ask about %(student)s after %(lessons)s lessons attended.") % {
        "student": student.name,
        "lessons": schedule.after_lessons,
    }


@transaction.atomic
def satisfaction_answer(*, guardian: Guardian, student: Student, score: Any, reason: str = "") -> SatisfactionAnswer:
    """Record a parent's answer about their child, if the question is due; a detractor's answer
    (0-6) opens a care task for the child's consultant (their owner now; none: the managers')."""
    if not StudentGuardian.objects.filter(guardian=guardian, student_id=student.pk).exists():
        raise PermissionDenied(_("This is not your child."))
    errors: dict[str, Any] = {}
    try:
        score = _score(score)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    reason = text.clean(errors, "reason", reason or "", SatisfactionAnswer)
    if errors:
        raise ValidationError(errors)
    # The lock serialises answers about one child; the facts are read after it, so a second
    # request sees the first one's committed answer and is refused.
    Student.objects.select_for_update().filter(pk=student.pk).values_list("pk").get()
    now = timezone.now()
    facts: Any = with_satisfaction_facts(Student.objects.select_related("campus__persona_settings")).get(pk=student.pk)
    if not satisfaction_due(facts.lessons_attended, facts.last_answered_at, now, schedule_of(facts.campus)):
        raise ValidationError(_not_due_message(facts, now), code="not_due")
    answer = SatisfactionAnswer.objects.create(
        student_id=student.pk, guardian=guardian, score=score, reason=reason, answered_at=now
    )
    audit(
        actor=None,
        guardian=guardian,
        action=AuditAction.SATISFACTION_ANSWER,
        student=facts,
        score=score,
        category=answer.category.value,
    )
    if answer.category == NpsCategory.DETRACTOR:
        CareTask.objects.create(student_id=student.pk, consultant_id=facts.owner_id, answer=answer)
    return answer


@transaction.atomic
def care_task_close(*, actor: User, task: CareTask, note: str = "") -> CareTask:
    """Mark a care task done, with what was done: its consultant, or a manager of the student's
    campus (an administrator anywhere)."""
    student = task.student
    if task.consultant_id is None or task.consultant_id != actor.pk:
        require_role(actor, Role.MANAGER)
        require_campus(actor, student.campus_id)
    errors: dict[str, Any] = {}
    note = text.clean(errors, "note", note or "", CareTask)
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    # Conditional: of two people closing it at once, one does; the other is told.
    closed = CareTask.objects.filter(pk=task.pk, status=CareTaskStatus.OPEN).update(
        status=CareTaskStatus.DONE, note=note, done_by=actor, done_at=now
    )
    if not closed:
        raise ValidationError(_("This care task is already done."), code="done")
    audit(actor=actor, action=AuditAction.CARE_TASK_CLOSE, student=student, task=task.pk, answer=task.answer_id)
    task.status, task.note, task.done_by, task.done_at = CareTaskStatus.DONE, note, actor, now
    return task
