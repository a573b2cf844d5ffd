"""A parent asks for a trial lesson; the campus's front desk sees it among the follow-ups and
marks it booked (after booking the trial itself) or closed."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm import text
from crm.models import AuditAction, Course, Guardian, Role, Student, User
from crm.roles import require_campus, require_role
from crm.services.audit import audit
from crm.services.date_ranges import trial_time_problem
from parents.models import TrialRequest

# More open requests than this for one child is a client retrying, not a parent asking.
MAX_OPEN_PER_CHILD = 3


@transaction.atomic
def trial_request_create(
    *,
    guardian: Guardian,
    student: Student,
    wished_at: dt.datetime,
    course: Course | None = None,
    subject: str = "",
    note: str = "",
) -> TrialRequest:
    """Record a parent's trial request for their own child (the caller has checked the link)."""
    errors: dict[str, str] = {}
    subject = text.clean(errors, "subject", subject, TrialRequest)
    note = text.clean(errors, "note", note, TrialRequest)
    problem = trial_time_problem(wished_at)
    if problem:
        errors["wished_at"] = problem
    if course is not None and course.campus_id != student.campus_id:
        errors["course"] = _("This course is not taught at your child's campus.")
    if errors:
        raise ValidationError(errors)
    # The child's row queues two requests sent at once, so the limit below holds.
    Student.objects.select_for_update().filter(pk=student.pk).first()
    if TrialRequest.objects.filter(student=student, status=TrialRequest.Status.OPEN).count() >= MAX_OPEN_PER_CHILD:
        raise ValidationError(
            _("The campus already has %(n)s requests for this child waiting; they will call you soon.")
            % {"n": MAX_OPEN_PER_CHILD}
        )
    request = TrialRequest.objects.create(
        guardian=guardian,
        student=student,
        campus_id=student.campus_id,
        course=course,
        subject=subject or (course.subject if course else ""),
        wished_at=wished_at,
        note=note,
    )
    audit(
        actor=None,
        guardian=guardian,
        action=AuditAction.TRIAL_REQUEST,
        student=student,
        request=request.pk,
        wished_at=wished_at.isoformat(),
    )
    return request


@transaction.atomic
def trial_request_close(*, actor: User, request: TrialRequest, booked: bool) -> TrialRequest:
    """The front desk has booked the trial (or could not): the request leaves the list."""
    require_role(actor, Role.FRONT_DESK, Role.MANAGER)
    require_campus(actor, request.campus_id)
    status = TrialRequest.Status.BOOKED if booked else TrialRequest.Status.CLOSED
    changed = TrialRequest.objects.filter(pk=request.pk, status=TrialRequest.Status.OPEN).update(
        status=status, handled_by=actor, handled_at=timezone.now()
    )
    if changed:
        audit(
            actor=actor,
            action=AuditAction.TRIAL_REQUEST_CLOSE,
            student=request.student,
            request=request.pk,
            status=status,
        )
    request.refresh_from_db()
    return request
