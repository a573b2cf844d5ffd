"""Issue 3's budgets for the lifecycle engine, on 1,000,000 students and ~13 million facts.

The data is generated in SQL (generate_series, a fixed random seed) into ten campuses of
their own, once: a later run finds the marker table and reuses it. The clock is fixed
(NOW below), so every run decides the same stages. Measured in one run:

(a) the full recomputation when most students change, both ways: every student decided at
    NOW + 400 days from the stages of NOW, then at NOW again from those (each run ends with
    the stages of NOW, all eight columns filled, which the board bench reads) - budget 6 s
    each way. The issue sets that budget beside a hand-written SQL reference that takes about
    5 s on its machine; REFERENCE_SQL below is such a reference (the stage alone, from the kept
    aggregates, in one statement), timed in the same run on the same changes and rolled back, so
    the figure can also be read against the machine it ran on (budget 6/5 of the reference).
    Before (a) the stage and activity tables are rewritten in key order (CLUSTER, not measured):
    the rows of an established deployment lie that way, as students arrive and a night changes a
    few percent of them; freshly generated data was instead decided from leads all at once.
    The stage history rows a run writes are deleted at its end (not measured), so every run
    starts from the same history: the generation's first decision of every student;
(b) the same nightly run again, nothing changed - budget 1 s (also shown: every student
    decided again with full=True, and the next night's run);
(c) a straightforward per-student ORM loop (load the facts, stage_for, save if different)
    on a sample, in students per second, against (a)'s - budget 150 times;
(d) one student after an event (activity_refresh + recompute for one id, as the task does),
    95th percentile over 200 students - budget 20 ms.

Run: `make bench BENCH=lifecycle` or `.venv/bin/python -m bench lifecycle`.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from typing import Any
from zoneinfo import ZoneInfo

STUDENTS = 1_000_000
CAMPUSES = 10
CAMPUS_PREFIX = "bench-lc-"
NOW = dt.datetime(2026, 6, 1, 2, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
MARKER = "bench_lifecycle_generated"
SAMPLE = 2000
EVENT_SAMPLE = 200

BUDGET_MOST_CHANGE = 6.0
REFERENCE_ON_ISSUE_MACHINE = 5.0  # seconds, the issue's figure for its hand-written reference
BUDGET_NOTHING_CHANGED = 1.0
BUDGET_RATIO = 150.0
BUDGET_EVENT_MS = 20.0

# Every student has an anchor moment spread over the year before NOW (by id). Kinds by a
# seeded random number r: 10% leads, 14% consulting, 10% trial, 6% closed as lost, 60%
# signed; the signed stop attending at a moment that makes them active, silent or gone.
GENERATE_SQL = [
    "SELECT setseed(0.42)",
    """
    CREATE TEMP TABLE gen ON COMMIT DROP AS
    SELECT n, random() AS r, random() AS r2, random() AS r3,
           %(start)s::timestamptz + n * interval '31 seconds' AS t0
    FROM generate_series(0, %(students)s - 1) AS n
    """,
    """
    INSERT INTO crm_student (name, gender, grade, school, campus_id, channel, notes, lost_reason,
                             created_at, updated_at, lost_at)
    SELECT 'bench' || n, '', '', '', (SELECT id FROM crm_campus WHERE code = %(prefix)s || (n %% %(campuses)s)),
           'douyin', '', CASE WHEN r >= 0.34 AND r < 0.40 THEN 'bench' ELSE '' END,
           t0 - (r2 * 20) * interval '1 day', t0,
           CASE WHEN r >= 0.34 AND r < 0.40 THEN t0 + interval '10 days' END
    FROM gen ORDER BY n
    """,
    # gen.n -> student id (ids are consecutive in insertion order)
    """
    CREATE TEMP TABLE ids ON COMMIT DROP AS
    SELECT g.*, s.id AS sid, s.created_at
    FROM gen g JOIN crm_student s ON s.name = 'bench' || g.n
    WHERE s.campus_id IN (SELECT id FROM crm_campus WHERE code LIKE %(prefix)s || '%%')
    """,
    # Every student starts as a lead with no start yet (StudentStage.first_for, as
    # crm.services.leads.stages_open opens them), written here in SQL for the million.
    """
    INSERT INTO crm_studentstage (student_id, campus_id, stage, changed_at, at_risk, risk_recent, risk_before,
                                  renewal_due, recheck_at)
    SELECT s.id, s.campus_id, 'lead', NULL, false, 0, 0, false, NULL
    FROM ids JOIN crm_student s ON s.id = ids.sid ORDER BY s.id
    """,
    # Consultations: 1-3 for everyone but the 10% leads.
    """
    INSERT INTO crm_consultation (student_id, consultant_id, channel, content, intent, outcome, consulted_at,
                                  created_at)
    SELECT sid, %(staff)s, 'phone', 'bench', 'medium', '', created_at + k * interval '1 day', created_at
    FROM ids CROSS JOIN LATERAL generate_series(1, 1 + (r3 * 3)::int %% 3) AS k
    WHERE r >= 0.10
    """,
    # Trials: the trial kind and the signed (except a fifth of them).
    """
    INSERT INTO crm_triallesson (student_id, course_id, teacher_id, scheduled_at, duration_minutes, status,
                                 comment, recommended_level, created_at)
    SELECT sid, %(course)s, %(teacher)s, t0, 60,
           CASE WHEN r3 < 0.1 THEN 'cancelled' WHEN r3 < 0.3 THEN 'no_show' ELSE 'attended' END, '', '', created_at
    FROM ids WHERE (r >= 0.24 AND r < 0.34) OR (r >= 0.40 AND r2 >= 0.2)
    """,
    # Contracts of the signed: the main one (active / completed / refunded / cancelled) and,
    # for a quarter, an older one completed before it.
    """
    CREATE TEMP TABLE plan ON COMMIT DROP AS
    SELECT sid, r, r2, r3, created_at,
           t0 + interval '2 days' AS signed_at,
           -- when they stop attending: now (active), 25-55 days ago (silent), 70-250 days ago (gone)
           least(%(now)s, CASE WHEN r2 < 0.55 THEN %(now)s - r3 * interval '6 days'
                               WHEN r2 < 0.75 THEN %(now)s - (25 + r3 * 30) * interval '1 day'
                               ELSE %(now)s - (70 + r3 * 180) * interval '1 day' END) AS stop_at,
           CASE WHEN r3 < 0.75 THEN 'active' WHEN r3 < 0.88 THEN 'completed'
                WHEN r3 < 0.95 THEN 'refunded' ELSE 'cancelled' END AS status
    FROM ids WHERE r >= 0.40
    """,
    """
    CREATE TEMP TABLE plan2 ON COMMIT DROP AS
    SELECT p.*, greatest(0, least(30, floor(extract(epoch FROM p.stop_at - p.signed_at) / 604800)::int)) AS lessons
    FROM plan p
    """,
    """
    INSERT INTO crm_contract (student_id, course_id, hours_bought, hours_consumed, amount, paid_amount, signed_at,
                              valid_until, status, refund_amount, refund_reason, refunded_at, created_at)
    SELECT sid, %(course)s,
           CASE WHEN status = 'completed' THEN greatest(lessons, 1) ELSE 48 END,
           CASE WHEN status = 'completed' THEN greatest(lessons, 1) ELSE lessons END,
           9600, 9600, signed_at,
           CASE WHEN r2 < 0.5 THEN (signed_at + interval '365 days')::date END,
           status, 0, '', CASE WHEN status = 'refunded' THEN stop_at + interval '5 days' END, signed_at
    FROM plan2
    UNION ALL
    SELECT sid, %(course)s, 24, 24, 4800, 4800, signed_at - interval '120 days', NULL, 'completed', 0, '', NULL,
           signed_at - interval '120 days'
    FROM plan2 WHERE r3 < 0.25
    """,
    # Attendance: weekly on the main contract until stop_at; 88% present, 7% absent, 5% leave.
    """
    INSERT INTO crm_attendance (student_id, contract_id, lesson_at, status, hours, teacher_id, feedback, created_at)
    SELECT p.sid, k.id, p.signed_at + w * interval '7 days',
           CASE WHEN x < 0.88 THEN 'present' WHEN x < 0.95 THEN 'absent' ELSE 'leave' END,
           1, %(teacher)s, '', p.signed_at + w * interval '7 days'
    FROM plan2 p
    JOIN crm_contract k ON k.student_id = p.sid AND k.signed_at = p.signed_at
    CROSS JOIN LATERAL generate_series(1, p.lessons) AS w
    CROSS JOIN LATERAL (SELECT random() + 0 * w AS x) AS rnd
    """,
]


def lines_budget(label: str, value: float, unit: str, budget: str, ok: bool) -> str:
    return f"{label}: {value:,.2f} {unit}   (budget {budget}: {'ok' if ok else 'OVER'})"


def ensure_data(out: list[str]) -> bool:
    """Generate the data unless the marker says it is there; True if generated now."""
    from django.db import connection, transaction

    from crm.models import Campus, Course, Role, User
    from crm.roles import role_group

    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {MARKER} (students int, facts bigint, seconds float, at timestamptz)"
        )
        cursor.execute(f"SELECT students, facts, seconds, at FROM {MARKER}")
        row = cursor.fetchone()
    if row is not None:
        out.append(
            f"data: reused {row[0]:,} students and {row[1]:,} facts generated on {row[3]:%Y-%m-%d %H:%M} "
            f"(generation took {row[2]:.0f} s)"
        )
        return False
    started = time.perf_counter()
    with transaction.atomic():
        campuses = [
            Campus.objects.get_or_create(code=f"{CAMPUS_PREFIX}{i}", defaults={"name": f"压测生命周期校区{i}"})[0]
            for i in range(CAMPUSES)
        ]
        staff, created = User.objects.get_or_create(username="bench_lc_staff", defaults={"campus": campuses[0]})
        if created:
            staff.groups.add(role_group(Role.FRONT_DESK))
        teacher, created = User.objects.get_or_create(username="bench_lc_teacher", defaults={"campus": campuses[0]})
        if created:
            teacher.groups.add(role_group(Role.TEACHER))
        course, _ = Course.objects.get_or_create(
            campus=campuses[0], name="压测课程", defaults={"subject": "编程", "price_per_hour": 200}
        )
        params: dict[str, Any] = {
            "students": STUDENTS,
            "campuses": CAMPUSES,
            "prefix": CAMPUS_PREFIX,
            "start": NOW - dt.timedelta(days=365),
            "now": NOW,
            "staff": staff.pk,
            "teacher": teacher.pk,
            "course": course.pk,
        }
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '256MB'")
            # The generated rows are consistent by construction: skip the 30 million deferred
            # foreign-key checks at COMMIT (minutes) when the bench role may (a superuser).
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            if cursor.fetchone()[0]:  # type: ignore[index]
                cursor.execute("SET LOCAL session_replication_role = replica")
            for sql in GENERATE_SQL:
                cursor.execute(sql, params)
            facts = 0
            for table in ("crm_consultation", "crm_triallesson", "crm_contract", "crm_attendance"):
                cursor.execute(f"SELECT count(*) FROM {table}")
                facts += cursor.fetchone()[0]  # type: ignore[index]
    connection.cursor().execute("VACUUM ANALYZE")
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {MARKER} VALUES (%s, %s, %s, now())", [STUDENTS, facts, seconds])
    out.append(f"data: generated {STUDENTS:,} students and {facts:,} facts in SQL in {seconds:.0f} s")
    return True


def timed(fn):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def orm_loop(student_ids: list[int], now: dt.datetime) -> float:
    """The straightforward way: per student, load the facts with the ORM, decide, save if different."""
    from crm.models import Student
    from lifecycle.models import LifecycleSettings, StageChange
    from lifecycle.rules import facts_from_history, stage_for
    from lifecycle.services.facts import histories_of, thresholds_of

    started = time.perf_counter()
    for sid in student_ids:
        student = Student.objects.select_related("pipeline").get(pk=sid)
        thresholds = thresholds_of(LifecycleSettings.objects.get(campus_id=student.campus_id))
        history = histories_of([sid])[sid]
        decision = stage_for(facts_from_history(history, now, thresholds), now, thresholds)
        if decision.stage != student.stage:
            StageChange.objects.create(
                student=student,
                from_stage=student.stage,
                to_stage=decision.stage,
                changed_at=now,
                reason=decision.reason,
                source="nightly",
            )
            row = student.pipeline
            row.stage, row.changed_at = decision.stage, now
            row.save(update_fields=["stage", "changed_at"])
    return time.perf_counter() - started


LATER = NOW + dt.timedelta(days=400)


def stored_moment() -> dt.datetime | None:
    """The moment the stored stages were decided at by the last run (None: never decided)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {MARKER} ADD COLUMN IF NOT EXISTS last_now timestamptz")
        cursor.execute(f"SELECT last_now FROM {MARKER}")
        row = cursor.fetchone()
    return row[0] if row else None


