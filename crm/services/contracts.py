"""Contracts and the hours they buy: signing, attendance against them, refunds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
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
    Guardian,
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


@transaction.atomic
def contract_bonus_hours_add(*, contract: Contract, hours: Decimal, reason: str, guardian: Guardian) -> Contract:
    """Hours given free on an active contract (a referral reward to `guardian`), not bought by a
    person at the desk: no staff actor. The row lock queues it behind attendance being taken."""
    problem = _precision_problem(hours, HOURS_DIGITS)
    if problem is None and hours <= 0:
        problem = _("The hours must be more than zero.")
    if problem:
        raise ValidationError({"hours": problem})
    contract = Contract.objects.select_for_update().get(pk=contract.pk)
    if contract.status != ContractStatus.ACTIVE:
        raise ValidationError(_("Only an active contract can be given hours."))
    if _precision_problem(contract.hours_bought + hours, HOURS_DIGITS):
        raise ValidationError({"hours": _("This number is too large.")})
    contract.hours_bought = contract.hours_bought + hours
    contract.save(update_fields=["hours_bought"])
    audit(
        actor=None,
        guardian=guardian,
        action=AuditAction.REFERRAL_REWARD,
        student=contract.student,
        contract=contract.pk,
        hours=hours,
        reason=reason,
    )
    student_facts_changed([contract.student_id])
    return contract


def contract_for_attendance(*, student: Student, course: Course | None) -> Contract | None:
    """The active contract hours are taken from: of the lesson's course, oldest first."""
    contracts = Contract.objects.filter(student=student, status=ContractStatus.ACTIVE)
    if course is not None:
        contracts = contracts.filter(course=course)
    return contracts.order_by("signed_at", "pk").first()


def attendance_hours(*, status: str, hours: Decimal) -> Decimal:
    """The hours a lesson of `hours` costs a student who was `status` (docs/attendance.md).

    Present or absent without notice, the lesson was held for them and is charged; an
    excused leave (请假) costs nothing. Every door records through this one rule.
    """
    return Decimal("0") if status == AttendanceStatus.LEAVE else hours


def _hours_problem(hours: Decimal) -> str | None:
    problem = _precision_problem(hours, ATTENDANCE_HOURS_DIGITS)
    if problem:
        return problem
    if hours < 0:
        return _("Hours cannot be negative.")
    return None


def _hours_left_error(remaining: Decimal, hours: Decimal) -> ValidationError:
    return ValidationError(
        {
            "hours": ValidationError(
                _("Only %(remaining)s hours are left on this contract; %(hours)s cannot be recorded.")
                % {"remaining": remaining, "hours": hours},
                code="hours_exceeded",
            )
        }
    )


