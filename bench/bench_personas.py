"""Issue 10's budgets for personas, on the lifecycle bench's 1,000,000 students (ten campuses of
100,000, about 13 million facts; bench/bench_lifecycle.py generates them once).

Measured in one run, the clock fixed (bench_lifecycle.NOW):

(a) the nightly recomputation of every student (figures, RFM scores and tiers of every campus,
    every tag rule), full=True, at a moment where most figures change (NOW + 30 days: the 90-day window moves
    for everyone who attends) and back at NOW - budget 15 s; beside it REFERENCE_SQL,
    a hand-written statement computing the same figures and scores the direct way (aggregates,
    mode(), cume_dist()) and writing the rows that differ, timed on the same change and rolled
    back - budget 1.2 times the reference;
(b) the nightly run again when nothing changed - budget 2 s;
(c) one student's profile after a fact (`profiles_after_event([id])`, what the task does),
    95th percentile over 200 students - budget 20 ms;
(d) the persona card, server time through Django's test client for a manager, p95 over students
    with short and long histories, with its query count (constant) - budget 100 ms;
(e) a segment's count for a manager of one campus (100,000 students), three conditions: a tag (the
    default rule's 高价值), a stage and an RFM segment, compiled by `personas.conditions` and counted
    as the segment pages count - budget 500 ms; beside SEGMENT_REFERENCE_SQL, the same count
    written by hand.

Run: `make bench BENCH=personas` or `.venv/bin/python -m bench personas`.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from typing import Any

BUDGET_NIGHTLY = 15.0
BUDGET_RATIO = 1.2
BUDGET_NOTHING = 2.0
BUDGET_EVENT_MS = 20.0
BUDGET_CARD_MS = 100.0
BUDGET_SEGMENT_MS = 500.0
SEGMENT_REQUESTS = 20

# The reference for (e): the same three conditions as one hand-written count.
SEGMENT_REFERENCE_SQL = """
SELECT count(*) FROM crm_student s
JOIN crm_studentstage st ON st.student_id = s.id
JOIN personas_studentprofile p ON p.student_id = s.id
WHERE s.campus_id = %(campus)s AND st.stage = ANY(%(stages)s) AND p.rfm_segment = ANY(%(segments)s)
  AND EXISTS (SELECT 1 FROM crm_studenttag t WHERE t.student_id = s.id AND t.tag_id = %(tag)s)
