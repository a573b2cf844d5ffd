"""The date-sensitive rules on a spread of dates across a year (issue 9: `main` was red on
2026-12-02 because the demo had no dormant student that day).

Each test freezes the clock on every date of `SPREAD`: month ends, the first minutes of a
month, leap days, Chinese New Year (2026-02-17, 2027-02-06), and the minute before and
after midnight in Asia/Shanghai, where a UTC date and the campus date differ.
"""

from __future__ import annotations

import calendar
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from crm.management.demo import MIN_STUDENTS, DemoBuilder
from crm.management.demo.anchors import CORE
from crm.models import Campus, Student, StudentStage
from lifecycle.models import StageSource
from lifecycle.rules import Thresholds, facts_from_history, stage_for
from lifecycle.services.activity import activity_rebuild_all
from lifecycle.services.events import recompute_deferred
from lifecycle.services.facts import histories_of, thresholds_by_campus
from lifecycle.services.recompute import recompute_stages

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
EVERY_STAGE = {"lead", "consulting", "trial", "enrolled", "active", "dormant", "churned", "lost"}


def _at(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=SHANGHAI)


def _spread() -> list[dt.datetime]:
    special = [
        _at(2026, 12, 2, 10, 0),  # the day main was red
        _at(2026, 12, 2, 23, 59, 30),
        _at(2026, 2, 17, 10, 0),  # Chinese New Year
        _at(2027, 2, 6, 15, 30),  # Chinese New Year
        _at(2026, 2, 28, 12, 0),
        _at(2028, 2, 29, 12, 0),  # a leap day
        _at(2028, 2, 29, 23, 59, 59),
        _at(2028, 3, 1, 0, 0, 30),
        _at(2026, 12, 31, 23, 59, 30),
        _at(2027, 1, 1, 0, 0, 30),
        _at(2027, 1, 1, 7, 59),  # still 2026-12-31 in UTC
        _at(2027, 1, 1, 8, 1),
    ]
    month_ends = [_at(2027, m, calendar.monthrange(2027, m)[1], 23, 59) for m in range(1, 13)]
    month_starts = [_at(2027, m, 1, 0, 1) for m in range(2, 13)]
    # Mid-month, on every weekday, at hours from the early morning to the late evening.
    mid_month = [_at(2027, m, 10 + m, (5 + 3 * m) % 24, 17) for m in range(1, 8)]
    return special + month_ends + month_starts + mid_month


SPREAD = _spread()


def spread_id(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d_%H:%M:%S")


def test_the_spread_is_wide_enough() -> None:
    assert len(set(SPREAD)) == len(SPREAD) >= 40
    assert len({m.month for m in SPREAD}) == 12
    assert {m.weekday() for m in SPREAD} == set(range(7))


def assert_core_holds(core: dict[tuple[str, str], int], decided: dict[int, tuple[str, bool, bool]]) -> None:
    """Each core student is what anchors.CORE promises, so the demo shows every stage and flag."""
    assert {kind for _, kind in core} == set(CORE)
    for (campus, kind), sid in core.items():
        stage, at_risk, renewal_due = decided[sid]
        expected_stage, flag = CORE[kind]
        assert stage == expected_stage, (campus, kind)
        assert flag is None or {"at_risk": at_risk, "renewal_due": renewal_due}[flag], (campus, kind)
    assert {stage for stage, _ in CORE.values()} == EVERY_STAGE
    assert {flag for _, flag in CORE.values()} == {None, "at_risk", "renewal_due"}


def campus_thresholds(campus: Campus) -> Thresholds:
    return thresholds_by_campus()[campus.pk]


@pytest.mark.parametrize("moment", SPREAD, ids=spread_id)
def test_the_demo_holds_every_stage_and_flag_on_any_date(moment: dt.datetime) -> None:
    """The demo's core (a campus's first student of each kind: its anchors) is built at the
    frozen moment as seed_demo builds it, then decided by the set-based engine, which must
    agree with the pure rule on every student."""
    with time_machine.travel(moment, tick=False):
        with recompute_deferred(recompute=False):
            built = DemoBuilder(students=MIN_STUDENTS, seed=2024, thresholds_for=campus_thresholds).build(
                core_only=True
            )
        activity_rebuild_all()
        recompute_stages(source=StageSource.NIGHTLY, full=True)
        now = timezone.now()
    assert now == moment
    decided = {row[0]: row[1:] for row in StudentStage.objects.values_list("pk", "stage", "at_risk", "renewal_due")}
    assert_core_holds(built.core, decided)
    thresholds = thresholds_by_campus()
    campuses = dict(Student.objects.values_list("pk", "campus_id"))
    for sid, history in histories_of(list(campuses)).items():
        t = thresholds[campuses[sid]]
        decision = stage_for(facts_from_history(history, now, t), now, t)
        assert (decision.stage, decision.at_risk, decision.renewal_due) == decided[sid], sid
