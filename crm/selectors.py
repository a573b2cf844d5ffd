"""Reads for the staff pages, each scoped to what the viewer may see.

Every function here starts from `students_visible_to(viewer)` (or the same campus rule)
and fetches its related rows up front, so a page runs a constant number of queries
whatever the data size.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import TypeVar

from django.db.models import Exists, Model, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone

from crm.models import (
    Attendance,
    Campus,
    Consultation,
    Contract,
    ContractStatus,
    Course,
    Guardian,
    Lesson,
    Role,
    Student,
    StudentGuardian,
    StudentStage,
    StudentTag,
    TrialLesson,
    TrialStatus,
    User,
)
from crm.phones import try_normalize_phone
from crm.roles import sees_all_campuses

Rows = TypeVar("Rows", bound=Model)


def in_viewers_campuses(rows: QuerySet[Rows], viewer: User, *, campus_lookup: str = "campus_id") -> QuerySet[Rows]:
    """The campus rule, for every door (pages, board, pool, both admins): every campus for an
    administrator, the viewer's campus for staff with a role, nothing for anyone else.
    `campus_lookup` leads from the rows to their campus's id."""
    if sees_all_campuses(viewer):
        return rows
    if viewer.campus_id is None or viewer.role is None:
        return rows.none()
    return rows.filter(**{campus_lookup: viewer.campus_id})


def students_visible_to(viewer: User) -> QuerySet[Student]:
    return in_viewers_campuses(Student.objects.all(), viewer)


def stage_rows_visible_to(viewer: User) -> QuerySet[StudentStage]:
    """The StudentStage rows of exactly the students `students_visible_to(viewer)` returns, by the
    same rule, read without joining the student row (the board counts its columns on them)."""
    return in_viewers_campuses(StudentStage.objects.all(), viewer)


def campuses_visible_to(viewer: User) -> QuerySet[Campus]:
    return in_viewers_campuses(Campus.objects.all(), viewer, campus_lookup="pk")


def student_get(*, viewer: User, student_id: int) -> Student:
    """One student the viewer may see, or 404: another campus's student does not exist for them."""
    student = students_visible_to(viewer).select_related("campus", "owner").filter(pk=student_id).first()
    if student is None:
        raise Http404
    return student


def courses_visible_to(viewer: User) -> QuerySet[Course]:
    return in_viewers_campuses(Course.objects.all(), viewer)


def consultations_visible_to(viewer: User) -> QuerySet[Consultation]:
    return in_viewers_campuses(Consultation.objects.all(), viewer, campus_lookup="student__campus_id")


def contracts_visible_to(viewer: User) -> QuerySet[Contract]:
    return in_viewers_campuses(Contract.objects.all(), viewer, campus_lookup="student__campus_id")


def _teachers_own(rows: QuerySet[Rows], viewer: User) -> QuerySet[Rows]:
    """A teacher works with their own trials and lessons only, as their day page shows them."""
    return rows.filter(teacher=viewer) if viewer.role == Role.TEACHER else rows


def trials_visible_to(viewer: User) -> QuerySet[TrialLesson]:
    return _teachers_own(
        in_viewers_campuses(TrialLesson.objects.all(), viewer, campus_lookup="student__campus_id"), viewer
    )


def lessons_visible_to(viewer: User) -> QuerySet[Lesson]:
    return _teachers_own(in_viewers_campuses(Lesson.objects.all(), viewer, campus_lookup="course__campus_id"), viewer)


def attendance_visible_to(viewer: User) -> QuerySet[Attendance]:
    """Attendance records of the viewer's campus; a teacher's, those of the lessons they taught."""
    return _teachers_own(
        in_viewers_campuses(Attendance.objects.all(), viewer, campus_lookup="student__campus_id"), viewer
    )


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = timezone.make_aware(dt.datetime.combine(day, dt.time.min))
    return start, start + dt.timedelta(days=1)


def _tags_prefetch() -> Prefetch:
    return Prefetch("student_tags", queryset=StudentTag.objects.select_related("tag__group"))


# A follow-up overdue by more than this is escalated to the campus manager: their follow-up
# page lists it under "Escalated" with its owner and how long it is overdue, and the owner
# sees it marked. One day: well inside the lead pool's window (lifecycle's
# pool_follow_up_days, default 7), so the manager can step in before the lead is released.
ESCALATE_AFTER = dt.timedelta(days=1)