"""
SEGMENT_STAGES = ["active", "dormant"]
SEGMENT_SEGMENTS = ["champions", "loyal", "at_risk"]
EVENT_SAMPLE = 200
CARD_REQUESTS = 60
MANAGER = "bench_personas_manager"

# The reference for (a): every student's figures and their campus's scores written the direct way, one
# statement: an aggregate per fact table (mode() for the preferred weekday and slot, AT TIME ZONE for
# local days), cume_dist() windows for the scores, one UPDATE of the rows whose figures or scores differ.
REFERENCE_SQL = """
WITH c AS (
    SELECT student_id, count(*) AS frequency, sum(paid_amount - refund_amount) AS monetary,
           max(signed_at) AS last_signed, min(signed_at) AS first_signed,
           coalesce(sum(hours_bought - hours_consumed) FILTER (WHERE status = 'active'), 0) AS remaining
    FROM crm_contract WHERE status <> 'cancelled' GROUP BY student_id
),
a AS (
    SELECT student_id, max(lesson_at) AS last_lesson, max(lesson_at) FILTER (WHERE status = 'present') AS last_present,
           count(*) FILTER (WHERE lesson_at > %(from)s AND lesson_at <= %(now)s) AS scheduled,
           count(*) FILTER (WHERE lesson_at > %(from)s AND lesson_at <= %(now)s AND status = 'present') AS present,
           min(CASE WHEN lesson_at > %(now)s THEN lesson_at WHEN lesson_at > %(from)s
                    THEN lesson_at + interval '90 days' END) AS recheck,
           mode() WITHIN GROUP (ORDER BY extract(isodow FROM lesson_at AT TIME ZONE %(tz)s))
               FILTER (WHERE status = 'present' AND lesson_at > %(from)s AND lesson_at <= %(now)s) AS weekday,
           mode() WITHIN GROUP (ORDER BY CASE WHEN extract(hour FROM lesson_at AT TIME ZONE %(tz)s) < 12 THEN 1
                                              WHEN extract(hour FROM lesson_at AT TIME ZONE %(tz)s) < 18 THEN 2
                                              ELSE 3 END)
               FILTER (WHERE status = 'present' AND lesson_at > %(from)s AND lesson_at <= %(now)s) AS slot
    FROM crm_attendance GROUP BY student_id
),
t AS (
    SELECT student_id, max(scheduled_at) FILTER (WHERE status <> 'cancelled') AS last_trial,
           round(avg(rating), 2) AS rating, count(rating) AS ratings
    FROM crm_triallesson GROUP BY student_id
),
k AS (SELECT student_id, max(consulted_at) AS last_consulted FROM crm_consultation GROUP BY student_id),
sub AS (
    SELECT student_id, jsonb_agg(DISTINCT subject ORDER BY subject) AS subjects FROM (
        SELECT x.student_id, co.subject COLLATE "C" AS subject
        FROM crm_contract x JOIN crm_course co ON co.id = x.course_id
        WHERE x.status <> 'cancelled' AND co.subject <> ''
        UNION ALL
        SELECT x.student_id, co.subject COLLATE "C" FROM crm_triallesson x JOIN crm_course co ON co.id = x.course_id
        WHERE x.status <> 'cancelled' AND co.subject <> '') u
    GROUP BY student_id
),
f AS (
    SELECT s.id AS student_id, s.campus_id, coalesce(c.frequency, 0) AS frequency, coalesce(c.monetary, 0) AS monetary,
           CASE WHEN c.frequency > 0 THEN greatest(a.last_present, c.last_signed) END AS recency_at,
           coalesce(a.scheduled, 0) AS scheduled, coalesce(a.present, 0) AS present,
           CASE WHEN a.scheduled > 0 THEN round(a.present::numeric / a.scheduled, 4) END AS rate,
           a.weekday, (ARRAY['morning', 'afternoon', 'evening'])[a.slot] AS slot,
           coalesce(sub.subjects, '[]') AS subjects,
           t.rating, coalesce(t.ratings, 0) AS ratings, c.first_signed, coalesce(c.remaining, 0) AS remaining,
           greatest(k.last_consulted, t.last_trial, c.last_signed, a.last_lesson) AS last_touch,
           coalesce(a.recheck, '3000-01-01') AS recheck
    FROM crm_student s LEFT JOIN c ON c.student_id = s.id LEFT JOIN a ON a.student_id = s.id
    LEFT JOIN t ON t.student_id = s.id LEFT JOIN k ON k.student_id = s.id LEFT JOIN sub ON sub.student_id = s.id
),
scores AS (
    SELECT student_id,
           ceil(5 * cume_dist() OVER (PARTITION BY campus_id ORDER BY (recency_at AT TIME ZONE %(tz)s)::date)) AS r,
           ceil(5 * cume_dist() OVER (PARTITION BY campus_id ORDER BY frequency)) AS f,
           ceil(5 * cume_dist() OVER (PARTITION BY campus_id ORDER BY monetary)) AS m,
           cume_dist() OVER (PARTITION BY campus_id ORDER BY monetary) AS m_share
    FROM f WHERE frequency > 0
),
written AS (
    UPDATE personas_studentprofile p
    SET recency_at = f.recency_at, frequency = f.frequency, monetary = f.monetary,
        lessons_scheduled_90 = f.scheduled, lessons_present_90 = f.present, attendance_rate = f.rate,
        preferred_weekday = f.weekday, preferred_slot = coalesce(f.slot, ''), subjects = f.subjects,
        avg_rating = f.rating, ratings = f.ratings, first_signed_at = f.first_signed, remaining_hours = f.remaining,
        last_touch_at = f.last_touch, recheck_at = f.recheck,
        r_score = sc.r, f_score = sc.f, m_score = sc.m,
        value_tier = CASE WHEN sc.m_share > 0.8 THEN 'high' WHEN sc.m_share > 0.4 THEN 'medium'
                          WHEN sc.m_share IS NOT NULL THEN 'low' ELSE '' END
    FROM f LEFT JOIN scores sc ON sc.student_id = f.student_id
    WHERE p.student_id = f.student_id
      AND (p.recency_at, p.frequency, p.monetary, p.lessons_scheduled_90, p.lessons_present_90, p.attendance_rate,
           p.recheck_at, p.r_score, p.f_score, p.m_score)
          IS DISTINCT FROM (f.recency_at, f.frequency, f.monetary, f.scheduled, f.present, f.rate, f.recheck,
                            sc.r::smallint, sc.f::smallint, sc.m::smallint)
    RETURNING 1
)
SELECT count(*) FROM written
"""


def timed(fn: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def line(label: str, value: float, unit: str, budget: str, ok: bool) -> str:
    return f"{label}: {value:,.2f} {unit}   (budget {budget}: {'ok' if ok else 'OVER'})"


def reference(at: dt.datetime) -> tuple[int, float]:
    from django.conf import settings
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SET LOCAL jit = off")
        started = time.perf_counter()
        cursor.execute(REFERENCE_SQL, {"now": at, "from": at - dt.timedelta(days=90), "tz": settings.TIME_ZONE})
        seconds = time.perf_counter() - started
        written = cursor.fetchone()[0]  # type: ignore[index]
        transaction.set_rollback(True)
    return written, seconds


def vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE personas_studentprofile")


def card_viewer() -> Any:
    from bench.bench_lifecycle import CAMPUS_PREFIX
    from crm.models import Campus, Role, User
    from crm.roles import role_group

    campus = Campus.objects.get(code=f"{CAMPUS_PREFIX}0")
    manager, created = User.objects.get_or_create(username=MANAGER, defaults={"campus": campus})
    if created:
        manager.groups.add(role_group(Role.MANAGER))
    return manager


LONG_HISTORY = 5000


def long_history_student(manager: Any) -> int:
    """A student of the manager's campus with 5,000 lessons attended (written once, in SQL)."""
    from django.db import transaction

    from bench.bench_lifecycle import NOW
    from crm.models import Student
    from lifecycle.services.recompute import recompute_after_event

    student = Student.objects.filter(name="bench-long-history", campus=manager.campus).first()
    if student is not None:
        return int(student.pk)
    with transaction.atomic():
        student_id = _write_long_history(manager, NOW)
    recompute_after_event([student_id], now=NOW)  # its activity and stage rows, decided
    return student_id


