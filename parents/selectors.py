"""What a parent may read: their own children (every child linked to the guardian behind their
phone, whichever campus), and those children's lessons, hours and teachers' feedback. Each
read takes the guardian first, so another family's child is never found (a 404)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.models import (
    Attendance,
    Campus,
    Contract,
    ContractStatus,
    Course,
    Guardian,
    Lesson,
    Role,
    Student,
    TrialLesson,
    TrialStatus,
    User,
)
from crm.selectors import in_viewers_campuses
from crm.services.referrals import guardian_by_invite_code, invite_home_campus_id
from parents.models import TrialRequest

UPCOMING = 10
FEEDBACK = 10
HISTORY = 20


def children_of(guardian: Guardian) -> QuerySet[Student]:
    return Student.objects.filter(guardians=guardian).select_related("campus", "pipeline").order_by("birth_date", "pk")


def child_get(*, guardian: Guardian, student_id: int) -> Student:
    child = children_of(guardian).filter(pk=student_id).first()
    if child is None:
        raise Http404
    return child


def hours_left_by_child(children: list[Student]) -> dict[int, Decimal]:
    """Remaining hours on each child's active contracts, in one query."""
    left: dict[int, Decimal] = {c.pk: Decimal("0") for c in children}
    rows = Contract.objects.filter(student__in=children, status=ContractStatus.ACTIVE).values_list(
        "student_id", "hours_bought", "hours_consumed"
    )
    for student_id, bought, consumed in rows:
        left[student_id] += bought - consumed
    return left


@dataclass(frozen=True)
class ChildPage:
    child: Student
    upcoming_lessons: list[Lesson]
    upcoming_trials: list[TrialLesson]
    contracts: list[Contract]
    hours_left: Decimal
    recent_attendance: list[Attendance]
    feedback: list[Attendance | TrialLesson]
    trial_requests: list[TrialRequest]


def child_page(*, guardian: Guardian, student_id: int) -> ChildPage:
    """One child's page in a constant number of queries, whatever the history's length."""
    child = child_get(guardian=guardian, student_id=student_id)
    now = timezone.now()
    lessons = list(
        Lesson.objects.filter(students=child, starts_at__gte=now)
        .select_related("course", "teacher")
        .order_by("starts_at")[:UPCOMING]
    )
    trials = list(
        TrialLesson.objects.filter(student=child, status=TrialStatus.BOOKED, scheduled_at__gte=now)
        .select_related("course", "teacher")
        .order_by("scheduled_at")[:UPCOMING]
    )
    contracts = list(
        Contract.objects.filter(student=child)
        .exclude(status=ContractStatus.CANCELLED)
        .select_related("course")
        .order_by("-signed_at")
    )
    attendance = list(attendance_of(child)[:HISTORY])
    rated: list[Attendance | TrialLesson] = list(
        TrialLesson.objects.filter(student=child)
        .filter(~Q(comment="") | Q(rating__isnull=False))
        .select_related("course", "teacher")
        .order_by("-scheduled_at")[:FEEDBACK]
    )
    remarks = list(
        Attendance.objects.filter(student=child)
        .exclude(feedback="")
        .select_related("contract__course", "teacher")
        .order_by("-lesson_at")[:FEEDBACK]
    )
    feedback = sorted([*rated, *remarks], key=_feedback_at, reverse=True)[:FEEDBACK]
    requests = list(
        TrialRequest.objects.filter(student=child, guardian=guardian)
        .select_related("course")
        .order_by("-created_at")[:UPCOMING]
    )
    left = sum((c.hours_remaining for c in contracts if c.status == ContractStatus.ACTIVE), Decimal("0"))
    return ChildPage(child, lessons, trials, contracts, left, attendance, feedback, requests)


def _feedback_at(row: Attendance | TrialLesson) -> dt.datetime:
    return row.lesson_at if isinstance(row, Attendance) else row.scheduled_at


def attendance_of(child: Student) -> QuerySet[Attendance]:
    # Newest lesson first, as parents read a history (records are sometimes entered late).
    return (
        Attendance.objects.filter(student=child)
        .select_related("contract__course", "teacher")
        .order_by("-lesson_at", "-id")
    )


def trial_courses(child: Student) -> QuerySet[Course]:
    """The courses a parent may ask a trial of: their child's campus's."""
    return Course.objects.filter(campus_id=child.campus_id, active=True).order_by("subject", "name", "pk")


def family_prefetch() -> Prefetch:
    return Prefetch("students", queryset=Student.objects.select_related("campus"))


def trial_requests_for(viewer: User) -> QuerySet[TrialRequest]:
    """Open trial requests in the viewer's follow-ups: their campus's (the front desk, managers;
    an administrator's every campus), oldest first. Teachers have none."""
    if viewer.role not in (Role.FRONT_DESK, Role.MANAGER, Role.ADMIN):
        return TrialRequest.objects.none()
    return (
        in_viewers_campuses(TrialRequest.objects.filter(status=TrialRequest.Status.OPEN), viewer)
        .select_related("student__owner", "guardian", "course", "campus")
        .order_by("created_at", "pk")
    )


# --- referrals (转介绍) ------------------------------------------------------------------------


def signed_contract_exists() -> Exists:
    """A student has signed: any contract not cancelled (refunded or completed ones count)."""
    return Exists(Contract.objects.filter(student=OuterRef("pk")).exclude(status=ContractStatus.CANCELLED))


def invitations_of(guardian: Guardian) -> QuerySet[Student]:
    """The children this parent invited, newest first, with what the invitation page shows."""
    return (
        Student.objects.filter(referred_by=guardian)
        .select_related("pipeline", "referral_reward")
        .annotate(signed=signed_contract_exists())
        .only("pk", "name", "created_at", "pipeline__stage", "referral_reward__status", "referral_reward__hours")
        .order_by("-pk")
    )


def given_name(name: str) -> str:
    """What an inviting parent is shown of a child they invited: the given name, not the surname."""
    return name[1:] if len(name) > 1 else name


@dataclass(frozen=True)
class InviteLanding:
    inviter: Guardian
    campus: Campus
    inviter_display: str


def invite_landing(code: str) -> InviteLanding:
    """Who invites, as a stranger may see it (a surname, never a phone), and where; 404 for a code
    no parent has, or a parent with no child (so no campus)."""
    inviter = guardian_by_invite_code(code)
    campus_id = invite_home_campus_id(inviter) if inviter is not None else None
    if inviter is None or campus_id is None:
        raise Http404
    campus = Campus.objects.get(pk=campus_id)
    surname = inviter.name.strip()[:1]
    display = _("%(surname)s's parent") % {"surname": surname} if surname else _("A parent")
    return InviteLanding(inviter=inviter, campus=campus, inviter_display=display)
