"""When a stage began, and a student's first stage row.

A stage starts at the moment the facts put the student there, not when the engine noticed;
the board, the card and the student page count their days from it. Every door that creates
a student opens the same first row, through one function.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crm import services
from crm.models import Attendance, Campus, Contract, Course, Student, StudentStage, User
from lifecycle.models import StageChange
from lifecycle.selectors import board_card_for
from lifecycle.services.activity import activity_refresh
from lifecycle.services.recompute import recompute_after_event, recompute_stages
from tests import factories
from tests.crm.test_import_support import CONTRACT_HEADER, csv_bytes, run, student_row, students_file

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)


def dormant_for_a_while(campus: Campus, course: Course, teacher: User) -> Student:
    """Signed 90 days ago, attended weekly, last lesson 40 days ago."""
    student = factories.StudentFactory(campus=campus)
    Student.objects.filter(pk=student.pk).update(created_at=NOW - dt.timedelta(days=100))
    contract = factories.ContractFactory(student=student, course=course, signed_at=NOW - dt.timedelta(days=90))
    for days_ago in range(89, 39, -7):
        factories.AttendanceFactory(
            student=student, contract=contract, teacher=teacher, lesson_at=NOW - dt.timedelta(days=days_ago)
        )
    assert Attendance.objects.filter(student=student).latest("lesson_at").lesson_at == NOW - dt.timedelta(days=40)
    return student


def test_a_student_whose_last_lesson_was_40_days_ago_reads_dormant_since_19_days(
    campus_a: Campus, course_a: Course, teacher: User, front_desk: User, client: Client
) -> None:
    student = dormant_for_a_while(campus_a, course_a, teacher)
    with time_machine.travel(NOW, tick=False):
        recompute_after_event([student.pk])  # noticed today, weeks after it happened
        row = StudentStage.objects.get(pk=student.pk)
        assert (row.stage, row.changed_at) == ("dormant", NOW - dt.timedelta(days=19))
        change = StageChange.objects.get(student=student)
        assert (change.to_stage, change.changed_at) == ("dormant", NOW - dt.timedelta(days=19))

        card = board_card_for(Student.objects.select_related("pipeline").get(pk=student.pk))
        assert card.days_in_stage == 19
        client.force_login(front_desk)
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"  # what the menu's switch stores
        board = client.get(reverse("board"))
        page = client.get(reverse("student_detail", args=[student.pk]))
        history = client.get(reverse("admin:lifecycle_stagechange_changelist"))
        cards = [c for col in board.context["columns"] for c in col.cards if c.student.pk == student.pk]
        assert [(c.student.stage, c.days_in_stage) for c in cards] == [("dormant", 19)]
        assert re.search(rf'data-student="{student.pk}" data-stage="dormant">.*?19 天', board.content.decode(), re.S)
        assert 'data-days-in-stage="19"' in page.content.decode()
        assert "19 天" in page.content.decode()
        assert history.status_code == 200 and "19 天" in history.content.decode()

    # A rerun on a later night with the stage unchanged keeps the start.
    with time_machine.travel(NOW + dt.timedelta(days=5), tick=False):
        recompute_stages(source="nightly", full=True)
        assert StudentStage.objects.get(pk=student.pk).changed_at == NOW - dt.timedelta(days=19)
        assert board_card_for(Student.objects.select_related("pipeline").get(pk=student.pk)).days_in_stage == 24


def test_a_signing_starts_enrolled_at_the_signing_and_a_lead_at_its_creation(
    campus_a: Campus, course_a: Course, front_desk: User
) -> None:
    with time_machine.travel(NOW - dt.timedelta(days=6), tick=False):
        captured = services.lead_capture(
            actor=front_desk, campus=campus_a, phone="13800138000", student_name="王小明", channel="douyin"
        )
    student = captured.student
    with time_machine.travel(NOW, tick=False):
        recompute_after_event([student.pk])
        assert StudentStage.objects.get(pk=student.pk).changed_at == NOW - dt.timedelta(days=6)
        services.contract_sign(
            actor=front_desk,
            student=student,
            course=course_a,
            hours_bought=Decimal(24),
            amount=Decimal(4800),
            paid_amount=Decimal(4800),
            signed_at=NOW - dt.timedelta(days=2),
        )
        recompute_after_event([student.pk])
        row = StudentStage.objects.get(pk=student.pk)
        assert (row.stage, row.changed_at) == ("enrolled", NOW - dt.timedelta(days=2))


# --- the first stage row --------------------------------------------------------------------


def test_every_door_that_creates_a_student_opens_the_same_first_stage_row(campus_a: Campus, front_desk: User) -> None:
    """Capture, import, and a student written outside the services (found by the engine's run or
    by a refresh of their aggregates): one row each, a lead with no start until the engine
    decides, then the start their facts say (their creation)."""
    captured = services.lead_capture(
        actor=front_desk, campus=campus_a, phone="13800138000", student_name="王小明", channel="douyin"
    )
    report = run(students_file([student_row("李小红", "13900139000")]), actor=front_desk, campus=campus_a)
    assert report.committed, report.lines()
    imported = Student.objects.get(name="李小红")
    by_hand = [factories.StudentFactory.build(campus=campus_a, name=f"手工{i}") for i in range(2)]
    for s in by_hand:
        Student.objects.bulk_create([s])
    rows = {row.pk: row for row in StudentStage.objects.filter(pk__in=[captured.student.pk, imported.pk])}
    assert {(r.stage, r.changed_at, r.campus_id) for r in rows.values()} == {("lead", None, campus_a.pk)}
    assert not StudentStage.objects.filter(pk__in=[s.pk for s in by_hand]).exists()

    # Read before it exists, a row is the one it will be.
    first = Student.objects.get(pk=by_hand[0].pk).stage_row()
    assert (first.stage, first.changed_at, first.campus_id, first._state.adding) == ("lead", None, campus_a.pk, True)

    created = timezone.now() - dt.timedelta(days=3)
    Student.objects.filter(pk__in=[captured.student.pk, imported.pk, *(s.pk for s in by_hand)]).update(
        created_at=created
    )
    activity_refresh([by_hand[0].pk])  # an event about a student written outside the services
    assert StudentStage.objects.filter(pk=by_hand[0].pk, stage="lead", changed_at=None).exists()
    recompute_stages(source="nightly")  # finds the second one, opens its row, decides all four
    rows = {row.pk: row for row in StudentStage.objects.all()}
    assert len(rows) == 4
    assert {(r.stage, r.changed_at) for r in rows.values()} == {("lead", created)}
    assert not StageChange.objects.exists()  # a lead that stays a lead is no change


def test_only_the_opener_writes_a_first_stage_row() -> None:
    """No other code builds a StudentStage row or inserts one in SQL (bench data aside)."""
    root = Path(__file__).resolve().parents[2]
    allowed = {root / "crm" / "models.py", root / "crm" / "services" / "leads.py"}
    writers = re.compile(r"StudentStage\(|StudentStage\.objects\.(bulk_)?create|INSERT INTO crm_studentstage", re.I)
    found = [
        str(path.relative_to(root))
        for app in ("crm", "lifecycle", "personas", "campaigns", "config")
        for path in (root / app).rglob("*.py")
        if "migrations" not in path.parts and path not in allowed and writers.search(path.read_text())
    ]
    assert found == []


def test_an_imported_history_starts_the_stage_when_the_history_says(
    campus_a: Campus, course_a: Course, front_desk: User, django_capture_on_commit_callbacks
) -> None:
    """A school's students and contracts imported today: a contract signed 40 days ago, never
    attended, is dormant since the signing + 21 days, not since the import."""
    with time_machine.travel(NOW, tick=False), django_capture_on_commit_callbacks(execute=True):
        report = run(students_file([student_row("张小明", "13800138000")]), actor=front_desk, campus=campus_a)
        assert report.committed, report.lines()
        contracts = csv_bytes(
            CONTRACT_HEADER,
            [
                {
                    "家长电话": "13800138000",
                    "学生姓名": "张小明",
                    "课程": course_a.name,
                    "课时": "40",
                    "金额": "8000",
                    "实收": "8000",
                    "签约时间": "2026-10-23",
                    "有效期至": "2027-10-22",
                    "状态": "执行中",
                }
            ],
        )
        report = run(contracts, actor=front_desk, campus=campus_a, kind="contracts")
        assert report.committed, report.lines()
    student = Student.objects.select_related("pipeline").get(name="张小明")
    signed_at = Contract.objects.get(student=student).signed_at
    assert (student.stage, student.stage_changed_at) == ("dormant", signed_at + dt.timedelta(days=21))
    assert student.days_in_stage(NOW) == 19
    assert list(StageChange.objects.filter(student=student).values_list("to_stage", "changed_at")) == [
        ("dormant", signed_at + dt.timedelta(days=21))
    ]
