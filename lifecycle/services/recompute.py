"""Set-based recomputation of stages and flags, with the stage history.

`recompute_stages` decides every targeted student in one SQL statement on PostgreSQL:
the rules of `lifecycle.rules.stage_for` as a CASE over the kept aggregates
(StudentActivity) joined with the student's crm.StudentStage (the last decision), the campus's
LifecycleSettings and the at-risk window counts; one UPDATE of crm.StudentStage where the
stage, the flags or the recheck moment differ, whose RETURNING feeds the INSERT of one
StageChange per real stage change. A rerun that changes nothing writes nothing.

Which students are decided:
- a list of ids (after an event): those students;
- no ids (the nightly run): the students whose `StudentStage.recheck_at` has come or is NULL
  (their facts changed). Each decision stores the earliest moment it can change with no new fact, so the
  nightly run reads only the students that time can move. `full=True` decides everyone.
- `campus_id` narrows either to one campus.

On SQLite (the embedded default) the same rules run in Python over batches: the pure
function itself, applied to the same aggregates.

The SQL below mirrors `stage_for` branch by branch (same names: has_active, not_started,
ref_at, expiry_at, ended_at, refunded, touched_at, dropped, absent); change both together.
tests/lifecycle/test_agreement.py proves they agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from crm.models import Attendance, AuditAction, AuditEntry, Campus, Role, Student, StudentStage, User
from crm.roles import require_campus, require_role
from lifecycle.models import LifecycleSettings, StageChange, StageSource, StudentActivity
from lifecycle.rules import (
    NEVER,
    WON_BACK_FROM,
    WON_BACK_TO,
    StudentFacts,
    Thresholds,
    risk_window,
    stage_for,
)
from lifecycle.services.activity import activity_refresh
from lifecycle.services.facts import settings_ensure, thresholds_by_campus


def _reason_to_stage_sql() -> str:
    from lifecycle.rules import REASON_STAGE

    whens = " ".join(f"WHEN '{reason}' THEN '{stage}'" for reason, stage in REASON_STAGE.items())
    return f"CASE r.reason {whens} END"


def _from_now(expr: str) -> str:
    """A candidate recheck moment, kept only if it is not in the past (stage_for: `c >= now`)."""
    return f"CASE WHEN ({expr}) >= %(now)s THEN ({expr}) END"


def _days(column: str) -> str:
    """A number of days as an interval of seconds: adding it to a moment is plain arithmetic, where an
    interval of days makes PostgreSQL convert every moment to calendar fields and back (the session
    runs in UTC, where a day is 86,400 seconds either way)."""
    return f"make_interval(secs => {column} * 86400)"


def _local_midnight(day: str) -> str:
    """The start of a local calendar day (rules.local_midnight). Within the span of dates where the
    zone keeps one UTC offset (`fixed_offset_span`), a shift by that offset; elsewhere the zone's
    rules, whose lookup costs several times more per row."""
    return (
        f"CASE WHEN ({day}) >= %(tz_fixed_from)s AND ({day}) < %(tz_fixed_to)s "
        f"THEN ({day})::timestamp AT TIME ZONE make_interval(secs => %(tz_fixed_offset)s) "
        f"ELSE ({day})::timestamp AT TIME ZONE %(tz)s END"
    )


def fixed_offset_span(time_zone: str, day: dt.date) -> tuple[dt.date, dt.date, dt.timedelta]:
    """The dates [start, end) around `day` whose local midnights all have the same UTC offset (as
    that of `day`), looked for within 30 years either way; kept per zone while `day` stays inside."""
    known = _FIXED_SPANS.get(time_zone)
    if known is not None and known[0] <= day < known[1]:
        return known
    zone = ZoneInfo(time_zone)

    def offset(d: dt.date) -> dt.timedelta | None:
        return dt.datetime.combine(d, dt.time(0), tzinfo=zone).utcoffset()

    reference = offset(day)
    assert reference is not None
    start = end = day
    limit = dt.timedelta(days=30 * 366)
    while day - start < limit and offset(start - ONE_DAY) == reference:
        start -= ONE_DAY
    while end - day < limit and offset(end) == reference:
        end += ONE_DAY
    _FIXED_SPANS[time_zone] = (start, end, reference)
    return _FIXED_SPANS[time_zone]


_FIXED_SPANS: dict[str, tuple[dt.date, dt.date, dt.timedelta]] = {}
ONE_DAY = dt.timedelta(days=1)


RECOMPUTE_SQL = f"""
WITH
targets AS MATERIALIZED (
    SELECT s.student_id FROM crm_studentstage s WHERE {{target}}
),
ls AS (
    SELECT campus_id, risk_window_days, risk_drop_pct, risk_consecutive_absences, renewal_hours, renewal_days,
           {_days("active_days")} AS active_span,
           {_days("churn_days")} AS churn_span,
           {_days("ended_grace_days")} AS grace_span,
           {_days("stale_lead_days")} AS stale_span,
           %(now)s - {_days("active_days")} AS active_from,
           %(now)s - {_days("churn_days")} AS churn_from,
           %(now)s - {_days("ended_grace_days")} AS grace_from,
           %(now)s - {_days("stale_lead_days")} AS stale_from
    FROM lifecycle_lifecyclesettings
),
{{windows}}
decided0 AS (
    SELECT a.student_id, s.stage AS old_stage,
           s.at_risk AS old_at_risk, s.risk_recent AS old_risk_recent, s.risk_before AS old_risk_before,
           s.renewal_due AS old_renewal_due, s.recheck_at AS old_recheck_at,
           {_reason_to_stage_sql()} AS stage, r.reason,
           r.at_risk,
           CASE WHEN r.at_risk THEN coalesce(win.recent, 0) ELSE 0 END AS risk_recent,
           CASE WHEN r.at_risk THEN coalesce(win.before, 0) ELSE 0 END AS risk_before,
           r.renewal_due,
           coalesce(CASE
               WHEN x1.has_active THEN least(
                   {_from_now("a.last_present_at + ls.active_span")},
                   {_from_now("x2.ref_at + ls.active_span")},
                   {_from_now("x2.ref_at + ls.churn_span")},
                   {_from_now("x1.expiry_at")},
                   {_from_now("win.next_change_at")},
                   {_from_now(_local_midnight("a.active_until - ls.renewal_days"))})
               WHEN a.ever_contracted THEN CASE WHEN NOT x2.refunded THEN {_from_now("x2.ended_at + ls.grace_span")} END
               WHEN r.reason = 'closed_lost' THEN NULL
               ELSE {_from_now("x2.touched_at + ls.stale_span")}
           END, %(never)s) AS recheck_at
    FROM crm_studentstage s
    JOIN lifecycle_studentactivity a ON a.student_id = s.student_id
    JOIN ls ON ls.campus_id = s.campus_id
    LEFT JOIN win ON win.student_id = s.student_id{{win_days}}
    CROSS JOIN LATERAL (SELECT
        a.last_active_signed_at IS NOT NULL AND (a.active_until IS NULL OR a.active_until >= %(today)s) AS has_active,
        CASE WHEN a.last_active_signed_at IS NOT NULL AND a.active_until IS NOT NULL
             THEN {_local_midnight("a.active_until + 1")} END AS expiry_at
    ) x1
    CROSS JOIN LATERAL (SELECT
        (a.last_present_at IS NULL OR a.last_present_at < a.last_active_signed_at) AS not_started,
        CASE WHEN a.last_present_at IS NULL OR a.last_present_at < a.last_active_signed_at
             THEN a.last_active_signed_at ELSE a.last_present_at END AS ref_at,
        greatest(a.last_ended_at, x1.expiry_at) AS ended_at,
        a.last_ended_refunded AND a.last_ended_at IS NOT NULL
            AND (x1.expiry_at IS NULL OR a.last_ended_at >= x1.expiry_at) AS refunded,
        greatest(a.created_at, a.last_touch_at) AS touched_at,
        coalesce(win.before, 0) > 0
            AND coalesce(win.recent, 0) * 100 <= win.before * (100 - ls.risk_drop_pct) AS dropped,
        ls.risk_consecutive_absences > 0 AND a.consecutive_absences >= ls.risk_consecutive_absences AS absent
    ) x2
    CROSS JOIN LATERAL (SELECT
        CASE
            WHEN x1.has_active THEN
                CASE WHEN a.last_present_at >= ls.active_from THEN 'attending'
                     WHEN x2.ref_at >= ls.active_from THEN 'signed'
                     WHEN x2.ref_at >= ls.churn_from THEN
                         CASE WHEN x2.not_started THEN 'not_started' ELSE 'silent' END
                     ELSE CASE WHEN x2.not_started THEN 'not_started_long' ELSE 'silent_long' END
                END
            WHEN a.ever_contracted THEN
                CASE WHEN x2.refunded THEN 'refunded'
                     WHEN x2.ended_at >= ls.grace_from THEN 'ended_recently'
                     ELSE 'ended_long_ago' END
            WHEN a.lost_at IS NOT NULL AND (a.last_touch_at IS NULL OR a.last_touch_at <= a.lost_at)
                THEN 'closed_lost'
            WHEN x2.touched_at < ls.stale_from THEN 'stale_lead'
            WHEN a.has_trial THEN 'trial'
            WHEN a.has_consultation THEN 'consulted'
            ELSE 'new_lead'
        END AS reason,
        x1.has_active AND (x2.dropped OR x2.absent) AS at_risk,
        x1.has_active AND (coalesce(a.active_until <= %(today)s + ls.renewal_days, false)
                           OR coalesce(a.active_hours_remaining <= ls.renewal_hours, false)) AS renewal_due
    ) r
    WHERE {{target}} AND {{part_a}}
),
decided AS (
    -- Only the decisions that differ from the stored ones are kept (and written below).
    SELECT d.*, d.stage IS DISTINCT FROM d.old_stage AS stage_changed
    FROM decided0 d
    WHERE (d.stage, d.at_risk, d.risk_recent, d.risk_before, d.renewal_due, d.recheck_at)
          IS DISTINCT FROM (d.old_stage, d.old_at_risk, d.old_risk_recent, d.old_risk_before, d.old_renewal_due,
                            d.old_recheck_at)
),
changed AS (
    -- One write per student whatever changed, in key order: the table's pages are then visited
    -- once each, in order, instead of at random (several times faster on a big run).
    -- Only where the row still holds what was decided from: a row another transaction wrote
    -- meanwhile (an event's newer decision, new thresholds clearing recheck_at) is re-read by
    -- PostgreSQL after that transaction commits, fails this test and is left as it wrote it.
    UPDATE crm_studentstage s
    SET stage = d.stage, changed_at = CASE WHEN d.stage_changed THEN %(now)s ELSE s.changed_at END,
        at_risk = d.at_risk, risk_recent = d.risk_recent, risk_before = d.risk_before,
        renewal_due = d.renewal_due, recheck_at = d.recheck_at
    FROM (SELECT * FROM decided ORDER BY student_id) d
    WHERE s.student_id = d.student_id AND {{part_s}}
      AND (s.stage, s.at_risk, s.risk_recent, s.risk_before, s.renewal_due, s.recheck_at)
          IS NOT DISTINCT FROM (d.old_stage, d.old_at_risk, d.old_risk_recent, d.old_risk_before, d.old_renewal_due,
                                d.old_recheck_at)
    RETURNING s.student_id AS id, d.old_stage, d.stage, d.reason, d.stage_changed
),
history AS (
    -- A lead closed as lost is a person's fact: that change is theirs (the audit log says who).
    INSERT INTO lifecycle_stagechange
        (student_id, from_stage, to_stage, changed_at, reason, source, actor_id, won_back)
    SELECT c.id, coalesce(c.old_stage, ''), c.stage, %(now)s, c.reason,
           CASE WHEN c.reason = 'closed_lost' THEN 'person' ELSE %(source)s::varchar END,
           CASE WHEN c.reason = 'closed_lost'
                THEN coalesce((SELECT e.actor_id FROM crm_auditentry e
                               WHERE e.student_id = c.id AND e.action = 'lead_close_lost'
                               ORDER BY e.at DESC, e.id DESC LIMIT 1), %(actor)s::bigint)
                ELSE %(actor)s::bigint END,
           coalesce(c.old_stage IN {WON_BACK_FROM} AND c.stage IN {WON_BACK_TO}, false)
    FROM changed c
    WHERE c.stage_changed
    RETURNING 1
)
SELECT ({{count_targets}}), (SELECT count(*) FROM history),
       (SELECT count(*) FROM changed)
"""


# The at-risk window counts (the `win` CTE): for any mix of window lengths, or for the one
# length every campus uses.
WINDOWS_ANY = """
windows AS (
    SELECT days, span, %(now)s - span AS recent_from, %(now)s - 2 * span AS before_from
    FROM (SELECT DISTINCT risk_window_days AS days, make_interval(secs => risk_window_days * 86400) AS span
          FROM lifecycle_lifecyclesettings) w
),
win AS (
    -- Present attendance in (now - W, now] and (now - 2W, now - W], per window length W in use, and
    -- the next moment one of them enters or leaves a window (at t, t + W or t + 2W).
    SELECT x.student_id, w.days,
           count(*) FILTER (WHERE x.lesson_at > w.recent_from AND x.lesson_at <= %(now)s) AS recent,
           count(*) FILTER (WHERE x.lesson_at <= w.recent_from) AS before,
           least(min(x.lesson_at) FILTER (WHERE x.lesson_at > %(now)s),
                 min(x.lesson_at) FILTER (WHERE x.lesson_at > w.recent_from AND x.lesson_at <= %(now)s) + w.span,
                 min(x.lesson_at) FILTER (WHERE x.lesson_at <= w.recent_from) + 2 * w.span) AS next_change_at
    FROM crm_attendance x
    {win_targets}
    CROSS JOIN windows w
    WHERE x.status = 'present'
      AND x.lesson_at > (SELECT min(before_from) FROM windows)
      AND x.lesson_at > w.before_from
      AND {part_x}
    GROUP BY x.student_id, w.days, w.span, w.recent_from
),
"""
WINDOWS_ONE = """
win AS (
    -- One window length W in use by every campus (the usual case): the same counts, with the
    -- window's bounds given as constants rather than joined in.
    SELECT x.student_id, %(window_days)s AS days,
           count(*) FILTER (WHERE x.lesson_at > %(recent_from)s AND x.lesson_at <= %(now)s) AS recent,
           count(*) FILTER (WHERE x.lesson_at <= %(recent_from)s) AS before,
           least(min(x.lesson_at) FILTER (WHERE x.lesson_at > %(now)s),
                 min(x.lesson_at) FILTER (WHERE x.lesson_at > %(recent_from)s AND x.lesson_at <= %(now)s)
                     + make_interval(secs => %(window_seconds)s),
                 min(x.lesson_at) FILTER (WHERE x.lesson_at <= %(recent_from)s)
                     + make_interval(secs => 2 * %(window_seconds)s))
               AS next_change_at
    FROM crm_attendance x
    {win_targets}
    WHERE x.status = 'present' AND x.lesson_at > %(before_from)s AND {part_x}
    GROUP BY x.student_id
),
"""


@dataclass(frozen=True)
class RecomputeResult:
    decided: int  # students whose stage and flags were decided
    changed: int  # stage changes written (one StageChange each)
    rows_written: int  # StudentStage rows written: their stage, flags or recheck moment changed


def recompute_stages(
    student_ids: Iterable[int] | None = None,
    *,
    now: dt.datetime | None = None,
    source: str,
    actor: User | None = None,
    campus_id: int | None = None,
    full: bool = False,
    prepared: bool = False,
) -> RecomputeResult:
    """Decide the stage and flags of the targeted students (see the module docstring) at `now`.

    `prepared=True`: the caller has just ensured the settings rows and refreshed these students'
    aggregates (the event path), so those checks are skipped.
    """
    if source not in StageSource.values:
        raise ValueError(f"unknown source {source!r}")
    now = now or timezone.now()
    ids = None if student_ids is None else sorted(set(student_ids))
    if ids is not None and not ids:
        return RecomputeResult(0, 0, 0)
    if not prepared:
        settings_ensure()
        _activity_ensure(ids, campus_id)
    if connection.vendor != "postgresql":
        return _recompute_in_python(ids, now=now, source=source, actor=actor, campus_id=campus_id, full=full)
    if ids is None and not full:
        # The nightly run: the due students are few on most nights. Naming them lets the
        # planner look them up by key instead of joining whole tables (whose statistics may
        # also be stale right after a big run); a night where most are due takes the set path.
        due = StudentStage.objects.filter(Q(recheck_at__isnull=True) | Q(recheck_at__lte=now))
        if campus_id is not None:
            due = due.filter(campus_id=campus_id)
        due_ids = list(due.values_list("pk", flat=True)[: DUE_BY_KEY_LIMIT + 1])
        if len(due_ids) <= DUE_BY_KEY_LIMIT:
            if not due_ids:
                return RecomputeResult(0, 0, 0)
            ids = due_ids

    conditions = []
    if ids is not None:
        conditions.append(BY_IDS)
    elif not full:
        conditions.append("(s.recheck_at IS NULL OR s.recheck_at <= %(now)s)")
    if campus_id is not None:
        conditions.append("s.campus_id = %(campus)s")
    fixed_from, fixed_to, fixed_offset = fixed_offset_span(settings.TIME_ZONE, timezone.localdate(now))
    params: dict[str, Any] = {
        "tz_fixed_from": fixed_from,
        "tz_fixed_to": fixed_to,
        "tz_fixed_offset": int(fixed_offset.total_seconds()),
        "ids": ids,
        "now": now,
        "today": timezone.localdate(now),
        "tz": settings.TIME_ZONE,
        "never": NEVER,
        "source": source,
        "actor": actor.pk if actor else None,
        "campus": campus_id,
    }
    lengths = set(LifecycleSettings.objects.values_list("risk_window_days", flat=True))
    if len(lengths) == 1:
        span = dt.timedelta(days=lengths.pop())
        params.update(
            window_days=span.days, window_seconds=span.days * 86400, recent_from=now - span, before_from=now - 2 * span
        )
    if ids is None and not connection.in_atomic_block and _stage_rows_estimate() >= IN_HALVES_FROM:
        return _in_halves(conditions, params)
    return _decide_and_write(conditions, params, big=ids is None or len(ids) > 1000)


# The halves of a big run: the key range cut into this many blocks of equal size, given to the
# halves in turn, so each half holds students of every age (as much work as the other) in runs
# of neighbouring rows (pages, while the tables lie in key order).
HALF_BLOCKS = 16


# From this many students (the planner's estimate) a run with no list of ids is split in two
# halves by key, decided and written at once over two database connections (each its own
# transaction): PostgreSQL plans no parallel workers for a statement that writes, and the
# decision is CPU-bound. Below it, or inside a caller's transaction, one statement does it all.
IN_HALVES_FROM = 200_000


BY_IDS = "s.student_id = ANY(%(ids)s::bigint[])"


@dataclass(frozen=True)
class Half:
    """One half of a big run: the key blocks [k * size, (k + 1) * size) whose number k has this parity."""

    size: int
    parity: int
    low: int  # the smallest and largest key + 1 of the table
    high: int

    @property
    def ranges(self) -> list[tuple[int, int]]:
        first = self.low // self.size
        if first % 2 != self.parity:
            first += 1
        return [
            (max(k * self.size, self.low), min((k + 1) * self.size, self.high))
            for k in range(first, (self.high - 1) // self.size + 1, 2)
        ]


def _statement(template: str, conditions: list[str], *, one_window: bool, half: Half | None) -> str:
    """The template with its placeholders filled: the half's key ranges are said on every table the
    statement reads, so each half joins only its own rows."""

    def in_half(column: str) -> str:
        # As ranges: the planner turns them into index range scans of the stage and activity rows
        # and estimates them well. (The block number's parity, a cheaper test per attendance row,
        # is estimated at 0.5% of the rows; the plans it brought were slower.)
        if half is None:
            return "TRUE"
        return "(" + " OR ".join(f"({column} >= {a} AND {column} < {b})" for a, b in half.ranges) + ")"

    # A list of ids is said to the attendance rows directly: an index look-up per student for a
    # few, a hashed test per row for thousands (joining the targets made the planner hash the
    # attendance side instead).
    by_ids = BY_IDS in conditions
    target = " AND ".join([*conditions, in_half("s.student_id")])
    count_targets = f"SELECT count(*) FROM crm_studentstage s WHERE {target}"
    if half is not None:
        # One key range at a time, so an index-only scan of the primary key can count them.
        ranges = ", ".join(f"({a}, {b})" for a, b in half.ranges)
        count_targets = (
            f"SELECT sum(c.n)::bigint FROM (VALUES {ranges}) b(low, high) CROSS JOIN LATERAL ("
            "SELECT count(*) AS n FROM crm_studentstage s WHERE "
            + " AND ".join([*conditions, "s.student_id >= b.low", "s.student_id < b.high"])
            + ") c"
        )
    return (
        template.replace("{windows}", WINDOWS_ONE if one_window else WINDOWS_ANY)
        .replace("{win_days}", "" if one_window else " AND win.days = ls.risk_window_days")
        .replace("{count_targets}", count_targets)
        .replace("{target}", target)
        .replace("{win_targets}", "JOIN targets t ON t.student_id = x.student_id" if conditions and not by_ids else "")
        .replace("{part_a}", in_half("a.student_id"))
        .replace("{part_x}", "x.student_id = ANY(%(ids)s::bigint[])" if by_ids else in_half("x.student_id"))
        .replace("{part_s}", in_half("s.student_id"))
    )


def _decide_and_write(
    conditions: list[str], params: dict[str, Any], *, big: bool, half: Half | None = None
) -> RecomputeResult:
    """One statement (RECOMPUTE_SQL) over the students matching `conditions`, and with a key in
    one of the `half` ranges [start, end) if given."""
    sql = _statement(RECOMPUTE_SQL, conditions, one_window="window_days" in params, half=half)
    with transaction.atomic(), connection.cursor() as cursor:
        if big:
            # Big runs: hash joins in memory; no JIT (its compile time outweighs its gain here).
            cursor.execute("SET LOCAL work_mem = '256MB'")
            cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        row = cursor.fetchone()
    assert row is not None
    return RecomputeResult(decided=row[0], changed=row[1], rows_written=row[2])


def _stage_rows_estimate() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'crm_studentstage'")
        row = cursor.fetchone()
    return max(row[0], 0) if row else 0


def _in_halves(conditions: list[str], params: dict[str, Any]) -> RecomputeResult:
    """The run in two halves at once, each on a connection of its own thread."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(student_id), max(student_id) FROM crm_studentstage")
        row = cursor.fetchone()
    assert row is not None
    if row[0] is None:
        return RecomputeResult(0, 0, 0)
    low, high = row[0], row[1] + 1
    size = -(-(high - low) // HALF_BLOCKS)
    halves = [Half(size=size, parity=parity, low=low, high=high) for parity in (0, 1)]

    def run(half: Half) -> RecomputeResult:
        try:
            return _decide_and_write(conditions, params, big=True, half=half)
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, [h for h in halves if h.ranges]))
    return RecomputeResult(
        decided=sum(r.decided for r in results),
        changed=sum(r.changed for r in results),
        rows_written=sum(r.rows_written for r in results),
    )


