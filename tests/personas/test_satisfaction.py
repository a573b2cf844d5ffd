"""The parents' satisfaction question: when it is due (the pure rule, on its boundaries), the
answer (refused when not due, a score outside 0-10, another family's child; audited), the care
task a detractor's answer opens for the right consultant, two answers at once making one, the
care task's closing, the card's figures, and the campus's schedule in the persona settings."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm.models import Attendance, AttendanceStatus, AuditAction, AuditEntry, Campus, Course, Guardian, Student, User
from personas.models import CareTask, CareTaskStatus, NpsCategory, PersonaSettings, SatisfactionAnswer
from personas.rules import SatisfactionSchedule, satisfaction_due
from personas.selectors import persona_card, satisfaction_due_for, satisfaction_figures
from personas.services.persona_settings import persona_settings_update
from personas.services.satisfaction import care_task_close, satisfaction_answer
from tests import factories
from tests.concurrency import race

NOW = dt.datetime(2026, 5, 13, 10, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def attended(student: Student, course: Course, teacher: User, n: int, *, absent: int = 0) -> None:
    """n lessons attended (and `absent` missed) on one contract, a day apart before NOW."""
    contract = factories.ContractFactory(student=student, course=course, signed_at=NOW - 400 * DAY)
    Attendance.objects.bulk_create(
        Attendance(
            student=student,
            contract=contract,
            teacher=teacher,
            lesson_at=NOW - (i + 1) * DAY,
            status=AttendanceStatus.PRESENT if i < n else AttendanceStatus.ABSENT,
            hours=Decimal("0"),
        )
        for i in range(n + absent)
    )


def family_child(campus: Campus, course: Course, teacher: User, *, lessons: int = 8, owner: User | None = None) -> Any:
    """A guardian and their child who has attended `lessons` lessons."""
    guardian = factories.GuardianFactory()
    student = factories.StudentFactory(campus=campus, guardians=[guardian], owner=owner)
    attended(student, course, teacher, lessons)
    return guardian, student


@pytest.fixture
def frozen() -> Any:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


# --- the pure rule -------------------------------------------------------------------------------


class TestRule:
    schedule = SatisfactionSchedule(after_lessons=8, every_days=90)

    def test_the_lessons_count_opens_it(self) -> None:
        assert not satisfaction_due(0, None, NOW, self.schedule)
        assert not satisfaction_due(7, None, NOW, self.schedule)
        assert satisfaction_due(8, None, NOW, self.schedule)
        assert satisfaction_due(50, None, NOW, self.schedule)

    def test_at_most_once_a_quarter(self) -> None:
        assert not satisfaction_due(20, NOW - 89 * DAY, NOW, self.schedule)
        assert not satisfaction_due(20, NOW - 90 * DAY + dt.timedelta(seconds=1), NOW, self.schedule)
        assert satisfaction_due(20, NOW - 90 * DAY, NOW, self.schedule)
        assert satisfaction_due(20, NOW - 400 * DAY, NOW, self.schedule)

    def test_the_campus_sets_both(self) -> None:
        monthly = SatisfactionSchedule(after_lessons=3, every_days=30)
        assert satisfaction_due(3, NOW - 30 * DAY, NOW, monthly)
        assert not satisfaction_due(2, None, NOW, monthly)
        assert not satisfaction_due(3, NOW - 29 * DAY, NOW, monthly)

    def test_the_defaults_are_eight_lessons_and_ninety_days(self) -> None:
        assert SatisfactionSchedule() == self.schedule
        settings = PersonaSettings()
        assert (settings.satisfaction_after_lessons, settings.satisfaction_every_days) == (8, 90)


# --- the answer ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen")
class TestAnswer:
    def test_due_after_the_campus_lessons_count_and_not_before(self, campus_a, course_a, teacher) -> None:
        guardian, student = family_child(campus_a, course_a, teacher, lessons=7)
        attended(student, course_a, teacher, 0, absent=5)  # missed lessons do not count
        assert satisfaction_due_for(guardian=guardian, now=NOW) == []
        with pytest.raises(ValidationError) as caught:
            satisfaction_answer(guardian=guardian, student=student, score=9, reason="")
        assert "after 8 lessons" in " ".join(caught.value.messages)
        assert not SatisfactionAnswer.objects.exists()
        attended(student, course_a, teacher, 1)
        assert [d.student for d in satisfaction_due_for(guardian=guardian, now=NOW)] == [student]

    def test_an_answer_is_kept_and_audited_with_the_parent(self, campus_a, course_a, teacher) -> None:
        guardian, student = family_child(campus_a, course_a, teacher)
        answer = satisfaction_answer(guardian=guardian, student=student, score=9, reason="  老师很耐心  ")
        assert (answer.score, answer.reason, answer.answered_at, answer.guardian) == (9, "老师很耐心", NOW, guardian)
        assert answer.category == NpsCategory.PROMOTER
        entry = AuditEntry.objects.get(action=AuditAction.SATISFACTION_ANSWER)
        assert (entry.guardian, entry.student, entry.actor) == (guardian, student, None)
        assert entry.detail == {"score": "9", "category": "promoter"}

    def test_once_a_quarter_then_again(self, campus_a, course_a, teacher) -> None:
        guardian, student = family_child(campus_a, course_a, teacher)
        satisfaction_answer(guardian=guardian, student=student, score=8, reason="")
        assert satisfaction_due_for(guardian=guardian, now=NOW) == []
        with time_machine.travel(NOW + 89 * DAY, tick=False):
            with pytest.raises(ValidationError) as caught:
                satisfaction_answer(guardian=guardian, student=student, score=8, reason="")
            assert "we will ask again from 2026-08-11" in " ".join(caught.value.messages)
        # The message names the moment the rule opens, to the minute, not only its day.
        opens = timezone.localtime(NOW + 90 * DAY).strftime("%Y-%m-%d %H:%M")
        assert f"we will ask again from {opens}" in " ".join(caught.value.messages)
        with time_machine.travel(NOW + 90 * DAY, tick=False):
            satisfaction_answer(guardian=guardian, student=student, score=10, reason="")
        assert SatisfactionAnswer.objects.count() == 2

    def test_the_other_parent_of_the_child_is_not_asked_again(self, campus_a, course_a, teacher) -> None:
        guardian, student = family_child(campus_a, course_a, teacher)
        father = factories.GuardianFactory()
        student.guardians.add(father)
        satisfaction_answer(guardian=guardian, student=student, score=8, reason="")
        assert satisfaction_due_for(guardian=father, now=NOW) == []
        with pytest.raises(ValidationError):
            satisfaction_answer(guardian=father, student=student, score=3, reason="")

    def test_the_campus_settings_decide(self, campus_a, course_a, teacher, manager) -> None:
        guardian, _student = family_child(campus_a, course_a, teacher, lessons=3)
        assert satisfaction_due_for(guardian=guardian, now=NOW) == []
        persona_settings_update(actor=manager, campus=campus_a, satisfaction_after_lessons=3)
        assert [d.lessons_attended for d in satisfaction_due_for(guardian=guardian, now=NOW)] == [3]

    @pytest.mark.parametrize("score", [-1, 11, True, "7", 7.5, None])
    def test_a_score_outside_0_to_10_is_refused(self, campus_a, course_a, teacher, score) -> None:
        guardian, student = family_child(campus_a, course_a, teacher)
        with pytest.raises(ValidationError) as caught:
            satisfaction_answer(guardian=guardian, student=student, score=score, reason="")
        assert "score" in caught.value.message_dict
        assert not SatisfactionAnswer.objects.exists() and not AuditEntry.objects.exists()

    def test_a_reason_too_long_is_refused(self, campus_a, course_a, teacher) -> None:
        guardian, student = family_child(campus_a, course_a, teacher)
        with pytest.raises(ValidationError) as caught:
            satisfaction_answer(guardian=guardian, student=student, score=5, reason="很" * 10_001)
        assert "reason" in caught.value.message_dict
        assert not SatisfactionAnswer.objects.exists()

    def test_another_familys_child_is_refused(self, campus_a, course_a, teacher) -> None:
        _guardian, student = family_child(campus_a, course_a, teacher)
        stranger = factories.GuardianFactory()
        with pytest.raises(PermissionDenied):
            satisfaction_answer(guardian=stranger, student=student, score=2, reason="")
        assert not SatisfactionAnswer.objects.exists() and not CareTask.objects.exists()

    def test_the_database_refuses_a_score_outside_0_to_10(self, campus_a) -> None:
        student = factories.StudentFactory(campus=campus_a)
        with pytest.raises(IntegrityError), transaction.atomic():
            SatisfactionAnswer.objects.create(student=student, score=11, answered_at=NOW)

    def test_due_for_a_family_in_a_constant_number_of_queries(self, campus_a, course_a, teacher) -> None:
        guardian, _student = family_child(campus_a, course_a, teacher)

        def count() -> tuple[int, int]:
            with CaptureQueriesContext(connection) as ctx:
                due = satisfaction_due_for(guardian=guardian, now=NOW)
            return len(due), len(ctx.captured_queries)

        assert count() == (1, 1)
        for _ in range(4):
            sibling = factories.StudentFactory(campus=campus_a, guardians=[guardian])
            attended(sibling, course_a, teacher, 9)
            satisfaction_answer(guardian=guardian, student=sibling, score=7, reason="")
        factories.StudentFactory(campus=factories.CampusFactory(), guardians=[guardian])  # no settings row
        assert count() == (1, 1)


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen")
class TestCareTask:
    def test_a_detractor_opens_one_care_task_for_the_childs_consultant(
        self, campus_a, course_a, teacher, front_desk
    ) -> None:
        guardian, student = family_child(campus_a, course_a, teacher, owner=front_desk)
        answer = satisfaction_answer(guardian=guardian, student=student, score=6, reason="进度太慢")
        task = CareTask.objects.get()
        assert (task.student, task.consultant, task.answer, task.status) == (student, front_desk, answer, "open")
        assert answer.category == NpsCategory.DETRACTOR

    @pytest.mark.parametrize("score", [7, 8, 9, 10])
    def test_passives_and_promoters_open_none(self, campus_a, course_a, teacher, front_desk, score) -> None:
        guardian, student = family_child(campus_a, course_a, teacher, owner=front_desk)
        satisfaction_answer(guardian=guardian, student=student, score=score, reason="")
        assert not CareTask.objects.exists()

    def test_a_child_with_no_owner_gives_the_task_to_no_one(self, campus_a, course_a, teacher) -> None:
        guardian, student = family_child(campus_a, course_a, teacher)
        satisfaction_answer(guardian=guardian, student=student, score=0, reason="")
        assert CareTask.objects.get().consultant is None

    def test_one_open_task_per_answer_in_the_database(self, campus_a, course_a, teacher) -> None:
        guardian, student = family_child(campus_a, course_a, teacher)
        answer = satisfaction_answer(guardian=guardian, student=student, score=1, reason="")
        with pytest.raises(IntegrityError), transaction.atomic():
            CareTask.objects.create(student=student, answer=answer)

    def test_the_consultant_closes_it_with_a_note(self, campus_a, course_a, teacher, front_desk) -> None:
        guardian, student = family_child(campus_a, course_a, teacher, owner=front_desk)
        satisfaction_answer(guardian=guardian, student=student, score=4, reason="")
        task = CareTask.objects.get()
        care_task_close(actor=front_desk, task=task, note=" 已电话沟通，调整了时间 ")
        task.refresh_from_db()
        assert (task.status, task.note, task.done_by, task.done_at) == (
            "done",
            "已电话沟通，调整了时间",
            front_desk,
            NOW,
        )
        entry = AuditEntry.objects.get(action=AuditAction.CARE_TASK_CLOSE)
        assert (entry.actor, entry.student, entry.detail["task"]) == (front_desk, student, str(task.pk))
        with pytest.raises(ValidationError):
            care_task_close(actor=front_desk, task=task, note="")
        assert AuditEntry.objects.filter(action=AuditAction.CARE_TASK_CLOSE).count() == 1

    def test_who_may_close_it(
        self, campus_a, course_a, teacher, front_desk, manager, manager_b, teacher_b, admin_user
    ) -> None:
        colleague = factories.UserFactory(campus=campus_a, role="front_desk")
        guardian, student = family_child(campus_a, course_a, teacher, owner=front_desk)
        satisfaction_answer(guardian=guardian, student=student, score=2, reason="")
        task = CareTask.objects.get()
        for stranger in (colleague, teacher, manager_b, teacher_b):
            with pytest.raises(PermissionDenied):
                care_task_close(actor=stranger, task=task, note="")
        assert CareTask.objects.get().status == CareTaskStatus.OPEN
        care_task_close(actor=manager, task=task, note="")
        assert CareTask.objects.get().done_by == manager


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen")
class TestCard:
    def test_the_card_shows_the_answers_beside_the_teachers_ratings(self, campus_a, course_a, teacher, front_desk):
        guardian, student = family_child(campus_a, course_a, teacher)
        assert persona_card(viewer=front_desk, student_id=student.pk).satisfaction.latest is None
        with time_machine.travel(NOW - 200 * DAY, tick=False):
            satisfaction_answer(guardian=guardian, student=student, score=10, reason="")
        with time_machine.travel(NOW - 100 * DAY, tick=False):
            satisfaction_answer(guardian=guardian, student=student, score=8, reason="")
        satisfaction_answer(guardian=guardian, student=student, score=3, reason="换了老师")
        figures = persona_card(viewer=front_desk, student_id=student.pk).satisfaction
        assert figures.latest is not None and (figures.latest.score, figures.latest.reason) == (3, "换了老师")
        assert (figures.count, figures.average, figures.promoters, figures.detractors) == (3, Decimal("7.0"), 1, 1)
        assert figures.nps == 0 and figures.latest_category_label == "Detractor"

    def test_the_figures_are_one_query_for_any_number_of_answers(self, campus_a) -> None:
        student = factories.StudentFactory(campus=campus_a)
        SatisfactionAnswer.objects.bulk_create(
            SatisfactionAnswer(student=student, score=i % 11, answered_at=NOW - i * DAY) for i in range(40)
        )
        with CaptureQueriesContext(connection) as ctx:
            figures = satisfaction_figures(student.pk)
        assert len(ctx.captured_queries) == 1
        assert figures.count == 40 and figures.latest is not None and figures.latest.score == 0


@pytest.mark.django_db
def test_the_schedule_is_audited_and_scores_nothing_again(
    campus_a, manager, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        persona_settings_update(actor=manager, campus=campus_a, satisfaction_every_days=30)
    assert callbacks == []  # the tiers did not move: no scoring task
    entry = AuditEntry.objects.get(action=AuditAction.PERSONA_SETTINGS_UPDATE)
    assert "satisfaction_every_days: 90 → 30" in entry.detail["changes"]
    with pytest.raises(ValidationError) as caught:
        persona_settings_update(actor=manager, campus=campus_a, satisfaction_after_lessons=0)
    assert "satisfaction_after_lessons" in caught.value.message_dict


# --- two answers at once (PostgreSQL) ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(2))
def test_two_answers_at_once_make_one(attempt: int, campus_a, course_a, teacher, front_desk) -> None:
    assert connection.vendor == "postgresql", "run the suite with DATABASE_URL=postgres://..."
    guardian, student = family_child(campus_a, course_a, teacher, owner=front_desk)
    father: Guardian = factories.GuardianFactory()
    student.guardians.add(father)
    outcomes = race(
        lambda: satisfaction_answer(guardian=guardian, student=student, score=2, reason="一"),
        lambda: satisfaction_answer(guardian=father, student=student, score=3, reason="二"),
    )
    won = [o for o in outcomes if isinstance(o, SatisfactionAnswer)]
    lost = [o for o in outcomes if isinstance(o, ValidationError)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert "already told us" in " ".join(lost[0].messages)
    assert SatisfactionAnswer.objects.count() == 1 and CareTask.objects.count() == 1
    assert AuditEntry.objects.filter(action=AuditAction.SATISFACTION_ANSWER).count() == 1
