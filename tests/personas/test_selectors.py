"""personas.selectors.persona_card: scoped like every student page, a constant number of
queries whatever the history, the timeline paged newest first, the journey and the chart."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.http import Http404
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm.models import Attendance, AttendanceStatus, ContractStatus, TrialStatus
from lifecycle.models import StageChange
from personas.next_action import NextActionCode
from personas.selectors import TIMELINE_PAGE_SIZE, persona_card
from tests import factories

NOW = dt.datetime(2026, 5, 13, 10, 0, tzinfo=dt.UTC)  # a Wednesday


def grow_lessons(student, contract, teacher, n, *, start):
    """n attendance rows, one a day back from `start`: every third absent."""
    Attendance.objects.bulk_create(
        Attendance(
            student=student,
            contract=contract,
            teacher=teacher,
            lesson_at=start - dt.timedelta(days=i),
            status=AttendanceStatus.ABSENT if i % 3 == 2 else AttendanceStatus.PRESENT,
            hours=Decimal("0"),
        )
        for i in range(n)
    )


def card_queries(viewer, student_id, page=1):
    assert viewer.role  # the viewer's role is read once per request (cached on the user), not per card
    with CaptureQueriesContext(connection) as ctx:
        card = persona_card(viewer=viewer, student_id=student_id, page=page)
    return card, len(ctx.captured_queries)


@pytest.fixture
def history(campus_a, course_a, front_desk, teacher):
    """A student with one touch of every kind, and a profile."""
    with time_machine.travel(NOW - dt.timedelta(days=60), tick=False):
        student = factories.StudentFactory(campus=campus_a, name="王小明")
    factories.ConsultationFactory(student=student, consultant=front_desk, consulted_at=NOW - dt.timedelta(days=50))
    factories.TrialLessonFactory(
        student=student,
        course=course_a,
        teacher=teacher,
        scheduled_at=NOW - dt.timedelta(days=45),
        status=TrialStatus.ATTENDED,
        rating=5,
        feedback_at=NOW - dt.timedelta(days=44),
    )
    contract = factories.ContractFactory(student=student, course=course_a, signed_at=NOW - dt.timedelta(days=40))
    StageChange.objects.create(
        student=student,
        from_stage="trial",
        to_stage="enrolled",
        changed_at=NOW - dt.timedelta(days=40),
        reason="signed",
        source="event",
    )
    factories.StudentProfileFactory(student=student)
    return student, contract


class TestScope:
    def test_another_campus_is_a_404_for_every_role(self, history, front_desk_b, teacher_b, manager_b):
        student, _ = history
        for viewer in (front_desk_b, teacher_b, manager_b):
            with pytest.raises(Http404):
                persona_card(viewer=viewer, student_id=student.pk)

    def test_every_role_of_the_campus_and_the_admin_see_it(self, history, front_desk, teacher, manager, admin_user):
        student, _ = history
        for viewer in (front_desk, teacher, manager, admin_user):
            assert persona_card(viewer=viewer, student_id=student.pk).student == student


class TestQueries:
    @time_machine.travel(NOW, tick=False)
    def test_the_same_number_of_queries_for_5_and_500_touches(self, history, front_desk, teacher):
        student, contract = history
        grow_lessons(student, contract, teacher, 1, start=NOW - dt.timedelta(hours=1))
        small_card, small = card_queries(front_desk, student.pk)
        assert len(small_card.timeline.entries) == 6 and not small_card.timeline.has_older
        grow_lessons(student, contract, teacher, 495, start=NOW - dt.timedelta(hours=2))
        big_card, big = card_queries(front_desk, student.pk)
        assert big == small
        assert len(big_card.timeline.entries) == TIMELINE_PAGE_SIZE and big_card.timeline.has_older
        _, deep = card_queries(front_desk, student.pk, page=20)
        assert deep == small

    @time_machine.travel(NOW, tick=False)
    def test_no_history_loaded_into_python(self, history, front_desk, teacher):
        """The timeline's rows come from one union cut to the page: no query returns the history."""
        student, contract = history
        grow_lessons(student, contract, teacher, 300, start=NOW - dt.timedelta(hours=1))
        with CaptureQueriesContext(connection) as ctx:
            persona_card(viewer=front_desk, student_id=student.pk)
        attendance_reads = [q["sql"] for q in ctx.captured_queries if '"crm_attendance"' in q["sql"]]
        assert attendance_reads and all("LIMIT" in sql or "COUNT" in sql or "IN (" in sql for sql in attendance_reads)


