"""The kept per-student aggregates (StudentActivity), refreshed from crm's fact tables.

On PostgreSQL one INSERT ... ON CONFLICT DO UPDATE from GROUP BY subqueries refreshes a
list of students (after an event) or everyone (after a bulk import; `activity_rebuild_all`).
A student whose aggregates changed gets `recheck_at = NULL` on their crm.StudentStage (the
row is created, as a lead, if it is missing), so the next run decides them; a row whose
aggregates did not change is not written. Elsewhere (SQLite, the embedded default)
the same aggregates are computed in Python by `lifecycle.rules.aggregates_from_history`.

What each aggregate means is `lifecycle.rules.StudentFacts` / `aggregates_from_history`;
the SQL below computes exactly that (tests/lifecycle/test_agreement.py compares them).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection, transaction

from crm.models import Student, StudentStage
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

# {where} narrows each fact table to the students refreshed: "student_id = ANY(%(ids)s)" or "TRUE".
REFRESH_SQL = """
WITH
cons AS (
    SELECT student_id, max(consulted_at) AS last_at
    FROM crm_consultation WHERE {where} GROUP BY student_id
),
trials AS (
    SELECT student_id, max(scheduled_at) AS last_at
    FROM crm_triallesson WHERE status <> 'cancelled' AND {where} GROUP BY student_id
),
ended AS (
    -- When each completed / refunded contract ended: its refund, or its last held lesson.
    SELECT k.id,
           CASE WHEN k.status = 'refunded' THEN coalesce(k.refunded_at, k.signed_at)
                ELSE coalesce((SELECT max(x.lesson_at) FROM crm_attendance x
                               WHERE x.contract_id = k.id AND x.status = ANY(%(held)s)), k.signed_at)
           END AS ended_at
    FROM crm_contract k WHERE k.status IN ('completed', 'refunded') AND {where_k}
),
contracts AS (
    SELECT k.student_id,
           max(k.signed_at) FILTER (WHERE k.status = 'active') AS last_active_signed_at,
           CASE WHEN bool_or(k.valid_until IS NULL) FILTER (WHERE k.status = 'active') THEN NULL
                ELSE max(k.valid_until) FILTER (WHERE k.status = 'active') END AS active_until,
           sum(k.hours_bought - k.hours_consumed) FILTER (WHERE k.status = 'active') AS hours_remaining,
           max(e.ended_at) AS last_ended_at,
           coalesce((array_agg(k.status = 'refunded' ORDER BY e.ended_at DESC, k.status = 'refunded' DESC)
                     FILTER (WHERE e.ended_at IS NOT NULL))[1], false) AS last_ended_refunded
    FROM crm_contract k LEFT JOIN ended e ON e.id = k.id
    WHERE k.status <> 'cancelled' AND {where_k}
    GROUP BY k.student_id
),
present AS (
    SELECT student_id, max(lesson_at) AS last_present_at
    FROM crm_attendance WHERE status = 'present' AND {where} GROUP BY student_id
),
absences AS (
    SELECT x.student_id, count(*) AS n
    FROM crm_attendance x LEFT JOIN present p ON p.student_id = x.student_id
    WHERE x.status = 'absent' AND {where_x} AND (p.last_present_at IS NULL OR x.lesson_at > p.last_present_at)
    GROUP BY x.student_id
),
refreshed AS (
INSERT INTO lifecycle_studentactivity (
    student_id, created_at, lost_at, last_touch_at, has_consultation, has_trial, ever_contracted,
    last_active_signed_at, active_until, active_hours_remaining, last_ended_at, last_ended_refunded,
    last_present_at, consecutive_absences
)
SELECT s.id, s.created_at, s.lost_at,
       greatest(cons.last_at, trials.last_at),
       cons.student_id IS NOT NULL,
       trials.student_id IS NOT NULL,
       contracts.student_id IS NOT NULL,
       contracts.last_active_signed_at,
       contracts.active_until,
       contracts.hours_remaining,
       contracts.last_ended_at,
       coalesce(contracts.last_ended_refunded, false),
       present.last_present_at,
       coalesce(absences.n, 0)
FROM crm_student s
LEFT JOIN cons ON cons.student_id = s.id
LEFT JOIN trials ON trials.student_id = s.id
LEFT JOIN contracts ON contracts.student_id = s.id
LEFT JOIN present ON present.student_id = s.id
LEFT JOIN absences ON absences.student_id = s.id
WHERE {where_s}
-- In key order: the rows of a rebuild then lie in key order too, and a run over a range of
-- students (a half of the nightly run) reads only the pages of that range.
ORDER BY s.id
ON CONFLICT (student_id) DO UPDATE SET
    {assignments}
WHERE ({current}) IS DISTINCT FROM ({excluded})
RETURNING student_id
)
INSERT INTO crm_studentstage (student_id, campus_id, stage, changed_at, at_risk, risk_recent, risk_before,
                              renewal_due, recheck_at)
SELECT s.id, s.campus_id, 'lead', s.created_at, false, 0, 0, false, NULL
FROM refreshed r JOIN crm_student s ON s.id = r.student_id
ORDER BY s.id
ON CONFLICT (student_id) DO UPDATE SET recheck_at = NULL
"""


def _refresh_sql(for_ids: bool) -> str:
    def where(alias: str) -> str:
        column = f"{alias}.student_id" if alias else "student_id"
        return f"{column} = ANY(%(ids)s)" if for_ids else "TRUE"

    return REFRESH_SQL.format(
        where=where(""),
        where_k=where("k"),
        where_x=where("x"),
        where_s="s.id = ANY(%(ids)s)" if for_ids else "TRUE",
        assignments=",\n    ".join(f"{c} = EXCLUDED.{c}" for c in AGGREGATE_COLUMNS),
        current=", ".join(f"lifecycle_studentactivity.{c}" for c in AGGREGATE_COLUMNS),
        excluded=", ".join(f"EXCLUDED.{c}" for c in AGGREGATE_COLUMNS),
    )


def activity_refresh(student_ids: Iterable[int]) -> int:
    """Recompute the kept aggregates of these students; returns how many rows were written."""
    ids = sorted(set(student_ids))
    if not ids:
        return 0
    if connection.vendor != "postgresql":
        return _refresh_in_python(ids)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_refresh_sql(for_ids=True), {"ids": ids, "held": list(HELD_LESSON_STATUSES)})
        return cursor.rowcount


def activity_rebuild_all() -> int:
    """Recompute the kept aggregates of every student (after a bulk import, in the benchmark)."""
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
    campuses = dict(Student.objects.filter(pk__in=ids).values_list("pk", "campus_id"))
    with transaction.atomic():
        StudentActivity.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["student"], update_fields=list(AGGREGATE_COLUMNS)
        )
        StudentStage.objects.bulk_create(
            [StudentStage(student_id=row.pk, campus_id=campuses[row.pk], changed_at=row.created_at) for row in rows],
            update_conflicts=True,
            unique_fields=["student"],
            update_fields=["recheck_at"],
        )
    return len(rows)