def _every_student_has_rows() -> bool:
    """Three counts instead of a search: each activity and stage row belongs to one student (its
    primary key is the student's, and it is deleted with them), so equal counts mean none is missing."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM crm_student), (SELECT count(*) FROM lifecycle_studentactivity), "
            "(SELECT count(*) FROM crm_studentstage)"
        )
        row = cursor.fetchone()
    assert row is not None
    return row[0] == row[1] == row[2]


# Up to this many due students, the nightly run names them (see recompute_stages).
DUE_BY_KEY_LIMIT = 100_000


def _activity_ensure(ids: list[int] | None, campus_id: int | None) -> None:
    """Students with no StudentActivity or StudentStage row yet (written outside the services) get them.

    The services create every new student's StudentStage, and their event the activity. For the
    rest (rows written by hand or by a bulk load without events), every run without ids first
    compares three counts and searches only when they differ.
    """
    if ids is None and _every_student_has_rows():
        return
    students = Student.objects.filter(Q(activity__isnull=True) | Q(pipeline__isnull=True))
    if ids is not None:
        students = students.filter(pk__in=ids)
    if campus_id is not None:
        students = students.filter(campus_id=campus_id)
    missing = list(students.values_list("pk", "campus_id", "created_at"))
    if missing:
        StudentStage.objects.bulk_create(
            [StudentStage(student_id=pk, campus_id=campus, changed_at=created) for pk, campus, created in missing],
            ignore_conflicts=True,
        )
        activity_refresh([pk for pk, _, _ in missing])


def recompute_after_event(student_ids: Iterable[int], *, now: dt.datetime | None = None) -> RecomputeResult:
    """What the event task does: refresh these students' aggregates, then decide them."""
    ids = sorted(set(student_ids))
    with transaction.atomic():
        settings_ensure()
        activity_refresh(ids)
        return recompute_stages(ids, now=now, source=StageSource.EVENT, prepared=True)


