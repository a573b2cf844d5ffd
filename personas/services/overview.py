"""The overview's snapshot: each campus's students over stages, value tiers and RFM segments, with
each group's typical profile (`personas.typical`), kept in `CampusOverview` + `OverviewGroup` so
/personas/ reads a few dozen rows whatever the campus's size.

`overview_refresh(campus_ids)` replaces the campuses' snapshots with one set-based statement
(`GROUPS_SQL`, which mirrors `typical.typical_groups`) on PostgreSQL, or the pure rule over the
ORM's rows on SQLite (the embedded default). It runs nightly after the profiles
(`personas.nightly_overview`), on a manager's "refresh now" (`overview_refresh_request`, the task
after commit) and at the end of the demo seed. `groups_live` computes the same for one campus
without writing, for a campus that has no snapshot yet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql

from crm.models import Campus, Stage, Student, User
from crm.selectors import campuses_visible_to
from personas.models import CampusOverview, OverviewGroup
from personas.typical import STAGE, Member, Typical, typical_groups

GROUP_COLUMNS = (
    "campus_id",
    "dimension",
    "key",
    "students",
    "top_grade",
    "top_subject",
    "top_channel",
    "median_value",
    "median_attendance",
    "representative_id",
)

# Placeholder {campuses}: which students (every campus, or `s.campus_id = ANY(%(campus_ids)s)`).
GROUPS_SQL = sql.SQL("""
WITH
-- typical.Member: every student of the campuses with what the overview groups and describes them
-- by. A student with no stage row yet is a lead (StudentStage.first_for); with no profile, no RFM
-- ("" tier and segment), no subjects, lifetime value 0, no attendance rate.
members AS MATERIALIZED (
    SELECT s.id AS student_id, s.campus_id, coalesce(ss.stage, 'lead') AS stage,
           coalesce(p.value_tier, '') AS value_tier, coalesce(p.rfm_segment, '') AS rfm_segment,
           s.grade, s.channel, coalesce(p.subjects, '[]'::jsonb) AS subjects,
           coalesce(p.monetary, 0) AS value, p.attendance_rate
    FROM crm_student s
    LEFT JOIN crm_studentstage ss ON ss.student_id = s.id
    LEFT JOIN personas_studentprofile p ON p.student_id = s.id
    WHERE {campuses}
),
-- typical.group_key: each student once in each dimension.
grouped AS MATERIALIZED (
    SELECT m.*, d.dimension, d.key
    FROM members m
    CROSS JOIN LATERAL (VALUES ('stage', m.stage), ('tier', m.value_tier), ('segment', m.rfm_segment))
        AS d (dimension, key)
),
-- typical.median: both middle values exactly (percentile_disc up and down the order; one value
-- when the count is odd), their mean rounded half up. Ordered-set aggregates skip NULL rates.
figures AS (
    SELECT campus_id, dimension, key, count(*) AS students,
           round((percentile_disc(0.5) WITHIN GROUP (ORDER BY value)
                  + percentile_disc(0.5) WITHIN GROUP (ORDER BY value DESC)) / 2, 2) AS median_value,
           round((percentile_disc(0.5) WITHIN GROUP (ORDER BY attendance_rate)
                  + percentile_disc(0.5) WITHIN GROUP (ORDER BY attendance_rate DESC)) / 2, 4) AS median_attendance
    FROM grouped
    GROUP BY campus_id, dimension, key
),
-- typical.most_common for grades, channels and subjects (a student once per subject): per group
-- the non-empty value with the most students, ties to the smallest in code-point order (COLLATE "C").
top_grade AS (
    SELECT DISTINCT ON (campus_id, dimension, key) campus_id, dimension, key, grade AS value
    FROM grouped
    WHERE grade <> ''
    GROUP BY campus_id, dimension, key, grade
    ORDER BY campus_id, dimension, key, count(*) DESC, grade COLLATE "C"
),
top_channel AS (
    SELECT DISTINCT ON (campus_id, dimension, key) campus_id, dimension, key, channel AS value
    FROM grouped
    WHERE channel <> ''
    GROUP BY campus_id, dimension, key, channel
    ORDER BY campus_id, dimension, key, count(*) DESC, channel COLLATE "C"
),
top_subject AS (
    SELECT DISTINCT ON (g.campus_id, g.dimension, g.key) g.campus_id, g.dimension, g.key, sub.value
    FROM grouped g
    CROSS JOIN LATERAL (SELECT DISTINCT jsonb_array_elements_text(g.subjects) AS value) sub
    WHERE sub.value <> ''
    GROUP BY g.campus_id, g.dimension, g.key, sub.value
    ORDER BY g.campus_id, g.dimension, g.key, count(*) DESC, sub.value COLLATE "C"
),
-- typical.typical_of's representative: closest to the (rounded) median value, ties to the newest.
representative AS (
    SELECT DISTINCT ON (g.campus_id, g.dimension, g.key) g.campus_id, g.dimension, g.key, g.student_id
    FROM grouped g
    JOIN figures f ON (f.campus_id, f.dimension, f.key) = (g.campus_id, g.dimension, g.key)
    ORDER BY g.campus_id, g.dimension, g.key, abs(g.value - f.median_value), g.student_id DESC
)
SELECT f.campus_id, f.dimension, f.key, f.students,
       coalesce(tg.value, '') AS top_grade, coalesce(ts.value, '') AS top_subject,
       coalesce(tc.value, '') AS top_channel, f.median_value, f.median_attendance,
       r.student_id AS representative_id
