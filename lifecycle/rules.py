"""The lifecycle rules: one student's stage and flags from their facts at a moment.

Pure Python, no database: `stage_for(facts, now, thresholds)` is the definition of the
rules (docs/lifecycle.md says them in words). `lifecycle.services.recompute` executes the
same rules set-based in SQL for many students at once; the two are kept side by side
(`RECOMPUTE_SQL` there mirrors `stage_for` here branch by branch) and
tests/lifecycle/test_agreement.py proves they agree on generated histories.

The facts are the kept per-student aggregates (`StudentActivity`), the student's
`created_at` and `lost_at`, and the attendance counts of the at-risk windows, which move
with time and so are counted at decision time. A decision also says when its stage began
(`Decision.since`: the signing, the last lesson + active_days, the refund...); the facts that
only that moment needs (first consultation, first trial, where the latest run of attendance
began) are read when a stage changes. `facts_from_history` computes the same
aggregates from a student's raw rows, for the SQLite fallback, the per-student loop of the
benchmark and the tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from zoneinfo import ZoneInfo

# Stage values (crm.models.Stage) and the machine reason for each decision. Every reason
# belongs to exactly one stage, so the SQL decides the reason and maps it to the stage.
LEAD, CONSULTING, TRIAL, ENROLLED, ACTIVE, DORMANT, CHURNED, LOST = (
    "lead",
    "consulting",
    "trial",
    "enrolled",
    "active",
    "dormant",
    "churned",
    "lost",
)

REASON_STAGE: dict[str, str] = {
    "new_lead": LEAD,  # no consultation, trial or contract
    "consulted": CONSULTING,  # a consultation, no trial or contract
    "trial": TRIAL,  # a trial booked or taken, no contract
    "closed_lost": LOST,  # a person closed the lead as lost, nothing happened since
    "stale_lead": LOST,  # no contract and untouched for stale_lead_days
    "attending": ACTIVE,  # active contract, attended within active_days
    "signed": ENROLLED,  # active contract, latest signing within active_days, no attendance since
    "not_started": DORMANT,  # ... latest signing active_days to churn_days ago
    "not_started_long": CHURNED,  # ... latest signing more than churn_days ago
    "silent": DORMANT,  # active contract, last attended (after signing) active_days to churn_days ago
    "silent_long": CHURNED,  # ... more than churn_days ago
    "refunded": CHURNED,  # no active contract; the contract that ended last was refunded
    "ended_recently": DORMANT,  # no active contract; the last one ended within ended_grace_days
    "ended_long_ago": CHURNED,  # no active contract; the last one ended longer ago
}

WON_BACK_FROM = (DORMANT, CHURNED)
WON_BACK_TO = (ENROLLED, ACTIVE)

# Attendance statuses of a lesson that was held for the student: a no-show's lesson went ahead
# and consumed hours, while an excused leave (请假) is no lesson at all. A completed contract
# ended at its last held lesson, so a leave recorded after the last lesson cannot move its end.
HELD_LESSON_STATUSES: tuple[str, ...] = ("present", "absent")

# recheck_at when no passing of time can change the decision (only a new fact can).
NEVER = dt.datetime(3000, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Thresholds:
    """A campus's LifecycleSettings, as the rules need them."""

    active_days: int = 21
    churn_days: int = 60
    ended_grace_days: int = 30
    stale_lead_days: int = 90
    risk_window_days: int = 28
    risk_drop_pct: int = 30
    risk_consecutive_absences: int = 2
    renewal_hours: Decimal = Decimal("4")
    renewal_days: int = 30
    # Local dates (a contract's valid_until) are read in this time zone.
    time_zone: str = "Asia/Shanghai"