def _write_long_history(manager: Any, now: dt.datetime) -> int:
    from django.db import connection

    from crm.models import Contract, Course, Student, User

    course = Course.objects.filter(campus=manager.campus).first() or Course.objects.create(
        campus=manager.campus, name="压测课程", subject="编程", price_per_hour=200
    )
    student = Student.objects.create(name="bench-long-history", campus=manager.campus)
    contract = Contract.objects.create(
        student=student,
        course=course,
        hours_bought=LONG_HISTORY,
        hours_consumed=LONG_HISTORY,
        amount=1_000_000,
        paid_amount=1_000_000,
        signed_at=now - dt.timedelta(days=LONG_HISTORY),
    )
    teacher = User.objects.get(username="bench_lc_teacher")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO crm_attendance (student_id, contract_id, lesson_at, status, hours, teacher_id, feedback, "
            "created_at) SELECT %s, %s, %s - k * interval '1 day', 'present', 1, %s, '', %s "
            "FROM generate_series(1, %s) AS k",
            [student.pk, contract.pk, now, teacher.pk, now, LONG_HISTORY],
        )
    return int(student.pk)


def measure_card(manager: Any, student_ids: list[int]) -> tuple[list[float], set[int]]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(manager)
    for sid in student_ids[:5]:
        assert client.get(f"/students/{sid}/").status_code == 200
    timings: list[float] = []
    counts: set[int] = set()
    for i in range(CARD_REQUESTS):
        sid = student_ids[i % len(student_ids)]
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            response = client.get(f"/students/{sid}/")
            timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
        counts.add(len(ctx.captured_queries))
    return timings, counts


