"""Contracts and the hours they buy: signing, attendance against them, refunds."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from crm import text
from crm.events import student_facts_changed
from crm.models import (
    Attendance,
    AttendanceStatus,
    AuditAction,
    Contract,
    ContractStatus,
    Course,
    Lesson,
    Role,
    Student,
    User,
)
from crm.roles import require_campus, require_role
from crm.services.audit import audit
from crm.services.date_ranges import lesson_at_problem, signed_at_problem, valid_until_problem

# The columns' precision (crm.models): more digits would be rounded or overflow in the database.
HOURS_DIGITS = (7, 1)  # Contract.hours_bought / hours_consumed
ATTENDANCE_HOURS_DIGITS = (4, 1)  # Attendance.hours
MONEY_DIGITS = (12, 2)  # Contract.amount / paid_amount / refund_amount


def _precision_problem(value: Decimal, digits: tuple[int, int]) -> str | None:
    """Why `value` does not fit a DecimalField(max_digits, decimal_places), or None."""
    max_digits, places = digits
    if not value.is_finite():
        return _("Enter a number.")
    if abs(value) >= Decimal(10) ** (max_digits - places):
        return _("This number is too large.")
    if value != value.quantize(Decimal(1).scaleb(-places)):
        return _("Use at most %(places)d decimal place(s).") % {"places": places}
    return None


@transaction.atomic
def contract_sign(
    *,
    actor: User,
    student: Student,
    course: Course,
    hours_bought: Decimal,
    amount: Decimal,
    paid_amount: Decimal,
    signed_at: dt.datetime | None = None,
    valid_until: dt.date | None = None,
) -> Contract:
    require_role(actor, Role.FRONT_DESK, Role.MANAGER)
    require_campus(actor, student.campus_id)
    signed_at = signed_at or timezone.now()
    errors: dict[str, str] = {}
    if course.campus_id != student.campus_id:
        errors["course"] = _("This course is taught at another campus.")
    for field, value, digits in (
        ("hours_bought", hours_bought, HOURS_DIGITS),
        ("amount", amount, MONEY_DIGITS),
        ("paid_amount", paid_amount, MONEY_DIGITS),
    ):
        problem = _precision_problem(value, digits)
        if problem:
            errors[field] = problem
    if errors:
        raise ValidationError(errors)
    if hours_bought <= 0:
        errors["hours_bought"] = _("Hours bought must be more than zero.")
    if amount < 0:
        errors["amount"] = _("The amount cannot be negative.")
    if paid_amount < 0:
        errors["paid_amount"] = _("The paid amount cannot be negative.")
    elif paid_amount > amount:
        errors["paid_amount"] = _("The paid amount cannot exceed the contract amount.")
    problem = signed_at_problem(signed_at)
    if problem:
        errors["signed_at"] = problem
    problem = valid_until_problem(valid_until, signed_at=signed_at) if valid_until else None
    if problem:
        errors["valid_until"] = problem
    if errors:
        raise ValidationError(errors)
    student = Student.objects.select_for_update().get(pk=student.pk)
    contract = Contract.objects.create(
        student=student,
        course=course,
        hours_bought=hours_bought,
        amount=amount,
        paid_amount=paid_amount,
        signed_at=signed_at,
        valid_until=valid_until,
        signed_by=actor,
    )
    if student.next_follow_up_at is not None:
        student.next_follow_up_at = None
        student.save(update_fields=["next_follow_up_at", "updated_at"])
    audit(actor=actor, action=AuditAction.CONTRACT_SIGN, student=student, contract=contract.pk, amount=amount)
    student_facts_changed([student.pk])
    return contract


@transaction.atomic
def contract_refund(*, actor: User, contract: Contract, amount: Decimal, reason: str) -> Contract:
    require_role(actor, Role.MANAGER)
    require_campus(actor, contract.student.campus_id)
    contract = Contract.objects.select_for_update().get(pk=contract.pk)
    errors: dict[str, str] = {}
    if contract.status != ContractStatus.ACTIVE:
        errors["__all__"] = _("Only an active contract can be refunded.")
    problem = _precision_problem(amount, MONEY_DIGITS)
    if problem:
        errors["amount"] = problem
    elif amount < 0:
        errors["amount"] = _("The refund cannot be negative.")
    elif amount > contract.paid_amount:
        errors["amount"] = _("The refund cannot exceed the %(paid)s paid.") % {"paid": contract.paid_amount}
    reason = text.clean(errors, "reason", reason, Contract, "refund_reason")
    if not reason:
        errors["reason"] = _("Say why the contract is refunded.")
    if errors:
        raise ValidationError(errors)
    contract.status = ContractStatus.REFUNDED
    contract.refund_amount = amount
    contract.refund_reason = reason.strip()
    contract.refunded_at = timezone.now()
    contract.save(update_fields=["status", "refund_amount", "refund_reason", "refunded_at"])
    audit(
        actor=actor, action=AuditAction.CONTRACT_REFUND, student=contract.student, contract=contract.pk, amount=amount
    )
    student_facts_changed([contract.student_id])
    return contract


def contract_for_attendance(*, student: Student, course: Course | None) -> Contract | None:
    """The active contract hours are taken from: of the lesson's course, oldest first."""
    contracts = Contract.objects.filter(student=student, status=ContractStatus.ACTIVE)
    if course is not None:
        contracts = contracts.filter(course=course)
    return contracts.order_by("signed_at", "pk").first()


