"""Set-based recomputation of stages and flags, with the stage history.

`recompute_stages` decides every targeted student in one SQL statement on PostgreSQL:
the rules of `lifecycle.rules.stage_for` as a CASE over the kept aggregates
(StudentActivity) joined with the campus's LifecycleSettings and the at-risk window
counts; an UPDATE of crm_student only where the stage differs, whose RETURNING feeds the
INSERT of one StageChange per real change; an UPDATE of the flags only where they differ.
A rerun that changes nothing writes nothing.

Which students are decided:
- a list of ids (after an event): those students;
- no ids (the nightly run): the students whose `recheck_at` has come or is NULL (their facts
  changed). Each decision stores the earliest moment it can change with no new fact, so the
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
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from crm.models import Attendance, AuditEntry, Campus, Role, Student, User
from crm.roles import require_campus, require_role
from lifecycle.models import StageChange, StageSource, StudentActivity
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


RECOMPUTE_SQL = f"""
WITH
targets AS MATERIALIZED (
    SELECT a.student_id FROM lifecycle_studentactivity a WHERE {{target}}
),
ls AS (
    SELECT campus_id, risk_window_days, risk_drop_pct, risk_consecutive_absences, renewal_hours, renewal_days,
           make_interval(days => active_days) AS active_span,
           make_interval(days => churn_days) AS churn_span,
           make_interval(days => ended_grace_days) AS grace_span,
           make_interval(days => stale_lead_days) AS stale_span,
           %(now)s - make_interval(days => active_days) AS active_from,
           %(now)s - make_interval(days => churn_days) AS churn_from,
           %(now)s - make_interval(days => ended_grace_days) AS grace_from,
           %(now)s - make_interval(days => stale_lead_days) AS stale_from
    FROM lifecycle_lifecyclesettings
),
windows AS (
    SELECT DISTINCT risk_window_days AS days, make_interval(days => risk_window_days) AS span
    FROM lifecycle_lifecyclesettings
),
win AS (
    -- Present attendance in (now - W, now] and (now - 2W, now - W], per window length W in use.
    SELECT x.student_id, w.days,
           count(*) FILTER (WHERE x.lesson_at > %(now)s - w.span AND x.lesson_at <= %(now)s) AS recent,
           count(*) FILTER (WHERE x.lesson_at <= %(now)s - w.span) AS before,
           min(CASE WHEN x.lesson_at > %(now)s THEN x.lesson_at
                    WHEN x.lesson_at + w.span > %(now)s THEN x.lesson_at + w.span
                    ELSE x.lesson_at + 2 * w.span END) AS next_change_at
    FROM crm_attendance x
    {{win_targets}}
    CROSS JOIN windows w
    WHERE x.status = 'present'
      AND x.lesson_at > (SELECT %(now)s - 2 * make_interval(days => max(risk_window_days))
                         FROM lifecycle_lifecyclesettings)
      AND x.lesson_at > %(now)s - 2 * w.span
    GROUP BY x.student_id, w.days
),
decided0 AS (
    SELECT a.student_id, s.stage AS old_stage,
           a.at_risk AS old_at_risk, a.risk_recent AS old_risk_recent, a.risk_before AS old_risk_before,
           a.renewal_due AS old_renewal_due, a.recheck_at AS old_recheck_at,
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
                   {_from_now("(a.active_until - ls.renewal_days)::timestamp AT TIME ZONE %(tz)s")})
               WHEN a.ever_contracted THEN CASE WHEN NOT x2.refunded THEN {_from_now("x2.ended_at + ls.grace_span")} END
               WHEN r.reason = 'closed_lost' THEN NULL
               ELSE {_from_now("x2.touched_at + ls.stale_span")}
           END, %(never)s) AS recheck_at
    FROM lifecycle_studentactivity a
    JOIN crm_student s ON s.id = a.student_id
    JOIN ls ON ls.campus_id = s.campus_id
    LEFT JOIN win ON win.student_id = a.student_id AND win.days = ls.risk_window_days
    CROSS JOIN LATERAL (SELECT
        a.last_active_signed_at IS NOT NULL AND (a.active_until IS NULL OR a.active_until >= %(today)s) AS has_active,
        CASE WHEN a.last_active_signed_at IS NOT NULL AND a.active_until IS NOT NULL
             THEN (a.active_until + 1)::timestamp AT TIME ZONE %(tz)s END AS expiry_at
    ) x1
    CROSS JOIN LATERAL (SELECT
        (a.last_present_at IS NULL OR a.last_present_at < a.last_active_signed_at) AS not_started,
        CASE WHEN a.last_present_at IS NULL OR a.last_present_at < a.last_active_signed_at
             THEN a.last_active_signed_at ELSE a.last_present_at END AS ref_at,
        greatest(a.last_ended_at, x1.expiry_at) AS ended_at,
        a.last_ended_refunded AND a.last_ended_at IS NOT NULL
            AND (x1.expiry_at IS NULL OR a.last_ended_at >= x1.expiry_at) AS refunded,
        greatest(s.created_at, a.last_touch_at) AS touched_at,
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
            WHEN s.lost_at IS NOT NULL AND (a.last_touch_at IS NULL OR a.last_touch_at <= s.lost_at)
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
    WHERE {{target}}
),
decided AS (
    -- Which rows must be written, decided once here, so the updates below join only those.
    SELECT d.*, d.stage IS DISTINCT FROM d.old_stage AS stage_changed,
           (d.at_risk, d.risk_recent, d.risk_before, d.renewal_due, d.recheck_at)
               IS DISTINCT FROM (d.old_at_risk, d.old_risk_recent, d.old_risk_before, d.old_renewal_due,
                                 d.old_recheck_at) AS flags_changed
    FROM decided0 d
),
to_stage AS (SELECT * FROM decided WHERE stage_changed),
to_flags AS (SELECT * FROM decided WHERE flags_changed),
changed AS (
    UPDATE crm_student s SET stage = d.stage, stage_changed_at = %(now)s
    FROM to_stage d
    WHERE s.id = d.student_id AND s.stage IS DISTINCT FROM d.stage
    RETURNING s.id, d.old_stage, d.stage, d.reason
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
    RETURNING 1
),
flags AS (
    UPDATE lifecycle_studentactivity a
    SET at_risk = d.at_risk, risk_recent = d.risk_recent, risk_before = d.risk_before,
        renewal_due = d.renewal_due, recheck_at = d.recheck_at
    FROM to_flags d
    WHERE a.student_id = d.student_id
      AND (a.at_risk, a.risk_recent, a.risk_before, a.renewal_due, a.recheck_at)
          IS DISTINCT FROM (d.at_risk, d.risk_recent, d.risk_before, d.renewal_due, d.recheck_at)
    RETURNING 1
)
SELECT (SELECT count(*) FROM decided), (SELECT count(*) FROM changed), (SELECT count(*) FROM flags),
       (SELECT count(*) FROM history)
