"""Reads of the lifecycle app: the pipeline board.

The board's first render runs a constant number of queries whatever the data size:
one query counting the eight columns (each count stops at COUNT_CAP), one UNION ALL of eight small ordered
`LIMIT` queries for the first page of every column (each is a range scan of crm.StudentStage's
index on (campus, stage, changed_at, student), or (stage, changed_at, student) across
campuses), then the cards' rows with their stage, owner and activity, and their tags.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import ngettext

from crm.models import Stage, Student, StudentTag, User
from crm.selectors import students_visible_to
from lifecycle.filters import Flag
from lifecycle.models import LifecycleSettings
from lifecycle.reasons import flag_reasons
from lifecycle.rules import Thresholds
from lifecycle.services.facts import thresholds_of

PAGE_SIZE = 20
# A column counts its cards exactly up to this many and shows "50,000+" beyond: each count is
# then a bounded index range, so the board of an administrator over a million students renders
# as fast as a campus's (an exact count of a million rows costs about 200 ms on its own).
COUNT_CAP = 50_000
# Newest arrival in a column first. Matches StudentStage's indexes (campus, stage, -changed_at,
# -student) and (stage, -changed_at, -student): every column's page is then a short index range
# scan, whatever the table's size.
BOARD_ORDER = ("-pipeline__changed_at", "-pipeline__student")


@dataclass
class CardFlag:
    code: str
    label: str
    reason: str = ""


@dataclass
class BoardCard:
    student: Student
    days_in_stage: int | None
    follow_up: str  # "overdue", "today", "later" or ""
    flags: list[CardFlag] = field(default_factory=list)
    tags: list[StudentTag] = field(default_factory=list)

    @property
    def days_label(self) -> str:
        if self.days_in_stage is None:
            return ""
        return ngettext("%(days)d day", "%(days)d days", self.days_in_stage) % {"days": self.days_in_stage}


@dataclass
class BoardColumn:
    stage: str
    label: str
    count: int
    cards: list[BoardCard]
    next_offset: int | None  # where "load more" continues, None when the column is complete

    @property
    def count_label(self) -> str:
        return count_label(self.count)


def _campus_thresholds(student: Student) -> Thresholds:
    """The campus's thresholds, fetched with the card (select_related), or the defaults."""
    try:
        row = student.campus.lifecycle_settings
    except LifecycleSettings.DoesNotExist:
        return Thresholds()
    return thresholds_of(row)


def _card_flags(student: Student) -> list[CardFlag]:
    flags = student.pipeline
    if not (flags.at_risk or flags.renewal_due):
        return []
    activity = getattr(student, "activity", None)  # a missing reverse one-to-one raises; getattr answers None
    labels = dict(Flag.choices)
    reason = "; ".join(flag_reasons(flags, activity, _campus_thresholds(student)))
    return [
        CardFlag(code=code, label=str(labels[code]), reason=reason)
        for code, on in (("at_risk", flags.at_risk), ("renewal_due", flags.renewal_due))
        if on
    ]


def _follow_up_state(student: Student, now: dt.datetime) -> str:
    due = student.next_follow_up_at
    if due is None:
        return ""
    if due < now:
        return "overdue"
    if timezone.localdate(due) == timezone.localdate(now):
        return "today"
    return "later"


def board_card_for(student: Student, now: dt.datetime | None = None) -> BoardCard:
    now = now or timezone.now()
    since = student.stage_changed_at or student.created_at
    return BoardCard(
        student=student,
        days_in_stage=(now - since).days if since else None,
        follow_up=_follow_up_state(student, now),
        flags=_card_flags(student),
        tags=list(student.student_tags.all()),
    )


def _with_card_relations(students: QuerySet[Student]) -> QuerySet[Student]:
    return students.select_related("pipeline", "owner", "activity", "campus__lifecycle_settings").prefetch_related(
        Prefetch("student_tags", queryset=StudentTag.objects.select_related("tag__group").order_by("tag_id"))
    )


