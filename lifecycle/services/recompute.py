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
ref_at, expiry_at, ended_at, refunded, touched_at, dropped, absent, since); change both
together. tests/lifecycle/test_agreement.py proves they agree, on the moment each stage began
too. A stage that changes starts at the moment the facts put the student there
(`Decision.since`), and a row that has no start yet (a new student's first row) gets one; an
unchanged stage keeps the start it has.
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
from psycopg import sql

from crm.models import Attendance, AuditAction, AuditEntry, Campus, Role, Student, StudentStage, User
from crm.roles import require_campus, require_role
from lifecycle.models import LifecycleSettings, StageChange, StageSource, StudentActivity
from lifecycle.rules import (
    NEVER,
    REASON_STAGE,
    WON_BACK_FROM,
    WON_BACK_TO,
    Decision,
    StudentFacts,
    Thresholds,
    facts_from_history,
    risk_window,
    stage_for,
)
from lifecycle.services.activity import activity_refresh
from lifecycle.services.events import students_decided
from lifecycle.services.facts import histories_of, settings_ensure, thresholds_by_campus

# The audit action of a person closing a lead as lost (crm.services.leads.lead_close_lost): the
# history names them as the actor of that stage change.
CLOSE_LOST_ACTION = AuditAction.LEAD_CLOSE_LOST.value


def _local_midnight(day: sql.Composable) -> sql.Composed:
    """The start of a local calendar day (rules.local_midnight). Within the span of dates where the
    zone keeps one UTC offset (`fixed_offset_span`), a shift by that offset; elsewhere the zone's
    rules, whose lookup costs several times more per row."""
    return sql.SQL(
        "CASE WHEN ({day}) >= %(tz_fixed_from)s AND ({day}) < %(tz_fixed_to)s "
        "THEN ({day})::timestamp AT TIME ZONE make_interval(secs => %(tz_fixed_offset)s) "
        "ELSE ({day})::timestamp AT TIME ZONE %(tz)s END"
    ).format(day=day)


def _from_now(moment: sql.Composable) -> sql.Composed:
    """A candidate recheck moment, kept only if it is not in the past (stage_for: `c >= now`)."""
    return sql.SQL("CASE WHEN {m} >= %(now)s THEN {m} END").format(m=moment)


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


# The whole run in one statement. Its placeholders ({name}) are filled by `_statement` with SQL
# fragments (which students, which half of a big run); every value is a %(name)s parameter.
# Day counts become spans of seconds (make_interval(secs => n * 86400)): adding one to a moment is
# then plain arithmetic, where an interval of days makes PostgreSQL convert every moment to
# calendar fields and back (the session runs in UTC, where a day is 86,400 seconds either way).
RECOMPUTE_SQL = sql.SQL("""
WITH
-- The students this run decides: the ids of an event, the night's due students, or everyone.
targets AS MATERIALIZED (
    SELECT s.student_id FROM crm_studentstage s WHERE {target}
),
-- rules.Thresholds per campus, with each "within N days" as a span and as its bound at now.
campus_thresholds AS (
    SELECT campus_id, risk_window_days, risk_drop_pct, risk_consecutive_absences, renewal_hours, renewal_days,
           make_interval(secs => active_days * 86400) AS active_span,
           make_interval(secs => churn_days * 86400) AS churn_span,
           make_interval(secs => ended_grace_days * 86400) AS grace_span,
           make_interval(secs => stale_lead_days * 86400) AS stale_span,
           %(now)s - make_interval(secs => active_days * 86400) AS active_from,
           %(now)s - make_interval(secs => churn_days * 86400) AS churn_from,
           %(now)s - make_interval(secs => ended_grace_days * 86400) AS grace_from,
           %(now)s - make_interval(secs => stale_lead_days * 86400) AS stale_from
    FROM lifecycle_lifecyclesettings
),
-- rules.REASON_STAGE: the stage each reason belongs to.
reason_stages AS (
    SELECT * FROM unnest(%(reasons)s::varchar[], %(stages)s::varchar[]) AS m(reason, stage)
),
{windows}
-- stage_for for every target, beside the decision stored by the last run.
decisions AS {decisions_kept} (
    SELECT a.student_id, s.stage AS old_stage, s.changed_at AS old_changed_at,
           s.at_risk AS old_at_risk, s.risk_recent AS old_risk_recent, s.risk_before AS old_risk_before,
           s.renewal_due AS old_renewal_due, s.recheck_at AS old_recheck_at,
           reason_stages.stage, verdict.reason,
           verdict.at_risk,
           CASE WHEN verdict.at_risk THEN coalesce(win.recent, 0) ELSE 0 END AS risk_recent,
           CASE WHEN verdict.at_risk THEN coalesce(win.before, 0) ELSE 0 END AS risk_before,
           verdict.renewal_due,
           -- stage_for's candidates: the earliest moment not in the past that can change the decision.
           coalesce(CASE
               WHEN contract_state.has_active THEN least(
                   {recheck_attended}, {recheck_ref_active}, {recheck_ref_churn}, {recheck_expiry},
                   {recheck_window}, {recheck_renewal})
               WHEN a.ever_contracted THEN CASE WHEN NOT measures.refunded THEN {recheck_grace} END
               WHEN verdict.reason = 'closed_lost' THEN NULL
               ELSE {recheck_stale}
           END, %(never)s) AS recheck_at,
           -- stage_for's `since`, where the kept aggregates say it (see `starts` for the rest).
           CASE verdict.reason
               WHEN 'new_lead' THEN a.created_at
               WHEN 'closed_lost' THEN a.lost_at
               WHEN 'stale_lead' THEN measures.touched_at + th.stale_span
               WHEN 'signed' THEN a.last_active_signed_at
               WHEN 'not_started' THEN measures.ref_at + th.active_span
               WHEN 'silent' THEN measures.ref_at + th.active_span
               WHEN 'not_started_long' THEN measures.ref_at + th.churn_span
               WHEN 'silent_long' THEN measures.ref_at + th.churn_span
               WHEN 'refunded' THEN a.last_ended_at
               WHEN 'ended_recently' THEN measures.ended_at
               WHEN 'ended_long_ago' THEN measures.ended_at + th.grace_span
           END AS since_from_aggregates,
           a.created_at, a.lost_at, a.last_present_at, th.active_span, th.stale_span
    FROM crm_studentstage s
    JOIN lifecycle_studentactivity a ON a.student_id = s.student_id
    JOIN campus_thresholds th ON th.campus_id = s.campus_id
    LEFT JOIN win ON win.student_id = s.student_id{win_days}
    -- stage_for: has_active, expiry_at (open contracts past their valid_until end at the next local midnight)
    CROSS JOIN LATERAL (SELECT
        a.last_active_signed_at IS NOT NULL AND (a.active_until IS NULL OR a.active_until >= %(today)s) AS has_active,
        CASE WHEN a.last_active_signed_at IS NOT NULL AND a.active_until IS NOT NULL
             THEN {expiry_midnight} END AS expiry_at
    ) contract_state
    -- stage_for: not_started, ref (the later of the last attendance and the latest signing),
    -- ended_at, refunded, touched_at, and the at-risk tests dropped / absent.
    CROSS JOIN LATERAL (SELECT
        (a.last_present_at IS NULL OR a.last_present_at < a.last_active_signed_at) AS not_started,
        CASE WHEN a.last_present_at IS NULL OR a.last_present_at < a.last_active_signed_at
             THEN a.last_active_signed_at ELSE a.last_present_at END AS ref_at,
        greatest(a.last_ended_at, contract_state.expiry_at) AS ended_at,
        a.last_ended_refunded AND a.last_ended_at IS NOT NULL
            AND (contract_state.expiry_at IS NULL OR a.last_ended_at >= contract_state.expiry_at) AS refunded,
        greatest(a.created_at, a.last_touch_at) AS touched_at,
        coalesce(win.before, 0) > 0
            AND coalesce(win.recent, 0) * 100 <= win.before * (100 - th.risk_drop_pct) AS dropped,
        th.risk_consecutive_absences > 0 AND a.consecutive_absences >= th.risk_consecutive_absences AS absent
    ) measures
    -- stage_for's branches, in its order: the reason, and the flags.
    CROSS JOIN LATERAL (SELECT
        CASE
            WHEN contract_state.has_active THEN
                CASE WHEN a.last_present_at >= th.active_from THEN 'attending'
                     WHEN measures.ref_at >= th.active_from THEN 'signed'
                     WHEN measures.ref_at >= th.churn_from THEN
                         CASE WHEN measures.not_started THEN 'not_started' ELSE 'silent' END
                     ELSE CASE WHEN measures.not_started THEN 'not_started_long' ELSE 'silent_long' END
                END
            WHEN a.ever_contracted THEN
                CASE WHEN measures.refunded THEN 'refunded'
                     WHEN measures.ended_at >= th.grace_from THEN 'ended_recently'
                     ELSE 'ended_long_ago' END
            WHEN a.lost_at IS NOT NULL AND (a.last_touch_at IS NULL OR a.last_touch_at <= a.lost_at)
                THEN 'closed_lost'
            WHEN measures.touched_at < th.stale_from THEN 'stale_lead'
            WHEN a.has_trial THEN 'trial'
            WHEN a.has_consultation THEN 'consulted'
            ELSE 'new_lead'
        END AS reason,
        contract_state.has_active AND (measures.dropped OR measures.absent) AS at_risk,
        contract_state.has_active AND (coalesce(a.active_until <= %(today)s + th.renewal_days, false)
                           OR coalesce(a.active_hours_remaining <= th.renewal_hours, false)) AS renewal_due
    ) verdict
    JOIN reason_stages ON reason_stages.reason = verdict.reason
    WHERE {target} AND {part_a}
),
-- Only the decisions that differ from the stored ones (and rows with no start yet) are written.
-- `new_start`: the stage changed, so it starts again at the moment the facts say.
to_write AS (
    SELECT d.*, d.stage IS DISTINCT FROM d.old_stage AS stage_changed,
           d.stage IS DISTINCT FROM d.old_stage OR d.old_changed_at IS NULL AS new_start
    FROM decisions d
    WHERE (d.stage, d.at_risk, d.risk_recent, d.risk_before, d.renewal_due, d.recheck_at)
          IS DISTINCT FROM (d.old_stage, d.old_at_risk, d.old_risk_recent, d.old_risk_before, d.old_renewal_due,
                            d.old_recheck_at)
       OR d.old_changed_at IS NULL
),
-- stage_for's `since`, never later than now, for the students whose stage starts again. Three
-- reasons need the raw facts: each look-up sits in its own branch of the CASE, so it runs only
-- for the rows that take that branch (a lateral join would run for every row written).
starts AS (
    SELECT d.*, least(CASE
        WHEN NOT d.new_start THEN NULL
        -- consulted / trial: the first consultation / trial (not cancelled) of the lead's current
        -- episode, or the episode's start.
        WHEN d.reason = 'consulted' THEN (
            SELECT coalesce(
                (SELECT min(c.consulted_at) FROM crm_consultation c
                 WHERE c.student_id = d.student_id AND c.consulted_at >= episode.from_at), episode.from_at)
            FROM ({episode}) episode)
        WHEN d.reason = 'trial' THEN (
            SELECT coalesce(
                (SELECT min(t.scheduled_at) FROM crm_triallesson t
                 WHERE t.student_id = d.student_id AND t.status <> 'cancelled' AND t.scheduled_at >= episode.from_at),
                episode.from_at)
            FROM ({episode}) episode)
        -- attending: rules.attending_from, the first present lesson after the latest gap of more
        -- than active_days between two present lessons (or the first one ever). Read from the
        -- latest lesson backwards (the student's index, in order), it stops at that gap.
        WHEN d.reason = 'attending' THEN coalesce(
            (SELECT p.lesson_at
             FROM (SELECT x.lesson_at, lead(x.lesson_at) OVER (ORDER BY x.lesson_at DESC) AS previous
                   FROM crm_attendance x WHERE x.student_id = d.student_id AND x.status = 'present') p
             WHERE p.previous IS NULL OR p.lesson_at > p.previous + d.active_span
             ORDER BY p.lesson_at DESC LIMIT 1), d.last_present_at)
        ELSE d.since_from_aggregates
    END, %(now)s) AS since
    FROM to_write d
),
-- One write per student whatever changed, in key order: the table's pages are then visited
-- once each, in order, instead of at random (several times faster on a big run).
-- Only where the row still holds what was decided from: a row another transaction wrote
-- meanwhile (an event's newer decision, new thresholds clearing recheck_at) is re-read by
-- PostgreSQL after that transaction commits, fails this test and is left as it wrote it.
written AS (
    UPDATE crm_studentstage s
    SET stage = d.stage, changed_at = CASE WHEN d.new_start THEN d.since ELSE s.changed_at END,
        at_risk = d.at_risk, risk_recent = d.risk_recent, risk_before = d.risk_before,
        renewal_due = d.renewal_due, recheck_at = d.recheck_at
    FROM (SELECT * FROM starts ORDER BY student_id) d
    WHERE s.student_id = d.student_id AND {part_s}
      AND (s.stage, s.changed_at, s.at_risk, s.risk_recent, s.risk_before, s.renewal_due, s.recheck_at)
          IS NOT DISTINCT FROM (d.old_stage, d.old_changed_at, d.old_at_risk, d.old_risk_recent, d.old_risk_before,
                                d.old_renewal_due, d.old_recheck_at)
    RETURNING s.student_id AS id, d.old_stage, d.stage, d.reason, d.stage_changed, d.since
),
-- One history row per real stage change, dated when the facts put the student there.
-- A lead closed as lost is a person's fact: that change is theirs (the audit log says who).
history AS (
    INSERT INTO lifecycle_stagechange
        (student_id, from_stage, to_stage, changed_at, reason, source, actor_id, won_back)
    SELECT c.id, coalesce(c.old_stage, ''), c.stage, c.since, c.reason,
           CASE WHEN c.reason = 'closed_lost' THEN 'person' ELSE %(source)s::varchar END,
           CASE WHEN c.reason = 'closed_lost'
                THEN coalesce((SELECT e.actor_id FROM crm_auditentry e
                               WHERE e.student_id = c.id AND e.action = %(close_lost_action)s
                               ORDER BY e.at DESC, e.id DESC LIMIT 1), %(actor)s::bigint)
                ELSE %(actor)s::bigint END,
           coalesce(c.old_stage = ANY(%(won_back_from)s::varchar[]) AND c.stage = ANY(%(won_back_to)s::varchar[]),
                    false)
    FROM written c
    WHERE c.stage_changed
    RETURNING 1
)
SELECT ({count_targets}), (SELECT count(*) FROM history), (SELECT count(*) FROM written)
""")

# rules.lead_episode_from, for a lead that starts again as consulted or trial (`d`, a row of
# `to_write`): the creation, or the latest touch that reopened it (the first after the closing
# as lost, or one more than stale_lead_days after the touch before it).
LEAD_EPISODE = sql.SQL("""
SELECT greatest(d.created_at, max(e.at) FILTER (
           WHERE e.at > e.previous + d.stale_span
              OR (d.lost_at IS NOT NULL AND e.at > d.lost_at AND e.previous <= d.lost_at))) AS from_at
FROM (SELECT m.at, lag(m.at) OVER (ORDER BY m.at) AS previous
      FROM (SELECT d.created_at AS at
            UNION ALL
            SELECT c.consulted_at FROM crm_consultation c WHERE c.student_id = d.student_id
            UNION ALL
            SELECT t.scheduled_at FROM crm_triallesson t
            WHERE t.student_id = d.student_id AND t.status <> 'cancelled') m) e
""")

# The candidate recheck moments of stage_for, each kept only if not in the past.
RECHECK_MOMENTS = {
    "recheck_attended": _from_now(sql.SQL("a.last_present_at + th.active_span")),
    "recheck_ref_active": _from_now(sql.SQL("measures.ref_at + th.active_span")),
    "recheck_ref_churn": _from_now(sql.SQL("measures.ref_at + th.churn_span")),
    "recheck_expiry": _from_now(sql.SQL("contract_state.expiry_at")),
    "recheck_window": _from_now(sql.SQL("win.next_change_at")),
    "recheck_renewal": _from_now(_local_midnight(sql.SQL("a.active_until - th.renewal_days"))),
    "recheck_grace": _from_now(sql.SQL("measures.ended_at + th.grace_span")),
    "recheck_stale": _from_now(sql.SQL("measures.touched_at + th.stale_span")),
}


# The at-risk window counts (the `win` CTE, rules.risk_window): for any mix of window lengths, or
# for the one length every campus uses.
WINDOWS_ANY = sql.SQL("""
-- The window lengths W in use, with their bounds at now.
windows AS (
    SELECT days, span, %(now)s - span AS recent_from, %(now)s - 2 * span AS before_from
    FROM (SELECT DISTINCT risk_window_days AS days, make_interval(secs => risk_window_days * 86400) AS span
          FROM lifecycle_lifecyclesettings) w
),
-- rules.risk_window: present attendance in (now - W, now] and (now - 2W, now - W], per window
-- length W in use, and the next moment one of them enters or leaves a window (at t, t + W or t + 2W).
win AS (
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
""")
WINDOWS_ONE = sql.SQL("""
-- rules.risk_window with the one window length W every campus uses (the usual case): the same
-- counts, with the window's bounds given as parameters rather than joined in.
win AS (
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
""")


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

    target = Target(by_ids=ids is not None, due_only=ids is None and not full, campus=campus_id is not None)
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
        "reasons": list(REASON_STAGE),
        "stages": list(REASON_STAGE.values()),
        "won_back_from": list(WON_BACK_FROM),
        "won_back_to": list(WON_BACK_TO),
        "close_lost_action": CLOSE_LOST_ACTION,
    }
    lengths = set(LifecycleSettings.objects.values_list("risk_window_days", flat=True))
    if len(lengths) == 1:
        span = dt.timedelta(days=lengths.pop())
        params.update(
            window_days=span.days, window_seconds=span.days * 86400, recent_from=now - span, before_from=now - 2 * span
        )
    if ids is None and not connection.in_atomic_block and _stage_rows_estimate() >= IN_HALVES_FROM:
        return _in_halves(target, params)
    return _decide_and_write(target, params, big=ids is None or len(ids) > 1000)