def recompute_campus_now(*, campus: Campus, actor: User) -> RecomputeResult:
    """A manager runs the recomputation of their campus (the admin's action): everyone decided now."""
    require_role(actor, Role.MANAGER)
    require_campus(actor, campus.pk)
    return recompute_stages(source=StageSource.PERSON, actor=actor, campus_id=campus.pk, full=True)


def recompute_campus_for(*, campus_id: int, actor_id: int) -> int:
    """`recompute_campus_now` by ids, for the task a thresholds change schedules; the changes."""
    campus = Campus.objects.filter(pk=campus_id).first()
    actor = User.objects.filter(pk=actor_id, is_active=True).first()
    if campus is None or actor is None:
        return 0
    return recompute_campus_now(campus=campus, actor=actor).changed


def settings_changed(*, campus_id: int) -> None:
    """Thresholds changed: every student of the campus is decided again on the next run."""
    StudentStage.objects.filter(campus_id=campus_id).update(recheck_at=None)


# --- the SQLite path: the pure function over batches ---------------------------------------


def facts_of(activity: StudentActivity) -> StudentFacts:
    return StudentFacts(
        created_at=activity.created_at,  # type: ignore[arg-type]  # copied from the student: never NULL once refreshed
        lost_at=activity.lost_at,
        last_touch_at=activity.last_touch_at,
        has_consultation=activity.has_consultation,
        has_trial=activity.has_trial,
        ever_contracted=activity.ever_contracted,
        last_active_signed_at=activity.last_active_signed_at,
        active_until=activity.active_until,
        active_hours_remaining=activity.active_hours_remaining,
        last_ended_at=activity.last_ended_at,
        last_ended_refunded=activity.last_ended_refunded,
        last_present_at=activity.last_present_at,
        consecutive_absences=activity.consecutive_absences,
    )


