"""Importing historical consultations and contracts of known students."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone, translation

from crm.models import Consultation, Contract, ContractStatus, Student
from tests import factories
from tests.crm.test_import_support import CONSULTATION_HEADER, CONTRACT_HEADER, csv_bytes, run

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):  # messages are compared word for word
        yield


@pytest.fixture
def ming(campus_a):
    return factories.StudentFactory(
        name="张小明", campus=campus_a, guardians=[factories.GuardianFactory(phone="+8613800138000")]
    )


def local(year: int, month: int, day: int, hour: int, minute: int) -> dt.datetime:
    return timezone.make_aware(dt.datetime(year, month, day, hour, minute))


def consultation(**cells: str) -> dict[str, str]:
    row = {
        "家长电话": "13800138000",
        "学生姓名": "张小明",
        "咨询时间": "2024-03-05 14:30",
        "方式": "电话",
        "内容": "了解编程课",
    }
    row.update(cells)
    return row


def test_consultations_preview_commit_and_reimport(front_desk, campus_a, ming):
    factories.ConsultationFactory(
        student=ming, consultant=front_desk, consulted_at=local(2024, 1, 2, 10, 0), content="旧"
    )
    rows = [
        consultation(意向="高", 结果="约试听", 下次跟进="2024-03-08 10:00"),
        consultation(咨询时间="2024/01/02 10:00", 内容="旧的记录，补充了内容"),  # updates the existing one
        consultation(咨询时间="2024-02-01 09:00", 方式="到访", 意向="中"),
    ]
    content = csv_bytes(CONSULTATION_HEADER, rows)

    preview = run(content, actor=front_desk, campus=campus_a, kind="consultations", dry_run=True)
    assert [o.status for o in preview.outcomes] == ["new", "updated", "new"]
    assert preview.outcomes[1].changes == ["内容: 旧 → 旧的记录，补充了内容"]
    assert Consultation.objects.count() == 1

    report = run(content, actor=front_desk, campus=campus_a, kind="consultations")
    assert report.committed, report.lines()
    assert Consultation.objects.count() == 3
    latest = Consultation.objects.get(consulted_at=local(2024, 3, 5, 14, 30))
    assert (latest.channel, latest.intent, latest.outcome, latest.consultant) == ("phone", "high", "约试听", front_desk)
    ming.refresh_from_db()
    assert ming.next_follow_up_at == local(2024, 3, 8, 10, 0)  # the newest consultation's follow-up

    again = run(content, actor=front_desk, campus=campus_a, kind="consultations")
    assert again.counts == {"new": 0, "updated": 0, "unchanged": 3, "error": 0}
    assert Consultation.objects.count() == 3


def test_consultation_of_an_unknown_student_is_an_error(front_desk, campus_a, ming):
    rows = [
        consultation(学生姓名="张小红"),
        consultation(家长电话="13900139000"),
        consultation(咨询时间="2999-01-01 10:00"),
        consultation(内容=""),
        consultation(下次跟进="2024-03-01 10:00"),
    ]
    report = run(csv_bytes(CONSULTATION_HEADER, rows), actor=front_desk, campus=campus_a, kind="consultations")
    assert [(e.row, e.column) for e in sorted(report.errors, key=lambda e: e.row)] == [
        (2, "学生姓名"),
        (3, "家长电话"),
        (4, "咨询时间"),
        (5, "内容"),
        (6, "下次跟进"),
    ]
    assert not Consultation.objects.exists()


def contract(**cells: str) -> dict[str, str]:
    row = {
        "家长电话": "138-0013-8000",
        "学生姓名": "张小明",
        "课程": "少儿编程 L1",
        "课时": "40",
        "金额": "¥8,000",
        "实收": "6000",
        "签约时间": "2024-03-05",
        "有效期至": "2025-03-04",
        "状态": "执行中",
    }
    row.update(cells)
    return row


def test_contracts_preview_commit_and_reimport(front_desk, campus_a, ming, course_a):
    content = csv_bytes(CONTRACT_HEADER, [contract(), contract(签约时间="2023-01-10", 状态="已完成", 实收="8000")])
    report = run(content, actor=front_desk, campus=campus_a, kind="contracts")
    assert report.committed, report.lines()
    first = Contract.objects.get(signed_at=local(2024, 3, 5, 0, 0))
    assert (first.hours_bought, first.amount, first.paid_amount) == (Decimal("40"), Decimal("8000"), Decimal("6000"))
    assert (first.valid_until, first.status, first.course, first.student) == (
        dt.date(2025, 3, 4),
        ContractStatus.ACTIVE,
        course_a,
        ming,
    )
    assert Contract.objects.get(signed_at=local(2023, 1, 10, 0, 0)).status == ContractStatus.COMPLETED

    assert run(content, actor=front_desk, campus=campus_a, kind="contracts").counts["unchanged"] == 2

    paid_more = csv_bytes(CONTRACT_HEADER, [contract(实收="8000")])
    report = run(paid_more, actor=front_desk, campus=campus_a, kind="contracts")
    assert report.outcomes[0].changes == ["实收: 6000.00 → 8000.00"]
    first.refresh_from_db()
    assert first.paid_amount == Decimal("8000")


def test_contract_rules_are_checked_per_cell(front_desk, campus_a, ming, course_a):
    rows = [
        contract(实收="9000"),
        contract(课程="钢琴"),
        contract(课时="0"),
        contract(有效期至="2024-01-01"),
        contract(金额="八千"),
    ]
    report = run(csv_bytes(CONTRACT_HEADER, rows), actor=front_desk, campus=campus_a, kind="contracts")
    assert [str(e) for e in sorted(report.errors, key=lambda e: e.row)] == [
        "第 2 行, 实收: The paid amount cannot exceed the contract amount.",
        "第 3 行, 课程: 望京校区 has no course “钢琴”.",
        "第 4 行, 课时: Hours bought must be more than zero.",
        "第 5 行, 有效期至: The contract must be valid at least until the day it is signed.",
        "第 6 行, 金额: “八千” is not a number.",
    ]
    assert not Contract.objects.exists()


def test_an_existing_contracts_status_is_not_changed_by_import(front_desk, campus_a, ming, course_a):
    factories.ContractFactory(
        student=ming,
        course=course_a,
        signed_at=local(2024, 3, 5, 0, 0),
        amount=Decimal("8000"),
        paid_amount=Decimal("6000"),
    )
    report = run(
        csv_bytes(CONTRACT_HEADER, [contract(状态="已退费")]), actor=front_desk, campus=campus_a, kind="contracts"
    )
    assert [e.column for e in report.errors] == ["状态"]
    assert Contract.objects.get().status == ContractStatus.ACTIVE


def test_history_for_another_campus_student_is_refused(manager, campus_a, campus_b):
    factories.StudentFactory(
        name="张小明", campus=campus_b, guardians=[factories.GuardianFactory(phone="+8613800138000")]
    )
    report = run(csv_bytes(CONSULTATION_HEADER, [consultation()]), actor=manager, campus=campus_a, kind="consultations")
    assert [e.column for e in report.errors] == ["学生姓名"]
    assert not Consultation.objects.exists()
    assert Student.objects.count() == 1
