"""Reads of the lifecycle app: the pipeline board.

The board's first render runs a constant number of queries whatever the data size:
one query counting the eight columns (each count stops at COUNT_CAP), one UNION ALL of eight small ordered
`LIMIT` queries for the first page of every column in every campus (each is a range scan of
crm.StudentStage's index on (campus, stage, changed_at, student)), then the cards' rows with
their stage, owner and activity, and their tags. A board over every campus first reads the
campuses' keys.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import F, Prefetch, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import ngettext

from crm.models import Stage, Student, StudentStage, StudentTag, User
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
# Newest arrival in a column first. Matches StudentStage's index (campus, stage, -changed_at,
# -student): every column's page in a campus is then a short index range scan, whatever the
# table's size.
# NULLs first, said outright: PostgreSQL's default for a descending order (the index's order), but
# not SQLite's, and the columns of several campuses are merged in Python in this order (_order_key).
BOARD_ORDER = (F("pipeline__changed_at").desc(nulls_first=True), F("pipeline__student").desc())


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
        return days_label(self.days_in_stage)


def days_label(days: int) -> str:
    """ "N 天": the days a student has been in their stage, as the board and the history say it."""
    return ngettext("%(days)d day", "%(days)d days", days) % {"days": days}


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
    flags = student.stage_row()
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
    return BoardCard(
        student=student,
        days_in_stage=student.days_in_stage(now),
        follow_up=_follow_up_state(student, now),
        flags=_card_flags(student),
        tags=list(student.student_tags.all()),
    )


def _with_card_relations(students: QuerySet[Student]) -> QuerySet[Student]:
    return students.select_related("pipeline", "owner", "activity", "campus__lifecycle_settings").prefetch_related(
        Prefetch("student_tags", queryset=StudentTag.objects.select_related("tag__group").order_by("tag_id"))
    )


Key = tuple[bool, dt.datetime, int]


def _order_key(changed: dt.datetime | None, pk: int) -> Key:
    """BOARD_ORDER in Python, reversed (NULLs first)."""
    return (changed is None, changed or dt.datetime.min.replace(tzinfo=dt.UTC), pk)


def _column_part(students: QuerySet[Student], stage: str, campus_id: int) -> QuerySet[Student]:
    """A column's students in one campus: a range of StudentStage's index (campus, stage,
    -changed_at, -student). PostgreSQL 15 cannot skip through that index from campus to campus,
    so a column over several campuses is the union of its campuses' ranges (one index instead of
    a second one the nightly run would also write)."""
    return students.filter(pipeline__stage=stage).filter(pipeline__campus_id=campus_id)


# Stand-ins for a part's stage and campus while its SQL is compiled once (see _parts_sql).
STAGE_STAND_IN = "stage-stand-in"
CAMPUS_STAND_IN = -1_999_999_937

PartKey = tuple[str, int]  # (stage, campus id)


def _parts_sql(build: Callable[[str, int], QuerySet[Any]], keys: list[PartKey]) -> list[tuple[str, list[Any]]]:
    """The SQL and parameters of `build(stage, campus_id)` for every key. The parts differ only in
    those two parameters, so one is compiled, with stand-ins, and the others reuse its text: the
    ORM's compilation of the eighty parts of an all-campus board cost as much as their queries.
    Raises EmptyResultSet if the parts can match nothing (the viewer sees no student)."""
    sql, params = build(STAGE_STAND_IN, CAMPUS_STAND_IN).query.sql_with_params()
    stage_at = [i for i, value in enumerate(params) if value == STAGE_STAND_IN]
    campus_at = [i for i, value in enumerate(params) if value == CAMPUS_STAND_IN]
    if len(stage_at) != 1 or len(campus_at) != 1:  # a shape this function does not know: compile each
        return [
            (part_sql, list(part_params))
            for part_sql, part_params in (build(stage, campus_id).query.sql_with_params() for stage, campus_id in keys)
        ]
    parts = []
    for stage, campus_id in keys:
        values = list(params)
        values[stage_at[0]], values[campus_at[0]] = stage, campus_id
        parts.append((sql, values))
    return parts


def _union_rows(build: Callable[[str, int], QuerySet[Any]], keys: list[PartKey]) -> list[Any]:
    """The rows of `build(stage, campus_id)` for every key, each an ordered slice: one UNION ALL
    query on PostgreSQL."""
    if not keys:
        return []
    if not connection.features.supports_slicing_ordering_in_compound:
        # SQLite (the embedded default) cannot LIMIT inside a UNION: one small query per part.
        return [row for stage, campus_id in keys for row in build(stage, campus_id)]
    try:
        parts = _parts_sql(build, keys)
    except EmptyResultSet:
        return []
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(f"({sql})" for sql, _ in parts), [p for _, values in parts for p in values])
        return cursor.fetchall()


def board_counts(
    students: QuerySet[Student], campus_ids: list[int], stage_rows: QuerySet[StudentStage] | None = None
) -> dict[str, int]:
    """Every column's count, up to COUNT_CAP + 1 (more than the cap), in one query.

    `stage_rows`: for a list with no filter, the viewer's StudentStage rows
    (`crm.selectors.stage_rows_visible_to`): each count is then a range of the board's index
    read on its own (an index-only scan), with no look-up of each student's row.
    """

    def build(stage: str, campus_id: int) -> QuerySet[Any]:
        if stage_rows is not None:
            return stage_rows.filter(campus_id=campus_id, stage=stage).order_by().values("pk")
        return students.filter(pipeline__stage=stage).filter(pipeline__campus_id=campus_id).order_by().values("pk")

    try:
        compiled = _parts_sql(build, [(stage, c) for stage in Stage.values for c in campus_ids]) if campus_ids else []
    except EmptyResultSet:  # the viewer may see no student at all
        compiled = []
    if not compiled:
        return dict.fromkeys(Stage.values, 0)
    # SQLite accepts no parentheses around the members of a UNION.
    member = "({})" if connection.features.supports_parentheses_in_compound else "SELECT * FROM ({})"
    parts: list[str] = []
    params: list[Any] = []
    for index in range(len(Stage.values)):
        column = compiled[index * len(campus_ids) : (index + 1) * len(campus_ids)]
        union = " UNION ALL ".join(member.format(sql) for sql, _ in column)
        parts.append(f"(SELECT count(*) FROM (SELECT 1 FROM ({union}) AS u LIMIT {COUNT_CAP + 1}) AS column_{index})")
        params.extend(p for _, values in column for p in values)
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        row = cursor.fetchone()
    assert row is not None
    return dict(zip(Stage.values, row, strict=True))


def count_label(count: int) -> str:
    return f"{COUNT_CAP:,}+" if count > COUNT_CAP else f"{count:,}"


def _cards(ids: list[int]) -> dict[int, BoardCard]:
    """The cards of these students with everything they show: a constant number of queries."""
    now = timezone.now()
    return {
        student.pk: board_card_for(student, now) for student in _with_card_relations(Student.objects.filter(pk__in=ids))
    }


def board_first_pages(
    students: QuerySet[Student], stages: list[str], campus_ids: list[int]
) -> dict[str, list[BoardCard]]:
    """The first PAGE_SIZE + 1 cards of every column (the extra one says "more"): one query for
    the keys of every column in every campus, then the cards of each column's newest."""

    def build(stage: str, campus_id: int) -> QuerySet[Any]:
        return (
            _column_part(students, stage, campus_id)
            .order_by(*BOARD_ORDER)
            .values_list("pk", "pipeline__stage", "pipeline__changed_at")[: PAGE_SIZE + 1]
        )

    newest: dict[str, list[Key]] = {stage: [] for stage in stages}
    for pk, stage, changed in _union_rows(build, [(stage, c) for stage in stages for c in campus_ids]):
        newest[stage].append(_order_key(changed, pk))
    for stage, keys in newest.items():
        newest[stage] = sorted(keys, reverse=True)[: PAGE_SIZE + 1]
    cards = _cards([key[2] for keys in newest.values() for key in keys])
    return {stage: [cards[key[2]] for key in keys if key[2] in cards] for stage, keys in newest.items()}