@dataclass
class FollowUps:
    overdue: list[Student]
    today: list[Student]
    # For a manager's campus view: overdue by more than ESCALATE_AFTER (not repeated in `overdue`).
    escalated: list[Student] = field(default_factory=list)


def followups_for(
    *, viewer: User, today: dt.date | None = None, owner: User | None = None, now: dt.datetime | None = None
) -> FollowUps:
    """Today's and overdue follow-ups. A consultant sees their own students; a manager the
    campus (optionally one owner's), with the follow-ups overdue by more than ESCALATE_AFTER
    apart, as escalated. Each overdue row carries `escalated` (bool)."""
    now = now or timezone.now()
    today = today or timezone.localdate(now)
    start, end = day_bounds(today)
    students = students_visible_to(viewer).filter(next_follow_up_at__lt=end, lost_at__isnull=True)
    if viewer.role == Role.FRONT_DESK:
        students = students.filter(owner=viewer)
    elif owner is not None:
        students = students.filter(owner=owner)
    last = Consultation.objects.filter(student=OuterRef("pk")).order_by("-consulted_at", "-pk")
    rows = list(
        students.select_related("owner", "pipeline")
        .prefetch_related("guardians", _tags_prefetch())
        .annotate(
            last_content=Subquery(last.values("content")[:1]),
            last_intent=Subquery(last.values("intent")[:1]),
            last_consulted_at=Subquery(last.values("consulted_at")[:1]),
        )
        .order_by("next_follow_up_at", "pk")[:500]
    )
    overdue: list[Student] = [s for s in rows if s.next_follow_up_at is not None and s.next_follow_up_at < start]
    for s in overdue:
        s.escalated = s.next_follow_up_at is not None and s.next_follow_up_at < now - ESCALATE_AFTER  # type: ignore[attr-defined]
    escalated: list[Student] = []
    if viewer.role != Role.FRONT_DESK and owner is None:
        escalated = [s for s in overdue if s.escalated]  # type: ignore[attr-defined]
        overdue = [s for s in overdue if not s.escalated]  # type: ignore[attr-defined]
    return FollowUps(
        overdue=overdue,
        today=[s for s in rows if s.next_follow_up_at is not None and s.next_follow_up_at >= start],
        escalated=escalated,
    )


PHONE_CHARACTERS = re.compile(r"^[\d\s+()\-.]+$")


def phone_search(term: str) -> tuple[str, str]:
    """How a search term names a family: ("exact", e164) for a full phone in any format,
    ("digits", digits) for part of one (four digits or more, such as its last four), ("", "")
    for neither."""
    term = term.strip()
    if not PHONE_CHARACTERS.match(term):
        return "", ""
    e164 = try_normalize_phone(term)
    if e164 is not None:
        return "exact", e164
    digits = re.sub(r"\D", "", term)
    if len(digits) >= 4:
        return "digits", digits
    return "", ""


def text_contains(term: str) -> str:
    """The lookup for a name search: case-sensitive `contains` when the term has no letter case
    (Chinese, digits), which finds the same rows as `icontains` at half the cost, as the
    database need not upper-case every name it scans."""
    return "contains" if term.upper() == term.lower() else "icontains"


def student_search_q(term: str, *, student_lookup: str = "pk", name_lookup: str = "name") -> Q:
    """What a student search matches, for every door (the staff list, the board, the admin's
    lists): the child's name, or a guardian's phone typed in any format, or four or more of
    its digits. `student_lookup`/`name_lookup` lead from the searched model to its student.

    A phone goes through the unique phone index; the phone match is a subquery on the
    student-guardian table, so no row is repeated."""
    term = term.strip()
    kind, value = phone_search(term)
    links = StudentGuardian.objects
    if kind == "exact":
        families = links.filter(guardian__phone=value)
    elif kind == "digits":
        families = links.filter(guardian__phone__contains=value)
    else:
        return Q(**{f"{name_lookup}__{text_contains(term)}": term})
    return Q(**{f"{student_lookup}__in": families.values("student_id")})


def students_matching(students: QuerySet[Student], term: str) -> QuerySet[Student]:
    """`students` narrowed by a search term (`student_search_q`); a blank term narrows nothing."""
    return students.filter(student_search_q(term)) if term.strip() else students


def student_search(*, viewer: User, query: str = "", stage: str = "") -> QuerySet[Student]:
    students = students_matching(students_visible_to(viewer), query)
    if stage:
        students = students.filter(pipeline__stage=stage)
    return (
        students.select_related("owner", "campus", "pipeline")
        .prefetch_related("guardians", _tags_prefetch())
        .order_by("-pk")
    )


