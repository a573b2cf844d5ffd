"""RFM scores, segments and tiers on a hand-built campus equal the hand computation, ties included,
both by the pure rules and by the set-based recomputation in the database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from crm.models import Campus, Contract, Course
from personas.models import CampusScoreCuts, PersonaSettings, StudentProfile
from personas.rules import (
    SEGMENT_GRID,
    RfmInput,
    TierCuts,
    campus_scores,
    cuts_of,
    fm_of,
    score,
    score_from_cuts,
    segment_of,
)
from personas.services.profiles import profiles_after_event, profiles_recompute
from tests import factories

NOW = dt.datetime(2026, 3, 10, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))

# (days since the last signing, contracts, paid) for ten students of one campus, and the scores
# worked out by hand: N = 10, so a score is ceil(5 x le / 10) = ceil(le / 2), le being how many
# students are at or below the value (for R: at least as many days ago).
#   M: 100 le1 -> 1; 200 le3 -> 2; 300 le4 -> 2; 400 le7 -> 4; 500 le8 -> 4; 800 le9 -> 5; 1000 le10 -> 5
#   F: 1 le5 -> 3; 2 le8 -> 4; 3 le9 -> 5; 4 le10 -> 5
#   R: 400d le1 -> 1; 200d le2 -> 1; 120d le3 -> 2; 60d le4 -> 2; 40d le5 -> 3; 10d le7 -> 4; 3d le9 -> 5; 1d le10 -> 5
#   tier (above 80%: le > 8 high; above 40%: le > 4 medium)
#   segment by R and FM = round-half-up((F + M) / 2) on the grid.
HAND = {
    "S1": ((3, 1, 100), (5, 3, 1), "potential_loyalist", "low"),  # FM 2
    "S2": ((10, 1, 200), (4, 3, 2), "potential_loyalist", "low"),  # FM 3 (2.5 rounds up)
    "S3": ((10, 2, 200), (4, 4, 2), "potential_loyalist", "low"),  # FM 3
    "S4": ((40, 1, 300), (3, 3, 2), "need_attention", "low"),  # FM 3
    "S5": ((3, 3, 400), (5, 5, 4), "champions", "medium"),  # FM 5 (4.5 rounds up)
    "S6": ((60, 2, 400), (2, 4, 4), "at_risk", "medium"),  # FM 4
    "S7": ((120, 1, 400), (2, 3, 4), "at_risk", "medium"),  # FM 4 (3.5 rounds up)
    "S8": ((200, 1, 500), (1, 3, 4), "at_risk", "medium"),  # FM 4
    "S9": ((1, 4, 800), (5, 5, 5), "champions", "high"),  # FM 5
    "S10": ((400, 2, 1000), (1, 4, 5), "cannot_lose_them", "high"),  # FM 5 (4.5 rounds up)
}


def hand_inputs() -> dict[int, RfmInput]:
    today = NOW.date()
    return {
        i: RfmInput(today - dt.timedelta(days=days), f, Decimal(m))
        for i, ((days, f, m), _scores, _segment, _tier) in enumerate(HAND.values())
    }


def test_the_pure_rules_give_the_hand_computation() -> None:
    scores = campus_scores(hand_inputs())
    for i, (name, (_inputs, (r, f, m), segment, tier)) in enumerate(HAND.items()):
        s = scores[i]
        assert (s.r_score, s.f_score, s.m_score, s.segment, s.tier) == (r, f, m, segment, tier), name


def test_score_is_the_ceiling_of_five_times_the_share_in_integers() -> None:
    assert [score(le, 10) for le in range(1, 11)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert score(1, 1) == 5  # alone in the campus: the best of it
    assert [score(le, 3) for le in (1, 2, 3)] == [2, 4, 5]
    # 3/5 of 5 is exactly 3: a float cume_dist could round 2.9999... up to 3 or 3.0000...1 up to 4.
    assert score(3, 5) == 3


def test_the_grid_and_the_half_up_rounding() -> None:
    assert fm_of(2, 3) == 3 and fm_of(1, 2) == 2 and fm_of(4, 5) == 5 and fm_of(1, 1) == 1
    assert segment_of(5, 1, 1) == "new"
    assert segment_of(4, 1, 1) == "promising"
    assert segment_of(3, 1, 2) == "about_to_sleep"  # FM 2
    assert segment_of(3, 5, 5) == "loyal"
    assert segment_of(2, 1, 1) == "hibernating"
    assert segment_of(1, 2, 1) == "lost"  # FM 2
    assert segment_of(1, 5, 5) == "cannot_lose_them"
    assert segment_of(4, 4, 4) == "loyal"
    assert {name for row in SEGMENT_GRID.values() for name in row.values()} == {
        "champions",
        "loyal",
        "potential_loyalist",
        "new",
        "promising",
        "need_attention",
        "about_to_sleep",
        "at_risk",
        "cannot_lose_them",
        "hibernating",
        "lost",
    }


def test_tier_cut_offs_per_campus() -> None:
    scores = campus_scores(hand_inputs(), TierCuts(high_above_pct=60, medium_above_pct=20))
    # above 60%: le > 6 (400 le7 and up); above 20%: le > 2 (200 le3 and up)
    tiers = [scores[i].tier for i in range(10)]
    assert tiers == ["low", "medium", "medium", "medium", "high", "high", "high", "high", "high", "high"]


def test_cut_points_give_every_value_of_the_campus_its_score() -> None:
    inputs = hand_inputs()
    scores = campus_scores(inputs)
    m_cuts = cuts_of([v.monetary for v in inputs.values()])
    r_cuts = cuts_of([v.recency_day for v in inputs.values()])
    f_cuts = cuts_of([v.frequency for v in inputs.values()])
    assert f_cuts == [None, None, 1, 2]  # nobody scores 1 or 2 on F
    assert m_cuts == [Decimal(100), Decimal(300), Decimal(300), Decimal(500)]  # no value scores 3
    for i, v in inputs.items():
        assert score_from_cuts(v.monetary, m_cuts) == scores[i].m_score
        assert score_from_cuts(v.recency_day, r_cuts) == scores[i].r_score
        assert score_from_cuts(v.frequency, f_cuts) == scores[i].f_score
    # A value between two of the campus's: the score of the values below it, plus one step.
    assert score_from_cuts(Decimal(350), m_cuts) == 4
    assert score_from_cuts(Decimal(5000), m_cuts) == 5
    assert score_from_cuts(Decimal(0), m_cuts) == 1


@pytest.fixture
def hand_campus(campus_a: Campus, campus_b: Campus) -> dict[str, int]:
    """The ten students in campus A, each with F contracts signed `days` ago, the first paying M;
    campus B's students and students with no RFM beside them."""
    course = Course.objects.create(campus=campus_a, name="数学", subject="数学", price_per_hour=100)
    ids = {}
    for name, ((days, f, m), *_rest) in HAND.items():
        student = factories.StudentFactory(name=name, campus=campus_a, guardians=[])
        for k in range(f):
            Contract.objects.create(
                student=student,
                course=course,
                hours_bought=10,
                amount=max(m, 1),
                paid_amount=m if k == 0 else 0,
                signed_at=NOW - dt.timedelta(days=days),
            )
        ids[name] = student.pk
    # No contract, or only a cancelled one: no RFM, and not counted in the campus's N.
    ids["lead"] = factories.StudentFactory(name="lead", campus=campus_a, guardians=[]).pk
    cancelled = factories.StudentFactory(name="cancelled", campus=campus_a, guardians=[])
    Contract.objects.create(
        student=cancelled,
        course=course,
        hours_bought=10,
        amount=9999,
        paid_amount=9999,
        signed_at=NOW,
        status="cancelled",
    )
    ids["cancelled"] = cancelled.pk
    # Campus B: one student, alone: the best of their campus whatever campus A holds.
    course_b = Course.objects.create(campus=campus_b, name="美术", subject="美术", price_per_hour=100)
    other = factories.StudentFactory(name="B1", campus=campus_b, guardians=[])
    Contract.objects.create(
        student=other, course=course_b, hours_bought=10, amount=1, paid_amount=1, signed_at=NOW - dt.timedelta(days=300)
    )
    ids["B1"] = other.pk
    return ids


