"""A fact recorded through crm's services reaches the student's profile: the lifecycle engine
decides the student, then tells personas (lifecycle.services.events.on_students_decided), whose
task recomputes the profile after commit (eager in the tests, a worker in production)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from crm import services
from crm.models import Campus, Course, User
from personas.models import CampusScoreCuts, StudentProfile
from personas.services.profiles import profiles_recompute
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)

NOW = dt.datetime(2026, 5, 12, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def signed(front_desk: User, teacher: User, campus_a: Campus, course_a: Course):
    with time_machine.travel(NOW, tick=False):
        students = [factories.StudentFactory(campus=campus_a, guardians=[]) for _ in range(3)]
        for i, student in enumerate(students):
            services.contract_sign(
                actor=front_desk,
                student=student,
                course=course_a,
                hours_bought=Decimal(20),
                amount=Decimal(1000 * (i + 1)),
                paid_amount=Decimal(1000 * (i + 1)),
                signed_at=NOW - dt.timedelta(days=10 * i),
            )
    return students


def test_signing_a_contract_gives_the_student_a_scored_profile(signed) -> None:
    rows = {p.pk: p for p in StudentProfile.objects.filter(pk__in=[s.pk for s in signed])}
    assert len(rows) == 3
    top = rows[signed[2].pk]  # paid the most, signed the longest ago
    assert (top.frequency, top.monetary, top.remaining_hours) == (1, Decimal(3000), Decimal(20))
    assert top.m_score is not None and top.rfm_segment and top.value_tier


def test_attendance_moves_the_profile_and_marks_the_campus_for_the_night(
    signed, teacher: User, front_desk: User, campus_a: Campus
) -> None:
    with time_machine.travel(NOW, tick=False):
        profiles_recompute(full=True)
        assert not CampusScoreCuts.objects.get(campus=campus_a).moved
        student = signed[2]
        services.attendance_record(
            actor=teacher,
            student=student,
            hours=Decimal(2),
            lesson_at=timezone.now() - dt.timedelta(hours=1),
            teacher=teacher,
        )
    profile = StudentProfile.objects.get(pk=student.pk)
    assert (profile.lessons_scheduled_90, profile.lessons_present_90, profile.attendance_rate) == (1, 1, Decimal(1))
    assert profile.remaining_hours == Decimal(18)
    assert profile.recency_at == NOW - dt.timedelta(hours=1)
    # Its R moved: the campus is scored again on the next nightly run, which then clears the mark.
    assert CampusScoreCuts.objects.get(campus=campus_a).moved
    with time_machine.travel(NOW, tick=False):
        profiles_recompute()
    assert not CampusScoreCuts.objects.get(campus=campus_a).moved