class TestTimeline:
    @time_machine.travel(NOW, tick=False)
    def test_newest_first_and_page_two_continues_where_page_one_ended(self, history, front_desk, teacher):
        student, contract = history
        grow_lessons(student, contract, teacher, 30, start=NOW - dt.timedelta(hours=1))
        first = persona_card(viewer=front_desk, student_id=student.pk).timeline
        second = persona_card(viewer=front_desk, student_id=student.pk, page=2).timeline
        times = [e.at for e in first.entries + second.entries]
        assert times == sorted(times, reverse=True)
        assert len(first.entries) == 20 and first.older == 2
        # 30 lessons, a consultation, a trial, a contract, a stage change and the creation: 35.
        assert len(second.entries) == 15 and not second.has_older
        assert [e.kind for e in second.entries][-5:] == ["stage", "contract", "trial", "consultation", "created"]
        assert {e.obj.pk for e in first.entries if e.kind == "attendance"}.isdisjoint(
            {e.obj.pk for e in second.entries if e.kind == "attendance"}
        )

    @time_machine.travel(NOW, tick=False)
    def test_refunds_and_closing_as_lost_are_touches(self, history, front_desk):
        student, contract = history
        contract.status, contract.refund_amount, contract.refunded_at = (
            ContractStatus.REFUNDED,
            Decimal("100"),
            NOW - dt.timedelta(days=2),
        )
        contract.save()
        student.lost_at, student.lost_reason = NOW - dt.timedelta(days=1), "搬家"
        student.save()
        kinds = [e.kind for e in persona_card(viewer=front_desk, student_id=student.pk).timeline.entries]
        assert kinds[:2] == ["lost", "refund"]


class TestCard:
    @time_machine.travel(NOW, tick=False)
    def test_journey_with_dates_and_days_between(self, history, front_desk, teacher, campus_a, course_a):
        student, contract = history
        grow_lessons(student, contract, teacher, 1, start=NOW - dt.timedelta(days=38))
        factories.ContractFactory(student=student, course=course_a, signed_at=NOW - dt.timedelta(days=5))
        factories.StudentFactory(campus=campus_a, referrer=student)
        card = persona_card(viewer=front_desk, student_id=student.pk)
        steps = {s.code: s for s in card.journey}
        assert [s.code for s in card.journey] == [
            "first_touch",
            "consultation",
            "trial",
            "contract",
            "lesson",
            "feedback",
            "renewal",
            "referral",
        ]
        assert steps["consultation"].days_after_previous == 10
        assert steps["trial"].days_after_previous == 5
        assert steps["feedback"].at == NOW - dt.timedelta(days=44)  # the trial's rating came first
        assert steps["feedback"].days_after_previous == 0  # reached before the lesson: never negative
        assert steps["renewal"].at == NOW - dt.timedelta(days=5)
        assert steps["referral"].at == NOW
        assert card.journey_now == steps["referral"]

    @time_machine.travel(NOW, tick=False)
    def test_a_lead_stands_at_the_first_touch(self, campus_a, front_desk):
        student = factories.StudentFactory(campus=campus_a)
        card = persona_card(viewer=front_desk, student_id=student.pk)
        assert card.journey_now is not None and card.journey_now.code == "first_touch"
        assert card.profile is None
        assert card.next_action is not None and card.next_action.code == NextActionCode.FIRST_CALL

    @time_machine.travel(NOW, tick=False)
    def test_attendance_chart_counts_the_last_12_weeks(self, history, front_desk, teacher):
        student, contract = history
        grow_lessons(student, contract, teacher, 120, start=NOW - dt.timedelta(hours=1))
        weeks = persona_card(viewer=front_desk, student_id=student.pk).attendance_weeks
        assert len(weeks) == 12
        assert weeks[-1].week == timezone.localdate(NOW) - dt.timedelta(days=2)  # this week's Monday
        assert all(w.week.weekday() == 0 for w in weeks)
        earliest = timezone.make_aware(dt.datetime.combine(weeks[0].week, dt.time.min))
        in_range = Attendance.objects.filter(student=student, lesson_at__gte=earliest)
        assert sum(w.present + w.absent + w.leave for w in weeks) == in_range.count()
        assert sum(w.absent for w in weeks) == in_range.filter(status=AttendanceStatus.ABSENT).count()

    @time_machine.travel(NOW, tick=False)
    def test_decision_call_after_a_trial_without_a_contract(self, campus_a, course_a, front_desk, teacher):
        student = factories.StudentFactory(campus=campus_a, stage="trial")
        factories.TrialLessonFactory(
            student=student, course=course_a, teacher=teacher, scheduled_at=NOW - dt.timedelta(days=4)
        )
        factories.TrialLessonFactory(
            student=student,
            course=course_a,
            teacher=teacher,
            scheduled_at=NOW - dt.timedelta(days=1),
            status=TrialStatus.CANCELLED,
        )
        action = persona_card(viewer=front_desk, student_id=student.pk).next_action
        assert action is not None and action.code == NextActionCode.DECISION_CALL
        assert "4" in action.reason

    @time_machine.travel(NOW, tick=False)
    def test_renewal_call_from_the_hours_left(self, history, front_desk):
        student, contract = history
        contract.hours_consumed = contract.hours_bought - Decimal("3")
        contract.save()
        card = persona_card(viewer=front_desk, student_id=student.pk)
        assert card.hours_left == Decimal("3")
        assert card.next_action is not None and card.next_action.code == NextActionCode.RENEWAL_CALL