def store_moment(moment: dt.datetime) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {MARKER} SET last_now = %s", [moment])


def analyze() -> float:
    """What autovacuum does after a big change: dead row versions cleared (so index-only scans
    need not visit the heap) and fresh statistics for the planner."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        for table in ("crm_studentstage", "lifecycle_studentactivity", "lifecycle_stagechange"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    return time.perf_counter() - started


# The reference for (a): what a careful hand-written statement over the kept aggregates does -
# every student's stage alone (no flags, reasons or recheck moments) by the same rules, one UPDATE of
# the rows whose stage differs and one history row each (without its from-stage). Less work than
# the engine does, so measuring against it is on the strict side.
REFERENCE_SQL = """
WITH ls AS (
    SELECT campus_id,
           %(now)s - make_interval(days => active_days) AS active_from,
           %(now)s - make_interval(days => churn_days) AS churn_from,
           %(now)s - make_interval(days => ended_grace_days) AS grace_from,
           %(now)s - make_interval(days => stale_lead_days) AS stale_from
    FROM lifecycle_lifecyclesettings
),
changed AS (
    UPDATE crm_studentstage s SET stage = d.stage, changed_at = %(now)s
    FROM lifecycle_studentactivity a, ls,
    LATERAL (SELECT CASE
        WHEN a.last_active_signed_at IS NOT NULL AND (a.active_until IS NULL OR a.active_until >= %(today)s) THEN
            CASE WHEN a.last_present_at >= ls.active_from THEN 'active'
                 WHEN greatest(a.last_present_at, a.last_active_signed_at) >= ls.active_from THEN 'enrolled'
                 WHEN greatest(a.last_present_at, a.last_active_signed_at) >= ls.churn_from THEN 'dormant'
                 ELSE 'churned' END
        WHEN a.ever_contracted THEN
            CASE WHEN a.last_ended_refunded THEN 'churned'
                 WHEN greatest(a.last_ended_at, (a.active_until + 1)::timestamp AT TIME ZONE %(tz)s) >= ls.grace_from
                     THEN 'dormant'
                 ELSE 'churned' END
        WHEN a.lost_at IS NOT NULL AND (a.last_touch_at IS NULL OR a.last_touch_at <= a.lost_at) THEN 'lost'
        WHEN greatest(a.created_at, a.last_touch_at) < ls.stale_from THEN 'lost'
        WHEN a.has_trial THEN 'trial'
        WHEN a.has_consultation THEN 'consulting'
        ELSE 'lead'
    END AS stage) d
    WHERE a.student_id = s.student_id AND ls.campus_id = s.campus_id AND s.stage <> d.stage
    RETURNING s.student_id, d.stage
)
INSERT INTO lifecycle_stagechange (student_id, from_stage, to_stage, changed_at, reason, source, actor_id, won_back)
SELECT student_id, '', stage, %(now)s, '', 'nightly', NULL, false FROM changed
"""


def reference(at: dt.datetime) -> tuple[int, float]:
    """REFERENCE_SQL at `at`, rolled back: (stage changes, seconds)."""
    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SET LOCAL jit = off")
        started = time.perf_counter()
        cursor.execute(REFERENCE_SQL, {"now": at, "today": timezone.localdate(at), "tz": settings.TIME_ZONE})
        seconds = time.perf_counter() - started
        changes = cursor.rowcount
        transaction.set_rollback(True)
    return changes, seconds


def compact() -> float:
    """The stage and activity rows rewritten in key order, as an established deployment keeps them."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("CLUSTER crm_studentstage USING crm_studentstage_pkey")
        cursor.execute("CLUSTER lifecycle_studentactivity USING lifecycle_studentactivity_pkey")
    analyze()
    return time.perf_counter() - started


