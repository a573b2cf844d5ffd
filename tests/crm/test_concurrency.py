"""Two requests at the same instant, each on its own PostgreSQL connection (Acceptance 4).

Each race runs the service in two threads released together by a barrier. Where the
lock is the only guard (an overlapping slot with another start time, the last hours of a
contract), the test also widens the window between "check" and "write": each thread waits
briefly after its check for the other to have checked too. With the row lock in place the
second thread is still queued on the lock, so the wait times out and the first goes on;
without the lock both pass their checks and both write, and the test fails.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from crm.models import Attendance, Campus, ContractStatus, Course, Guardian, Student, TrialLesson, User
from crm.services import ExistingFamily, TeacherBusy, attendance_record, lead_capture, trial_book
from crm.services import leads as lead_services
from crm.services import trials as trial_services
from crm.services.imports import ImportReport
from crm.services.imports.lookups import FamilyIndex
from tests import factories
from tests.concurrency import race
from tests.crm.test_import_support import run, student_row, students_file

# Real commits, so each thread's connection sees the other's; the role groups a flush
# removes are re-created by the factories (crm.roles.role_group).
pytestmark = pytest.mark.django_db(transaction=True)

RACERS = 2
# How long a thread that has checked waits for the other to check too. Long enough for a
# thread not blocked on a lock to get there; short, because with the lock it always times out.
CHECK_WINDOW_SECONDS = 0.5


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _postgresql() -> None:
    # SQLite has no row locks and one writer at a time: these races only mean something here.
    assert connection.vendor == "postgresql", "run the suite with DATABASE_URL=postgres://..."


def widen_after(monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> None:
    """Make `target.name` wait, once it returns, for every racer to have got there too."""
    original = getattr(target, name)
    checked = threading.Barrier(RACERS)

    def slowed(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        with contextlib.suppress(threading.BrokenBarrierError):
            checked.wait(timeout=CHECK_WINDOW_SECONDS)
        return result

    # Through the instance's own __dict__, so undoing it leaves no attribute behind on a manager.
    monkeypatch.setitem(vars(target), name, slowed)


def split(outcomes: list[object]) -> tuple[list[object], list[BaseException]]:
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    return [o for o in outcomes if not isinstance(o, BaseException)], errors


@pytest.fixture
def booking(campus_a: Campus, front_desk: User, teacher: User, course_a: Course) -> dict[str, Any]:
    students = [factories.StudentFactory.create(campus=campus_a) for _ in range(RACERS)]
    at = timezone.now().replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    return {"actor": front_desk, "teacher": teacher, "course": course_a, "students": students, "at": at}


@pytest.mark.parametrize("attempt", range(3))
def test_two_bookings_of_the_same_slot_at_once_one_wins(attempt: int, booking: dict[str, Any]) -> None:
    outcomes = race(
        *(
            lambda student=student: trial_book(
                actor=booking["actor"],
                student=student,
                course=booking["course"],
                teacher=booking["teacher"],
                scheduled_at=booking["at"],
            )
            for student in booking["students"]
        )
    )
    won, lost = split(outcomes)
    assert len(won) == 1
    assert len(lost) == 1 and isinstance(lost[0], TeacherBusy), lost
    assert TrialLesson.objects.filter(teacher=booking["teacher"]).count() == 1


@pytest.mark.parametrize("attempt", range(3))
def test_two_overlapping_bookings_with_different_starts_one_wins(
    attempt: int, booking: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the teacher's row lock catches this: the unique slot constraint sees two starts.
    widen_after(monkeypatch, trial_services, "teacher_busy")
    starts = [booking["at"], booking["at"] + dt.timedelta(minutes=30)]
    outcomes = race(
        *(
            lambda student=student, at=at: trial_book(
                actor=booking["actor"],
                student=student,
                course=booking["course"],
                teacher=booking["teacher"],
                scheduled_at=at,
            )
            for student, at in zip(booking["students"], starts, strict=True)
        )
    )
    won, lost = split(outcomes)
    assert len(won) == 1
    assert len(lost) == 1 and isinstance(lost[0], TeacherBusy), lost
    assert TrialLesson.objects.filter(teacher=booking["teacher"]).count() == 1


def test_bookings_of_two_teachers_at_once_both_succeed(booking: dict[str, Any], campus_a: Campus) -> None:
    colleague = factories.UserFactory.create(campus=campus_a, role="teacher")
    outcomes = race(
        *(
            lambda student=student, who=who: trial_book(
                actor=booking["actor"],
                student=student,
                course=booking["course"],
                teacher=who,
                scheduled_at=booking["at"],
            )
            for student, who in zip(booking["students"], [booking["teacher"], colleague], strict=True)
        )
    )
    won, lost = split(outcomes)
    assert (len(won), lost) == (2, [])


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_attendance_cannot_exceed_the_hours_bought(
    attempt: int, monkeypatch: pytest.MonkeyPatch, campus_a: Campus, manager: User, course_a: Course
) -> None:
    student = factories.StudentFactory.create(campus=campus_a)
    contract = factories.ContractFactory.create(
        student=student, course=course_a, hours_bought=Decimal("10"), hours_consumed=Decimal("6")
    )
    # Widen the window between reading the hours left and taking them from the contract.
    widen_after(monkeypatch, Attendance.objects, "create")
    outcomes = race(
        *(
            lambda: attendance_record(actor=manager, student=student, contract=contract, hours=Decimal("3"))
            for _ in range(RACERS)
        )
    )
    won, lost = split(outcomes)
    assert len(won) == 1
    assert len(lost) == 1 and isinstance(lost[0], ValidationError), lost
    assert isinstance(lost[0], ValidationError)  # for mypy
    assert [e.code for e in lost[0].error_dict["hours"]] == ["hours_exceeded"]
    assert "1.0" in lost[0].message_dict["hours"][0]  # the hour left
    contract.refresh_from_db()
    assert (contract.hours_consumed, contract.status) == (Decimal("9"), ContractStatus.ACTIVE)
    assert Attendance.objects.filter(contract=contract).count() == 1


@pytest.mark.parametrize("attempt", range(2))
def test_one_phone_captured_twice_at_once_makes_one_family(
    attempt: int, campus_a: Campus, front_desk: User, manager: User
) -> None:
    outcomes = race(
        lambda: lead_capture(actor=front_desk, campus=campus_a, phone="138-0013-8000", student_name="小明"),
        lambda: lead_capture(actor=manager, campus=campus_a, phone="+86 138 0013 8000", student_name="小明"),
    )
    won, lost = split(outcomes)
    assert len(won) == 1
    assert len(lost) == 1 and isinstance(lost[0], ExistingFamily), lost
    assert list(Guardian.objects.values_list("phone", flat=True)) == ["+8613800138000"]
    assert Student.objects.count() == 1


@pytest.mark.parametrize("attempt", range(3))
def test_one_sibling_added_twice_at_once_makes_one_child(
    attempt: int, monkeypatch: pytest.MonkeyPatch, campus_a: Campus, front_desk: User, manager: User
) -> None:
    first = lead_capture(actor=front_desk, campus=campus_a, phone="13800138000", student_name="小明")
    # Widen the window between "is this name in the family?" and creating the child.
    widen_after(monkeypatch, lead_services, "family_has_child")
    outcomes = race(
        *(
            lambda actor=actor: lead_capture(
                actor=actor, campus=campus_a, phone="138 0013 8000", student_name="小红", add_to_family=True
            )
            for actor in (front_desk, manager)
        )
    )
    won, lost = split(outcomes)
    assert len(won) == 1
    assert len(lost) == 1 and isinstance(lost[0], ValidationError), lost
    assert isinstance(lost[0], ValidationError)  # for mypy
    assert [e.code for e in lost[0].error_dict["student_name"]] == ["duplicate_student"]
    assert sorted(first.guardian.students.values_list("name", flat=True)) == ["小明", "小红"]


@pytest.mark.parametrize("attempt", range(2))
def test_six_siblings_of_one_name_posted_at_once_make_one_child(
    attempt: int, campus_a: Campus, front_desk: User
) -> None:
    first = lead_capture(actor=front_desk, campus=campus_a, phone="13800138000", student_name="小明")
    outcomes = race(
        *(
            lambda: lead_capture(
                actor=front_desk, campus=campus_a, phone="13800138000", student_name="小红", add_to_family=True
            )
            for _ in range(6)
        )
    )
    won, lost = split(outcomes)
    assert len(won) == 1 and len(lost) == 5, lost
    assert all(isinstance(e, ValidationError) for e in lost), lost
    assert first.guardian.students.filter(name="小红").count() == 1


@pytest.mark.parametrize("attempt", range(3))
def test_an_import_and_a_capture_of_one_sibling_at_once_make_one_child(
    attempt: int, monkeypatch: pytest.MonkeyPatch, campus_a: Campus, front_desk: User, manager: User
) -> None:
    first = lead_capture(actor=front_desk, campus=campus_a, phone="13800138000", student_name="小明")
    # Widen the window after each door has read the family: the capture's name check, the
    # import's family index.
    checked = threading.Barrier(RACERS)

    def wait_for_the_other() -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            checked.wait(timeout=CHECK_WINDOW_SECONDS)

    has_child = lead_services.family_has_child
    index_init = FamilyIndex.__init__

    def slowed_check(*args: Any, **kwargs: Any) -> bool:
        found = has_child(*args, **kwargs)
        wait_for_the_other()
        return found

    def slowed_index(self: FamilyIndex, *args: Any, **kwargs: Any) -> None:
        index_init(self, *args, **kwargs)
        wait_for_the_other()

    monkeypatch.setitem(vars(lead_services), "family_has_child", slowed_check)
    monkeypatch.setattr(FamilyIndex, "__init__", slowed_index)
    content = students_file([student_row("小红", "138 0013 8000")])
    imported, captured = race(
        lambda: run(content, actor=manager, campus=campus_a),
        lambda: lead_capture(
            actor=front_desk, campus=campus_a, phone="13800138000", student_name="小红", add_to_family=True
        ),
    )
    assert isinstance(imported, ImportReport), imported
    refused = [isinstance(captured, ValidationError), bool(imported.errors)]
    assert sorted(refused) == [False, True], (captured, imported.lines())
    assert first.guardian.students.filter(name="小红").count() == 1
