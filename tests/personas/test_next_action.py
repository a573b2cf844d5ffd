"""The suggested next action, a pure rule: each branch, and which wins when several hold."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from personas.next_action import ActionFacts, NextActionCode, next_action_for

NOW = dt.datetime(2026, 5, 10, 10, 0, tzinfo=dt.UTC)


def code(**facts) -> str | None:
    action = next_action_for(ActionFacts(now=NOW, **facts))
    return action.code if action else None


def test_renewal_call_when_the_hours_run_low():
    action = next_action_for(ActionFacts(now=NOW, stage="active", hours_left=Decimal("3.5")))
    assert action is not None
    assert (action.code, action.form) == (NextActionCode.RENEWAL_CALL, "consultation")
    assert "3.5" in action.reason and action.reason in action.suggestion


def test_renewal_call_at_the_campus_threshold_not_above():
    assert code(stage="active", hours_left=Decimal("6"), renewal_hours=Decimal("6")) == NextActionCode.RENEWAL_CALL
    assert code(stage="active", hours_left=Decimal("6.5"), renewal_hours=Decimal("6")) is None


def test_renewal_call_when_the_engine_flags_renewal_due():
    """A contract ending soon flags renewal_due with plenty of hours left."""
    assert code(stage="active", renewal_due=True, hours_left=Decimal("30")) == NextActionCode.RENEWAL_CALL


def test_no_renewal_without_an_active_contract():
    assert code(stage="churned", hours_left=None, value_tier="low") is None


@pytest.mark.parametrize("stage", ["dormant", "churned"])
@pytest.mark.parametrize("tier", ["high", "medium"])
def test_win_back_when_dormant_or_churned_and_valuable(stage, tier):
    assert code(stage=stage, value_tier=tier) == NextActionCode.WIN_BACK


@pytest.mark.parametrize("tier", ["low", ""])
def test_no_win_back_offer_for_low_value(tier):
    assert code(stage="dormant", value_tier=tier) is None


def test_decision_call_after_a_trial_with_no_contract_since():
    trial = NOW - dt.timedelta(days=4)
    assert code(stage="trial", last_trial_at=trial) == NextActionCode.DECISION_CALL
    assert code(stage="trial", last_trial_at=trial, last_signed_at=trial - dt.timedelta(days=100)) == (
        NextActionCode.DECISION_CALL
    )


def test_no_decision_call_within_three_days_or_after_signing_or_when_lost():
    assert code(stage="trial", last_trial_at=NOW - dt.timedelta(days=2)) is None
    assert code(stage="trial", last_trial_at=NOW - dt.timedelta(days=3)) is None  # more than 3 days
    trial = NOW - dt.timedelta(days=5)
    assert code(stage="enrolled", last_trial_at=trial, last_signed_at=trial + dt.timedelta(days=1)) == (
        NextActionCode.WELCOME_CALL
    )
    assert code(stage="lost", last_trial_at=trial) is None


def test_care_call_when_at_risk():
    action = next_action_for(ActionFacts(now=NOW, stage="active", at_risk=True, hours_left=Decimal("20")))
    assert action is not None and action.code == NextActionCode.CARE_CALL


@pytest.mark.parametrize(
    ("stage", "expected", "form"),
    [
        ("lead", NextActionCode.FIRST_CALL, "consultation"),
        ("consulting", NextActionCode.BOOK_TRIAL, "trial"),
        ("enrolled", NextActionCode.WELCOME_CALL, "consultation"),
    ],
)
def test_defaults_by_stage(stage, expected, form):
    action = next_action_for(ActionFacts(now=NOW, stage=stage))
    assert action is not None and (action.code, action.form) == (expected, form)
    assert action.reason


@pytest.mark.parametrize("stage", ["active", "trial", "lost", "dormant"])
def test_nothing_to_suggest(stage):
    assert code(stage=stage, hours_left=Decimal("20") if stage == "active" else None) is None


def test_the_first_rule_that_holds_wins():
    everything = dict(
        stage="dormant",
        at_risk=True,
        hours_left=Decimal("2"),
        value_tier="high",
        last_trial_at=NOW - dt.timedelta(days=10),
    )
    assert code(**everything) == NextActionCode.RENEWAL_CALL
    assert code(**{**everything, "hours_left": Decimal("20")}) == NextActionCode.WIN_BACK
    assert code(**{**everything, "hours_left": Decimal("20"), "value_tier": "low"}) == NextActionCode.DECISION_CALL
    assert code(**{**everything, "hours_left": Decimal("20"), "value_tier": "low", "last_trial_at": None}) == (
        NextActionCode.CARE_CALL
    )