@transaction.atomic
def attendance_record(
    *,
    actor: User,
    student: Student,
    hours: Decimal,
    status: str = AttendanceStatus.PRESENT,
    lesson: Lesson | None = None,
    contract: Contract | None = None,
    lesson_at: dt.datetime | None = None,
    teacher: User | None = None,
    feedback: str = "",
) -> Attendance:
    """Record a student's attendance and take the hours from their contract.

    The contract row is locked, so concurrent records cannot together exceed the hours
    bought; the database constraint holds the same line.
    """
    require_role(actor, Role.TEACHER, Role.MANAGER)
    require_campus(actor, student.campus_id)
    actor_is_teacher = actor.role == Role.TEACHER
    if lesson is not None:
        if actor_is_teacher and lesson.teacher_id != actor.pk:
            raise PermissionDenied(_("Only the lesson's teacher can record its attendance."))
        if lesson.course.campus_id != student.campus_id:
            raise ValidationError({"lesson": _("This lesson is taught at another campus.")})
        teacher = teacher or lesson.teacher
        lesson_at = lesson_at or lesson.starts_at
    teacher = teacher or actor
    if actor_is_teacher and teacher.pk != actor.pk:
        raise PermissionDenied(_("A teacher records attendance only for their own lessons."))
    lesson_at = lesson_at or timezone.now()
    problem = lesson_at_problem(lesson_at)
    if problem:
        raise ValidationError({"lesson_at": problem})
    too_long: dict[str, str] = {}
    feedback = text.clean(too_long, "feedback", feedback, Attendance)
    if too_long:
        raise ValidationError(too_long)
    if status not in AttendanceStatus.values:
        raise ValidationError({"status": _("Unknown attendance status.")})
    problem = _precision_problem(hours, ATTENDANCE_HOURS_DIGITS)
    if problem:
        raise ValidationError({"hours": problem})
    if hours < 0:
        raise ValidationError({"hours": _("Hours cannot be negative.")})
    if contract is None:
        contract = contract_for_attendance(student=student, course=lesson.course if lesson else None)
        if contract is None:
            raise ValidationError(_("%(name)s has no active contract to take hours from.") % {"name": student.name})
    contract = Contract.objects.select_for_update().get(pk=contract.pk)
    if contract.student_id != student.pk:
        raise ValidationError({"contract": _("This contract belongs to another student.")})
    if lesson is not None and contract.course_id != lesson.course_id:
        raise ValidationError({"contract": _("This contract is for another course than the lesson's.")})
    if contract.status != ContractStatus.ACTIVE:
        raise ValidationError({"contract": _("This contract is no longer active.")})
    remaining = contract.hours_bought - contract.hours_consumed
    if hours > remaining:
        raise ValidationError(
            {
                "hours": ValidationError(
                    _("Only %(remaining)s hours are left on this contract; %(hours)s cannot be recorded.")
                    % {"remaining": remaining, "hours": hours},
                    code="hours_exceeded",
                )
            }
        )
    try:
        with transaction.atomic():
            attendance = Attendance.objects.create(
                student=student,
                contract=contract,
                lesson=lesson,
                lesson_at=lesson_at,
                status=status,
                hours=hours,
                teacher=teacher,
                feedback=feedback.strip(),
                recorded_by=actor,
            )
    except IntegrityError:
        raise ValidationError(_("Attendance for this lesson is already recorded.")) from None
    fully_used = hours == remaining
    Contract.objects.filter(pk=contract.pk).update(
        hours_consumed=F("hours_consumed") + hours,
        **({"status": ContractStatus.COMPLETED} if fully_used else {}),
    )
    audit(actor=actor, action=AuditAction.ATTENDANCE_RECORD, student=student, attendance=attendance.pk, hours=hours)
    student_facts_changed([student.pk])
    return attendance
