"""Attendance saved or corrected by two people at the same instant, on PostgreSQL: the
contract's hours move once (see tests/crm/test_concurrency.py for how the races are run)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from crm.models import Attendance, AttendanceStatus, Campus, Contract, Course, Student, User
from crm.services import AttendanceMark, attendance_correct, attendance_record, lesson_attendance_record
from crm.services import contracts as contract_services
from tests import factories
from tests.concurrency import race
from tests.crm.test_concurrency import split, widen_after

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    assert connection.vendor == "postgresql", "run the suite with DATABASE_URL=postgres://..."


def lesson_with(campus: Campus, course: Course, teacher: User, n: int) -> tuple[Any, list[Student]]:
    start = timezone.localtime().replace(hour=12, minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    lesson = factories.LessonFactory.create(course=course, teacher=teacher, starts_at=start, hours=Decimal("2"))
    students: list[Student] = []
    for _ in range(n):
        student = factories.StudentFactory.create(campus=campus)
        factories.ContractFactory.create(student=student, course=course, hours_bought=Decimal("10"))
        lesson.students.add(student)
        students.append(student)
    return lesson, students


@pytest.mark.parametrize("attempt", range(2))
def test_one_sheet_saved_twice_at_once_is_recorded_once(
    attempt: int, campus_a: Campus, course_a: Course, teacher: User, manager: User
) -> None:
    lesson, students = lesson_with(campus_a, course_a, teacher, 3)
    marks = [AttendanceMark(s) for s in students]
    outcomes = race(
        lambda: lesson_attendance_record(actor=teacher, lesson=lesson, marks=marks),
        lambda: lesson_attendance_record(actor=manager, lesson=lesson, marks=marks),
    )
    won, lost = split(outcomes)
    assert len(won) == 1
    assert len(lost) == 1 and isinstance(lost[0], ValidationError), lost
    assert "already recorded" in " ".join(lost[0].messages)
    assert Attendance.objects.count() == 3
    assert set(Contract.objects.values_list("hours_consumed", flat=True)) == {Decimal("2")}


@pytest.mark.parametrize("attempt", range(2))
def test_one_correction_sent_twice_at_once_gives_the_hours_back_once(
    attempt: int, monkeypatch: pytest.MonkeyPatch, campus_a: Campus, course_a: Course, teacher: User, manager: User
) -> None:
    lesson, (student,) = lesson_with(campus_a, course_a, teacher, 1)
    Contract.objects.filter(student=student).update(hours_consumed=Decimal("6"))
    row = attendance_record(actor=teacher, student=student, lesson=lesson, status=AttendanceStatus.ABSENT)
    # Widen the window between reading the record and moving the contract's hours.
    widen_after(monkeypatch, contract_services, "attendance_hours")
    outcomes = race(
        *(
            lambda who=who: attendance_correct(actor=who, attendance=row, status=AttendanceStatus.LEAVE)
            for who in (teacher, manager)
        )
    )
    won, lost = split(outcomes)
    assert len(won) == 1
    assert len(lost) == 1 and isinstance(lost[0], ValidationError), lost
    assert "Nothing to correct" in " ".join(lost[0].messages)
    assert Contract.objects.get(student=student).hours_consumed == Decimal("6")
    row.refresh_from_db()
    assert (row.status, row.hours) == (AttendanceStatus.LEAVE, 0)