@pytest.mark.django_db
def test_the_database_gives_the_hand_computation(hand_campus: dict[str, int], campus_a: Campus) -> None:
    profiles_recompute(now=NOW, full=True)
    rows = StudentProfile.objects.in_bulk(list(hand_campus.values()))
    for name, ((_days, f, m), (r_s, f_s, m_s), segment, tier) in HAND.items():
        row = rows[hand_campus[name]]
        assert (row.frequency, row.monetary) == (f, m), name
        assert (row.r_score, row.f_score, row.m_score, row.rfm_segment, row.value_tier) == (
            r_s,
            f_s,
            m_s,
            segment,
            tier,
        ), name
    for name in ("lead", "cancelled"):
        row = rows[hand_campus[name]]
        assert (row.frequency, row.r_score, row.rfm_segment, row.value_tier) == (0, None, "", ""), name
    alone = rows[hand_campus["B1"]]
    assert (alone.r_score, alone.f_score, alone.m_score, alone.rfm_segment, alone.value_tier) == (
        5,
        5,
        5,
        "champions",
        "high",
    )
    kept = CampusScoreCuts.objects.get(campus=campus_a)
    assert kept.population == 10
    assert (kept.tier_high_from, kept.tier_medium_from) == (Decimal(800), Decimal(400))


