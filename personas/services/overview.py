"""The overview's snapshot: each campus's students over stages, value tiers and RFM segments, with
each group's typical profile (`personas.typical`), kept in `CampusOverview` + `OverviewGroup` so
/personas/ reads a few dozen rows whatever the campus's size.

`overview_refresh(campus_ids)` replaces the campuses' snapshots with one set-based statement per
campus (`GROUPS_SQL`, which mirrors `typical.typical_groups`) on PostgreSQL, or the pure rule over the
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

from crm.models import Campus, Role, Stage, Student, User
from crm.roles import require_role
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
           s.grade, s.channel, p.subjects, coalesce(p.monetary, 0) AS value, p.attendance_rate
    FROM crm_student s
    LEFT JOIN crm_studentstage ss ON ss.student_id = s.id
    LEFT JOIN personas_studentprofile p ON p.student_id = s.id
    WHERE {campuses}
),
-- typical.group_key: each student once in each dimension (the subjects stay on `members`, so
-- these rows are narrow).
grouped AS MATERIALIZED (
    SELECT m.student_id, m.campus_id, d.dimension, d.key, m.grade, m.channel, m.value, m.attendance_rate
    FROM members m
    CROSS JOIN LATERAL (VALUES ('stage', m.stage), ('tier', m.value_tier), ('segment', m.rfm_segment))
        AS d (dimension, key)
),
-- typical.median: the two middle values exactly (percentile_disc up and down the order; one value
-- when the count is odd), their mean rounded half up. Ordered-set aggregates skip NULL rates.
middles AS MATERIALIZED (
    SELECT campus_id, dimension, key, count(*) AS students,
           percentile_disc(0.5) WITHIN GROUP (ORDER BY value) AS value_low,
           percentile_disc(0.5) WITHIN GROUP (ORDER BY value DESC) AS value_high,
           round((percentile_disc(0.5) WITHIN GROUP (ORDER BY attendance_rate)
                  + percentile_disc(0.5) WITHIN GROUP (ORDER BY attendance_rate DESC)) / 2, 4) AS median_attendance
    FROM grouped
    GROUP BY campus_id, dimension, key
),
figures AS MATERIALIZED (
    SELECT *, round((value_low + value_high) / 2, 2) AS median_value FROM middles
),
-- typical.most_common for grades, channels and subjects: per group the non-empty value with the
-- most students, ties to the smallest in code-point order (COLLATE "C"). A student counts once
-- per subject of their profile.
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
member_subjects AS (
    SELECT DISTINCT m.student_id, sub.value
    FROM members m
    CROSS JOIN LATERAL jsonb_array_elements_text(m.subjects) AS sub (value)
    WHERE m.subjects <> '[]'::jsonb AND sub.value <> ''
),
top_subject AS (
    SELECT DISTINCT ON (g.campus_id, g.dimension, g.key) g.campus_id, g.dimension, g.key, ms.value
    FROM grouped g
    JOIN member_subjects ms ON ms.student_id = g.student_id
    GROUP BY g.campus_id, g.dimension, g.key, ms.value
    ORDER BY g.campus_id, g.dimension, g.key, count(*) DESC, ms.value COLLATE "C"
),
-- typical.typical_of's representative: closest to the (rounded) median value, ties to the newest.
-- The closest values are always the two middles: the rounded median lies between them (both have
-- the column's 2 places) and no value lies strictly between them. So only the students at the
-- nearer middle (or at both, equally near) are candidates, and the newest of them is chosen,
-- without ordering every row by its distance.
representative AS (
    SELECT g.campus_id, g.dimension, g.key, max(g.student_id) AS student_id
    FROM grouped g
    JOIN figures f ON f.campus_id = g.campus_id AND f.dimension = g.dimension AND f.key = g.key
    WHERE (g.value = f.value_low AND f.median_value - f.value_low <= f.value_high - f.median_value)
       OR (g.value = f.value_high AND f.value_high - f.median_value <= f.median_value - f.value_low)
    GROUP BY g.campus_id, g.dimension, g.key
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
    # Sorts of a whole campus's rows stay in memory; a statement run once is not worth JIT
    # compiling; and the planner, which guesses thousands of groups where there are two dozen,
    # would sort every row to merge-join them with their group rather than hash the groups
    # (docs/benchmarks.md, the overview: each of the three halves the time).
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SET LOCAL enable_mergejoin = off")
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

    One campus at a time, each in its own transaction: a campus's sorts stay in memory and its
    lock is short. The campus's row is locked first (FOR NO KEY UPDATE, which new students'
    foreign keys do not wait for), so two refreshes of one campus take turns instead of colliding
    on its groups.
    """
    now = now or timezone.now()
    campuses = Campus.objects.order_by("pk")
    if campus_ids is not None:
        campuses = campuses.filter(pk__in=list(campus_ids))
    written = 0
    for campus_id in campuses.values_list("pk", flat=True):
        with transaction.atomic():
            if not Campus.objects.select_for_update(no_key=True).filter(pk=campus_id).exists():
                continue  # deleted meanwhile
            groups = (
                _groups_in_sql([campus_id])
                if connection.vendor == "postgresql"
                else typical_groups(members_of([campus_id]))
            )
            OverviewGroup.objects.filter(campus_id=campus_id).delete()
            OverviewGroup.objects.bulk_create(OverviewGroup(**asdict(g)) for g in groups)
            CampusOverview.objects.update_or_create(
                campus_id=campus_id,
                defaults={"students": sum(g.students for g in groups if g.dimension == STAGE), "as_of": now},
            )
            written += len(groups)
    return written


def overview_refresh_request(*, campus_id: int, actor: User) -> Campus:
    """A person's "refresh now": the campus's snapshot is computed again by the task, after commit.
    A campus the actor may not see does not exist for them (Campus.DoesNotExist)."""
    from personas.tasks import refresh_overview

    require_role(actor, Role.MANAGER)  # the front desk reads the overview; managers refresh it
    campus = campuses_visible_to(actor).get(pk=campus_id)
    transaction.on_commit(lambda: refresh_overview.delay([campus.pk]))
    return campus