def _order_key(student: Student) -> tuple[bool, dt.datetime, int]:
    """BOARD_ORDER in Python: PostgreSQL puts NULLs first in a descending order."""
    changed = student.stage_changed_at
    return (changed is None, changed or dt.datetime.min.replace(tzinfo=dt.UTC), student.pk)


def board_counts(students: QuerySet[Student]) -> dict[str, int]:
    """Every column's count, up to COUNT_CAP + 1 (more than the cap), in one query."""
    parts: list[str] = []
    params: list[Any] = []
    for stage in Stage.values:
        sql, stage_params = (
            students.filter(pipeline__stage=stage).order_by().values("pk")[: COUNT_CAP + 1].query.sql_with_params()
        )
        parts.append(f"(SELECT count(*) FROM ({sql}) AS column_{len(parts)})")
        params.extend(stage_params)
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        row = cursor.fetchone()
    assert row is not None
    return dict(zip(Stage.values, row, strict=True))


def count_label(count: int) -> str:
    return f"{COUNT_CAP:,}+" if count > COUNT_CAP else f"{count:,}"


def board_first_pages(students: QuerySet[Student], stages: list[str]) -> dict[str, list[BoardCard]]:
    """The first PAGE_SIZE + 1 cards of every column in one query (the extra one says "more")."""
    if not stages:
        return {}
    parts = [
        students.filter(pipeline__stage=stage).order_by(*BOARD_ORDER).values_list("pk", flat=True)[: PAGE_SIZE + 1]
        for stage in stages
    ]
    if connection.features.supports_slicing_ordering_in_compound:
        ids = list(parts[0].union(*parts[1:], all=True)) if len(parts) > 1 else list(parts[0])
    else:  # SQLite (the embedded default) cannot LIMIT inside a UNION: one small query per column
        ids = [pk for part in parts for pk in part]
    if not ids:
        return {stage: [] for stage in stages}
    now = timezone.now()
    rows = sorted(_with_card_relations(Student.objects.filter(pk__in=ids)), key=_order_key, reverse=True)
    pages: dict[str, list[BoardCard]] = {stage: [] for stage in stages}
    for student in rows:
        pages.setdefault(student.stage, []).append(board_card_for(student, now))
    return pages


def board_column_page(students: QuerySet[Student], stage: str, offset: int) -> list[BoardCard]:
    """One more page of one column: PAGE_SIZE + 1 cards from `offset`."""
    rows = list(
        _with_card_relations(students.filter(pipeline__stage=stage).order_by(*BOARD_ORDER))[
            offset : offset + PAGE_SIZE + 1
        ]
    )
    now = timezone.now()
    return [board_card_for(student, now) for student in rows]


def _column(stage: str, count: int, cards: list[BoardCard], offset: int) -> BoardColumn:
    more = len(cards) > PAGE_SIZE
    return BoardColumn(
        stage=stage,
        label=str(Stage(stage).label),
        count=count,
        cards=cards[:PAGE_SIZE],
        next_offset=offset + PAGE_SIZE if more else None,
    )


def board_columns(students: QuerySet[Student]) -> list[BoardColumn]:
    """The board's first render: every stage's column with its count and first page."""
    counts = board_counts(students)
    stages = [stage for stage in Stage.values if counts[stage]]
    pages = board_first_pages(students, stages)
    return [_column(stage, counts[stage], pages.get(stage, []), 0) for stage in Stage.values]


def board_column(students: QuerySet[Student], stage: str, offset: int) -> BoardColumn:
    return _column(stage, 0, board_column_page(students, stage, offset), offset)


def board_card_get(*, viewer: User, student_id: int) -> BoardCard:
    """One card, re-read after a fact was recorded (the engine may have moved it)."""
    student = _with_card_relations(students_visible_to(viewer)).filter(pk=student_id).first()
    if student is None:
        raise Http404
    return board_card_for(student)
