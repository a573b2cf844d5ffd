"""The persona card's suggested next action: a pure rule from a few facts about one student.

Each suggestion names the record form that carries it out (the card opens that form, scrolled
to, focused and prefilled with `suggestion`) and says its reason in words. The first rule that
holds wins, in the order of NextActionCode: a renewal is money about to run out, a win-back is
money already gone, a decision call a trial about to go cold, a care call attendance sliding.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import models
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

# A trial with no decision this long after it was held calls for a decision call (issue 10).
DECISION_AFTER = dt.timedelta(days=3)
WIN_BACK_TIERS = ("high", "medium")


class NextActionCode(models.TextChoices):
    RENEWAL_CALL = "renewal_call", gettext_lazy("Renewal call")
    WIN_BACK = "win_back", gettext_lazy("Win-back offer")
    DECISION_CALL = "decision_call", gettext_lazy("Decision call after the trial")
    CARE_CALL = "care_call", gettext_lazy("Care call")
    FIRST_CALL = "first_call", gettext_lazy("First call")
    BOOK_TRIAL = "book_trial", gettext_lazy("Book a trial lesson")
    WELCOME_CALL = "welcome_call", gettext_lazy("Welcome call")


@dataclass(frozen=True)
class ActionFacts:
    now: dt.datetime
    stage: str
    at_risk: bool = False
    renewal_due: bool = False
    # Hours left over the active contracts; None without an active contract.
    hours_left: Decimal | None = None
    renewal_hours: Decimal = Decimal("4")  # the campus's lifecycle threshold
    value_tier: str = ""  # high / medium / low, "" without a profile or RFM
    # The latest trial lesson not cancelled that has begun (attended, or simply past its time).
    last_trial_at: dt.datetime | None = None
    last_signed_at: dt.datetime | None = None  # the latest contract not cancelled
    last_consulted_at: dt.datetime | None = None  # the latest consultation logged


@dataclass(frozen=True)
class NextAction:
    code: str
    form: str  # the record form: "consultation" or "trial"
    reason: str
    suggestion: str = ""  # prefilled into the form's content

    @property
    def label(self) -> str:
        return str(NextActionCode(self.code).label)


def _hours(value: Decimal) -> str:
    return f"{value.normalize():f}" if value == value.to_integral() else f"{value:f}"


def next_action_for(facts: ActionFacts) -> NextAction | None:
    f = facts
    low_hours = f.hours_left is not None and f.hours_left <= f.renewal_hours
    if f.renewal_due or low_hours:
        reason = (
            _("%(hours)s hours left on the active contracts") % {"hours": _hours(f.hours_left)}
            if f.hours_left is not None and low_hours
            else _("the renewal window is open")
        )
        return NextAction(
            NextActionCode.RENEWAL_CALL,
            "consultation",
            reason,
            _("Renewal call: %(reason)s. Offered the next package.") % {"reason": reason},
        )
    if f.stage in ("dormant", "churned") and f.value_tier in WIN_BACK_TIERS:
        reason = _("%(stage)s and of %(tier)s") % {
            "stage": _("dormant") if f.stage == "dormant" else _("churned"),
            "tier": _("high value") if f.value_tier == "high" else _("medium value"),
        }
        return NextAction(
            NextActionCode.WIN_BACK,
            "consultation",
            reason,
            _("Win-back call: %(reason)s. Offered a comeback lesson.") % {"reason": reason},
        )
    if (
        f.stage != "lost"
        and f.last_trial_at is not None
        and f.now - f.last_trial_at > DECISION_AFTER
        and (f.last_signed_at is None or f.last_signed_at < f.last_trial_at)
        # The decision call logged (a consultation after the trial) answers it.
        and (f.last_consulted_at is None or f.last_consulted_at < f.last_trial_at)
    ):
        days = (f.now - f.last_trial_at).days
        reason = _("trial lesson %(days)d days ago, no contract since") % {"days": days}
        return NextAction(
            NextActionCode.DECISION_CALL,
            "consultation",
            reason,
            _("Decision call: %(reason)s. Asked how the trial went.") % {"reason": reason},
        )
    if f.at_risk:
        reason = _("attendance is dropping")
        return NextAction(
            NextActionCode.CARE_CALL,
            "consultation",
            reason,
            _("Care call: %(reason)s. Asked how the lessons are going.") % {"reason": reason},
        )
    if f.stage == "lead":
        reason = _("a new lead, not consulted yet")
        return NextAction(NextActionCode.FIRST_CALL, "consultation", reason, _("First call: introduced the courses."))
    if f.stage == "consulting":
        return NextAction(NextActionCode.BOOK_TRIAL, "trial", _("consulted, no trial lesson yet"))
    if f.stage == "enrolled":
        reason = _("signed, no lesson attended yet")
        return NextAction(
            NextActionCode.WELCOME_CALL, "consultation", reason, _("Welcome call: agreed the first lesson.")
        )
    return None