def board_column_page(students: QuerySet[Student], stage: str, offset: int, campus_ids: list[int]) -> list[BoardCard]:
    """One more page of one column: PAGE_SIZE + 1 cards from `offset`."""
    if len(campus_ids) == 1:
        keys = [
            _order_key(changed, pk)
            for pk, changed in _column_part(students, stage, campus_ids[0])
            .order_by(*BOARD_ORDER)
            .values_list("pk", "pipeline__changed_at")[offset : offset + PAGE_SIZE + 1]
        ]
    else:

        def build(stage: str, campus_id: int) -> QuerySet[Any]:
            return (
                _column_part(students, stage, campus_id)
                .order_by(*BOARD_ORDER)
                .values_list("pk", "pipeline__changed_at")[: offset + PAGE_SIZE + 1]
            )

        rows = _union_rows(build, [(stage, c) for c in campus_ids])
        keys = sorted((_order_key(changed, pk) for pk, changed in rows), reverse=True)[offset : offset + PAGE_SIZE + 1]
    cards = _cards([key[2] for key in keys])
    return [cards[key[2]] for key in keys if key[2] in cards]


def _column(stage: str, count: int, cards: list[BoardCard], offset: int) -> BoardColumn:
    more = len(cards) > PAGE_SIZE
    return BoardColumn(
        stage=stage,
        label=str(Stage(stage).label),
        count=count,
        cards=cards[:PAGE_SIZE],
        next_offset=offset + PAGE_SIZE if more else None,
    )


def board_columns(
    students: QuerySet[Student], campus_ids: list[int], stage_rows: QuerySet[StudentStage] | None = None
) -> list[BoardColumn]:
    """The board's first render: every stage's column with its count and first page.
    `campus_ids`: the campuses the list may span (`StudentFilter.campus_ids`); `stage_rows`: see
    `board_counts`."""
    counts = board_counts(students, campus_ids, stage_rows)
    stages = [stage for stage in Stage.values if counts[stage]]
    pages = board_first_pages(students, stages, campus_ids)
    return [_column(stage, counts[stage], pages.get(stage, []), 0) for stage in Stage.values]


def board_column(students: QuerySet[Student], stage: str, offset: int, campus_ids: list[int]) -> BoardColumn:
    return _column(stage, 0, board_column_page(students, stage, offset, campus_ids), offset)


def board_card_get(*, viewer: User, student_id: int) -> BoardCard:
    """One card, re-read after a fact was recorded (the engine may have moved it)."""
    student = _with_card_relations(students_visible_to(viewer)).filter(pk=student_id).first()
    if student is None:
        raise Http404
    return board_card_for(student)