def main() -> list[str]:
    from django.conf import settings
    from django.db import connection

    from bench.bench_lifecycle import CAMPUS_PREFIX, NOW, ensure_data, stored_moment
    from crm.models import Student
    from personas.services.profiles import profiles_after_event, profiles_recompute
    from personas.services.tag_rules import tag_rules_ship_defaults

    if "testserver" not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    out: list[str] = []
    ensure_data(out)
    if stored_moment() != NOW:
        out.append("the stages are not those of NOW: run `make bench BENCH=lifecycle` first")
        return out
    # The bench's campuses are written in SQL, not through campus_create: they get the default
    # tag rules here, as every campus created through the service does.
    shipped = tag_rules_ship_defaults()
    if shipped:
        out.append(f"default tag rules given to the bench's campuses: {len(shipped)}")
    result, seconds = timed(lambda: profiles_recompute(now=NOW, full=True))
    vacuum()
    out.append(
        f"profiles at NOW first (not measured against the budget): {seconds:.1f} s, {result.written:,} rows written"
    )

    later = NOW + dt.timedelta(days=30)
    worst = 0.0
    for label, at in (("NOW -> +30 days", later), ("back, +30 days -> NOW", NOW)):
        result, seconds = timed(lambda at=at: profiles_recompute(now=at, full=True))  # type: ignore[misc]
        worst = max(worst, seconds)
        out.append(
            line(
                f"(a) nightly, every student, {label} ({result.computed:,} computed, {result.written:,} rows "
                f"written, {result.campuses_scored} campuses scored)",
                seconds,
                "s",
                f"<= {BUDGET_NIGHTLY:.0f} s",
                seconds <= BUDGET_NIGHTLY,
            )
        )
        vacuum()
    written, seconds_ref = reference(later)
    ratio = worst / seconds_ref
    out.append(
        line(
            f"    the hand-written reference (REFERENCE_SQL), NOW -> +30 days ({written:,} rows, rolled back): "
            f"{seconds_ref:.2f} s; (a)'s slower way against it",
            ratio,
            "x",
            f"<= {BUDGET_RATIO}x",
            ratio <= BUDGET_RATIO,
        )
    )

    result, seconds = timed(lambda: profiles_recompute(now=NOW))
    out.append(
        line(
            f"(b) nightly again, nothing changed ({result.computed:,} due, {result.written} written)",
            seconds,
            "s",
            f"<= {BUDGET_NOTHING:.0f} s",
            seconds <= BUDGET_NOTHING,
        )
    )

    ids = list(
        Student.objects.filter(campus__code__startswith=CAMPUS_PREFIX).order_by("pk").values_list("pk", flat=True)
    )
    rng = random.Random(10)
    sample = rng.sample(ids, EVENT_SAMPLE)
    timings = []
    for sid in sample:
        _, seconds = timed(lambda sid=sid: profiles_after_event([sid], now=NOW))  # type: ignore[misc]
        timings.append(seconds * 1000)
    p95 = statistics.quantiles(timings, n=20)[-1]
    out.append(
        line(
            f"(c) one student after a fact, p95 over {EVENT_SAMPLE} (median {statistics.median(timings):.1f} ms)",
            p95,
            "ms",
            f"<= {BUDGET_EVENT_MS:.0f} ms",
            p95 <= BUDGET_EVENT_MS,
        )
    )

    manager = card_viewer()
    with connection.cursor() as cursor:
        # The campus's students with the longest and the shortest histories, and some between.
        cursor.execute(
            "SELECT s.id, count(a.id) AS n FROM crm_student s JOIN crm_campus c ON c.id = s.campus_id "
            "LEFT JOIN crm_attendance a ON a.student_id = s.id WHERE c.code = %s AND s.id %% 97 = 0 "
            "GROUP BY s.id ORDER BY n DESC",
            [f"{CAMPUS_PREFIX}0"],
        )
        ranked = cursor.fetchall()
    long_one = long_history_student(manager)
    profiles_after_event([long_one], now=NOW)
    chosen = [long_one] + [row[0] for row in ranked[:9]] + [row[0] for row in ranked[-10:]]
    timings, counts = measure_card(manager, chosen)
    long_timings, _ = measure_card(manager, [long_one])
    short_timings, _ = measure_card(manager, [ranked[-1][0]])
    out.append(
        f"    the card of a student with {LONG_HISTORY:,} lessons: median {statistics.median(long_timings):.0f} ms; "
        f"of one with {ranked[-1][1]}: median {statistics.median(short_timings):.0f} ms"
    )
    p95 = statistics.quantiles(timings, n=20)[-1]
    out.append(
        line(
            f"(d) persona card, manager, {len(chosen)} students with {ranked[-1][1]} to {LONG_HISTORY:,} lessons, "
            f"p95 over {CARD_REQUESTS} (median {statistics.median(timings):.0f} ms, queries {sorted(counts)})",
            p95,
            "ms",
            f"<= {BUDGET_CARD_MS:.0f} ms",
            p95 <= BUDGET_CARD_MS,
        )
    )
    out.append(segment_count(manager))
    return out


def segment_count(manager: Any) -> str:
    from django.db import connection

    from crm.models import Tag
    from crm.selectors import students_visible_to
    from personas.conditions import compile_tree

    tag = Tag.objects.get(name="高价值")
    tree = {
        "all": [
            {"field": "tag", "op": "has", "value": tag.pk},
            {"field": "stage", "op": "in", "value": SEGMENT_STAGES},
            {"field": "rfm_segment", "op": "in", "value": SEGMENT_SEGMENTS},
        ]
    }
    timings, reference_timings = [], []
    count = reference = 0
    for _ in range(SEGMENT_REQUESTS):
        started = time.perf_counter()
        count = students_visible_to(manager).filter(compile_tree(tree, viewer=manager)).count()
        timings.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                SEGMENT_REFERENCE_SQL,
                {"campus": manager.campus_id, "stages": SEGMENT_STAGES, "segments": SEGMENT_SEGMENTS, "tag": tag.pk},
            )
            reference = cursor.fetchone()[0]  # type: ignore[index]
        reference_timings.append((time.perf_counter() - started) * 1000)
    assert count == reference, (count, reference)
    p95 = statistics.quantiles(timings, n=20)[-1]
    return line(
        f"(e) segment count, tag + stage + RFM segment, one campus ({count:,} students), p95 over {SEGMENT_REQUESTS} "
        f"(the hand-written reference: p95 {statistics.quantiles(reference_timings, n=20)[-1]:.0f} ms)",
        p95,
        "ms",
        f"<= {BUDGET_SEGMENT_MS:.0f} ms",
        p95 <= BUDGET_SEGMENT_MS,
    )