FROM figures f
JOIN representative r ON (r.campus_id, r.dimension, r.key) = (f.campus_id, f.dimension, f.key)
LEFT JOIN top_grade tg ON (tg.campus_id, tg.dimension, tg.key) = (f.campus_id, f.dimension, f.key)
LEFT JOIN top_subject ts ON (ts.campus_id, ts.dimension, ts.key) = (f.campus_id, f.dimension, f.key)
LEFT JOIN top_channel tc ON (tc.campus_id, tc.dimension, tc.key) = (f.campus_id, f.dimension, f.key)
""")


def _groups_statement(campus_ids: list[int] | None) -> sql.Composed:
    campuses = sql.SQL("TRUE") if campus_ids is None else sql.SQL("s.campus_id = ANY(%(campus_ids)s)")
    return GROUPS_SQL.format(campuses=campuses)


def _typical_from_row(row: tuple[Any, ...]) -> Typical:
    return Typical(**dict(zip(GROUP_COLUMNS, row, strict=True)))


def _groups_in_sql(campus_ids: list[int] | None) -> list[Typical]:
    with connection.cursor() as cursor:
        cursor.execute(_groups_statement(campus_ids), {"campus_ids": campus_ids})
        return [_typical_from_row(row) for row in cursor.fetchall()]


def members_of(campus_ids: list[int] | None) -> list[Member]:
    """typical.Member for every student of the campuses (all with None), in one query."""
    students = Student.objects.all() if campus_ids is None else Student.objects.filter(campus_id__in=campus_ids)
    rows = students.values_list(
        "pk",
        "campus_id",
        "pipeline__stage",
        "profile__value_tier",
        "profile__rfm_segment",
        "grade",
        "channel",
        "profile__subjects",
        "profile__monetary",
        "profile__attendance_rate",
    )
    return [
        Member(
            student_id=pk,
            campus_id=campus_id,
            stage=stage or Stage.LEAD,
            value_tier=tier or "",
            rfm_segment=segment or "",
            grade=grade,
            channel=channel,
            subjects=tuple(subjects or ()),
            monetary=monetary,
            attendance_rate=rate,
        )
        for pk, campus_id, stage, tier, segment, grade, channel, subjects, monetary, rate in rows
    ]


def groups_live(campus_id: int) -> list[Typical]:
    """One campus's groups computed now, written nowhere (a campus with no snapshot yet)."""
    if connection.vendor == "postgresql":
        return _groups_in_sql([campus_id])
    return typical_groups(members_of([campus_id]))


def overview_refresh(campus_ids: Iterable[int] | None = None, *, now: dt.datetime | None = None) -> int:
    """Replace the campuses' snapshots (every campus's with None). Returns the groups written.

    The campuses' rows are locked first (FOR NO KEY UPDATE, which new students' foreign keys do
    not wait for), so two refreshes of one campus take turns instead of colliding on its groups.
    """
    now = now or timezone.now()
    with transaction.atomic():
        campuses = Campus.objects.select_for_update(no_key=True).order_by("pk")
        if campus_ids is not None:
            campuses = campuses.filter(pk__in=list(campus_ids))
        ids = list(campuses.values_list("pk", flat=True))
        if not ids:
            return 0
        scope = None if campus_ids is None else ids
        groups = _groups_in_sql(scope) if connection.vendor == "postgresql" else typical_groups(members_of(scope))
        OverviewGroup.objects.filter(campus_id__in=ids).delete()
        OverviewGroup.objects.bulk_create(OverviewGroup(**asdict(g)) for g in groups)
        students = {campus: 0 for campus in ids}
        for g in groups:
            if g.dimension == STAGE:
                students[g.campus_id] += g.students
        CampusOverview.objects.bulk_create(
            [CampusOverview(campus_id=campus, students=n, as_of=now) for campus, n in students.items()],
            update_conflicts=True,
            unique_fields=["campus"],
            update_fields=["students", "as_of"],
        )
    return len(groups)


def overview_refresh_request(*, campus_id: int, actor: User) -> Campus:
    """A person's "refresh now": the campus's snapshot is computed again by the task, after commit.
    A campus the actor may not see does not exist for them (Campus.DoesNotExist)."""
    from personas.tasks import refresh_overview

    campus = campuses_visible_to(actor).get(pk=campus_id)
    transaction.on_commit(lambda: refresh_overview.delay([campus.pk]))
    return campus