@dataclass(frozen=True)
class StudentFacts:
    """The kept aggregates of one student (StudentActivity), plus created_at / lost_at and
    the at-risk window counts at the decision's moment."""

    created_at: dt.datetime
    lost_at: dt.datetime | None = None
    # Latest consultation or non-cancelled trial (its scheduled time).
    last_touch_at: dt.datetime | None = None
    has_consultation: bool = False
    has_trial: bool = False  # a trial that is not cancelled
    ever_contracted: bool = False  # a contract that is not cancelled
    # Over the contracts with status active (None: there is none): the latest signing.
    last_active_signed_at: dt.datetime | None = None
    active_until: dt.date | None = None  # the latest valid_until; None if one has no end date
    active_hours_remaining: Decimal | None = None
    # Over completed and refunded contracts: when the last one ended, and whether it was refunded.
    last_ended_at: dt.datetime | None = None
    last_ended_refunded: bool = False
    last_present_at: dt.datetime | None = None  # latest attendance with status present
    consecutive_absences: int = 0  # absences after the latest present (leave is skipped)
    # Present attendance in (now - W, now] and (now - 2W, now - W], W = risk_window_days.
    risk_recent: int = 0
    risk_before: int = 0
    # The next moment a present attendance enters or leaves one of those windows.
    risk_next_change_at: dt.datetime | None = None
    # Read only for the moment a new stage began (Decision.since), counted within the current
    # lead episode (`lead_episode_from`): the first consultation, and the first trial that is not
    # cancelled (its scheduled time), or the episode's start if there is none in it.
    consulted_from: dt.datetime | None = None
    trial_from: dt.datetime | None = None
    # The first present attendance of the latest run with no gap over active_days between two
    # present lessons: where the student began (or came back) attending.
    attending_from: dt.datetime | None = None


@dataclass(frozen=True)
class Decision:
    stage: str
    reason: str
    at_risk: bool = False
    # The window counts behind at_risk (0 / 0 when not at risk).
    risk_recent: int = 0
    risk_before: int = 0
    renewal_due: bool = False
    # The earliest moment the decision can change with no new fact (NEVER if none).
    recheck_at: dt.datetime = NEVER
    # The moment the facts put the student in this stage (never later than `now`). Stored only
    # when the stage changes: an unchanged stage keeps the start it was given then.
    since: dt.datetime = NEVER


def days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


def local_midnight(day: dt.date, time_zone: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo(time_zone))


def local_date(moment: dt.datetime, time_zone: str) -> dt.date:
    return moment.astimezone(ZoneInfo(time_zone)).date()