@pytest.mark.django_db
def test_campus_cut_offs_change_the_tiers(hand_campus: dict[str, int], campus_a: Campus) -> None:
    PersonaSettings.objects.create(campus=campus_a, tier_high_above_pct=60, tier_medium_above_pct=20)
    profiles_recompute(now=NOW, full=True)
    tiers = dict(StudentProfile.objects.filter(campus=campus_a).values_list("student__name", "value_tier"))
    assert [tiers[name] for name in HAND] == [
        "low",
        "medium",
        "medium",
        "medium",
        "high",
        "high",
        "high",
        "high",
        "high",
        "high",
    ]


@pytest.mark.django_db
def test_a_rerun_writes_nothing(hand_campus: dict[str, int]) -> None:
    first = profiles_recompute(now=NOW, full=True)
    assert first.written > 0 and first.campuses_scored == 2
    again = profiles_recompute(now=NOW, full=True)
    # No RFM input moved: no campus is ranked again, even in a full run.
    assert (again.written, again.campuses_scored) == (0, 0)
    assert profiles_recompute(now=NOW).written == 0


@pytest.mark.django_db
def test_after_a_fact_one_student_is_scored_against_the_campus(hand_campus: dict[str, int], campus_a: Campus) -> None:
    profiles_recompute(now=NOW, full=True)
    # The lead signs today, paying 450: R today (le 10 -> 5), F 1 (-> 3), M 450 lies above 400
    # (score 4's values end at 500, so 450 scores 4) -> FM 4, R 5: champions; M 450 >= 400: medium.
    lead = hand_campus["lead"]
    Contract.objects.create(
        student_id=lead,
        course=Course.objects.get(campus=campus_a),
        hours_bought=10,
        amount=450,
        paid_amount=450,
        signed_at=NOW,
    )
    profiles_after_event([lead], now=NOW)
    row = StudentProfile.objects.get(pk=lead)
    assert (row.r_score, row.f_score, row.m_score, row.rfm_segment, row.value_tier) == (5, 3, 4, "champions", "medium")
    # The others keep their scores until the campus is scored again (the nightly run).
    assert StudentProfile.objects.get(pk=hand_campus["S9"]).r_score == 5
    profiles_recompute(now=NOW)
    assert CampusScoreCuts.objects.get(campus=campus_a).population == 11
