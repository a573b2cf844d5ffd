"""The kept per-student aggregates (StudentActivity), refreshed from crm's fact tables.

On PostgreSQL one INSERT ... ON CONFLICT DO UPDATE from GROUP BY subqueries refreshes a
list of students (after an event) or everyone (after a bulk import; `activity_rebuild_all`).
A student whose aggregates changed gets `recheck_at = NULL` on their crm.StudentStage (a
missing row is first opened by `crm.services.leads.stages_open`), so the next run decides
them; a row whose aggregates did not change is not written. Elsewhere (SQLite, the embedded default)
the same aggregates are computed in Python by `lifecycle.rules.aggregates_from_history`.

What each aggregate means is `lifecycle.rules.StudentFacts` / `aggregates_from_history`;
the SQL below computes exactly that (tests/lifecycle/test_agreement.py compares them).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection, transaction
from psycopg import sql

from crm.models import Student, StudentStage
from crm.services.leads import stages_open
from lifecycle.models import StudentActivity
from lifecycle.rules import HELD_LESSON_STATUSES, aggregates_from_history
from lifecycle.services.facts import histories_of

AGGREGATE_COLUMNS = (
    "created_at",
    "lost_at",
    "last_touch_at",
    "has_consultation",
    "has_trial",
    "ever_contracted",
    "last_active_signed_at",
    "active_until",
    "active_hours_remaining",
    "last_ended_at",
    "last_ended_refunded",
    "last_present_at",
    "consecutive_absences",
)

# Every aggregate of rules.aggregates_from_history for the students refreshed, in one statement.
# {students} narrows each fact table to them ("x.student_id = ANY(%(ids)s)", or TRUE for
# everyone), said on every table so a refresh of a few reads only their rows.
REFRESH_SQL = sql.SQL("""
WITH
-- aggregates_from_history: has_consultation, and the consultations' share of last_touch_at.
consultations AS (
    SELECT x.student_id, max(x.consulted_at) AS last_at
    FROM crm_consultation x WHERE {students} GROUP BY x.student_id
),
-- aggregates_from_history: has_trial and the trials' share of last_touch_at (cancelled ones do not count).
trials AS (
    SELECT x.student_id, max(x.scheduled_at) AS last_at
    FROM crm_triallesson x WHERE x.status <> 'cancelled' AND {students} GROUP BY x.student_id
),
-- rules.contract_ended_at: a completed contract ended at its last held lesson
-- (rules.HELD_LESSON_STATUSES, never a leave), a refunded one at its refund.
contract_ends AS (
    SELECT x.id,
           CASE WHEN x.status = 'refunded' THEN coalesce(x.refunded_at, x.signed_at)
                ELSE coalesce((SELECT max(l.lesson_at) FROM crm_attendance l
                               WHERE l.contract_id = x.id AND l.status = ANY(%(held)s)), x.signed_at)
           END AS ended_at
    FROM crm_contract x WHERE x.status IN ('completed', 'refunded') AND {students}
),
-- aggregates_from_history over the contracts that are not cancelled: the open ones' latest signing,
-- valid_until (none if one has no end) and hours left; the last end and whether it was a refund
-- (a refund wins a tie).
contracts AS (
    SELECT x.student_id,
           max(x.signed_at) FILTER (WHERE x.status = 'active') AS last_active_signed_at,
           CASE WHEN bool_or(x.valid_until IS NULL) FILTER (WHERE x.status = 'active') THEN NULL
                ELSE max(x.valid_until) FILTER (WHERE x.status = 'active') END AS active_until,
           sum(x.hours_bought - x.hours_consumed) FILTER (WHERE x.status = 'active') AS hours_remaining,
           max(e.ended_at) AS last_ended_at,
           coalesce((array_agg(x.status = 'refunded' ORDER BY e.ended_at DESC, x.status = 'refunded' DESC)
                     FILTER (WHERE e.ended_at IS NOT NULL))[1], false) AS last_ended_refunded
    FROM crm_contract x LEFT JOIN contract_ends e ON e.id = x.id
    WHERE x.status <> 'cancelled' AND {students}
    GROUP BY x.student_id
),
-- aggregates_from_history: last_present_at.
last_present AS (
    SELECT x.student_id, max(x.lesson_at) AS last_present_at
    FROM crm_attendance x WHERE x.status = 'present' AND {students} GROUP BY x.student_id
),
-- aggregates_from_history: consecutive_absences, the absences after the last present lesson.
absences_since_present AS (
    SELECT x.student_id, count(*) AS n
    FROM crm_attendance x LEFT JOIN last_present p ON p.student_id = x.student_id
    WHERE x.status = 'absent' AND {students} AND (p.last_present_at IS NULL OR x.lesson_at > p.last_present_at)
    GROUP BY x.student_id
),
-- The kept row of each student, written only where an aggregate changed.
refreshed AS (
INSERT INTO lifecycle_studentactivity ({columns})
SELECT s.id, s.created_at, s.lost_at,
       greatest(consultations.last_at, trials.last_at),
       consultations.student_id IS NOT NULL,
       trials.student_id IS NOT NULL,
       contracts.student_id IS NOT NULL,
       contracts.last_active_signed_at,
       contracts.active_until,
       contracts.hours_remaining,
       contracts.last_ended_at,
       coalesce(contracts.last_ended_refunded, false),
       last_present.last_present_at,
       coalesce(absences_since_present.n, 0)
FROM crm_student s
LEFT JOIN consultations ON consultations.student_id = s.id
LEFT JOIN trials ON trials.student_id = s.id
LEFT JOIN contracts ON contracts.student_id = s.id
LEFT JOIN last_present ON last_present.student_id = s.id
LEFT JOIN absences_since_present ON absences_since_present.student_id = s.id
WHERE {students_s}
-- In key order: the rows of a rebuild then lie in key order too, and a run over a range of
-- students (a half of the nightly run) reads only the pages of that range.
ORDER BY s.id
ON CONFLICT (student_id) DO UPDATE SET ({aggregates}) = ({excluded})
WHERE ({current}) IS DISTINCT FROM ({excluded})
RETURNING student_id
)
-- Their facts changed: the engine decides them again on its next run.
UPDATE crm_studentstage s SET recheck_at = NULL
FROM refreshed r WHERE s.student_id = r.student_id
""")


def _refresh_sql(for_ids: bool) -> sql.Composed:
    aggregates = [sql.Identifier(c) for c in AGGREGATE_COLUMNS]
    return REFRESH_SQL.format(
        students=sql.SQL("x.student_id = ANY(%(ids)s)" if for_ids else "TRUE"),
        students_s=sql.SQL("s.id = ANY(%(ids)s)" if for_ids else "TRUE"),
        columns=sql.SQL(", ").join([sql.Identifier("student_id"), *aggregates]),
        aggregates=sql.SQL(", ").join(aggregates),
        current=sql.SQL(", ").join(sql.Identifier("lifecycle_studentactivity", c) for c in AGGREGATE_COLUMNS),
        excluded=sql.SQL(", ").join(sql.Identifier("excluded", c) for c in AGGREGATE_COLUMNS),
    )


def activity_refresh(student_ids: Iterable[int]) -> int:
    """Recompute the kept aggregates of these students; returns how many rows were written."""
    ids = sorted(set(student_ids))
    if not ids:
        return 0
    with transaction.atomic():
        stages_open(ids)
        if connection.vendor != "postgresql":
            return _refresh_in_python(ids)
        with connection.cursor() as cursor:
            cursor.execute(_refresh_sql(for_ids=True), {"ids": ids, "held": list(HELD_LESSON_STATUSES)})
            return cursor.rowcount


def activity_rebuild_all() -> int:
    """Recompute the kept aggregates of every student (after a bulk import, in the benchmark)."""
    stages_open(Student.objects.filter(pipeline__isnull=True).values_list("pk", flat=True))
    if connection.vendor != "postgresql":
        written = 0
        ids = list(Student.objects.order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(ids), 2000):
            written += _refresh_in_python(ids[start : start + 2000])
        return written
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(_refresh_sql(for_ids=False), {"held": list(HELD_LESSON_STATUSES)})
        return cursor.rowcount


def _refresh_in_python(ids: list[int]) -> int:
    """The SQLite path: the same aggregates from the raw rows, written with one upsert."""
    rows = []
    for sid, history in histories_of(ids).items():
        facts = aggregates_from_history(history)
        rows.append(
            StudentActivity(
                student_id=sid,
                created_at=facts.created_at,
                lost_at=facts.lost_at,
                last_touch_at=facts.last_touch_at,
                has_consultation=facts.has_consultation,
                has_trial=facts.has_trial,
                ever_contracted=facts.ever_contracted,
                last_active_signed_at=facts.last_active_signed_at,
                active_until=facts.active_until,
                active_hours_remaining=facts.active_hours_remaining,
                last_ended_at=facts.last_ended_at,
                last_ended_refunded=facts.last_ended_refunded,
                last_present_at=facts.last_present_at,
                consecutive_absences=facts.consecutive_absences,
            )
        )
    with transaction.atomic():
        StudentActivity.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["student"], update_fields=list(AGGREGATE_COLUMNS)
        )
        StudentStage.objects.filter(pk__in=[row.pk for row in rows]).update(recheck_at=None)
    return len(rows)