def teachers_of(campus_id: int | None) -> QuerySet[User]:
    return User.objects.filter(campus=campus_id, groups__name=Role.TEACHER, is_active=True).order_by("username")


def courses_of(campus_id: int | None) -> QuerySet[Course]:
    return Course.objects.filter(campus=campus_id, active=True).order_by("subject", "name")


@dataclass
class RosterEntry:
    student: Student
    attendance: Attendance | None
    contract: Contract | None


@dataclass
class LessonDay:
    lesson: Lesson
    roster: list[RosterEntry]


@dataclass
class TeacherDay:
    day: dt.date
    teacher: User
    trials: list[TrialLesson]
    lessons: list[LessonDay]


def teacher_day(*, viewer: User, teacher: User, day: dt.date) -> TeacherDay:
    """A teacher's trials and lessons on one day, with each roster's attendance and hours left."""
    start, end = day_bounds(day)
    visible = students_visible_to(viewer)
    trials = list(
        TrialLesson.objects.filter(teacher=teacher, scheduled_at__gte=start, scheduled_at__lt=end)
        .exclude(status=TrialStatus.CANCELLED)
        .filter(student__in=visible)
        .select_related("student", "course")
        .prefetch_related("student__guardians")
        .order_by("scheduled_at")
    )
    lessons = Lesson.objects.filter(teacher=teacher, starts_at__gte=start, starts_at__lt=end)
    return TeacherDay(day=day, teacher=teacher, trials=trials, lessons=_lesson_days(lessons, visible))


def lesson_sheet(*, viewer: User, lesson_id: int) -> LessonDay | None:
    """One lesson's roster with its attendance and hours left, as the teacher's day shows it;
    None when the viewer may not see the lesson (taught at another campus)."""
    lessons = Lesson.objects.filter(pk=lesson_id)
    if not sees_all_campuses(viewer):
        lessons = lessons.filter(course__campus=viewer.campus_id)
    days = _lesson_days(lessons, students_visible_to(viewer))
    return days[0] if days else None


def _lesson_days(lessons: QuerySet[Lesson], visible: QuerySet[Student]) -> list[LessonDay]:
    lessons_list = list(
        lessons.select_related("course", "teacher")
        .prefetch_related(
            Prefetch("students", queryset=visible.prefetch_related("guardians").order_by("name")),
            Prefetch("attendances", queryset=Attendance.objects.all()),
        )
        .order_by("starts_at")
    )
    student_ids = {s.pk for lesson in lessons_list for s in lesson.students.all()}
    active_contracts: dict[tuple[int, int], Contract] = {}
    for contract in Contract.objects.filter(student_id__in=student_ids, status=ContractStatus.ACTIVE).order_by(
        "-signed_at", "-pk"
    ):
        active_contracts[(contract.student_id, contract.course_id)] = contract  # oldest wins: it is used first
    days = []
    for lesson in lessons_list:
        recorded = {a.student_id: a for a in lesson.attendances.all()}
        days.append(
            LessonDay(
                lesson=lesson,
                roster=[
                    RosterEntry(s, recorded.get(s.pk), active_contracts.get((s.pk, lesson.course_id)))
                    for s in lesson.students.all()
                ],
            )
        )
    return days


def guardians_visible_to(viewer: User) -> QuerySet[Guardian]:
    """The guardians of the students `students_visible_to(viewer)` returns (a family spanning
    campuses is seen from each of them), as the admin's scoping reads them."""
    links = in_viewers_campuses(
        StudentGuardian.objects.filter(guardian_id=OuterRef("pk")), viewer, campus_lookup="student__campus_id"
    )
    return Guardian.objects.filter(Exists(links))


def guardian_get(*, viewer: User, guardian_id: int) -> Guardian:
    """One guardian the viewer may see, or 404 (a family of another campus does not exist for them)."""
    guardian = guardians_visible_to(viewer).filter(pk=guardian_id).first()
    if guardian is None:
        raise Http404
    return guardian


def guardian_children(viewer: User) -> Prefetch:
    """A guardian's children as the viewer sees them (`visible_children`), fetched with the page."""
    children = students_visible_to(viewer).only("id", "name", "campus_id").order_by("pk")
    return Prefetch("students", queryset=children, to_attr="visible_children")
