"""Recomputing profiles: each student's own figures, then the campus's RFM scores and tiers.

Two steps, each one set-based statement on PostgreSQL, mirroring `personas.rules`:

1. `FIGURES_SQL` (rules.figures_for): the targeted students' figures from crm's fact tables,
   upserted into `StudentProfile`, writing only rows whose figures differ.
2. `SCORES_SQL` (rules.campus_scores): for whole campuses, every RFM student's scores, segment
   and tier from the campus's cumulative distributions, writing only rows that differ; the
   campus's cut-points are kept in `CampusScoreCuts`.

Which students and campuses:
- `profiles_after_event(ids)` (after a fact): step 1 for those students, then each is scored
  against their campus's cut-points from its last full scoring (rules.score_from_cuts), so one
  student does not rank the whole campus again; a campus never scored is scored whole.
- `profiles_recompute()` (nightly): step 1 for students with no profile yet, whose `recheck_at`
  has come (the 90-day attendance window moves) or whom the lifecycle engine decided differently
  (everyone with `full=True`); step 2 for the campuses where an RFM input changed since their
  last scoring (in this run, or after a fact: `moved`) or that were never scored: a campus's
  scores follow from those inputs and its cut-offs alone (new cut-offs score it through their
  own service, `persona_settings_update`).
Tag rules are applied after both (`personas.services.tag_rules`): to the students a run changed and
the rules that read beyond the profile; every rule to everyone with `full=True`.

On SQLite (the embedded default) the same rules run in Python over the ORM's rows.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from psycopg import sql

from crm.models import Attendance, Campus, Consultation, Contract, Student, StudentStage, TrialLesson
from lifecycle.services.recompute import HALF_BLOCKS, IN_HALVES_FROM, Half, fixed_offset_span, half_params, in_half
from personas.models import CampusScoreCuts, PersonaSettings, StudentProfile
from personas.prepared import PREPARED_UP_TO, execute_prepared
from personas.rules import (
    AFTERNOON_FROM,
    EVENING_FROM,
    NEVER,
    RATE_WINDOW,
    SEGMENT_GRID,
    ContractFact,
    Figures,
    LessonFact,
    ProfileHistory,
    RfmInput,
    TierCuts,
    TrialFact,
    campus_scores,
    cuts_of,
    figures_for,
    fm_of,
    rfm_input,
    score_from_cuts,
    tier_floors,
    tier_from_floors,
)
from personas.services.tag_rules import tag_rules_apply, tag_rules_nightly

FIGURE_COLUMNS = (
    "campus_id",
    "recency_at",
    "frequency",
    "monetary",
    "lessons_scheduled_90",
    "lessons_present_90",
    "attendance_rate",
    "preferred_weekday",
    "preferred_slot",
    "subjects",
    "subject_list",
    "avg_rating",
    "ratings",
    "first_signed_at",
    "remaining_hours",
    "last_touch_at",
    "stage",
    "at_risk",
    "renewal_due",
    "recheck_at",
)
# A change of these moves the campus's distribution: its scores are due again.
RFM_INPUTS = ("campus_id", "recency_at", "frequency", "monetary")


# Step 1. Placeholders: {target} (which students), {facts} (the same said on each fact table's
# student_id, so a few students are index look-ups and everyone a plain scan).
FIGURES_SQL = sql.SQL("""
WITH
-- The students this run computes.
targets AS MATERIALIZED (
    SELECT s.id AS student_id, s.campus_id FROM crm_student s WHERE {target}
),
-- figures_for: contracts not cancelled give F, M (paid minus refunds), the last and first
-- signing, and the hours left on the active ones; their courses' subjects.
contract_facts AS (
    SELECT c.student_id, count(*) AS frequency, sum(c.paid_amount - c.refund_amount) AS monetary,
           max(c.signed_at) AS last_signed_at, min(c.signed_at) AS first_signed_at,
           coalesce(sum(c.hours_bought - c.hours_consumed) FILTER (WHERE c.status = 'active'), 0) AS remaining_hours
    FROM crm_contract c
    WHERE c.status <> 'cancelled' AND {facts_c}
    GROUP BY c.student_id
),
-- figures_for: the last present lesson; the 90-day window's scheduled and present lessons; the
-- next moment a lesson enters or leaves the window; per local weekday and slot, the window's
-- present lessons.
lesson_facts AS (
    SELECT a.student_id, max(a.lesson_at) AS last_lesson_at,
           max(a.lesson_at) FILTER (WHERE a.present) AS last_present_at,
           count(*) FILTER (WHERE a.lesson_at > %(window_from)s AND a.lesson_at <= %(now)s) AS scheduled,
           count(*) FILTER (WHERE a.lesson_at > %(window_from)s AND a.lesson_at <= %(now)s AND a.present) AS present,
           min(CASE WHEN a.lesson_at > %(now)s THEN a.lesson_at
                    WHEN a.lesson_at > %(window_from)s THEN a.lesson_at + %(window)s END) AS recheck_at,
           count(*) FILTER (WHERE a.weekday = 1) AS wd1,
           count(*) FILTER (WHERE a.weekday = 2) AS wd2,
           count(*) FILTER (WHERE a.weekday = 3) AS wd3,
           count(*) FILTER (WHERE a.weekday = 4) AS wd4,
           count(*) FILTER (WHERE a.weekday = 5) AS wd5,
           count(*) FILTER (WHERE a.weekday = 6) AS wd6,
           count(*) FILTER (WHERE a.weekday = 7) AS wd7,
           count(*) FILTER (WHERE a.hour < %(afternoon)s) AS morning,
           count(*) FILTER (WHERE a.hour >= %(afternoon)s AND a.hour < %(evening)s) AS afternoon,
           count(*) FILTER (WHERE a.hour >= %(evening)s) AS evening
    -- The local weekday and hour of the window's present lessons (NULL for the others), from their
    -- local time in seconds, computed once per row (OFFSET 0 keeps the planner from copying the
    -- expressions into every count).
    FROM (SELECT l.student_id, l.lesson_at, l.present,
                 (floor(l.local_seconds / 86400)::bigint + 3) %% 7 + 1 AS weekday,
                 floor((l.local_seconds - floor(l.local_seconds / 86400) * 86400) / 3600) AS hour
          FROM (SELECT x.student_id, x.lesson_at, x.status = 'present' AS present,
                       CASE WHEN x.status = 'present' AND x.lesson_at > %(window_from)s AND x.lesson_at <= %(now)s
                            THEN {local_seconds} END AS local_seconds
                FROM crm_attendance x WHERE {facts_x}) l
          OFFSET 0) a
    GROUP BY a.student_id
),
-- figures_for: the last trial not cancelled, and the teachers' ratings of every trial.
trial_facts AS (
    SELECT t.student_id, max(t.scheduled_at) FILTER (WHERE t.status <> 'cancelled') AS last_trial_at,
           round(avg(t.rating), 2) AS avg_rating, count(t.rating) AS ratings
    FROM crm_triallesson t
    WHERE {facts_t}
    GROUP BY t.student_id
),
consultation_facts AS (
    SELECT k.student_id, max(k.consulted_at) AS last_consulted_at
    FROM crm_consultation k
    WHERE {facts_k}
    GROUP BY k.student_id
),
-- figures_for: the subjects of contracts and trials not cancelled, sorted by code point.
subject_facts AS (
    SELECT x.student_id, jsonb_agg(DISTINCT x.subject ORDER BY x.subject) AS subjects,
           string_agg(DISTINCT x.subject, E'\\n' ORDER BY x.subject) AS subject_list
    FROM (SELECT c.student_id, co.subject COLLATE "C" AS subject
          FROM crm_contract c JOIN crm_course co ON co.id = c.course_id
          WHERE c.status <> 'cancelled' AND co.subject <> '' AND {facts_c}
          UNION ALL
          SELECT t.student_id, co.subject COLLATE "C"
          FROM crm_triallesson t JOIN crm_course co ON co.id = t.course_id
          WHERE t.status <> 'cancelled' AND co.subject <> '' AND {facts_t}) x
    GROUP BY x.student_id
),
figures AS (
    SELECT g.student_id, g.campus_id,
           CASE WHEN cf.frequency > 0 THEN greatest(lf.last_present_at, cf.last_signed_at) END AS recency_at,
           coalesce(cf.frequency, 0) AS frequency, coalesce(cf.monetary, 0) AS monetary,
           coalesce(lf.scheduled, 0) AS lessons_scheduled_90, coalesce(lf.present, 0) AS lessons_present_90,
           CASE WHEN lf.scheduled > 0 THEN round(lf.present::numeric / lf.scheduled, 4) END AS attendance_rate,
           -- the most frequent, the earliest on a tie
           CASE greatest(lf.wd1, lf.wd2, lf.wd3, lf.wd4, lf.wd5, lf.wd6, lf.wd7)
               WHEN 0 THEN NULL WHEN lf.wd1 THEN 1 WHEN lf.wd2 THEN 2 WHEN lf.wd3 THEN 3 WHEN lf.wd4 THEN 4
               WHEN lf.wd5 THEN 5 WHEN lf.wd6 THEN 6 WHEN lf.wd7 THEN 7 END AS preferred_weekday,
           coalesce(CASE greatest(lf.morning, lf.afternoon, lf.evening)
               WHEN 0 THEN NULL WHEN lf.morning THEN 'morning' WHEN lf.afternoon THEN 'afternoon'
               WHEN lf.evening THEN 'evening' END, '') AS preferred_slot,
           coalesce(sf.subjects, '[]'::jsonb) AS subjects, coalesce(sf.subject_list, '') AS subject_list,
           tf.avg_rating, coalesce(tf.ratings, 0) AS ratings,
           cf.first_signed_at, coalesce(cf.remaining_hours, 0) AS remaining_hours,
           greatest(kf.last_consulted_at, tf.last_trial_at, cf.last_signed_at, lf.last_lesson_at) AS last_touch_at,
           coalesce(st.stage, '') AS stage, coalesce(st.at_risk, false) AS at_risk,
           coalesce(st.renewal_due, false) AS renewal_due,
           coalesce(lf.recheck_at, %(never)s) AS recheck_at
    FROM targets g
    LEFT JOIN crm_studentstage st ON st.student_id = g.student_id AND {part_st}
    LEFT JOIN contract_facts cf ON cf.student_id = g.student_id
    LEFT JOIN lesson_facts lf ON lf.student_id = g.student_id
    LEFT JOIN trial_facts tf ON tf.student_id = g.student_id
    LEFT JOIN consultation_facts kf ON kf.student_id = g.student_id
    LEFT JOIN subject_facts sf ON sf.student_id = g.student_id
),
-- The students whose figures differ from their stored profile (or who have none yet): a hash
-- join, where an upsert of everyone would probe the key index once per student.
changed AS (
    SELECT f.*, old.campus_id AS old_campus_id, coalesce(old.frequency, 0) AS old_frequency,
           (old.campus_id, old.recency_at, old.frequency, old.monetary)
               IS DISTINCT FROM (f.campus_id, f.recency_at, f.frequency, f.monetary) AS rfm_changed
    FROM figures f LEFT JOIN personas_studentprofile old ON old.student_id = f.student_id AND {part_old}
    WHERE old.student_id IS NULL OR ({old_columns}) IS DISTINCT FROM ({f_columns})
),
-- The campuses whose distribution moves: an RFM student's inputs changed (or their campus did).
moved AS (
    SELECT c.campus_id FROM changed c WHERE (c.old_frequency > 0 OR c.frequency > 0) AND c.rfm_changed
    UNION
    SELECT c.old_campus_id FROM changed c WHERE c.old_frequency > 0 AND c.old_campus_id <> c.campus_id
),
-- A new student's row is inserted unscored; the scores are step 2's (or the event path's).
written AS (
    INSERT INTO personas_studentprofile AS p
        (student_id, {columns}, r_score, f_score, m_score, rfm_segment, value_tier, computed_at)
    SELECT f.student_id, {f_columns}, NULL, NULL, NULL, '', '', %(now)s
    FROM changed f
    ORDER BY f.student_id
    ON CONFLICT (student_id) DO UPDATE SET {updates}, computed_at = excluded.computed_at
    RETURNING p.student_id
)
SELECT (SELECT count(*) FROM targets), (SELECT count(*) FROM written),
       coalesce((SELECT array_agg(campus_id ORDER BY campus_id) FROM moved), '{{}}'::bigint[]),
       coalesce((SELECT array_agg(student_id) FROM written), '{{}}'::bigint[])
""")

# Step 2: every RFM student of the named campuses scored, from their stored inputs. Placeholder:
# {recency_day} (LOCAL_DAY).
SCORES_SQL_TEMPLATE = sql.SQL("""
WITH
-- The RFM students of the named campuses, R as the campus-local day of recency_at.
base AS MATERIALIZED (
    SELECT p.student_id, p.campus_id, p.frequency, p.monetary, {recency_day} AS recency_day
    FROM personas_studentprofile p
    WHERE p.frequency > 0 AND p.campus_id = ANY(%(campuses)s::bigint[])
),
population AS (SELECT campus_id, count(*) AS n FROM base GROUP BY campus_id),
-- rules.at_or_below_counts: per campus and distinct value, how many are at or below it (ties
-- included): a running sum over the few distinct values instead of a sort of every student.
r_counts AS (
    SELECT campus_id, recency_day, (sum(count(*)) OVER (PARTITION BY campus_id ORDER BY recency_day))::bigint AS le
    FROM base GROUP BY campus_id, recency_day
),
f_counts AS (
    SELECT campus_id, frequency, (sum(count(*)) OVER (PARTITION BY campus_id ORDER BY frequency))::bigint AS le
    FROM base GROUP BY campus_id, frequency
),
m_counts AS (
    SELECT campus_id, monetary, (sum(count(*)) OVER (PARTITION BY campus_id ORDER BY monetary))::bigint AS le
    FROM base GROUP BY campus_id, monetary
),
ranked AS (
    SELECT b.*, pop.n, rc.le AS r_le, fc.le AS f_le, mc.le AS m_le
    FROM base b
    JOIN population pop ON pop.campus_id = b.campus_id
    JOIN r_counts rc ON rc.campus_id = b.campus_id AND rc.recency_day = b.recency_day
    JOIN f_counts fc ON fc.campus_id = b.campus_id AND fc.frequency = b.frequency
    JOIN m_counts mc ON mc.campus_id = b.campus_id AND mc.monetary = b.monetary
),
-- rules.score: ceil(5 x cume_dist) in integers; rules.tier_of with the campus's cut-offs.
scored AS (
    SELECT r.*, (5 * r.r_le + r.n - 1) / r.n AS r_score, (5 * r.f_le + r.n - 1) / r.n AS f_score,
           (5 * r.m_le + r.n - 1) / r.n AS m_score,
           CASE WHEN r.m_le * 100 > coalesce(ps.tier_high_above_pct, %(high_pct)s) * r.n THEN 'high'
                WHEN r.m_le * 100 > coalesce(ps.tier_medium_above_pct, %(medium_pct)s) * r.n THEN 'medium'
                ELSE 'low' END AS value_tier
    FROM ranked r
    LEFT JOIN personas_personasettings ps ON ps.campus_id = r.campus_id
),
-- rules.SEGMENT_GRID by R and FM = round-half-up((F + M) / 2).
grid AS (
    SELECT * FROM unnest(%(grid_r)s::int[], %(grid_fm)s::int[], %(grid_segment)s::varchar[]) AS g(r, fm, segment)
),
decided AS (
    SELECT s.student_id, s.r_score, s.f_score, s.m_score, grid.segment, s.value_tier
    FROM scored s JOIN grid ON grid.r = s.r_score AND grid.fm = (s.f_score + s.m_score + 1) / 2
),
written AS (
    UPDATE personas_studentprofile p
    SET r_score = d.r_score, f_score = d.f_score, m_score = d.m_score, rfm_segment = d.segment,
        value_tier = d.value_tier
    FROM (SELECT * FROM decided ORDER BY student_id) d
    WHERE p.student_id = d.student_id
      AND (p.r_score, p.f_score, p.m_score, p.rfm_segment, p.value_tier)
          IS DISTINCT FROM (d.r_score, d.f_score, d.m_score, d.segment, d.value_tier)
    RETURNING p.student_id
),
-- Students with no RFM keep no scores.
cleared AS (
    UPDATE personas_studentprofile p
    SET r_score = NULL, f_score = NULL, m_score = NULL, rfm_segment = '', value_tier = ''
    WHERE p.frequency = 0 AND p.campus_id = ANY(%(campuses)s::bigint[])
      AND (p.r_score IS NOT NULL OR p.rfm_segment <> '' OR p.value_tier <> '')
    RETURNING p.student_id
)
-- rules.cuts_of and rules.tier_floors per campus, for scoring one student after a fact.
SELECT s.campus_id, count(*),
       max(s.recency_day) FILTER (WHERE s.r_score <= 1), max(s.recency_day) FILTER (WHERE s.r_score <= 2),
       max(s.recency_day) FILTER (WHERE s.r_score <= 3), max(s.recency_day) FILTER (WHERE s.r_score <= 4),
       max(s.frequency) FILTER (WHERE s.f_score <= 1), max(s.frequency) FILTER (WHERE s.f_score <= 2),
       max(s.frequency) FILTER (WHERE s.f_score <= 3), max(s.frequency) FILTER (WHERE s.f_score <= 4),
       max(s.monetary) FILTER (WHERE s.m_score <= 1), max(s.monetary) FILTER (WHERE s.m_score <= 2),
       max(s.monetary) FILTER (WHERE s.m_score <= 3), max(s.monetary) FILTER (WHERE s.m_score <= 4),
       min(s.monetary) FILTER (WHERE s.value_tier = 'high'), min(s.monetary) FILTER (WHERE s.value_tier = 'medium'),
       NULL::bigint[]
FROM scored s
GROUP BY s.campus_id
UNION ALL
-- The last row: the students whose scores were written.
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       coalesce((SELECT array_agg(student_id) FROM (SELECT student_id FROM written UNION ALL
                                                   SELECT student_id FROM cleared) w), '{{}}'::bigint[])
""")


# A lesson's local wall-clock time in seconds since 1970: within the span where the zone keeps one
# UTC offset (lifecycle's fixed_offset_span), a shift; elsewhere the zone's rules, which cost more.
LOCAL_SECONDS = sql.SQL(
    "CASE WHEN x.lesson_at >= %(fixed_from)s AND x.lesson_at < %(fixed_to)s "
    "THEN date_part('epoch', x.lesson_at) + %(fixed_offset)s "
    "ELSE date_part('epoch', x.lesson_at AT TIME ZONE %(tz)s) END"
)


# The campus-local day of recency_at (the session runs in UTC), the same way.
LOCAL_DAY = sql.SQL(
    "CASE WHEN p.recency_at >= %(fixed_from)s AND p.recency_at < %(fixed_to)s "
    "THEN (p.recency_at + make_interval(secs => %(fixed_offset)s))::date "
    "ELSE (p.recency_at AT TIME ZONE %(tz)s)::date END"
)


@dataclass(frozen=True)
class ProfileResult:
    computed: int  # students whose figures were computed
    written: int  # profile rows written (figures changed)
    campuses_scored: int


def _grid_params() -> dict[str, Any]:
    cells = [(r, fm, name) for r, row in SEGMENT_GRID.items() for fm, name in row.items()]
    return {
        "grid_r": [c[0] for c in cells],
        "grid_fm": [c[1] for c in cells],
        "grid_segment": [c[2] for c in cells],
    }


def _figure_params(now: dt.datetime) -> dict[str, Any]:
    fixed_from, fixed_to, offset = fixed_offset_span(settings.TIME_ZONE, timezone.localdate(now))
    zone = ZoneInfo(settings.TIME_ZONE)
    return {
        "fixed_from": dt.datetime.combine(fixed_from, dt.time(0), tzinfo=zone),
        "fixed_to": dt.datetime.combine(fixed_to, dt.time(0), tzinfo=zone),
        "fixed_offset": offset.total_seconds(),
        "now": now,
        "window": RATE_WINDOW,
        "window_from": now - RATE_WINDOW,
        "tz": settings.TIME_ZONE,
        "never": NEVER,
        "afternoon": AFTERNOON_FROM,
        "evening": EVENING_FROM,
    }


def _figures_statement(*, by_ids: bool, due: bool, half: Half | None = None) -> sql.Composed:
    """FIGURES_SQL for a list of ids, the due students or everyone, within one half of a big run."""
    if by_ids:
        target: sql.Composable = sql.SQL("s.id = ANY(%(ids)s::bigint[])")
        facts: dict[str, sql.Composable] = {
            f"facts_{alias}": sql.SQL(f"{alias}.student_id = ANY(%(ids)s::bigint[])") for alias in ("c", "x", "t", "k")
        }
    else:
        due_only = sql.SQL(
            "NOT EXISTS (SELECT 1 FROM personas_studentprofile p WHERE p.student_id = s.id AND "
            "p.recheck_at > %(now)s AND p.campus_id = s.campus_id)"
        )
        target = sql.SQL(" AND ").join([due_only if due else sql.SQL("true"), in_half("s", half, "id")])
        # The due students' facts by their keys; everyone's (of the half) by plain scans.
        facts = {
            f"facts_{alias}": sql.SQL(f"{alias}.student_id IN (SELECT student_id FROM targets)")
            if due
            else in_half(alias, half)
            for alias in ("c", "x", "t", "k")
        }
        if half is not None and not due:
            # The attendance rows (ten times the others) by a test per row in one plain scan: the
            # half's key ranges as index scans visit the table's pages in a bitmap, which costs more.
            facts["facts_x"] = sql.SQL("x.student_id / %(half_size)s %% 2 = %(half_parity)s")
    columns = [sql.Identifier(c) for c in FIGURE_COLUMNS]
    return FIGURES_SQL.format(
        target=target,
        columns=sql.SQL(", ").join(columns),
        f_columns=sql.SQL(", ").join(sql.SQL("f.{}").format(c) for c in columns),
        old_columns=sql.SQL(", ").join(sql.SQL("old.{}").format(c) for c in columns),
        local_seconds=LOCAL_SECONDS,
        # Within a half, the stage and profile rows it joins are read by the half's key ranges too.
        part_st=in_half("st", half),
        part_old=in_half("old", half),
        updates=sql.SQL(", ").join(sql.SQL("{c} = excluded.{c}").format(c=c) for c in columns),
        **facts,
    )


def _tier_cuts() -> dict[int, TierCuts]:
    return {
        row.campus_id: TierCuts(row.tier_high_above_pct, row.tier_medium_above_pct)
        for row in PersonaSettings.objects.all()
    }


@dataclass(frozen=True)
class Computed:
    """What step 1 did: how many students it computed, whose rows it wrote, and the campuses whose
    distribution moved."""

    computed: int = 0
    written: tuple[int, ...] = ()
    moved: tuple[int, ...] = ()


def _compute_figures(ids: list[int] | None, *, now: dt.datetime, due: bool, half: Half | None = None) -> Computed:
    """Step 1 on PostgreSQL."""
    if ids is None and half is None and not connection.in_atomic_block and _students_estimate() >= IN_HALVES_FROM:
        return _compute_in_halves(now=now, due=due)
    if ids is not None and len(ids) <= PREPARED_UP_TO and half is None and not due:
        # Planning FIGURES_SQL costs several times running it for one student (personas.prepared).
        return _compute_figures_of(ids, now=now)
    statement = _figures_statement(by_ids=ids is not None, due=due, half=half)
    with transaction.atomic(), connection.cursor() as cursor:
        if ids is None:
            cursor.execute("SET LOCAL work_mem = '256MB'")
            cursor.execute("SET LOCAL jit = off")
        # Half.ranges are the key blocks [k * size, (k + 1) * size) whose number k has the half's parity.
        extra = {"half_size": half.size, "half_parity": half.parity} if half else {}
        cursor.execute(statement, {**_figure_params(now), "ids": ids, **half_params(half), **extra})
        row = cursor.fetchone()
    assert row is not None
    return Computed(row[0], tuple(row[3]), tuple(row[2]))


def _compute_figures_of(ids: list[int], *, now: dt.datetime) -> Computed:
    """Step 1 for a few students (after a fact)."""
    row = execute_prepared(_figures_of_ids_sql(), {**_figure_params(now), "ids": ids}).fetchone()
    assert row is not None
    return Computed(row[0], tuple(row[3]), tuple(row[2]))


@functools.cache
def _figures_of_ids_sql() -> str:
    # Composed once: composing it costs a millisecond.
    connection.ensure_connection()
    return _figures_statement(by_ids=True, due=False).as_string(connection.connection)


def _students_estimate() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'crm_student'")
        row = cursor.fetchone()
    return max(row[0], 0) if row else 0


def _compute_in_halves(*, now: dt.datetime, due: bool) -> Computed:
    """Step 1 of a big run in two halves of the student keys at once, each on a connection of its
    own thread: PostgreSQL plans no parallel workers for a statement that writes, and computing the
    figures is CPU-bound (the lifecycle engine's big runs do the same)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM crm_student")
        row = cursor.fetchone()
    assert row is not None
    if row[0] is None:
        return Computed()
    low, high = row[0], row[1] + 1
    size = -(-(high - low) // HALF_BLOCKS)
    halves = [h for parity in (0, 1) if (h := Half(size=size, parity=parity, low=low, high=high)).ranges]

    def run(half: Half) -> Computed:
        try:
            return _compute_figures(None, now=now, due=due, half=half)
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, halves))
    return Computed(
        sum(r.computed for r in results),
        tuple(sid for r in results for sid in r.written),
        tuple(sorted({c for r in results for c in r.moved})),
    )


def _score_campuses(campus_ids: list[int], *, now: dt.datetime) -> list[int]:
    """Step 2 on PostgreSQL for whole campuses; keeps their cut-points. The students written."""
    if not campus_ids:
        return []
    defaults = TierCuts()
    params = {
        **_figure_params(now),
        "campuses": campus_ids,
        "high_pct": defaults.high_above_pct,
        "medium_pct": defaults.medium_above_pct,
        **_grid_params(),
    }
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '256MB'")
            cursor.execute("SET LOCAL jit = off")
            cursor.execute(SCORES_SQL_TEMPLATE.format(recency_day=LOCAL_DAY), params)
            rows = cursor.fetchall()
        *campuses, totals = rows
        written = list(totals[16])
        for row in campuses:
            _keep_cuts(row[0], row[1], now, list(row[2:6]), list(row[6:10]), list(row[10:14]), row[14], row[15])
        for campus_id in set(campus_ids) - {row[0] for row in campuses}:
            # No RFM student left: the statement cleared the campus's scores; its cut-points go too.
            _keep_cuts(campus_id, 0, now, [None] * 4, [None] * 4, [None] * 4, None, None)
    return written


def _keep_cuts(
    campus_id: int,
    population: int,
    now: dt.datetime,
    r_cuts: list[dt.date | None],
    f_cuts: list[int | None],
    m_cuts: list[Decimal | None],
    high_from: Decimal | None,
    medium_from: Decimal | None,
) -> None:
    CampusScoreCuts.objects.update_or_create(
        campus_id=campus_id,
        defaults={
            "population": population,
            "as_of": now,
            "recency_cuts": [d.isoformat() if d is not None else None for d in r_cuts],
            "frequency_cuts": f_cuts,
            "monetary_cuts": [str(m) if m is not None else None for m in m_cuts],
            "tier_high_from": high_from,
            "tier_medium_from": medium_from,
            "moved": False,
        },
    )


@dataclass(frozen=True)
class CampusCuts:
    """A CampusScoreCuts row as the rules read it."""

    recency: list[dt.date | None]
    frequency: list[int | None]
    monetary: list[Decimal | None]
    high_from: Decimal | None
    medium_from: Decimal | None

    @classmethod
    def of(cls, row: CampusScoreCuts) -> CampusCuts:
        return cls(
            recency=[dt.date.fromisoformat(d) if d else None for d in row.recency_cuts],
            frequency=[int(f) if f is not None else None for f in row.frequency_cuts],
            monetary=[Decimal(m) if m is not None else None for m in row.monetary_cuts],
            high_from=row.tier_high_from,
            medium_from=row.tier_medium_from,
        )

    def scores(self, value: RfmInput) -> tuple[int, int, int, str, str]:
        r = score_from_cuts(value.recency_day, self.recency)
        f = score_from_cuts(value.frequency, self.frequency)
        m = score_from_cuts(value.monetary, self.monetary)
        return r, f, m, SEGMENT_GRID[r][fm_of(f, m)], tier_from_floors(value.monetary, self.high_from, self.medium_from)


def _score_from_cuts(ids: list[int]) -> list[int]:
    """After a fact: these students scored against their campus's last full scoring; a campus
    never scored (or scored before it had RFM students) is scored whole. The students written."""
    profiles = list(StudentProfile.objects.filter(pk__in=ids))
    campus_ids = {p.campus_id for p in profiles}
    cuts = {row.campus_id: row for row in CampusScoreCuts.objects.filter(campus_id__in=campus_ids)}
    unscored = sorted(
        c
        for c in campus_ids
        if (c not in cuts or cuts[c].population == 0) and any(p.frequency > 0 for p in profiles if p.campus_id == c)
    )
    scorer = _score_campuses if connection.vendor == "postgresql" else _score_campuses_in_python
    written = scorer(unscored, now=timezone.now()) if unscored else []
    changed: list[StudentProfile] = []
    for p in profiles:
        if p.campus_id in unscored:
            continue
        value = rfm_input(_figures_of(p), settings.TIME_ZONE)
        if value is None:
            scores: tuple[Any, ...] = (None, None, None, "", "")
        else:
            scores = CampusCuts.of(cuts[p.campus_id]).scores(value)
        if (p.r_score, p.f_score, p.m_score, p.rfm_segment, p.value_tier) != scores:
            p.r_score, p.f_score, p.m_score, p.rfm_segment, p.value_tier = scores
            changed.append(p)
    StudentProfile.objects.bulk_update(changed, ["r_score", "f_score", "m_score", "rfm_segment", "value_tier"])
    return [*written, *(p.pk for p in changed)]


def _figures_of(p: StudentProfile) -> Figures:
    return Figures(
        recency_at=p.recency_at,
        frequency=p.frequency,
        monetary=p.monetary,
        lessons_scheduled_90=p.lessons_scheduled_90,
        lessons_present_90=p.lessons_present_90,
        attendance_rate=p.attendance_rate,
        preferred_weekday=p.preferred_weekday,
        preferred_slot=p.preferred_slot,
        subjects=tuple(p.subjects),
        avg_rating=p.avg_rating,
        ratings=p.ratings,
        first_signed_at=p.first_signed_at,
        remaining_hours=p.remaining_hours,
        last_touch_at=p.last_touch_at,
        recheck_at=p.recheck_at or NEVER,
    )


def profiles_after_event(student_ids: Iterable[int], *, now: dt.datetime | None = None) -> ProfileResult:
    """One student's (or a few students') profile after a fact: figures, scores, tags."""
    ids = sorted(set(student_ids))
    if not ids:
        return ProfileResult(0, 0, 0)
    now = now or timezone.now()
    with transaction.atomic():
        compute = _compute_figures if connection.vendor == "postgresql" else _compute_in_python
        done = compute(ids, now=now, due=False)
        # These students are scored against the campus as it was; the campus is scored again tonight.
        CampusScoreCuts.objects.filter(campus_id__in=done.moved, moved=False).update(moved=True)
        scored = _score_from_cuts(ids)
        tag_rules_apply(student_ids=ids)
    return ProfileResult(done.computed, len({*done.written, *scored}), 0)


# Up to this many due students, the nightly run names them (as the lifecycle engine's does).
DUE_BY_KEY_LIMIT = 100_000


def _due_ids(now: dt.datetime) -> list[int] | None:
    """The students the nightly run must compute: their 90-day window moved, the lifecycle engine
    decided them differently, or they have no profile yet (searched only when the counts of
    students and profiles differ). None: too many to name. A quiet night costs a pass over the two
    narrow tables."""
    due = list(
        StudentProfile.objects.filter(Q(recheck_at__isnull=True) | Q(recheck_at__lte=now)).values_list("pk", flat=True)[
            : DUE_BY_KEY_LIMIT + 1
        ]
    )
    # The engine decided them differently since their profile was computed (a stage or flag changed).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.student_id FROM personas_studentprofile p JOIN crm_studentstage s ON s.student_id = p.student_id "
            "WHERE (p.stage, p.at_risk, p.renewal_due) IS DISTINCT FROM (s.stage, s.at_risk, s.renewal_due) LIMIT %s",
            [DUE_BY_KEY_LIMIT + 1],
        )
        due += [row[0] for row in cursor.fetchall()]
    if Student.objects.count() != StudentProfile.objects.count():
        due += list(Student.objects.filter(profile__isnull=True).values_list("pk", flat=True)[: DUE_BY_KEY_LIMIT + 1])
    return sorted(set(due)) if len(due) <= DUE_BY_KEY_LIMIT else None


