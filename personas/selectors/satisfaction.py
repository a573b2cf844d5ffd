"""Reads about the parents' satisfaction: which of a guardian's children their question is due
for, a student's feedback figures for the persona card, and the care tasks in a viewer's
follow-ups. Each runs a constant number of queries."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Avg, Case, Count, IntegerField, OuterRef, QuerySet, Subquery, Sum, Value, When, Window
from django.db.models.functions import Coalesce

from crm.models import Attendance, AttendanceStatus, Campus, Guardian, Role, Student, User
from crm.roles import sees_all_campuses
from crm.selectors import in_viewers_campuses
from personas.models import (
    NPS_PASSIVE_FROM,
    NPS_PROMOTER_FROM,
    CareTask,
    CareTaskStatus,
    PersonaSettings,
    SatisfactionAnswer,
)
from personas.rules import SatisfactionSchedule, satisfaction_due


def schedule_of(campus: Campus) -> SatisfactionSchedule:
    """The campus's satisfaction rule; the defaults for a campus whose settings row is not made yet."""
    try:
        row: PersonaSettings = campus.persona_settings  # type: ignore[attr-defined]
    except PersonaSettings.DoesNotExist:
        return SatisfactionSchedule()
    return SatisfactionSchedule(row.satisfaction_after_lessons, row.satisfaction_every_days)


def with_satisfaction_facts(students: QuerySet[Student]) -> QuerySet[Student]:
    """The rule's inputs on each student row: lessons attended and the last answer's time
    (subqueries on the (student, time) indexes, so a family's children are one query)."""
    lessons = (
        Attendance.objects.filter(student=OuterRef("pk"), status=AttendanceStatus.PRESENT)
        .order_by()
        .values("student")
        .annotate(n=Count("pk"))
        .values("n")
    )
    last = SatisfactionAnswer.objects.filter(student=OuterRef("pk")).order_by("-answered_at").values("answered_at")[:1]
    return students.annotate(
        lessons_attended=Coalesce(Subquery(lessons, output_field=IntegerField()), Value(0)),
        last_answered_at=Subquery(last),
    )


@dataclass(frozen=True)
class SatisfactionDue:
    student: Student
    lessons_attended: int
    last_answered_at: dt.datetime | None


def satisfaction_due_for(*, guardian: Guardian, now: dt.datetime) -> list[SatisfactionDue]:
    """The guardian's children their question is due for now, in one query (a family has a few
    children, so the pure rule decides in Python, the same rule the answer is checked against)."""
    children = with_satisfaction_facts(
        Student.objects.filter(guardians=guardian).select_related("campus__persona_settings").order_by("pk")
    )
    return [
        SatisfactionDue(child, child.lessons_attended, child.last_answered_at)  # type: ignore[attr-defined]
        for child in children
        if satisfaction_due(child.lessons_attended, child.last_answered_at, now, schedule_of(child.campus))  # type: ignore[attr-defined]
    ]


@dataclass(frozen=True)
class SatisfactionFigures:
    """The card's satisfaction figures: the latest answer, how many, their average and the Net
    Promoter Score over them (share of promoters minus share of detractors, in points)."""

    latest: SatisfactionAnswer | None
    count: int = 0
    average: Decimal | None = None
    promoters: int = 0
    detractors: int = 0

    @property
    def nps(self) -> int | None:
        if not self.count:
            return None
        return round((self.promoters - self.detractors) * 100 / self.count)

    @property
    def latest_category_label(self) -> str:
        return str(self.latest.category.label) if self.latest else ""


def _counted(condition: When) -> Sum:
    return Sum(Case(condition, default=Value(0), output_field=IntegerField()))


def satisfaction_figures(student_id: int) -> SatisfactionFigures:
    """One query: the newest answer, carrying the totals over every answer as window aggregates
    (an empty window, OVER (), is the whole of the student's answers, computed before the LIMIT)."""
    latest = (
        SatisfactionAnswer.objects.filter(student_id=student_id)
        .annotate(
            total=Window(Count("pk")),
            mean=Window(Avg("score")),
            promoters=Window(_counted(When(score__gte=NPS_PROMOTER_FROM, then=Value(1)))),
            detractors=Window(_counted(When(score__lt=NPS_PASSIVE_FROM, then=Value(1)))),
        )
        .order_by("-answered_at", "-pk")
        .first()
    )
    if latest is None:
        return SatisfactionFigures(latest=None)
    row: Any = latest
    mean = Decimal(str(row.mean)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return SatisfactionFigures(
        latest=latest, count=row.total, average=mean, promoters=row.promoters, detractors=row.detractors
    )


def care_tasks_for(viewer: User) -> QuerySet[CareTask]:
    """Open care tasks in the viewer's follow-ups: their own (a consultant), or every one of their
    campus, those with no consultant included (a manager; an administrator's every campus)."""
    tasks = in_viewers_campuses(
        CareTask.objects.filter(status=CareTaskStatus.OPEN), viewer, campus_lookup="student__campus_id"
    )
    if viewer.role == Role.FRONT_DESK:
        tasks = tasks.filter(consultant=viewer)
    elif viewer.role != Role.MANAGER and not sees_all_campuses(viewer):
        return tasks.none()
    return (
        tasks.select_related("student", "consultant", "answer__guardian")
        .prefetch_related("student__guardians")
        .order_by("created_at", "pk")
    )


__all__ = [
    "SatisfactionDue",
    "SatisfactionFigures",
    "care_tasks_for",
    "satisfaction_due_for",
    "satisfaction_figures",
    "schedule_of",
    "with_satisfaction_facts",
]