def stage_for(facts: StudentFacts, now: dt.datetime, thresholds: Thresholds) -> Decision:
    """The stage, flags and next recheck moment of one student at `now` (aware)."""
    t = thresholds
    f = facts
    today = local_date(now, t.time_zone)
    # Moments at which the decision may change; the earliest one not in the past is recheck_at.
    candidates: list[dt.datetime | None] = []

    has_open = f.last_active_signed_at is not None
    has_active = has_open and (f.active_until is None or f.active_until >= today)
    # All contracts with status active past their valid_until: they ended at the next local midnight.
    expiry_at = local_midnight(f.active_until + days(1), t.time_zone) if has_open and f.active_until else None

    at_risk = renewal_due = False
    risk_recent = risk_before = 0
    if has_active:
        # Measured from the latest of the last attendance and the latest signing: a student
        # who signs again after months away is enrolled again, not still churned.
        signed_at, present_at = f.last_active_signed_at, f.last_present_at
        assert signed_at is not None
        not_started = present_at is None or present_at < signed_at
        ref = signed_at if not_started or present_at is None else present_at
        if present_at is not None and present_at >= now - days(t.active_days):
            reason, since = "attending", f.attending_from or present_at
        elif ref >= now - days(t.active_days):
            reason, since = "signed", signed_at
        elif ref >= now - days(t.churn_days):
            reason, since = ("not_started" if not_started else "silent"), ref + days(t.active_days)
        else:
            reason, since = ("not_started_long" if not_started else "silent_long"), ref + days(t.churn_days)
        if present_at is not None:
            candidates.append(present_at + days(t.active_days))
        candidates += [ref + days(t.active_days), ref + days(t.churn_days), expiry_at]

        dropped = f.risk_before > 0 and f.risk_recent * 100 <= f.risk_before * (100 - t.risk_drop_pct)
        absent = t.risk_consecutive_absences > 0 and f.consecutive_absences >= t.risk_consecutive_absences
        at_risk = dropped or absent
        if at_risk:
            risk_recent, risk_before = f.risk_recent, f.risk_before
        candidates.append(f.risk_next_change_at)

        ends_soon = f.active_until is not None and f.active_until <= today + days(t.renewal_days)
        few_hours = f.active_hours_remaining is not None and f.active_hours_remaining <= t.renewal_hours
        renewal_due = ends_soon or few_hours
        if f.active_until is not None:
            candidates.append(local_midnight(f.active_until - days(t.renewal_days), t.time_zone))
    elif f.ever_contracted:
        ended_at = max((m for m in (f.last_ended_at, expiry_at) if m is not None), default=None)
        refunded = (
            f.last_ended_refunded
            and f.last_ended_at is not None
            and (expiry_at is None or f.last_ended_at >= expiry_at)
        )
        if refunded:
            assert f.last_ended_at is not None
            reason, since = "refunded", f.last_ended_at
        elif ended_at is not None and ended_at >= now - days(t.ended_grace_days):
            reason, since = "ended_recently", ended_at
        else:
            # A contract ends when it is refunded, completed or past its valid_until: never None here.
            assert ended_at is not None
            reason, since = "ended_long_ago", ended_at + days(t.ended_grace_days)
        if not refunded and ended_at is not None:
            candidates.append(ended_at + days(t.ended_grace_days))
    elif f.lost_at is not None and (f.last_touch_at is None or f.last_touch_at <= f.lost_at):
        reason, since = "closed_lost", f.lost_at
    else:
        touched_at = max(f.created_at, f.last_touch_at) if f.last_touch_at is not None else f.created_at
        if touched_at < now - days(t.stale_lead_days):
            reason, since = "stale_lead", touched_at + days(t.stale_lead_days)
        elif f.has_trial:
            reason, since = "trial", f.trial_from or f.created_at
        elif f.has_consultation:
            reason, since = "consulted", f.consulted_from or f.created_at
        else:
            reason, since = "new_lead", f.created_at
        candidates.append(touched_at + days(t.stale_lead_days))

    recheck_at = min((c for c in candidates if c is not None and c >= now), default=NEVER)
    return Decision(
        stage=REASON_STAGE[reason],
        reason=reason,
        at_risk=at_risk,
        risk_recent=risk_recent,
        risk_before=risk_before,
        renewal_due=renewal_due,
        recheck_at=recheck_at,
        # Facts dated in the future (a trial booked for next week) start the stage now.
        since=min(since, now),
    )


# --- aggregates from raw rows -------------------------------------------------------------


@dataclass(frozen=True)
class ContractRow:
    status: str  # active / completed / refunded / cancelled
    signed_at: dt.datetime
    hours_bought: Decimal
    hours_consumed: Decimal = Decimal("0")
    valid_until: dt.date | None = None
    refunded_at: dt.datetime | None = None
    # The latest held lesson (HELD_LESSON_STATUSES) taken from this contract (when it completed).
    last_lesson_at: dt.datetime | None = None


@dataclass(frozen=True)
class StudentHistory:
    """One student's raw facts, as loaded from crm's tables."""

    created_at: dt.datetime
    lost_at: dt.datetime | None = None
    consultations: tuple[dt.datetime, ...] = ()  # consulted_at
    trials: tuple[tuple[dt.datetime, str], ...] = ()  # (scheduled_at, status)
    contracts: tuple[ContractRow, ...] = ()
    attendance: tuple[tuple[dt.datetime, str], ...] = ()  # (lesson_at, status)


def contract_ended_at(contract: ContractRow) -> dt.datetime | None:
    """When a completed or refunded contract ended: its refund, or its last held lesson."""
    if contract.status == "refunded":
        return contract.refunded_at or contract.signed_at
    if contract.status == "completed":
        return contract.last_lesson_at or contract.signed_at
    return None