def history_mark() -> tuple[int, int]:
    """The stage history's last id and its number of rows."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0), count(*) FROM lifecycle_stagechange")
        mark, rows = cursor.fetchone()  # type: ignore[misc]
    return mark, rows


def history_trim(mark: int) -> int:
    """Delete the stage history written after `mark`; returns how many rows."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM lifecycle_stagechange WHERE id > %s", [mark])
        deleted = cursor.rowcount
        cursor.execute("VACUUM ANALYZE lifecycle_stagechange")
    return deleted


def main() -> list[str]:
    from django.db import connection

    from crm.models import Student
    from lifecycle.services.activity import activity_rebuild_all
    from lifecycle.services.recompute import recompute_after_event, recompute_stages

    out: list[str] = [f"{STUDENTS:,} students in {CAMPUSES} campuses"]
    if ensure_data(out):
        _, seconds = timed(activity_rebuild_all)
        out.append(f"activity_rebuild_all (every aggregate from the fact tables): {seconds:.1f} s")
        analyze()
    if stored_moment() != NOW:
        # Fresh data (every student a lead) or stages left at LATER: decide them at NOW first.
        result, seconds = timed(lambda: recompute_stages(now=NOW, source="nightly", full=True))
        store_moment(NOW)
        out.append(f"stages decided at NOW first (not measured against the budget): {seconds:.1f} s")
        analyze()
    out.append(f"clock fixed at {NOW.isoformat()} (and {LATER.isoformat()} for the way there)")
    out.append(f"stage and activity rows rewritten in key order (CLUSTER, not measured): {compact():.1f} s")
    mark, rows = history_mark()
    out.append(f"stage history before the runs: {rows:,} rows")
    moment = NOW

    # (a) every student decided, most change: there (LATER) and back (NOW)
    seconds_a = 0.0
    for label, at in (("there, NOW -> +400 days", LATER), ("back, +400 days -> NOW", NOW)):
        result, seconds = timed(lambda at=at: recompute_stages(now=at, source="nightly", full=True))  # type: ignore[misc]
        store_moment(at)
        seconds_a = max(seconds_a, seconds)
        out.append(
            lines_budget(
                f"(a) full recompute, most change, {label} ({result.decided:,} decided, {result.changed:,} stage "
                f"changes, {result.rows_written:,} stage rows written)",
                seconds,
                "s",
                f"<= {BUDGET_MOST_CHANGE:.0f} s",
                seconds <= BUDGET_MOST_CHANGE,
            )
        )
        out.append(
            f"    VACUUM ANALYZE of the three written tables afterwards (as autovacuum would): {analyze():.1f} s"
        )
    changes, seconds_ref = reference(LATER)
    analyze()
    ratio_a = seconds_a / seconds_ref
    out.append(
        lines_budget(
            f"    the hand-written reference (REFERENCE_SQL), NOW -> +400 days ({changes:,} stage changes, rolled "
            f"back): {seconds_ref:.2f} s; (a)'s slower way against it",
            ratio_a,
            "x",
            f"<= {BUDGET_MOST_CHANGE / REFERENCE_ON_ISSUE_MACHINE:.1f}x (6 s against its ~5 s)",
            ratio_a <= BUDGET_MOST_CHANGE / REFERENCE_ON_ISSUE_MACHINE,
        )
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT stage, count(*) FROM crm_studentstage s JOIN crm_campus c ON c.id = s.campus_id "
            "WHERE c.code LIKE %s GROUP BY stage ORDER BY 2 DESC",
            [CAMPUS_PREFIX + "%"],
        )
        out.append("    stages at NOW: " + ", ".join(f"{stage} {n:,}" for stage, n in cursor.fetchall()))

    # (b) nothing changed
    result, seconds_b = timed(lambda: recompute_stages(now=moment, source="nightly"))
    out.append(
        lines_budget(
            f"(b) nightly recompute again, nothing changed ({result.decided:,} due, {result.changed} changes)",
            seconds_b,
            "s",
            f"<= {BUDGET_NOTHING_CHANGED:.0f} s",
            seconds_b <= BUDGET_NOTHING_CHANGED,
        )
    )
    result, seconds = timed(lambda: recompute_stages(now=moment, source="nightly", full=True))
    out.append(
        f"    every student decided again (full=True), nothing changed: {seconds:.2f} s "
        f"({result.decided:,} decided, {result.changed} changes, {result.rows_written} rows written)"
    )
    next_night = moment + dt.timedelta(days=1)
    result, seconds = timed(lambda: recompute_stages(now=next_night, source="nightly"))
    out.append(
        f"    the next night ({next_night:%Y-%m-%d}): {seconds:.2f} s "
        f"({result.decided:,} due, {result.changed:,} stage changes, {result.rows_written:,} rows written)"
    )

    # (c) per-student ORM loop on a sample
    rng = random.Random(7)
    bench_ids = list(
        Student.objects.filter(campus__code__startswith=CAMPUS_PREFIX).order_by("pk").values_list("pk", flat=True)
    )
    sample = rng.sample(bench_ids, SAMPLE)
    seconds_c = orm_loop(sample, next_night)
    loop_rate = SAMPLE / seconds_c
    set_rate = STUDENTS / seconds_a
    ratio = set_rate / loop_rate
    out.append(f"(c) per-student ORM loop: {SAMPLE:,} students in {seconds_c:.1f} s = {loop_rate:,.0f} students/s")
    out.append(
        lines_budget(
            f"    set-based (a), the slower way: {set_rate:,.0f} students/s; ratio",
            ratio,
            "x",
            f">= {BUDGET_RATIO:.0f}x",
            ratio >= BUDGET_RATIO,
        )
    )

    # (d) one student after an event, as the task does. The engine then tells the higher apps
    # (personas' profile task); with tasks run eagerly here that would run inside this timing, where
    # in production it is a task of its own (measured by the personas bench): it is left out.
    from lifecycle.services import events

    listeners = list(events._decided_listeners)
    events._decided_listeners.clear()
    timings = []
    try:
        for sid in rng.sample(bench_ids, EVENT_SAMPLE):
            _, seconds = timed(lambda sid=sid: recompute_after_event([sid], now=next_night))
            timings.append(seconds * 1000)
    finally:
        events._decided_listeners.extend(listeners)
    p95 = statistics.quantiles(timings, n=20)[-1]
    out.append(
        lines_budget(
            f"(d) one student after an event (refresh + recompute), p95 over {EVENT_SAMPLE} (median "
            f"{statistics.median(timings):.1f} ms)",
            p95,
            "ms",
            f"<= {BUDGET_EVENT_MS:.0f} ms",
            p95 <= BUDGET_EVENT_MS,
        )
    )
    out.append(f"stage history rows this run wrote, deleted again (not measured): {history_trim(mark):,}")
    return out