# The halves of a big run: the key range cut into this many blocks of equal size, given to the
# halves in turn, so each half holds students of every age (as much work as the other) in runs
# of neighbouring rows (pages, while the tables lie in key order).
HALF_BLOCKS = 16


# From this many students (the planner's estimate) a run with no list of ids is split in two
# halves by key, decided and written at once over two database connections (each its own
# transaction): PostgreSQL plans no parallel workers for a statement that writes, and the
# decision is CPU-bound. Below it, or inside a caller's transaction, one statement does it all.
IN_HALVES_FROM = 200_000


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


@dataclass(frozen=True)
class Target:
    """Which students a statement decides: by a list of ids (`%(ids)s`), the due ones only, one
    campus (`%(campus)s`), or any combination (none: everyone)."""

    by_ids: bool = False
    due_only: bool = False
    campus: bool = False

    def conditions(self) -> list[sql.Composable]:
        found: list[sql.Composable] = []
        if self.by_ids:
            found.append(sql.SQL("s.student_id = ANY(%(ids)s::bigint[])"))
        if self.due_only:
            found.append(sql.SQL("(s.recheck_at IS NULL OR s.recheck_at <= %(now)s)"))
        if self.campus:
            found.append(sql.SQL("s.campus_id = %(campus)s"))
        return found