def aggregates_from_history(history: StudentHistory) -> StudentFacts:
    """The kept aggregates (no window counts) of one student; what activity_refresh stores."""
    h = history
    touches = [*h.consultations, *(at for at, status in h.trials if status != "cancelled")]
    contracts = [c for c in h.contracts if c.status != "cancelled"]
    open_ = [c for c in contracts if c.status == "active"]
    ended = [(end, c.status == "refunded") for c in contracts if (end := contract_ended_at(c)) is not None]
    last_ended = max(ended, default=None)  # latest end; a refund wins a tie (True > False)
    present = [at for at, status in h.attendance if status == "present"]
    last_present = max(present, default=None)
    absences = sum(
        1 for at, status in h.attendance if status == "absent" and (last_present is None or at > last_present)
    )
    return StudentFacts(
        created_at=h.created_at,
        lost_at=h.lost_at,
        last_touch_at=max(touches, default=None),
        has_consultation=bool(h.consultations),
        has_trial=any(status != "cancelled" for _, status in h.trials),
        ever_contracted=bool(contracts),
        last_active_signed_at=max((c.signed_at for c in open_), default=None),
        active_until=(
            None
            if not open_ or any(c.valid_until is None for c in open_)
            else max(c.valid_until for c in open_ if c.valid_until is not None)
        ),
        active_hours_remaining=sum((c.hours_bought - c.hours_consumed for c in open_), Decimal("0")) if open_ else None,
        last_ended_at=last_ended[0] if last_ended else None,
        last_ended_refunded=last_ended[1] if last_ended else False,
        last_present_at=last_present,
        consecutive_absences=absences,
    )


@dataclass(frozen=True)
class RiskWindow:
    recent: int
    before: int
    next_change_at: dt.datetime | None


def risk_window(present_times: Iterable[dt.datetime], now: dt.datetime, window_days: int) -> RiskWindow:
    """Present attendance in (now - W, now] and (now - 2W, now - W], and the next moment one
    of those times enters or leaves a window (at t, t + W, t + 2W)."""
    w = days(window_days)
    recent = before = 0
    next_change: dt.datetime | None = None
    for at in present_times:
        if at <= now - 2 * w:
            continue
        if now - w < at <= now:
            recent += 1
        elif at <= now - w:
            before += 1
        crossing = at if at > now else (at + w if at + w > now else at + 2 * w)
        next_change = crossing if next_change is None else min(next_change, crossing)
    return RiskWindow(recent, before, next_change)


def attending_from(present_times: Iterable[dt.datetime], active_days: int) -> dt.datetime | None:
    """The first lesson of the latest run of present lessons no more than active_days apart: after
    a longer gap the student was not attending in between, so the run is a return."""
    run_from = previous = None
    for at in sorted(present_times):
        if previous is None or at - previous > days(active_days):
            run_from = at
        previous = at
    return run_from


def lead_episode_from(
    created_at: dt.datetime, lost_at: dt.datetime | None, touches: Iterable[dt.datetime], stale_lead_days: int
) -> dt.datetime:
    """When the student's current run as an open lead began: their creation, or a touch that
    reopened them (the first touch after the closing as lost, or a touch more than
    stale_lead_days after the one before, or after the creation)."""
    start = created_at
    previous: dt.datetime | None = None
    for at in sorted([created_at, *touches]):
        if previous is not None and (
            at > previous + days(stale_lead_days) or (lost_at is not None and at > lost_at and previous <= lost_at)
        ):
            start = max(start, at)
        previous = at
    return start


def facts_from_history(history: StudentHistory, now: dt.datetime, thresholds: Thresholds) -> StudentFacts:
    """Aggregates and window counts of one student at `now`, straight from their raw rows, with
    the facts a new stage's start is read from."""
    present = [at for at, status in history.attendance if status == "present"]
    window = risk_window(present, now, thresholds.risk_window_days)
    trials = [at for at, status in history.trials if status != "cancelled"]
    episode = lead_episode_from(
        history.created_at, history.lost_at, [*history.consultations, *trials], thresholds.stale_lead_days
    )
    return replace(
        aggregates_from_history(history),
        risk_recent=window.recent,
        risk_before=window.before,
        risk_next_change_at=window.next_change_at,
        consulted_from=min((at for at in history.consultations if at >= episode), default=episode),
        trial_from=min((at for at in trials if at >= episode), default=episode),
        attending_from=attending_from(present, thresholds.active_days),
    )
