"""Attendance: a whole lesson in one save, corrections that give hours back, and the one rule
for what an absence or a leave costs, driven through every door."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse

from crm.models import (
    Attendance,
    AttendanceStatus,
    AuditEntry,
    Campus,
    Contract,
    ContractStatus,
    Course,
    Lesson,
    Student,
    User,
)
from crm.services import (
    AttendanceMark,
    attendance_correct,
    attendance_hours,
    attendance_record,
    lesson_attendance_record,
)
from tests import factories

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
# A Tuesday morning; the lesson is at 16:00 the same day.
NOW = dt.datetime(2026, 3, 10, 9, 0, tzinfo=SHANGHAI)
LESSON_AT = NOW.replace(hour=16)
PRESENT, ABSENT, LEAVE = AttendanceStatus.PRESENT, AttendanceStatus.ABSENT, AttendanceStatus.LEAVE


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@dataclass
class Sheet:
    lesson: Lesson
    students: list[Student]

    def contract(self, i: int) -> Contract:
        return Contract.objects.get(student=self.students[i])

    def consumed(self) -> list[Decimal]:
        return [self.contract(i).hours_consumed for i in range(len(self.students))]


def make_sheet(campus: Campus, course: Course, teacher: User, n: int = 3, hours: str = "2") -> Sheet:
    lesson = factories.LessonFactory(course=course, teacher=teacher, starts_at=LESSON_AT, hours=Decimal(hours))
    students: list[Student] = []
    for i in range(n):
        student: Student = factories.StudentFactory(campus=campus, name=f"学生{i}")
        factories.ContractFactory(student=student, course=course, hours_bought=Decimal("10"))
        lesson.students.add(student)
        students.append(student)
    return Sheet(lesson, students)


@pytest.fixture
def sheet(campus_a: Campus, course_a: Course, teacher: User) -> Sheet:
    return make_sheet(campus_a, course_a, teacher)


# --- the rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "charged"), [(PRESENT, Decimal("2")), (ABSENT, Decimal("2")), (LEAVE, Decimal("0"))]
)
def test_a_lesson_costs_its_hours_unless_the_student_was_on_leave(status: str, charged: Decimal) -> None:
    assert attendance_hours(status=status, hours=Decimal("2")) == charged


# --- a whole lesson in one save ------------------------------------------------------------


def test_a_whole_lesson_is_recorded_in_one_call(sheet: Sheet, teacher: User) -> None:
    a, b, c = sheet.students
    rows = lesson_attendance_record(
        actor=teacher,
        lesson=sheet.lesson,
        marks=[AttendanceMark(a), AttendanceMark(b, ABSENT), AttendanceMark(c, LEAVE, feedback="家里有事")],
    )
    assert [(r.student, r.status, r.hours) for r in rows] == [
        (a, PRESENT, Decimal("2")),
        (b, ABSENT, Decimal("2")),
        (c, LEAVE, Decimal("0")),
    ]
    assert sheet.consumed() == [Decimal("2"), Decimal("2"), Decimal("0")]
    assert Attendance.objects.get(student=c).feedback == "家里有事"
    assert AuditEntry.objects.filter(action="attendance_record", actor=teacher).count() == 3


def test_one_bad_row_records_nothing_and_names_every_problem(
    sheet: Sheet, teacher: User, campus_a: Campus, course_a: Course
) -> None:
    a, b, c = sheet.students
    Contract.objects.filter(student=b).update(hours_consumed=Decimal("9"))
    Contract.objects.filter(student=c).update(status=ContractStatus.REFUNDED)
    stranger = factories.StudentFactory(campus=campus_a, name="路人")
    with pytest.raises(ValidationError) as caught:
        lesson_attendance_record(
            actor=teacher,
            lesson=sheet.lesson,
            marks=[AttendanceMark(a), AttendanceMark(b), AttendanceMark(c), AttendanceMark(stranger)],
        )
    text = " ".join(caught.value.messages)
    assert "学生1: Only 1.0 hours are left on this contract; 2.0 cannot be recorded." in text
    assert "学生2: 学生2 has no active contract to take hours from." in text
    assert "路人: not on this lesson's roster." in text
    assert not Attendance.objects.exists()
    assert sheet.contract(0).hours_consumed == 0
    assert not AuditEntry.objects.exists()


def test_a_lesson_saved_twice_says_who_is_already_recorded(sheet: Sheet, teacher: User) -> None:
    marks = [AttendanceMark(s) for s in sheet.students]
    lesson_attendance_record(actor=teacher, lesson=sheet.lesson, marks=marks[:1])
    with pytest.raises(ValidationError, match=re.escape("学生0: Attendance for this lesson is already recorded.")):
        lesson_attendance_record(actor=teacher, lesson=sheet.lesson, marks=marks)
    assert Attendance.objects.count() == 1


def test_only_the_lessons_teacher_or_a_manager_saves_the_sheet(
    sheet: Sheet, campus_a: Campus, manager: User, manager_b: User
) -> None:
    other = factories.UserFactory(campus=campus_a, role="teacher")
    marks = [AttendanceMark(s) for s in sheet.students]
    for intruder in (other, manager_b):
        with pytest.raises(PermissionDenied):
            lesson_attendance_record(actor=intruder, lesson=sheet.lesson, marks=marks)
    assert not Attendance.objects.exists()
    assert len(lesson_attendance_record(actor=manager, lesson=sheet.lesson, marks=marks)) == 3


# --- corrections ---------------------------------------------------------------------------


def recorded(sheet: Sheet, teacher: User, *statuses: str) -> list[Attendance]:
    marks = [AttendanceMark(s, status) for s, status in zip(sheet.students, statuses, strict=False)]
    return lesson_attendance_record(actor=teacher, lesson=sheet.lesson, marks=marks)


def test_a_correction_gives_hours_back_and_takes_them_again_audited(sheet: Sheet, teacher: User) -> None:
    (row,) = recorded(sheet, teacher, ABSENT)
    assert sheet.contract(0).hours_consumed == Decimal("2")

    attendance_correct(actor=teacher, attendance=row, status=LEAVE, reason="家长提前请过假")
    row.refresh_from_db()
    assert (row.status, row.hours, sheet.contract(0).hours_consumed) == (LEAVE, 0, 0)
    entry = AuditEntry.objects.get(action="attendance_correct")
    assert (entry.actor, entry.student) == (teacher, sheet.students[0])
    assert entry.detail == {
        "attendance": str(row.pk),
        "status": "absent -> leave",
        "hours": "2.0 -> 0",
        "reason": "家长提前请过假",
    }

    attendance_correct(actor=teacher, attendance=row, status=PRESENT, hours=Decimal("1.5"))
    row.refresh_from_db()
    assert (row.status, row.hours, sheet.contract(0).hours_consumed) == (PRESENT, Decimal("1.5"), Decimal("1.5"))


def test_a_correction_reopens_a_contract_it_gives_hours_back_to(sheet: Sheet, teacher: User) -> None:
    Contract.objects.filter(student=sheet.students[0]).update(hours_consumed=Decimal("8"))
    (row,) = recorded(sheet, teacher, PRESENT)
    assert sheet.contract(0).status == ContractStatus.COMPLETED
    attendance_correct(actor=teacher, attendance=row, status=LEAVE)
    contract = sheet.contract(0)
    assert (contract.status, contract.hours_consumed) == (ContractStatus.ACTIVE, Decimal("8"))
    attendance_correct(actor=teacher, attendance=row, status=ABSENT)
    contract = sheet.contract(0)
    assert (contract.status, contract.hours_consumed) == (ContractStatus.COMPLETED, Decimal("10"))


def test_a_correction_cannot_take_more_hours_than_are_left(sheet: Sheet, teacher: User, manager: User) -> None:
    (row,) = recorded(sheet, teacher, LEAVE)
    Contract.objects.filter(student=sheet.students[0]).update(hours_consumed=Decimal("9"))
    left = "Only 1.0 hours are left on this contract; 2.0 cannot be recorded."
    with pytest.raises(ValidationError, match=re.escape(left)):
        attendance_correct(actor=manager, attendance=row, status=PRESENT)
    row.refresh_from_db()
    assert (row.status, row.hours, sheet.contract(0).hours_consumed) == (LEAVE, 0, Decimal("9"))
    assert not AuditEntry.objects.filter(action="attendance_correct").exists()


def test_a_refunded_contracts_hours_no_longer_change(sheet: Sheet, teacher: User, manager: User) -> None:
    (row,) = recorded(sheet, teacher, PRESENT)
    Contract.objects.filter(student=sheet.students[0]).update(status=ContractStatus.REFUNDED)
    with pytest.raises(ValidationError, match="refunded or cancelled"):
        attendance_correct(actor=manager, attendance=row, status=LEAVE)
    assert sheet.contract(0).hours_consumed == Decimal("2")


def test_a_teacher_corrects_on_the_lessons_day_a_manager_any_day(
    sheet: Sheet, teacher: User, manager: User, frozen_clock: time_machine.Traveller
) -> None:
    (row,) = recorded(sheet, teacher, PRESENT)
    frozen_clock.move_to(NOW + dt.timedelta(days=1))
    with pytest.raises(ValidationError, match="only on the day of the lesson"):
        attendance_correct(actor=teacher, attendance=row, status=ABSENT)
    attendance_correct(actor=manager, attendance=row, status=LEAVE)
    assert sheet.contract(0).hours_consumed == 0


def test_other_teachers_front_desk_and_other_campuses_cannot_correct(
    sheet: Sheet, teacher: User, front_desk: User, manager_b: User, campus_a: Campus
) -> None:
    (row,) = recorded(sheet, teacher, PRESENT)
    other = factories.UserFactory(campus=campus_a, role="teacher")
    for intruder in (other, front_desk, manager_b):
        with pytest.raises(PermissionDenied):
            attendance_correct(actor=intruder, attendance=row, status=LEAVE)
    row.refresh_from_db()
    assert (row.status, sheet.contract(0).hours_consumed) == (PRESENT, Decimal("2"))


def test_a_correction_that_changes_nothing_is_refused(sheet: Sheet, teacher: User) -> None:
    (row,) = recorded(sheet, teacher, PRESENT)
    with pytest.raises(ValidationError, match="Nothing to correct"):
        attendance_correct(actor=teacher, attendance=row, status=PRESENT)


# --- every door, the same input, the same answer -------------------------------------------
#
# Each door records one student of a 2-hour lesson as `status`, typing the lesson's hours
# where the door has a field for them, then corrects the record to `corrected`.


def page_client(user: User) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def record_by_service(sheet: Sheet, actor: User, status: str) -> None:
    attendance_record(actor=actor, student=sheet.students[0], lesson=sheet.lesson, status=status, hours=Decimal("2"))


def record_by_teacher_page(sheet: Sheet, actor: User, status: str) -> None:
    student = sheet.students[0]
    sheet.lesson.students.set([student])
    prefix = f"l{sheet.lesson.pk}"
    response = page_client(actor).post(
        reverse("lesson_attendance", args=[sheet.lesson.pk]), {f"{prefix}-status_{student.pk}": status}
    )
    assert response.status_code == 302, response.content.decode()


def record_by_admin(sheet: Sheet, actor: User, status: str) -> None:
    response = page_client(actor).post(
        reverse("admin:crm_attendance_add"),
        {"student": sheet.students[0].pk, "lesson": sheet.lesson.pk, "status": status, "hours": "2"},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors


def correct_by_service(row: Attendance, actor: User, status: str) -> None:
    attendance_correct(actor=actor, attendance=row, status=status, hours=Decimal("2"))


def correct_by_teacher_page(row: Attendance, actor: User, status: str) -> None:
    response = page_client(actor).post(
        reverse("attendance_correct", args=[row.pk]), {f"c{row.pk}-status": status, f"c{row.pk}-hours": "2"}
    )
    assert response.status_code == 302, response.content.decode()


def correct_by_admin(row: Attendance, actor: User, status: str) -> None:
    response = page_client(actor).post(
        reverse("admin:crm_attendance_changelist"),
        {"action": "correct", "_selected_action": [str(row.pk)], "apply": "1", "status": status, "hours": "2"},
    )
    assert response.status_code == 302, response.content.decode()


RECORD_DOORS: dict[str, tuple[str, Callable[[Sheet, User, str], None]]] = {
    "service": ("teacher", record_by_service),
    "teacher page": ("teacher", record_by_teacher_page),
    "admin": ("manager", record_by_admin),
}
CORRECT_DOORS: dict[str, tuple[str, Callable[[Attendance, User, str], None]]] = {
    "service": ("manager", correct_by_service),
    "teacher page": ("teacher", correct_by_teacher_page),
    "admin": ("manager", correct_by_admin),
}
CASES = [
    (PRESENT, Decimal("2"), LEAVE, Decimal("0")),
    (ABSENT, Decimal("2"), LEAVE, Decimal("0")),
    (LEAVE, Decimal("0"), ABSENT, Decimal("2")),
    (LEAVE, Decimal("0"), PRESENT, Decimal("2")),
]


@pytest.mark.parametrize("door", RECORD_DOORS)
@pytest.mark.parametrize(("status", "charged", "corrected", "charged_after"), CASES)
def test_every_door_charges_an_absence_and_a_leave_by_the_same_rule(
    door: str,
    status: str,
    charged: Decimal,
    corrected: str,
    charged_after: Decimal,
    sheet: Sheet,
    request: pytest.FixtureRequest,
) -> None:
    role, record = RECORD_DOORS[door]
    record(sheet, request.getfixturevalue(role), status)
    row = Attendance.objects.get()
    assert (row.status, row.hours, sheet.contract(0).hours_consumed) == (status, charged, charged)


@pytest.mark.parametrize("door", CORRECT_DOORS)
@pytest.mark.parametrize(("status", "charged", "corrected", "charged_after"), CASES)
def test_every_door_corrects_by_the_same_rule(
    door: str,
    status: str,
    charged: Decimal,
    corrected: str,
    charged_after: Decimal,
    sheet: Sheet,
    teacher: User,
    request: pytest.FixtureRequest,
) -> None:
    (row,) = recorded(sheet, teacher, status)
    role, correct = CORRECT_DOORS[door]
    correct(row, request.getfixturevalue(role), corrected)
    row.refresh_from_db()
    assert (row.status, row.hours, sheet.contract(0).hours_consumed) == (corrected, charged_after, charged_after)
    assert AuditEntry.objects.filter(action="attendance_correct").count() == 1


def test_the_students_timeline_says_the_hours_in_chinese(sheet: Sheet, teacher: User, front_desk: User) -> None:
    recorded(sheet, teacher, ABSENT)
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"  # what the menu's switch stores
    client.force_login(front_desk)
    html = client.get(reverse("student_detail", args=[sheet.students[0].pk])).content.decode()
    assert "缺勤 · 2 课时" in html
    assert "10 课时" in html  # the contract signed
    # As a word: the page's CSRF token is random letters and digits, which can hold "2h".
    assert not re.search(r"\b2h\b", html)
