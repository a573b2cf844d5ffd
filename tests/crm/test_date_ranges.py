"""Sensible dates (defect 2.7): a birth date in 1800 or 2099, a follow-up in 9999, a trial two
years ahead or a contract signed in 1990 are refused with the same message by every door:
the service, the staff page, the admin and an import row (page, admin and command share
`import_rows`). The clock is frozen so each window is the same on any day."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from crm.models import Campus, Consultation, Contract, Course, Student, TrialLesson, User
from crm.services import (
    attendance_record,
    consultation_log,
    contract_sign,
    date_ranges,
    lead_capture,
    student_update,
    trial_book,
)
from tests import factories
from tests.crm.test_import_support import (
    CONSULTATION_HEADER,
    CONTRACT_HEADER,
    csv_bytes,
    run,
    student_row,
    students_file,
)

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 6, 15, 2, 0, tzinfo=dt.UTC)  # 10:00 in Beijing
TODAY = dt.date(2026, 6, 15)


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def errors_of(call: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as exc:
        call()
    return exc.value.message_dict


# --- the windows themselves ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "ok"),
    [
        (dt.date(1800, 1, 1), False),
        (dt.date(1926, 6, 14), False),
        (dt.date(1926, 6, 15), True),
        (dt.date(2019, 9, 1), True),
        (TODAY, True),
        (TODAY + dt.timedelta(days=1), False),
        (dt.date(2099, 1, 1), False),
    ],
)
def test_birth_date_window(day: dt.date, ok: bool) -> None:
    assert (date_ranges.birth_date_problem(day) is None) == ok


def test_follow_up_window() -> None:
    assert date_ranges.follow_up_problem(NOW + dt.timedelta(days=365), consulted_at=NOW) is None
    assert date_ranges.follow_up_problem(NOW - dt.timedelta(hours=1), consulted_at=NOW)
    assert date_ranges.follow_up_problem(dt.datetime(9999, 12, 31, tzinfo=dt.UTC), consulted_at=NOW)
    assert date_ranges.follow_up_problem(NOW + dt.timedelta(days=367), consulted_at=NOW)


def test_the_windows_hold_from_a_leap_day() -> None:
    with time_machine.travel(dt.datetime(2000, 2, 29, 4, tzinfo=dt.UTC), tick=False):
        assert date_ranges.birth_date_problem(dt.date(1900, 2, 28)) is None  # 1900 had no 29 February
        assert date_ranges.birth_date_problem(dt.date(1900, 2, 27))
    leap_day = dt.datetime(2028, 2, 29, 4, tzinfo=dt.UTC)
    assert date_ranges.valid_until_problem(dt.date(2038, 2, 28), signed_at=leap_day) is None
    assert date_ranges.valid_until_problem(dt.date(2038, 3, 1), signed_at=leap_day)


def test_the_messages_are_chinese_in_the_chinese_ui() -> None:
    with translation.override("zh-hans"):
        assert date_ranges.birth_date_problem(dt.date(2099, 1, 1)) == "出生日期不能晚于今天。"
        assert "一年" in (date_ranges.follow_up_problem(NOW + dt.timedelta(days=800), consulted_at=NOW) or "")


# --- a birth date, from every door -----------------------------------------------------------

BAD_BIRTH_DATES = ["1800-01-01", "2099-01-01"]


def birth_message(text: str) -> str:
    problem = date_ranges.birth_date_problem(dt.date.fromisoformat(text))
    assert problem
    return problem


@pytest.mark.parametrize("birth", BAD_BIRTH_DATES)
def test_a_bad_birth_date_is_refused_by_the_service(birth: str, front_desk: User, campus_a: Campus) -> None:
    day = dt.date.fromisoformat(birth)
    errors = errors_of(
        lambda: lead_capture(
            actor=front_desk, campus=campus_a, phone="13800138000", student_name="王小明", birth_date=day
        )
    )
    assert errors == {"birth_date": [birth_message(birth)]}
    student = factories.StudentFactory(campus=campus_a, birth_date=dt.date(2018, 5, 1))
    errors = errors_of(lambda: student_update(actor=front_desk, student=student, birth_date=day))
    assert errors == {"birth_date": [birth_message(birth)]}
    student.refresh_from_db()
    assert student.birth_date == dt.date(2018, 5, 1)
    assert not Student.objects.filter(name="王小明").exists()


@pytest.mark.parametrize("birth", BAD_BIRTH_DATES)
def test_a_bad_birth_date_is_refused_by_the_lead_page(birth: str, client: Client, front_desk: User) -> None:
    client.force_login(front_desk)
    response = client.post(
        reverse("lead_capture"),
        {"phone": "13800138000", "student_name": "王小明", "channel": "douyin", "birth_date": birth},
    )
    assert response.status_code == 200
    assert birth_message(birth) in response.content.decode()
    assert not Student.objects.exists()


@pytest.mark.parametrize("birth", BAD_BIRTH_DATES)
def test_a_bad_birth_date_is_refused_by_the_admin(birth: str, front_desk: User, campus_a: Campus) -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(front_desk)
    data = {"phone": "13800138000", "name": "王小明", "campus": campus_a.pk, "channel": "douyin", "birth_date": birth}
    response = client.post(reverse("admin:crm_student_add"), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["birth_date"] == [birth_message(birth)]
    assert not Student.objects.exists()


@pytest.mark.parametrize("birth", BAD_BIRTH_DATES)
def test_a_bad_birth_date_is_refused_by_an_import_row(birth: str, front_desk: User, campus_a: Campus) -> None:
    content = students_file(
        [
            student_row("王小明", "13800138000", 出生日期="2018-05-01"),
            student_row("王小红", "13800138000", 出生日期=birth),
        ]
    )
    report = run(content, actor=front_desk, campus=campus_a)
    assert [str(e) for e in report.errors] == [f"第 3 行, 出生日期: {birth_message(birth)}"]
    assert not report.committed and not Student.objects.exists()


def test_a_bad_birth_date_is_refused_by_the_command(tmp_path: Any, capsys: Any, front_desk: User) -> None:
    path = tmp_path / "students.csv"
    path.write_bytes(students_file([student_row("王小明", "13800138000", 出生日期="1800-01-01")]))
    with pytest.raises(CommandError, match="nothing was written"):
        call_command("import_data", "students", str(path), "--user", front_desk.username)
    assert f"第 2 行, 出生日期: {birth_message('1800-01-01')}" in capsys.readouterr().out
    assert not Student.objects.exists()


# --- a follow-up in 9999, from every door ----------------------------------------------------

FAR_FOLLOW_UP = dt.datetime(9999, 12, 31, 10, 0, tzinfo=timezone.get_fixed_timezone(480))


def follow_up_message() -> str:
    problem = date_ranges.follow_up_problem(FAR_FOLLOW_UP, consulted_at=NOW)
    assert problem
    return problem


def test_a_far_follow_up_is_refused_by_the_service(front_desk: User, campus_a: Campus) -> None:
    student = factories.StudentFactory(campus=campus_a)
    errors = errors_of(
        lambda: consultation_log(
            actor=front_desk,
            student=student,
            channel="phone",
            content="问价格",
            intent="high",
            next_follow_up_at=FAR_FOLLOW_UP,
        )
    )
    assert errors == {"next_follow_up_at": [follow_up_message()]}
    # A month ahead is fine.
    consultation_log(
        actor=front_desk,
        student=student,
        channel="phone",
        content="问价格",
        intent="high",
        next_follow_up_at=NOW + dt.timedelta(days=30),
    )
    student.refresh_from_db()
    assert student.next_follow_up_at == NOW + dt.timedelta(days=30)


def test_a_far_follow_up_is_refused_by_the_student_page(client: Client, front_desk: User, campus_a: Campus) -> None:
    student = factories.StudentFactory(campus=campus_a)
    client.force_login(front_desk)
    response = client.post(
        reverse("student_action", args=[student.pk, "consultation"]),
        {"c-channel": "phone", "c-content": "问价格", "c-intent": "high", "c-next_follow_up_at": "9999-12-31T10:00"},
    )
    assert response.status_code == 400
    assert follow_up_message() in response.content.decode()
    assert not Consultation.objects.exists()


def test_a_far_follow_up_is_refused_by_the_admin(front_desk: User, campus_a: Campus) -> None:
    student = factories.StudentFactory(campus=campus_a)
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(front_desk)
    data = {
        "student": student.pk,
        "channel": "phone",
        "content": "问价格",
        "intent": "high",
        "next_follow_up_at_0": "9999-12-31",
        "next_follow_up_at_1": "10:00:00",
    }
    response = client.post(reverse("admin:crm_consultation_add"), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["next_follow_up_at"] == [follow_up_message()]
    assert not Consultation.objects.exists()


def test_a_far_follow_up_is_refused_by_an_import_row(front_desk: User, campus_a: Campus) -> None:
    guardian = factories.GuardianFactory(phone="+8613800138000")
    factories.StudentFactory(name="王小明", campus=campus_a, guardians=[guardian])
    row = {"家长电话": "13800138000", "学生姓名": "王小明", "咨询时间": "2026-06-15 09:00", "内容": "问价格"}
    content = csv_bytes(CONSULTATION_HEADER, [{**row, "下次跟进": "9999-12-31 10:00"}])
    report = run(content, actor=front_desk, campus=campus_a, kind="consultations")
    consulted = timezone.make_aware(dt.datetime(2026, 6, 15, 9, 0))
    problem = date_ranges.follow_up_problem(FAR_FOLLOW_UP, consulted_at=consulted)
    assert [str(e) for e in report.errors] == [f"第 2 行, 下次跟进: {problem}"]
    assert not Consultation.objects.exists()


# --- trials and contracts: the service and the import share the windows ---------------------


def test_a_trial_two_years_ahead_is_refused(
    front_desk: User, teacher: User, campus_a: Campus, course_a: Course
) -> None:
    student = factories.StudentFactory(campus=campus_a)
    when = NOW + dt.timedelta(days=730)
    errors = errors_of(
        lambda: trial_book(actor=front_desk, student=student, course=course_a, teacher=teacher, scheduled_at=when)
    )
    assert errors == {"scheduled_at": [date_ranges.trial_time_problem(when)]}
    assert not TrialLesson.objects.exists()


def test_a_contract_signed_in_1990_or_valid_until_2099_is_refused(
    front_desk: User, campus_a: Campus, course_a: Course
) -> None:
    guardian = factories.GuardianFactory(phone="+8613800138000")
    student = factories.StudentFactory(name="王小明", campus=campus_a, guardians=[guardian])
    signed_1990 = timezone.make_aware(dt.datetime(1990, 3, 1, 10, 0))
    sign: dict[str, Any] = {
        "actor": front_desk,
        "student": student,
        "course": course_a,
        "hours_bought": Decimal("10"),
        "amount": Decimal("1000"),
        "paid_amount": Decimal("1000"),
    }
    assert errors_of(lambda: contract_sign(**sign, signed_at=signed_1990)) == {
        "signed_at": [date_ranges.signed_at_problem(signed_1990)]
    }
    far = dt.date(2099, 1, 1)
    assert errors_of(lambda: contract_sign(**sign, valid_until=far)) == {
        "valid_until": [date_ranges.valid_until_problem(far, signed_at=NOW)]
    }

    row = {"家长电话": "13800138000", "学生姓名": "王小明", "课程": course_a.name, "课时": "10", "金额": "1000"}
    content = csv_bytes(
        CONTRACT_HEADER,
        [
            {**row, "签约时间": "1990-03-01 10:00"},
            {**row, "签约时间": "2026-06-01 10:00", "有效期至": "2099-01-01"},
        ],
    )
    report = run(content, actor=front_desk, campus=campus_a, kind="contracts")
    signed_june = timezone.make_aware(dt.datetime(2026, 6, 1, 10, 0))
    assert [str(e) for e in report.errors] == [
        f"第 2 行, 签约时间: {date_ranges.signed_at_problem(signed_1990)}",
        f"第 3 行, 有效期至: {date_ranges.valid_until_problem(far, signed_at=signed_june)}",
    ]
    assert not Contract.objects.exists()


def test_attendance_for_a_lesson_in_9999_is_refused_by_the_service_and_the_admin(
    manager: User, campus_a: Campus, course_a: Course
) -> None:
    student = factories.StudentFactory(campus=campus_a)
    contract = factories.ContractFactory(student=student, course=course_a, hours_bought=Decimal("10"))
    far = FAR_FOLLOW_UP
    message = date_ranges.lesson_at_problem(far)
    assert message
    errors = errors_of(
        lambda: attendance_record(actor=manager, student=student, contract=contract, hours=Decimal("1"), lesson_at=far)
    )
    assert errors == {"lesson_at": [message]}

    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(manager)
    data = {
        "student": student.pk,
        "contract": contract.pk,
        "status": "present",
        "hours": "1",
        "lesson_at_0": "9999-12-31",
        "lesson_at_1": "10:00:00",
    }
    response = client.post(reverse("admin:crm_attendance_add"), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["lesson_at"] == [message]
    contract.refresh_from_db()
    assert contract.hours_consumed == 0 and not contract.attendances.exists()


# --- the staff API is one more door (crm/api/) ------------------------------------------------


def api_messages(response: Any, field: str) -> list[str]:
    assert response.status_code == 400, response.content
    return [problem["message"] for problem in response.json()["fields"][field]]


def test_the_api_refuses_the_same_dates_in_the_same_words(
    client: Client, front_desk: User, teacher: User, campus_a: Campus, course_a: Course
) -> None:
    student = factories.StudentFactory(campus=campus_a)
    client.force_login(front_desk)

    def post(name: str, body: dict[str, Any]) -> Any:
        return client.post(reverse(name), {"student": student.pk, **body}, content_type="application/json")

    consultation = {"channel": "phone", "content": "问价格", "next_follow_up_at": FAR_FOLLOW_UP.isoformat()}
    assert api_messages(post("api_consultation_list", consultation), "next_follow_up_at") == [follow_up_message()]
    when = NOW + dt.timedelta(days=730)
    trial = {"course": course_a.pk, "teacher": teacher.pk, "scheduled_at": when.isoformat()}
    assert api_messages(post("api_trial_list", trial), "scheduled_at") == [date_ranges.trial_time_problem(when)]
    signed_1990 = timezone.make_aware(dt.datetime(1990, 3, 1, 10, 0))
    contract = {"course": course_a.pk, "hours_bought": "10", "amount": "1000", "paid_amount": "1000"}
    assert api_messages(post("api_contract_list", {**contract, "signed_at": signed_1990.isoformat()}), "signed_at") == [
        date_ranges.signed_at_problem(signed_1990)
    ]
    far = dt.date(2099, 1, 1)
    assert api_messages(post("api_contract_list", {**contract, "valid_until": far.isoformat()}), "valid_until") == [
        date_ranges.valid_until_problem(far, signed_at=NOW)
    ]
    assert not (Consultation.objects.exists() or TrialLesson.objects.exists() or Contract.objects.exists())