# Fewer rows than this written do not mislead the planner enough to matter.
ANALYZE_MIN_ROWS = 1000


def analyze_if_stale(table: str, *, rows: int) -> bool:
    """ANALYZE `table` when the planner believes it holds fewer than half the `rows` it is known to
    hold (the run just computed them).

    A first run (a new installation, a large import) fills the profiles within minutes of their
    last statistics, which said the table was empty; the tag rules that follow join it, and the
    planner's nested loops over a table it believes empty take minutes instead of seconds. Later
    runs find the statistics close enough and skip this."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        believed = cursor.fetchone()[0]
        if rows < ANALYZE_MIN_ROWS or believed >= rows / 2:
            return False
        cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
    return True


def profiles_recompute(*, now: dt.datetime | None = None, full: bool = False) -> ProfileResult:
    """The nightly run: due students' figures (every student's with `full=True`), then the
    campuses whose distribution moved, then the tag rules (every rule over everyone when full)."""
    now = now or timezone.now()
    python = connection.vendor != "postgresql"
    if python:
        done = _compute_in_python(None, now=now, due=not full)
    elif full:
        done = _compute_figures(None, now=now, due=False)
    else:
        due = _due_ids(now)
        if due is None:  # most are due: the set-based way
            done = _compute_figures(None, now=now, due=True)
        else:
            done = _compute_figures(due, now=now, due=False) if due else Computed()
    # A campus's scores follow from its students' RFM inputs and its cut-offs alone: it is scored
    # again when an input moved (in this run, or after a fact since its last scoring), when its
    # cut-offs changed (their service scores it at once) or when it was never scored. Even a full
    # run of every student skips the others, whose scores could not come out different.
    campuses = sorted(
        {
            *done.moved,
            *CampusScoreCuts.objects.filter(moved=True).values_list("campus_id", flat=True),
            *Campus.objects.exclude(pk__in=CampusScoreCuts.objects.values("campus_id")).values_list("pk", flat=True),
        }
    )
    scorer = _score_campuses_in_python if python else _score_campuses
    written = {*done.written, *scorer(campuses, now=now)}
    if not python:
        analyze_if_stale(StudentProfile._meta.db_table, rows=done.computed)
    if full:
        # Every rule over every student, the campuses shared out over two connections: cheaper
        # than picking out the changed students when a run changes a third of them.
        tag_rules_apply()
    else:
        # The rules read the profile, the stage and the facts: the students whose profile changed
        # tonight (figures, scores, or the engine's decision) are the ones a rule can newly select;
        # rules that read what changes without a profile change run over everyone.
        tag_rules_nightly(changed_ids=sorted(written))
    return ProfileResult(done.computed, len(written), len(campuses))


def profiles_rescore_campus(*, campus_id: int, now: dt.datetime | None = None) -> int:
    """One campus scored again whole (new tier cut-offs), then its tag rules. The rows written."""
    if not Campus.objects.filter(pk=campus_id).exists():
        return 0
    scorer = _score_campuses if connection.vendor == "postgresql" else _score_campuses_in_python
    written = scorer([campus_id], now=now or timezone.now())
    tag_rules_apply(campus_ids=[campus_id])
    return len(written)


# --- the SQLite path: the pure rules over the ORM's rows -----------------------------------------


def histories_of(student_ids: Iterable[int]) -> dict[int, ProfileHistory]:
    """Every raw fact the persona rules read, for these students: four queries whatever their number."""
    ids = list(student_ids)
    consultations: dict[int, list[dt.datetime]] = defaultdict(list)
    for sid, at in Consultation.objects.filter(student_id__in=ids).values_list("student_id", "consulted_at"):
        consultations[sid].append(at)
    trials: dict[int, list[TrialFact]] = defaultdict(list)
    for sid, at, status, rating, subject in TrialLesson.objects.filter(student_id__in=ids).values_list(
        "student_id", "scheduled_at", "status", "rating", "course__subject"
    ):
        trials[sid].append(TrialFact(at, status, rating, subject))
    contracts: dict[int, list[ContractFact]] = defaultdict(list)
    for c in Contract.objects.filter(student_id__in=ids).select_related("course"):
        contracts[c.student_id].append(
            ContractFact(
                c.status,
                c.signed_at,
                c.paid_amount,
                c.refund_amount,
                c.hours_bought,
                c.hours_consumed,
                c.course.subject,
            )
        )
    lessons: dict[int, list[LessonFact]] = defaultdict(list)
    for sid, at, status in Attendance.objects.filter(student_id__in=ids).values_list(
        "student_id", "lesson_at", "status"
    ):
        lessons[sid].append(LessonFact(at, status))
    return {
        sid: ProfileHistory(tuple(consultations[sid]), tuple(trials[sid]), tuple(contracts[sid]), tuple(lessons[sid]))
        for sid in ids
    }


BATCH = 2000


def _compute_in_python(ids: list[int] | None, *, now: dt.datetime, due: bool) -> Computed:
    students = Student.objects.all()
    if ids is not None:
        students = students.filter(pk__in=ids)
    elif due:
        fresh = StudentProfile.objects.filter(recheck_at__gt=now).values("pk")
        students = students.exclude(Q(pk__in=fresh))
    targets = list(students.order_by("pk").values_list("pk", "campus_id"))
    computed = 0
    written: list[int] = []
    moved: set[int] = set()
    for start in range(0, len(targets), BATCH):
        batch = dict(targets[start : start + BATCH])
        histories = histories_of(batch)
        old = StudentProfile.objects.in_bulk(list(batch))
        decided = {
            row[0]: row[1:]
            for row in StudentStage.objects.filter(pk__in=list(batch)).values_list(
                "pk", "stage", "at_risk", "renewal_due"
            )
        }
        for sid, campus_id in batch.items():
            computed += 1
            f = figures_for(histories[sid], now, settings.TIME_ZONE)
            values = {
                "campus_id": campus_id,
                "recency_at": f.recency_at,
                "frequency": f.frequency,
                "monetary": f.monetary,
                "lessons_scheduled_90": f.lessons_scheduled_90,
                "lessons_present_90": f.lessons_present_90,
                "attendance_rate": f.attendance_rate,
                "preferred_weekday": f.preferred_weekday,
                "preferred_slot": f.preferred_slot,
                "subjects": list(f.subjects),
                "subject_list": "\n".join(f.subjects),
                "avg_rating": f.avg_rating,
                "ratings": f.ratings,
                "first_signed_at": f.first_signed_at,
                "remaining_hours": f.remaining_hours,
                "last_touch_at": f.last_touch_at,
                "stage": decided.get(sid, ("", False, False))[0],
                "at_risk": decided.get(sid, ("", False, False))[1],
                "renewal_due": decided.get(sid, ("", False, False))[2],
                "recheck_at": f.recheck_at,
            }
            row = old.get(sid)
            if row is not None and all(getattr(row, k) == v for k, v in values.items()):
                continue
            before = (row.campus_id, row.recency_at, row.frequency, row.monetary) if row else (None, None, 0, 0)
            after = (campus_id, f.recency_at, f.frequency, f.monetary)
            if (before[2] > 0 or f.frequency > 0) and before != after:
                moved.add(campus_id)
                if row is not None and row.frequency > 0 and row.campus_id != campus_id:
                    moved.add(row.campus_id)
            StudentProfile.objects.update_or_create(student_id=sid, defaults={**values, "computed_at": now})
            written.append(sid)
    return Computed(computed, tuple(written), tuple(sorted(moved)))


def _score_campuses_in_python(campus_ids: list[int], *, now: dt.datetime) -> list[int]:
    tier_cuts = _tier_cuts()
    written: list[int] = []
    for campus_id in campus_ids:
        profiles = list(StudentProfile.objects.filter(campus_id=campus_id))
        inputs = {p.pk: v for p in profiles if (v := rfm_input(_figures_of(p), settings.TIME_ZONE)) is not None}
        cuts = tier_cuts.get(campus_id, TierCuts())
        scores = campus_scores(inputs, cuts)
        changed = []
        for p in profiles:
            s = scores.get(p.pk)
            new: tuple[Any, ...] = (
                (s.r_score, s.f_score, s.m_score, s.segment, s.tier) if s else (None, None, None, "", "")
            )
            if (p.r_score, p.f_score, p.m_score, p.rfm_segment, p.value_tier) != new:
                p.r_score, p.f_score, p.m_score, p.rfm_segment, p.value_tier = new
                changed.append(p)
        StudentProfile.objects.bulk_update(changed, ["r_score", "f_score", "m_score", "rfm_segment", "value_tier"])
        written += [p.pk for p in changed]
        values = list(inputs.values())
        high, medium = tier_floors([v.monetary for v in values], cuts)
        _keep_cuts(
            campus_id,
            len(values),
            now,
            cuts_of([v.recency_day for v in values]),
            cuts_of([v.frequency for v in values]),
            cuts_of([v.monetary for v in values]),
            high,
            medium,
        )
    return written