@transaction.atomic
def attendance_record(
    *,
    actor: User,
    student: Student,
    hours: Decimal | None = None,
    status: str = AttendanceStatus.PRESENT,
    lesson: Lesson | None = None,
    contract: Contract | None = None,
    lesson_at: dt.datetime | None = None,
    teacher: User | None = None,
    feedback: str = "",
) -> Attendance:
    """Record a student's attendance and take the hours from their contract.

    `hours` is the lesson's length in hours (the lesson's own when left out); what the
    student is charged follows from `status` by `attendance_hours`. The contract row is
    locked, so concurrent records cannot together exceed the hours bought; the database
    constraint holds the same line.
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
        if hours is None:
            hours = lesson.hours
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
    if hours is None:
        raise ValidationError({"hours": _("Enter the lesson's hours.")})
    problem = _hours_problem(hours)
    if problem:
        raise ValidationError({"hours": problem})
    hours = attendance_hours(status=status, hours=hours)
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
        raise _hours_left_error(remaining, hours)
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


@dataclass(frozen=True)
class AttendanceMark:
    """One student's line of a lesson's attendance sheet."""

    student: Student
    status: str = AttendanceStatus.PRESENT
    feedback: str = ""


@transaction.atomic
def lesson_attendance_record(*, actor: User, lesson: Lesson, marks: Sequence[AttendanceMark]) -> list[Attendance]:
    """Record a whole lesson's attendance at once: every row, or none and every reason.

    The lesson row is locked, so two people saving the same sheet are served one after the
    other and the second is told which students are already recorded.
    """
    require_role(actor, Role.TEACHER, Role.MANAGER)
    lesson = Lesson.objects.select_for_update().select_related("course", "teacher").get(pk=lesson.pk)
    if not marks:
        raise ValidationError(_("There is no student to record on this lesson."))
    on_roster = set(lesson.students.values_list("pk", flat=True))
    errors: list[str] = []
    seen: set[int] = set()
    recorded: list[Attendance] = []
    # Contracts are locked in student order, so two sheets sharing students cannot deadlock.
    for mark in sorted(marks, key=lambda m: m.student.pk):
        name = mark.student.name
        if mark.student.pk in seen:
            errors.append(_("%(name)s: listed twice.") % {"name": name})
            continue
        seen.add(mark.student.pk)
        if mark.student.pk not in on_roster:
            errors.append(_("%(name)s: not on this lesson's roster.") % {"name": name})
            continue
        try:
            recorded.append(
                attendance_record(
                    actor=actor, student=mark.student, lesson=lesson, status=mark.status, feedback=mark.feedback
                )
            )
        except ValidationError as exc:
            errors.append(_("%(name)s: %(problem)s") % {"name": name, "problem": " ".join(exc.messages)})
    if errors:
        raise ValidationError(errors)
    return recorded


def attendance_correctable_by(actor: User, attendance: Attendance) -> bool:
    """Who may correct a saved record: the lesson's teacher on the lesson's day (the class is
    still fresh in mind), a manager of the campus or an administrator at any time."""
    role = actor.role
    if role == Role.TEACHER:
        return attendance.teacher_id == actor.pk and timezone.localdate(attendance.lesson_at) == timezone.localdate()
    return role in (Role.MANAGER, Role.ADMIN) or actor.is_superuser


@transaction.atomic
def attendance_correct(
    *,
    actor: User,
    attendance: Attendance,
    status: str,
    hours: Decimal | None = None,
    reason: str = "",
) -> Attendance:
    """Correct a saved attendance record's status and hours, giving hours back to its contract
    or taking more, by the same rule as recording (`attendance_hours`).

    `hours` is the lesson's length in hours; left out, the lesson's own, else the record's.
    """
    require_role(actor, Role.TEACHER, Role.MANAGER)
    require_campus(actor, attendance.student.campus_id)
    if actor.role == Role.TEACHER and attendance.teacher_id != actor.pk:
        raise PermissionDenied(_("Only the lesson's teacher can correct its attendance."))
    reason = text.tidy(reason)
    if len(reason) > text.LINE:
        raise ValidationError({"reason": text.too_long(_("Why"), reason, text.LINE)})
    if not attendance_correctable_by(actor, attendance):
        raise ValidationError(
            _("A teacher corrects attendance only on the day of the lesson; ask a manager to correct it.")
        )
    if status not in AttendanceStatus.values:
        raise ValidationError({"status": _("Unknown attendance status.")})
    # The contract first, then the record: the order attendance_record takes them in.
    contract = Contract.objects.select_for_update().get(pk=attendance.contract_id)
    attendance = (
        Attendance.objects.select_for_update(of=("self",)).select_related("lesson", "student").get(pk=attendance.pk)
    )
    if hours is None:
        hours = attendance.lesson.hours if attendance.lesson is not None else attendance.hours
        if status != AttendanceStatus.LEAVE and hours == 0:
            raise ValidationError({"hours": _("Enter the lesson's hours.")})
    problem = _hours_problem(hours)
    if problem:
        raise ValidationError({"hours": problem})
    charged = attendance_hours(status=status, hours=hours)
    if status == attendance.status and charged == attendance.hours:
        raise ValidationError(_("Nothing to correct: the record already says this."))
    delta = charged - attendance.hours
    if delta and contract.status not in (ContractStatus.ACTIVE, ContractStatus.COMPLETED):
        raise ValidationError({"hours": _("This contract was refunded or cancelled: its hours can no longer change.")})
    remaining = contract.hours_bought - contract.hours_consumed
    if delta > remaining:
        raise _hours_left_error(remaining, delta)
    consumed = contract.hours_consumed + delta
    contract_status = contract.status
    if contract_status == ContractStatus.ACTIVE and consumed == contract.hours_bought:
        contract_status = ContractStatus.COMPLETED
    elif contract_status == ContractStatus.COMPLETED and consumed < contract.hours_bought:
        contract_status = ContractStatus.ACTIVE  # hours given back: the contract is open again
    Contract.objects.filter(pk=contract.pk).update(hours_consumed=F("hours_consumed") + delta, status=contract_status)
    before = (attendance.status, attendance.hours)
    attendance.status, attendance.hours = status, charged
    attendance.save(update_fields=["status", "hours"])
    audit(
        actor=actor,
        action=AuditAction.ATTENDANCE_CORRECT,
        student=attendance.student,
        attendance=attendance.pk,
        status=f"{before[0]} -> {status}",
        hours=f"{before[1]} -> {charged}",
        reason=reason,
    )
    student_facts_changed([attendance.student_id])
    return attendance
