"""The demo's anchor students: on each campus, the first student of a kind whose stage
depends on how long ago things happened is placed relative to today, with a safe margin
from every lifecycle threshold, so that whatever the date the engine finds every stage
(lead, consulting, trial, enrolled, active, dormant, churned, lost) and both flags
(at_risk, renewal_due) in the demo. The other students keep their random histories.

The kinds that need no anchor hold their stage whatever the date: a consulting lead was
consulted in the last week, the first trial of a campus is today, a lost lead was closed
as lost by a person, and a refunded contract makes its student churned.

crm sits below lifecycle, so the thresholds come in as anything with the attributes of
`StageThresholds` (lifecycle.rules.Thresholds has them); seed_demo passes each campus's.
Every placement is a whole number of local days ago, at a lesson or office hour: such a
moment is between d - 1 and d + 1 days old whatever the time of day, so each d below is at
least two whole days from the threshold it must stay clear of (a day of margin is left).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Protocol

ANCHORED_KINDS = ("lead", "enrolled", "active", "at_risk", "silent")

# The demo's core: for each kind of history, what its first student on a campus is on any
# date (stage, and the flag it carries). Together they hold every stage and both flags. The
# `churned` kind (a package used up long ago) is not in it: it is dormant or churned
# depending on how long ago, and the refunded student is churned on every date anyway.
CORE: dict[str, tuple[str, str | None]] = {
    "lead": ("lead", None),
    "consulting": ("consulting", None),
    "trial": ("trial", None),
    "lost": ("lost", None),
    "enrolled": ("enrolled", None),
    "active": ("active", "renewal_due"),
    "at_risk": ("active", "at_risk"),
    "silent": ("dormant", None),
    "refunded": ("churned", None),
}

# The anchored active student's starter package: small, so its last hours are running out.
RENEWAL_PACKAGE_HOURS = Decimal(12)
# How many weekly lessons of history the dormant and at-risk anchors have before they went quiet.
HISTORY_LESSONS = 6


class StageThresholds(Protocol):
    @property
    def active_days(self) -> int: ...

    @property
    def churn_days(self) -> int: ...

    @property
    def stale_lead_days(self) -> int: ...

    @property
    def risk_window_days(self) -> int: ...

    @property
    def renewal_hours(self) -> Decimal: ...


@dataclass(frozen=True)
class AnchoredContract:
    """A contract placed in days before today: signed `signed_days_ago`, with present
    lessons on the days listed (most recent last), from a package of `hours`."""

    signed_days_ago: int
    lesson_days_ago: tuple[int, ...]
    hours: Decimal
    # Signs again the day after the last lesson, when the package is used up.
    renews: bool = False


def lead_captured_days_ago(t: StageThresholds) -> int:
    """A lead waiting a day or so: far inside stale_lead_days."""
    return max(1, min(2, t.stale_lead_days // 4))


def enrolled_signed_days_ago(t: StageThresholds) -> int:
    """Signed a week ago (a third of active_days), not attending yet: enrolled."""
    return max(1, t.active_days // 3)


def active_with_renewal_due(t: StageThresholds, hours_per_lesson: Decimal) -> AnchoredContract:
    """Attends weekly, last lesson two days ago (active), with a small package whose hours
    left are at most renewal_hours (renewal_due)."""
    package = RENEWAL_PACKAGE_HOURS
    # The fewest lessons that leave at most renewal_hours, and never more than the package holds.
    needed = ((package - t.renewal_hours) / hours_per_lesson).to_integral_value(rounding=ROUND_CEILING)
    lessons = max(1, min(int(needed), int(package // hours_per_lesson)))
    days = tuple(2 + 7 * i for i in reversed(range(lessons)))
    return AnchoredContract(signed_days_ago=days[0] + 3, lesson_days_ago=days, hours=package)


def silent_dormant(t: StageThresholds, hours_per_lesson: Decimal) -> AnchoredContract:
    """Attended a starter package weekly to its last hour, renewed the next day and has not
    come since: the later of the last lesson and the renewal is about half-way between
    active_days and churn_days ago, so dormant."""
    last = (t.active_days + t.churn_days) // 2 + 1
    days = tuple(last + 7 * i for i in reversed(range(HISTORY_LESSONS)))
    return AnchoredContract(
        signed_days_ago=days[0] + 4, lesson_days_ago=days, hours=hours_per_lesson * HISTORY_LESSONS, renews=True
    )


def attendance_dropped(t: StageThresholds) -> AnchoredContract:
    """Attended weekly through the earlier at-risk window (risk_window_days), then once in
    the recent one, in its middle: at_risk by the drop, and active by that one lesson."""
    w = t.risk_window_days
    # Weekly from two days inside the earlier window (w, 2w] backwards: its lessons, then older history.
    weekly = [w + 2 + 7 * i for i in reversed(range(HISTORY_LESSONS))]
    recent = min(max(1, w // 2), t.active_days - 2)
    days = (*weekly, recent)
    return AnchoredContract(signed_days_ago=days[0] + 5, lesson_days_ago=days, hours=Decimal(48))
