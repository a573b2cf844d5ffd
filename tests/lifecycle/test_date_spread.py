"""The date-sensitive rules on a spread of dates across a year (issue 9: `main` was red on
2026-12-02 because the demo had no dormant student that day).

Each test freezes the clock on every date of `SPREAD`: month ends, the first minutes of a
month, leap days, Chinese New Year (2026-02-17, 2027-02-06), and the minute before and
after midnight in Asia/Shanghai, where a UTC date and the campus date differ.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone

from crm.management.demo import MIN_STUDENTS, DemoBuilder
from crm.management.demo.anchors import CORE
from crm.management.demo.catalogue import CAMPUSES
from crm.models import Campus, Course, Student, StudentStage, User
from crm.selectors import followups_for, students_visible_to
from lifecycle.models import LifecycleSettings, StageSource
from lifecycle.rules import Thresholds, facts_from_history, stage_for
from lifecycle.selectors import board_card_for, board_columns
from lifecycle.services.activity import activity_rebuild_all
from lifecycle.services.events import recompute_deferred
from lifecycle.services.facts import histories_of, thresholds_by_campus
from lifecycle.services.pool import pool_students, pool_sweep
from lifecycle.services.recompute import recompute_after_event, recompute_stages
from tests import factories

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


# A campus whose thresholds are all tighter than DESIGN.md's, so the anchors must follow them.
TIGHT = {
    "active_days": 10,
    "churn_days": 30,
    "stale_lead_days": 20,
    "risk_window_days": 14,
    "renewal_hours": Decimal("2"),
}


@pytest.mark.parametrize("moment", [SPREAD[0], SPREAD[1], SPREAD[6]], ids=spread_id)
def test_the_demo_anchors_follow_the_campus_thresholds(moment: dt.datetime) -> None:
    campus = Campus.objects.create(code=CAMPUSES[0].code, name=CAMPUSES[0].name)
    LifecycleSettings.objects.create(campus=campus, **TIGHT)
    with time_machine.travel(moment, tick=False):
        with recompute_deferred(recompute=False):
            built = DemoBuilder(students=MIN_STUDENTS, seed=7, thresholds_for=campus_thresholds).build(core_only=True)
        activity_rebuild_all()
        recompute_stages(source=StageSource.NIGHTLY, full=True)
    decided = {row[0]: row[1:] for row in StudentStage.objects.values_list("pk", "stage", "at_risk", "renewal_due")}
    assert {campus_code for campus_code, _ in built.core} == {campus.code}
    assert_core_holds(built.core, decided)


class RolledBack(Exception):
    pass


@contextmanager
def at_moment(moment: dt.datetime) -> Iterator[None]:
    """The clock frozen at `moment`, and whatever is written meanwhile undone afterwards."""
    with time_machine.travel(moment, tick=False), contextlib.suppress(RolledBack), transaction.atomic():
        yield
        raise RolledBack


def campus_midnight(moment: dt.datetime) -> dt.datetime:
    return dt.datetime.combine(moment.astimezone(SHANGHAI).date(), dt.time(0), tzinfo=SHANGHAI)


def test_follow_ups_and_their_escalation_follow_the_campus_day_on_any_date(
    front_desk: User, manager: User, campus_a: Campus
) -> None:
    """crm.selectors.followups_for (the follow-up pages) and the board card's follow-up state."""
    for moment in SPREAD:
        with at_moment(moment):
            start = campus_midnight(moment)
            due = {
                "later_today": moment + (start + dt.timedelta(days=1) - moment) / 2,
                "earlier_today": start + (moment - start) / 2,
                # Yesterday, but less than a day ago: half-way between a day ago and midnight.
                "just_before_today": start - (start + dt.timedelta(days=1) - moment) / 2,
                "over_a_day_ago": moment - dt.timedelta(days=1, minutes=1),
                "tomorrow": start + dt.timedelta(days=1, hours=9),
            }
            students = {
                key: factories.StudentFactory(campus=campus_a, owner=front_desk, next_follow_up_at=at, name=key)
                for key, at in due.items()
            }
            lists = followups_for(viewer=manager)
            assert {s.name for s in lists.today} == {"later_today", "earlier_today"}, moment
            assert {s.name for s in lists.overdue} == {"just_before_today"}, moment
            assert {s.name for s in lists.escalated} == {"over_a_day_ago"}, moment
            mine = followups_for(viewer=front_desk)
            assert {s.name for s in mine.overdue if s.escalated} == {"over_a_day_ago"}, moment  # type: ignore[attr-defined]
            states = {key: board_card_for(student).follow_up for key, student in students.items()}
            assert states == {
                "later_today": "today",
                "earlier_today": "overdue",
                "just_before_today": "overdue",
                "over_a_day_ago": "overdue",
                "tomorrow": "later",
            }, moment


def test_the_pool_takes_back_neglected_leads_after_the_window_on_any_date(front_desk: User, campus_a: Campus) -> None:
    """lifecycle.services.pool: a lead owned and not followed up for pool_follow_up_days returns to the pool."""
    window = dt.timedelta(days=LifecycleSettings().pool_follow_up_days)
    hour = dt.timedelta(hours=1)
    for moment in SPREAD:
        with at_moment(moment):
            cases = {
                "owned_past_the_window": (moment - window - hour, None),
                "owned_inside_the_window": (moment - window + hour, None),
                "overdue_past_the_window": (moment - 3 * window, moment - window - hour),
                "overdue_inside_the_window": (moment - 3 * window, moment - window + hour),
            }
            ids = {}
            for key, (created_at, follow_up) in cases.items():
                student = factories.StudentFactory(campus=campus_a, owner=front_desk, next_follow_up_at=follow_up)
                Student.objects.filter(pk=student.pk).update(created_at=created_at)
                ids[student.pk] = key
            released = {ids[pk] for pk in pool_sweep()}
            assert released == {"owned_past_the_window", "overdue_past_the_window"}, moment
            in_pool = {ids[pk] for pk in pool_students(campus_a.pk).values_list("pk", flat=True)}
            assert in_pool == released, moment


def test_the_board_places_cards_by_the_engines_decision_on_any_date(
    manager: User, campus_a: Campus, course_a: Course, teacher: User
) -> None:
    """A card sits in the column of the stage the engine decides at that moment (default thresholds:
    active within 21 days of a lesson, dormant to 60, churned after)."""
    for moment in SPREAD:
        with at_moment(moment):
            expected = {}
            for days_ago, stage in (
                (2, "active"),
                (21 - 1, "active"),
                (21 + 1, "dormant"),
                (59, "dormant"),
                (61, "churned"),
            ):
                student = factories.StudentFactory(campus=campus_a)
                Student.objects.filter(pk=student.pk).update(created_at=moment - dt.timedelta(days=200))
                contract = factories.ContractFactory(
                    student=student, course=course_a, signed_at=moment - dt.timedelta(days=150)
                )
                factories.AttendanceFactory(
                    student=student, contract=contract, teacher=teacher, lesson_at=moment - dt.timedelta(days=days_ago)
                )
                expected[student.pk] = stage
            recompute_after_event(list(expected))
            columns = board_columns(students_visible_to(manager), [campus_a.pk])
            placed = {card.student.pk: column.stage for column in columns for card in column.cards}
            assert placed == expected, moment