"""


@dataclass(frozen=True)
class RecomputeResult:
    decided: int  # students whose stage and flags were decided
    changed: int  # stage changes written (one StageChange each)
    flags_written: int  # activity rows whose flags or recheck moment changed


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
        _activity_ensure(ids, campus_id, now=now, thorough=full)
    if connection.vendor != "postgresql":
        return _recompute_in_python(ids, now=now, source=source, actor=actor, campus_id=campus_id, full=full)
    if ids is None and not full:
        # The nightly run: the due students are few on most nights. Naming them lets the
        # planner look them up by key instead of joining whole tables (whose statistics may
        # also be stale right after a big run); a night where most are due takes the set path.
        due = StudentActivity.objects.filter(Q(recheck_at__isnull=True) | Q(recheck_at__lte=now))
        if campus_id is not None:
            due = due.filter(student__campus_id=campus_id)
        due_ids = list(due.values_list("pk", flat=True)[: DUE_BY_KEY_LIMIT + 1])
        if len(due_ids) <= DUE_BY_KEY_LIMIT:
            if not due_ids:
                return RecomputeResult(0, 0, 0)
            ids = due_ids

    conditions = []
    if ids is not None:
        conditions.append("a.student_id = ANY(%(ids)s::bigint[])")
    elif not full:
        conditions.append("(a.recheck_at IS NULL OR a.recheck_at <= %(now)s)")
    if campus_id is not None:
        conditions.append("a.student_id IN (SELECT id FROM crm_student WHERE campus_id = %(campus)s)")
    sql = RECOMPUTE_SQL.replace("{target}", " AND ".join(conditions) or "TRUE").replace(
        "{win_targets}", "JOIN targets t ON t.student_id = x.student_id" if conditions else ""
    )
    params = {
        "ids": ids,
        "now": now,
        "today": timezone.localdate(now),
        "tz": settings.TIME_ZONE,
        "never": NEVER,
        "source": source,
        "actor": actor.pk if actor else None,
        "campus": campus_id,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        if ids is None or len(ids) > 1000:
            # Big runs: hash joins in memory; no JIT (its compile time outweighs its gain here).
            cursor.execute("SET LOCAL work_mem = '256MB'")
            cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        row = cursor.fetchone()
    assert row is not None
    return RecomputeResult(decided=row[0], changed=row[1], flags_written=row[2])


# Up to this many due students, the nightly run names them (see recompute_stages).
DUE_BY_KEY_LIMIT = 100_000


def _activity_ensure(ids: list[int] | None, campus_id: int | None, *, now: dt.datetime, thorough: bool) -> None:
    """Students with no StudentActivity row yet (created outside the services) get one.

    The services give every new student a row through their event. For the rest (rows
    written by hand or by a bulk load without events): a full run looks at every student;
    the nightly run at the students created in the last two days or after the newest row.
    """
    students = Student.objects.filter(activity__isnull=True)
    if ids is not None:
        students = students.filter(pk__in=ids)
    elif not thorough:
        newest = StudentActivity.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        students = students.filter(Q(pk__gt=newest) | Q(created_at__gte=now - dt.timedelta(days=2)))
    if campus_id is not None:
        students = students.filter(campus_id=campus_id)
    missing = list(students.values_list("pk", flat=True))
    if missing:
        activity_refresh(missing)


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


def settings_changed(*, campus_id: int) -> None:
    """Thresholds changed: every student of the campus is decided again on the next run."""
    StudentActivity.objects.filter(student__campus_id=campus_id).update(recheck_at=None)


# --- the SQLite path: the pure function over batches ---------------------------------------


def facts_of(activity: StudentActivity, created_at: dt.datetime, lost_at: dt.datetime | None) -> StudentFacts:
    return StudentFacts(
        created_at=created_at,
        lost_at=lost_at,
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
    rows = StudentActivity.objects.select_related("student").order_by("pk")
    if ids is not None:
        rows = rows.filter(pk__in=ids)
    elif not full:
        rows = rows.filter(Q(recheck_at__isnull=True) | Q(recheck_at__lte=now))
    if campus_id is not None:
        rows = rows.filter(student__campus_id=campus_id)
    decided = changed = flags_written = 0
    all_rows = list(rows)
    for start in range(0, len(all_rows), BATCH):
        batch = all_rows[start : start + BATCH]
        widest = max((t.risk_window_days for t in thresholds.values()), default=28)
        present: dict[int, list[dt.datetime]] = {}
        for sid, at in Attendance.objects.filter(
            student_id__in=[a.pk for a in batch], status="present", lesson_at__gt=now - dt.timedelta(days=2 * widest)
        ).values_list("student_id", "lesson_at"):
            present.setdefault(sid, []).append(at)
        students: list[Student] = []
        history: list[StageChange] = []
        activities: list[StudentActivity] = []
        for activity in batch:
            student = activity.student
            t: Thresholds = thresholds[student.campus_id]
            window = risk_window(present.get(student.pk, []), now, t.risk_window_days)
            facts = replace(
                facts_of(activity, student.created_at, student.lost_at),
                risk_recent=window.recent,
                risk_before=window.before,
                risk_next_change_at=window.next_change_at,
            )
            decision = stage_for(facts, now, t)
            decided += 1
            if decision.stage != student.stage:
                history.append(
                    StageChange(
                        student_id=student.pk,
                        from_stage=student.stage or "",
                        to_stage=decision.stage,
                        changed_at=now,
                        reason=decision.reason,
                        source=StageSource.PERSON if decision.reason == "closed_lost" else source,
                        actor_id=_closer(student.pk, actor) if decision.reason == "closed_lost" else actor_id(actor),
                        won_back=student.stage in WON_BACK_FROM and decision.stage in WON_BACK_TO,
                    )
                )
                student.stage, student.stage_changed_at = decision.stage, now
                students.append(student)
            new_flags = (
                decision.at_risk,
                decision.risk_recent,
                decision.risk_before,
                decision.renewal_due,
                decision.recheck_at,
            )
            old_flags = (
                activity.at_risk,
                activity.risk_recent,
                activity.risk_before,
                activity.renewal_due,
                activity.recheck_at,
            )
            if new_flags != old_flags:
                (
                    activity.at_risk,
                    activity.risk_recent,
                    activity.risk_before,
                    activity.renewal_due,
                    activity.recheck_at,
                ) = new_flags
                activities.append(activity)
        with transaction.atomic():
            Student.objects.bulk_update(students, ["stage", "stage_changed_at"])
            StageChange.objects.bulk_create(history)
            StudentActivity.objects.bulk_update(
                activities, ["at_risk", "risk_recent", "risk_before", "renewal_due", "recheck_at"]
            )
        changed += len(students)
        flags_written += len(activities)
    return RecomputeResult(decided, changed, flags_written)


def actor_id(actor: User | None) -> int | None:
    return actor.pk if actor else None


def _closer(student_id: int, actor: User | None) -> int | None:
    entry = AuditEntry.objects.filter(student_id=student_id, action="lead_close_lost").order_by("-at", "-pk").first()
    return entry.actor_id if entry and entry.actor_id else actor_id(actor)
