"""Trial lessons: booking without double-booking a teacher, and the teacher's feedback."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm import text
from crm.events import student_facts_changed
from crm.models import AuditAction, Course, Lesson, Role, Student, TrialLesson, TrialStatus, User
from crm.roles import require_campus, require_role
from crm.services.audit import audit
from crm.services.date_ranges import trial_time_problem

ACTIVE_TRIAL_STATUSES = (TrialStatus.BOOKED, TrialStatus.ATTENDED)


def teacher_busy(*, teacher: User, starts_at: dt.datetime, ends_at: dt.datetime) -> bool:
    """Whether the teacher has a trial or a lesson overlapping [starts_at, ends_at)."""
    window_start = starts_at - dt.timedelta(hours=12)  # longest slot we allow, to keep the scan indexed
    trials = TrialLesson.objects.filter(
        teacher=teacher, status__in=ACTIVE_TRIAL_STATUSES, scheduled_at__lt=ends_at, scheduled_at__gte=window_start
    ).only("scheduled_at", "duration_minutes")
    lessons = Lesson.objects.filter(teacher=teacher, starts_at__lt=ends_at, starts_at__gte=window_start).only(
        "starts_at", "duration_minutes"
    )
    return any(t.scheduled_at + dt.timedelta(minutes=t.duration_minutes) > starts_at for t in trials) or any(
        lesson.starts_at + dt.timedelta(minutes=lesson.duration_minutes) > starts_at for lesson in lessons
    )


class TeacherBusy(ValidationError):
    def __init__(self) -> None:
        super().__init__(
            {
                "scheduled_at": ValidationError(
                    _("The teacher already has a lesson at this time. Choose another time or teacher."),
                    code="teacher_busy",
                )
            }
        )


@transaction.atomic
def trial_book(
    *,
    actor: User,
    student: Student,
    course: Course,
    teacher: User,
    scheduled_at: dt.datetime,
    duration_minutes: int = 60,
) -> TrialLesson:
    """Book a trial. Bookings of one teacher are serialised by locking the teacher's row,
    so two requests for the same slot at the same instant cannot both succeed."""
    require_role(actor, Role.FRONT_DESK, Role.MANAGER)
    require_campus(actor, student.campus_id)
    errors: dict[str, str] = {}
    if course.campus_id != student.campus_id:
        errors["course"] = _("This course is taught at another campus.")
    elif not course.active:
        errors["course"] = _("This course is no longer offered.")
    if teacher.role != Role.TEACHER or teacher.campus_id != student.campus_id or not teacher.is_active:
        errors["teacher"] = _("Choose a teacher of this campus.")
    if not 15 <= duration_minutes <= 240:
        errors["duration_minutes"] = _("A trial lasts between 15 and 240 minutes.")
    problem = trial_time_problem(scheduled_at)
    if problem:
        errors["scheduled_at"] = problem
    if errors:
        raise ValidationError(errors)

    User.objects.select_for_update().filter(pk=teacher.pk).first()
    ends_at = scheduled_at + dt.timedelta(minutes=duration_minutes)
    if teacher_busy(teacher=teacher, starts_at=scheduled_at, ends_at=ends_at):
        raise TeacherBusy()
    try:
        with transaction.atomic():
            trial = TrialLesson.objects.create(
                student=student,
                course=course,
                teacher=teacher,
                scheduled_at=scheduled_at,
                duration_minutes=duration_minutes,
                booked_by=actor,
            )
    except IntegrityError:
        raise TeacherBusy() from None
    audit(actor=actor, action=AuditAction.TRIAL_BOOK, student=student, trial=trial.pk)
    student_facts_changed([student.pk])
    return trial


@transaction.atomic
def trial_feedback_record(
    *,
    actor: User,
    trial: TrialLesson,
    attended: bool,
    rating: int | None = None,
    comment: str = "",
    recommended_level: str = "",
) -> TrialLesson:
    """The teacher records whether the child came and, if so, a rating 1-5 and a comment."""
    require_role(actor, Role.TEACHER, Role.MANAGER)
    require_campus(actor, trial.student.campus_id)
    if actor.role == Role.TEACHER and trial.teacher_id != actor.pk:
        raise PermissionDenied(_("Only the trial's teacher can record its feedback."))
    trial = TrialLesson.objects.select_for_update().get(pk=trial.pk)
    if trial.status == TrialStatus.CANCELLED:
        raise ValidationError(_("This trial was cancelled."))
    errors: dict[str, str] = {}
    comment = text.clean(errors, "comment", comment, TrialLesson)
    recommended_level = text.clean(errors, "recommended_level", recommended_level, TrialLesson)
    if attended:
        if rating is None or not 1 <= rating <= 5:
            errors["rating"] = _("Give a rating from 1 to 5.")
        if not comment and "comment" not in errors:
            errors["comment"] = _("Write a comment for the parents.")
    if errors:
        raise ValidationError(errors)
    trial.status = TrialStatus.ATTENDED if attended else TrialStatus.NO_SHOW
    trial.rating = rating if attended else None
    trial.comment = comment.strip()
    trial.recommended_level = recommended_level.strip()
    trial.feedback_at = timezone.now()
    trial.save(update_fields=["status", "rating", "comment", "recommended_level", "feedback_at"])
    audit(
        actor=actor,
        action=AuditAction.TRIAL_FEEDBACK_RECORD,
        student=trial.student,
        trial=trial.pk,
        status=trial.status,
    )
    student_facts_changed([trial.student_id])
    return trial


@transaction.atomic
def trial_cancel(*, actor: User, trial: TrialLesson, reason: str = "") -> TrialLesson:
    require_role(actor, Role.FRONT_DESK, Role.MANAGER)
    require_campus(actor, trial.student.campus_id)
    trial = TrialLesson.objects.select_for_update().get(pk=trial.pk)
    if trial.status != TrialStatus.BOOKED:
        raise ValidationError(_("Only a booked trial can be cancelled."))
    trial.status = TrialStatus.CANCELLED
    trial.save(update_fields=["status"])
    audit(actor=actor, action=AuditAction.TRIAL_CANCEL, student=trial.student, trial=trial.pk, reason=reason)
    student_facts_changed([trial.student_id])
    return trial
