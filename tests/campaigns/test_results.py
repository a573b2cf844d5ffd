"""A campaign's results on a hand-built history: conversions in the window per group, the uplift
against the holdout with its 95% interval, and won-back students credited to the campaign that
reached them last (issue 11, acceptance 5)."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.models import Campaign, CampaignMember, Message
from campaigns.selectors import campaign_results
from crm.models import Campus, Student, TrialLesson, User
from lifecycle.models import StageChange
from tests import factories

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)


def campaign_on(campus: Campus, name: str = "唤醒") -> Campaign:
    segment = factories.SegmentFactory(campus=campus)
    return Campaign.objects.create(
        campus=campus,
        name=name,
        goal="win_back",
        segment=segment,
        channels=["sms"],
        status="done",
        resolved_at=START,
        attribution_days=14,
    )


def members(campaign: Campaign, group: str, n: int) -> list[Student]:
    students = factories.StudentFactory.create_batch(n, campus=campaign.campus, guardians=[])
    CampaignMember.objects.bulk_create(CampaignMember(campaign=campaign, student=s, group=group) for s in students)
    return students


def trial_booked(student: Student, at: dt.datetime, teacher: User) -> None:
    trial = factories.TrialLessonFactory(student=student, teacher=teacher, course__campus=student.campus)
    TrialLesson.objects.filter(pk=trial.pk).update(created_at=at)


def reached(campaign: Campaign, student: Student, at: dt.datetime) -> None:
    guardian = factories.GuardianFactory()
    Message.objects.create(
        category="marketing",
        channel="sms",
        campaign=campaign,
        campus=campaign.campus,
        student=student,
        guardian=guardian,
        recipient=guardian.phone,
        text="好久不见",
        idempotency_key=f"k-{campaign.pk}-{student.pk}",
        status="sent",
        sent_at=at,
    )


def won_back(student: Student, at: dt.datetime) -> None:
    StageChange.objects.create(
        student=student, from_stage="dormant", to_stage="active", changed_at=at, source="event", won_back=True
    )


def test_conversions_and_the_uplift_equal_the_hand_computation(campus_a: Campus, teacher: User) -> None:
    campaign = campaign_on(campus_a)
    treated = members(campaign, "A", 40)
    holdout = members(campaign, "holdout", 10)
    inside, after = START + dt.timedelta(days=3), START + dt.timedelta(days=15)
    # Variant A: six converted, three ways; and what does not count.
    for student in treated[:3]:
        trial_booked(student, inside, teacher)
    for student in treated[3:5]:
        factories.ContractFactory(student=student, course__campus=campus_a, signed_at=inside)
    factories.AttendanceFactory(student=treated[5], lesson_at=inside, contract__student=treated[5])
    factories.ContractFactory(student=treated[6], course__campus=campus_a, signed_at=after)  # after the window
    factories.ContractFactory(student=treated[7], course__campus=campus_a, signed_at=inside, status="cancelled")
    trial_booked(treated[8], START - dt.timedelta(days=1), teacher)  # before the launch
    factories.AttendanceFactory(student=treated[9], lesson_at=inside, contract__student=treated[9], status="absent")
    # The holdout: one of ten came back on their own.
    trial_booked(holdout[0], inside, teacher)

    results = campaign_results(campaign)
    groups = {g.group: g for g in results.groups}
    assert (groups["A"].members, groups["A"].converted) == (40, 6)
    assert (groups["holdout"].members, groups["holdout"].converted) == (10, 1)
    uplift = groups["A"].uplift
    assert uplift is not None and uplift.uplift is not None and uplift.low is not None and uplift.high is not None
    # 15% against 10%: five points; standard error sqrt(.15*.85/40 + .10*.90/10) = .1103970.
    spread = 1.959963984540054 * math.sqrt(0.15 * 0.85 / 40 + 0.10 * 0.90 / 10)
    assert spread == pytest.approx(0.216374, abs=1e-6)
    assert uplift.uplift == pytest.approx(0.05)
    assert (uplift.low, uplift.high) == (pytest.approx(0.05 - spread), pytest.approx(0.05 + spread))
    assert results.window_end == START + dt.timedelta(days=14)


def test_a_won_back_student_is_credited_to_the_campaign_that_reached_them_last(campus_a: Campus) -> None:
    first, second = campaign_on(campus_a, "第一波"), campaign_on(campus_a, "第二波")
    [both] = members(first, "A", 1)
    CampaignMember.objects.create(campaign=second, student=both, group="A")
    [only_first, too_early] = members(first, "A", 2)
    reached(first, both, START + dt.timedelta(hours=1))
    reached(second, both, START + dt.timedelta(hours=2))
    reached(first, only_first, START + dt.timedelta(hours=1))
    reached(first, too_early, START + dt.timedelta(days=2))
    won_back(both, START + dt.timedelta(days=3))
    won_back(only_first, START + dt.timedelta(days=3))
    won_back(too_early, START + dt.timedelta(days=1))  # back before the message reached them

    by_group = {g.group: g for g in campaign_results(first).groups}
    assert by_group["A"].won_back == 1  # only_first
    assert {g.group: g.won_back for g in campaign_results(second).groups}["A"] == 1  # both


def test_results_read_in_a_constant_number_of_queries(campus_a: Campus, teacher: User) -> None:
    campaign = campaign_on(campus_a)
    small = members(campaign, "A", 2)
    for student in small:
        reached(campaign, student, START + dt.timedelta(hours=1))
    with CaptureQueriesContext(connection) as few:
        campaign_results(campaign, now=timezone.now())
    for student in members(campaign, "A", 20) + members(campaign, "holdout", 5):
        reached(campaign, student, START + dt.timedelta(hours=1))
        trial_booked(student, START + dt.timedelta(days=1), teacher)
    with CaptureQueriesContext(connection) as many:
        campaign_results(campaign, now=timezone.now())
    assert len(many.captured_queries) == len(few.captured_queries)
