"""The pure rules, stage by stage and boundary by boundary, with a fixed clock."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import translation

from crm.models import StudentStage
from lifecycle.models import StudentActivity
from lifecycle.reasons import flag_reasons, stage_reason_label
from lifecycle.rules import (
    NEVER,
    REASON_STAGE,
    ContractRow,
    StudentFacts,
    StudentHistory,
    Thresholds,
    aggregates_from_history,
    facts_from_history,
    risk_window,
    stage_for,
)

TZ = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 3, 1, 2, 0, tzinfo=TZ)
T = Thresholds()


def ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def decide(**facts: object) -> str:
    defaults: dict[str, object] = {"created_at": ago(10)}
    return stage_for(StudentFacts(**{**defaults, **facts}), NOW, T).stage  # type: ignore[arg-type]


def signed(days_ago: float, **more: object) -> dict[str, object]:
    return {
        "ever_contracted": True,
        "last_active_signed_at": ago(days_ago),
        "active_hours_remaining": Decimal(20),
        **more,
    }


# --- before a contract --------------------------------------------------------------------


def test_lead_consulting_trial() -> None:
    assert decide() == "lead"
    assert decide(has_consultation=True, last_touch_at=ago(3)) == "consulting"
    assert decide(has_consultation=True, has_trial=True, last_touch_at=ago(3)) == "trial"


def test_a_lead_untouched_for_90_days_is_lost_on_day_90_and_not_before() -> None:
    assert decide(created_at=ago(90)) == "lead"  # exactly 90 days: not yet
    assert decide(created_at=ago(90.001)) == "lost"
    assert decide(created_at=ago(200), has_consultation=True, last_touch_at=ago(89)) == "consulting"
    assert decide(created_at=ago(200), has_trial=True, last_touch_at=ago(91)) == "lost"


def test_closed_as_lost_until_a_new_touch() -> None:
    assert decide(lost_at=ago(1), has_consultation=True, last_touch_at=ago(5)) == "lost"
    decision = stage_for(StudentFacts(created_at=ago(10), lost_at=ago(1)), NOW, T)
    assert (decision.reason, decision.recheck_at) == ("closed_lost", NEVER)
    # A consultation after the closing reopens the lead.
    assert decide(lost_at=ago(5), has_consultation=True, last_touch_at=ago(1)) == "consulting"


# --- with an active contract --------------------------------------------------------------


def test_enrolled_then_dormant_then_churned_without_attending() -> None:
    assert decide(**signed(21)) == "enrolled"
    assert decide(**signed(21.001)) == "dormant"
    assert decide(**signed(60)) == "dormant"
    assert decide(**signed(60.001)) == "churned"


def test_active_dormant_churned_by_the_last_attendance() -> None:
    assert decide(**signed(100, last_present_at=ago(21))) == "active"
    assert decide(**signed(100, last_present_at=ago(21.001))) == "dormant"
    assert decide(**signed(100, last_present_at=ago(60))) == "dormant"
    assert decide(**signed(100, last_present_at=ago(60.001))) == "churned"


def test_attendance_before_the_contract_counts_as_not_started() -> None:
    # Renewed after being away: the last lesson was under the old contract.
    assert decide(**signed(3, last_present_at=ago(200))) == "enrolled"


def test_a_student_who_signs_again_is_enrolled() -> None:
    facts = signed(2, last_ended_at=ago(100), last_present_at=ago(101))
    assert decide(**facts) == "enrolled"


def test_valid_until_ends_the_contract_at_the_next_local_midnight() -> None:
    today = NOW.date()
    assert decide(**signed(100, last_present_at=ago(1), active_until=today)) == "active"
    assert decide(**signed(100, last_present_at=ago(1), active_until=today - dt.timedelta(days=1))) == "dormant"
    decision = stage_for(
        StudentFacts(created_at=ago(200), **signed(100, last_present_at=ago(1), active_until=today)),  # type: ignore[arg-type]
        NOW,
        T,
    )
    assert decision.recheck_at == dt.datetime.combine(today + dt.timedelta(days=1), dt.time(0), tzinfo=TZ)


# --- after the contracts ended ------------------------------------------------------------


def test_ended_contracts() -> None:
    ended = {"ever_contracted": True}
    assert decide(**ended, last_ended_at=ago(30)) == "dormant"
    assert decide(**ended, last_ended_at=ago(30.001)) == "churned"
    assert decide(**ended, last_ended_at=ago(1), last_ended_refunded=True) == "churned"
    # Expired by valid_until 10 days ago (no completed or refunded contract).
    expired = signed(300, active_until=NOW.date() - dt.timedelta(days=10))
    assert stage_for(StudentFacts(created_at=ago(400), **expired), NOW, T).reason == "ended_recently"  # type: ignore[arg-type]
    # A refund before a later expiry: the expiry is the last end.
    assert decide(**expired, last_ended_at=ago(50), last_ended_refunded=True) == "dormant"


def test_a_closed_lead_that_signed_follows_its_contract() -> None:
    assert decide(lost_at=ago(50), **signed(5)) == "enrolled"


def test_every_reason_belongs_to_a_stage_and_has_words() -> None:
    assert set(REASON_STAGE.values()) == {
        "lead",
        "consulting",
        "trial",
        "enrolled",
        "active",
        "dormant",
        "churned",
        "lost",
    }
    for code in REASON_STAGE:
        assert stage_reason_label(code) != code


# --- flags ----------------------------------------------------------------------------------


def flags(**facts: object) -> tuple[bool, bool]:
    decision = stage_for(StudentFacts(created_at=ago(200), **signed(100, last_present_at=ago(2), **facts)), NOW, T)  # type: ignore[arg-type]
    return decision.at_risk, decision.renewal_due


def test_at_risk_on_a_30_percent_drop() -> None:
    assert flags(risk_recent=7, risk_before=10) == (True, False)  # -30%: at risk
    assert flags(risk_recent=8, risk_before=10) == (False, False)  # -20%
    assert flags(risk_recent=0, risk_before=0) == (False, False)  # nothing before: no drop
    assert flags(risk_recent=0, risk_before=1) == (True, False)


def test_at_risk_on_two_missed_lessons_in_a_row() -> None:
    assert flags(consecutive_absences=1) == (False, False)
    assert flags(consecutive_absences=2) == (True, False)


def test_flags_only_with_an_active_contract() -> None:
    facts = StudentFacts(
        created_at=ago(200), ever_contracted=True, last_ended_at=ago(3), consecutive_absences=5, risk_before=4
    )
    decision = stage_for(facts, NOW, T)
    assert (decision.at_risk, decision.renewal_due) == (False, False)


def test_renewal_due_on_hours_or_end_date() -> None:
    assert flags(active_hours_remaining=Decimal("4")) == (False, True)
    assert flags(active_hours_remaining=Decimal("4.5")) == (False, False)
    assert flags(active_until=NOW.date() + dt.timedelta(days=30)) == (False, True)
    assert flags(active_until=NOW.date() + dt.timedelta(days=31)) == (False, False)


def test_risk_window_counts_present_lessons_per_window() -> None:
    times = [ago(1), ago(27), ago(28), ago(29), ago(55), ago(56), ago(57)]
    window = risk_window(times, NOW, 28)
    assert (window.recent, window.before) == (2, 3)
    # In one day ago(27) moves to "before" and ago(55) leaves it.
    assert window.next_change_at == ago(27) + dt.timedelta(days=28)


# --- facts from raw rows ----------------------------------------------------------------------


def test_aggregates_from_history() -> None:
    history = StudentHistory(
        created_at=ago(300),
        consultations=(ago(290),),
        trials=((ago(280), "attended"), (ago(10), "cancelled")),
        contracts=(
            ContractRow("completed", ago(250), Decimal(10), Decimal(10), last_lesson_at=ago(150)),
            ContractRow("refunded", ago(140), Decimal(10), refunded_at=ago(100)),
            ContractRow("active", ago(90), Decimal(20), Decimal(5), valid_until=NOW.date()),
            ContractRow("active", ago(40), Decimal(10), Decimal(0)),
            ContractRow("cancelled", ago(5), Decimal(10)),
        ),
        attendance=((ago(30), "present"), (ago(20), "absent"), (ago(15), "leave"), (ago(8), "absent")),
    )
    facts = aggregates_from_history(history)
    assert facts.last_touch_at == ago(280)  # the cancelled trial does not count
    assert (facts.has_consultation, facts.has_trial, facts.ever_contracted) == (True, True, True)
    assert facts.last_active_signed_at == ago(40)  # the latest signing
    assert facts.active_until is None  # one active contract has no end date
    assert facts.active_hours_remaining == Decimal(25)
    assert (facts.last_ended_at, facts.last_ended_refunded) == (ago(100), True)
    assert (facts.last_present_at, facts.consecutive_absences) == (ago(30), 2)
    decision = stage_for(facts_from_history(history, NOW, T), NOW, T)
    assert (decision.stage, decision.at_risk) == ("dormant", True)


# --- reasons in words -----------------------------------------------------------------------


@pytest.mark.django_db
def test_flag_reasons_in_words() -> None:
    flags = StudentStage(at_risk=True, risk_recent=2, risk_before=6, renewal_due=True)
    activity = StudentActivity(
        consecutive_absences=2,
        active_hours_remaining=Decimal("3.0"),
        active_until=dt.date.today() + dt.timedelta(days=10),
    )
    with translation.override("en"):
        reasons = flag_reasons(flags, activity, T)
    assert reasons == [
        "attended 2 lessons in the last 28 days against 6 before: -67%",
        "2 missed lessons in a row",
        "3 hours left",
        f"contract ends on {activity.active_until.isoformat()}",  # type: ignore[union-attr]
    ]
    assert flag_reasons(StudentStage(at_risk=False, renewal_due=False), activity, T) == []


def test_thresholds_are_honoured() -> None:
    strict = replace(T, active_days=7, churn_days=14)
    facts = StudentFacts(created_at=ago(200), **signed(100, last_present_at=ago(10)))  # type: ignore[arg-type]
    assert stage_for(facts, NOW, T).stage == "active"
    assert stage_for(facts, NOW, strict).stage == "dormant"


# --- when a stage began -----------------------------------------------------------------------


def since(history: StudentHistory) -> tuple[str, dt.datetime]:
    decision = stage_for(facts_from_history(history, NOW, T), NOW, T)
    return decision.stage, decision.since


def test_a_lead_reopened_counts_from_the_touch_that_reopened_it() -> None:
    # Consulted 200 days ago, stale (lost) 90 days later, consulted again 5 days ago.
    stale = StudentHistory(created_at=ago(210), consultations=(ago(200), ago(5), ago(2)))
    assert since(stale) == ("consulting", ago(5))
    # Closed as lost 20 days ago, a trial booked 3 days ago: a trial since that booking.
    closed = StudentHistory(
        created_at=ago(60),
        lost_at=ago(20),
        consultations=(ago(50),),
        trials=((ago(40), "attended"), (ago(3), "booked")),
    )
    assert since(closed) == ("trial", ago(3))
    # Never lost: consulting since the first consultation, a lead since the creation.
    assert since(StudentHistory(created_at=ago(60), consultations=(ago(50), ago(10)))) == ("consulting", ago(50))
    assert since(StudentHistory(created_at=ago(60))) == ("lead", ago(60))


def test_active_counts_from_the_first_lesson_or_the_return_after_a_gap() -> None:
    contract = ContractRow(status="active", signed_at=ago(200), hours_bought=Decimal(40))
    weekly = tuple((ago(d), "present") for d in range(190, 0, -7))
    assert since(StudentHistory(created_at=ago(210), contracts=(contract,), attendance=weekly)) == ("active", ago(190))
    back = tuple((ago(d), "present") for d in (190, 183, 176, 120, 113, 106, 10, 3))
    assert since(StudentHistory(created_at=ago(210), contracts=(contract,), attendance=back)) == ("active", ago(10))
    # Dormant from the last lesson + 21 days; a future trial starts its stage now, not next week.
    quiet = ((ago(40), "present"), (ago(30), "leave"))
    assert since(StudentHistory(created_at=ago(210), contracts=(contract,), attendance=quiet)) == ("dormant", ago(19))
    upcoming = StudentHistory(created_at=ago(3), trials=((NOW + dt.timedelta(days=7), "booked"),))
    assert since(upcoming) == ("trial", NOW)