BATCH = 2000
DECISION_FIELDS = ("at_risk", "risk_recent", "risk_before", "renewal_due", "recheck_at")


def _recompute_in_python(
    ids: list[int] | None,
    *,
    now: dt.datetime,
    source: str,
    actor: User | None,
    campus_id: int | None,
    full: bool,
) -> RecomputeResult:
    from dataclasses import replace

    thresholds = thresholds_by_campus()
    rows = StudentStage.objects.filter(student__activity__isnull=False).select_related("student__activity")
    if ids is not None:
        rows = rows.filter(pk__in=ids)
    elif not full:
        rows = rows.filter(Q(recheck_at__isnull=True) | Q(recheck_at__lte=now))
    if campus_id is not None:
        rows = rows.filter(campus_id=campus_id)
    decided = changed = rows_written = 0
    all_rows = list(rows.order_by("pk"))
    widest = max((t.risk_window_days for t in thresholds.values()), default=28)
    for start in range(0, len(all_rows), BATCH):
        batch = all_rows[start : start + BATCH]
        present: dict[int, list[dt.datetime]] = {}
        for sid, at in Attendance.objects.filter(
            student_id__in=[row.pk for row in batch],
            status="present",
            lesson_at__gt=now - dt.timedelta(days=2 * widest),
        ).values_list("student_id", "lesson_at"):
            present.setdefault(sid, []).append(at)
        history: list[StageChange] = []
        written: list[StudentStage] = []
        for row in batch:
            t: Thresholds = thresholds[row.campus_id]
            window = risk_window(present.get(row.pk, []), now, t.risk_window_days)
            facts = replace(
                facts_of(row.student.activity),
                risk_recent=window.recent,
                risk_before=window.before,
                risk_next_change_at=window.next_change_at,
            )
            decision = stage_for(facts, now, t)
            decided += 1
            new_flags = tuple(getattr(decision, name) for name in DECISION_FIELDS)
            if decision.stage == row.stage and new_flags == tuple(getattr(row, name) for name in DECISION_FIELDS):
                continue
            if decision.stage != row.stage:
                history.append(
                    StageChange(
                        student_id=row.pk,
                        from_stage=row.stage or "",
                        to_stage=decision.stage,
                        changed_at=now,
                        reason=decision.reason,
                        source=StageSource.PERSON if decision.reason == "closed_lost" else source,
                        actor_id=_closer(row.pk, actor) if decision.reason == "closed_lost" else actor_id(actor),
                        won_back=row.stage in WON_BACK_FROM and decision.stage in WON_BACK_TO,
                    )
                )
                row.stage, row.changed_at = decision.stage, now
            for name, value in zip(DECISION_FIELDS, new_flags, strict=True):
                setattr(row, name, value)
            written.append(row)
        with transaction.atomic():
            StudentStage.objects.bulk_update(written, ["stage", "changed_at", *DECISION_FIELDS])
            StageChange.objects.bulk_create(history)
        changed += len(history)
        rows_written += len(written)
    return RecomputeResult(decided, changed, rows_written)


def actor_id(actor: User | None) -> int | None:
    return actor.pk if actor else None


def _closer(student_id: int, actor: User | None) -> int | None:
    entry = (
        AuditEntry.objects.filter(student_id=student_id, action=AuditAction.LEAD_CLOSE_LOST)
        .order_by("-at", "-pk")
        .first()
    )
    return entry.actor_id if entry and entry.actor_id else actor_id(actor)