def in_half(table: str, half: Half | None, column_name: str = "student_id") -> sql.Composable:
    """The half's key ranges as conditions on `table`.student_id, each bound a parameter
    (`half_params`): the planner turns them into index range scans of the stage and activity rows
    and estimates them well. (The block number's parity, a cheaper test per attendance row, is
    estimated at 0.5% of the rows; the plans it brought were slower.)"""
    if half is None:
        return sql.SQL("TRUE")
    column = sql.Identifier(table, column_name)
    return sql.SQL("({})").format(
        sql.SQL(" OR ").join(
            sql.SQL("({column} >= {low} AND {column} < {high})").format(
                column=column, low=sql.Placeholder(f"half_low_{i}"), high=sql.Placeholder(f"half_high_{i}")
            )
            for i in range(len(half.ranges))
        )
    )


def half_params(half: Half | None) -> dict[str, Any]:
    if half is None:
        return {}
    params: dict[str, Any] = {"half_lows": [a for a, _ in half.ranges], "half_highs": [b for _, b in half.ranges]}
    for i, (a, b) in enumerate(half.ranges):
        params[f"half_low_{i}"], params[f"half_high_{i}"] = a, b
    return params


def _statement(target: Target, *, one_window: bool, half: Half | None, few: bool = False) -> sql.Composed:
    """RECOMPUTE_SQL with its placeholders filled: the half's key ranges are said on every table the
    statement reads, so each half joins only its own rows.

    `few`: a handful of students (an event). Planning then costs more than running: `decisions` is
    kept aside (MATERIALIZED) so the planner reads its columns in the later steps instead of
    copying every decision's expression into each of them. A big run keeps it inline, where
    writing a million decisions aside costs more than the copies."""
    conditions = target.conditions()
    where_target = sql.SQL(" AND ").join([*conditions, in_half("s", half)])
    count_targets = sql.SQL("SELECT count(*) FROM crm_studentstage s WHERE {}").format(where_target)
    if half is not None:
        # One key range at a time, so an index-only scan of the primary key can count them.
        count_targets = sql.SQL(
            "SELECT sum(c.n)::bigint FROM unnest(%(half_lows)s::bigint[], %(half_highs)s::bigint[]) AS b(low, high) "
            "CROSS JOIN LATERAL (SELECT count(*) AS n FROM crm_studentstage s WHERE {}) c"
        ).format(sql.SQL(" AND ").join([*conditions, sql.SQL("s.student_id >= b.low AND s.student_id < b.high")]))
    # A list of ids is said to the attendance rows directly: an index look-up per student for a
    # few, a hashed test per row for thousands (joining the targets made the planner hash the
    # attendance side instead).
    if target.by_ids:
        win_targets: sql.Composable = sql.SQL("")
        part_x: sql.Composable = sql.SQL("x.student_id = ANY(%(ids)s::bigint[])")
    else:
        win_targets = sql.SQL("JOIN targets t ON t.student_id = x.student_id") if conditions else sql.SQL("")
        part_x = in_half("x", half)
    windows = (WINDOWS_ONE if one_window else WINDOWS_ANY).format(win_targets=win_targets, part_x=part_x)
    return RECOMPUTE_SQL.format(
        windows=windows,
        win_days=sql.SQL("" if one_window else " AND win.days = th.risk_window_days"),
        count_targets=count_targets,
        target=where_target,
        part_a=in_half("a", half),
        part_s=in_half("s", half),
        expiry_midnight=_local_midnight(sql.SQL("a.active_until + 1")),
        decisions_kept=sql.SQL("MATERIALIZED" if few else ""),
        episode=LEAD_EPISODE,
        **RECHECK_MOMENTS,
    )


def _decide_and_write(
    target: Target, params: dict[str, Any], *, big: bool, half: Half | None = None
) -> RecomputeResult:
    """One statement (RECOMPUTE_SQL) over the targeted students, and with a key in one of the
    `half` ranges [start, end) if given."""
    statement = _statement(target, one_window="window_days" in params, half=half, few=target.by_ids and not big)
    with transaction.atomic(), connection.cursor() as cursor:
        if big:
            # Big runs: hash joins in memory; no JIT (its compile time outweighs its gain here).
            cursor.execute("SET LOCAL work_mem = '256MB'")
            cursor.execute("SET LOCAL jit = off")
        cursor.execute(statement, {**params, **half_params(half)})
        row = cursor.fetchone()
    assert row is not None
    return RecomputeResult(decided=row[0], changed=row[1], rows_written=row[2])


def _stage_rows_estimate() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'crm_studentstage'")
        row = cursor.fetchone()
    return max(row[0], 0) if row else 0


def _in_halves(target: Target, params: dict[str, Any]) -> RecomputeResult:
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
            return _decide_and_write(target, params, big=True, half=half)
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
    missing = list(students.values_list("pk", flat=True))
    activity_refresh(missing)  # opens their missing stage rows too


def recompute_after_event(student_ids: Iterable[int], *, now: dt.datetime | None = None) -> RecomputeResult:
    """What the event task does: refresh these students' aggregates, then decide them."""
    ids = sorted(set(student_ids))
    with transaction.atomic():
        settings_ensure()
        activity_refresh(ids)
        result = recompute_stages(ids, now=now, source=StageSource.EVENT, prepared=True)
        students_decided(ids)
    return result


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
        decisions: list[tuple[StudentStage, Decision]] = []
        for row in batch:
            t: Thresholds = thresholds[row.campus_id]
            window = risk_window(present.get(row.pk, []), now, t.risk_window_days)
            facts = replace(
                facts_of(row.student.activity),
                risk_recent=window.recent,
                risk_before=window.before,
                risk_next_change_at=window.next_change_at,
            )
            decisions.append((row, stage_for(facts, now, t)))
        decided += len(decisions)
        # Where a stage starts again, the raw facts the kept aggregates lack (first consultation,
        # first trial, the latest run of attendance) say when.
        restarting = [row.pk for row, d in decisions if d.stage != row.stage or row.changed_at is None]
        histories = histories_of(restarting) if restarting else {}
        history: list[StageChange] = []
        written: list[StudentStage] = []
        for row, decision in decisions:
            new_flags = tuple(getattr(decision, name) for name in DECISION_FIELDS)
            new_start = row.pk in histories
            if (
                not new_start
                and decision.stage == row.stage
                and new_flags == tuple(getattr(row, name) for name in DECISION_FIELDS)
            ):
                continue
            if new_start:
                t = thresholds[row.campus_id]
                since = stage_for(facts_from_history(histories[row.pk], now, t), now, t).since
                if decision.stage != row.stage:
                    history.append(
                        StageChange(
                            student_id=row.pk,
                            from_stage=row.stage or "",
                            to_stage=decision.stage,
                            changed_at=since,
                            reason=decision.reason,
                            source=StageSource.PERSON if decision.reason == "closed_lost" else source,
                            actor_id=_closer(row.pk, actor) if decision.reason == "closed_lost" else actor_id(actor),
                            won_back=row.stage in WON_BACK_FROM and decision.stage in WON_BACK_TO,
                        )
                    )
                row.stage, row.changed_at = decision.stage, since
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
