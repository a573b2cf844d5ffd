"""Export, then import the export: nothing changes, whatever spaces and lines people typed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crm.models import Consultation, Guardian, Student, StudentTag
from crm.resources import ConsultationResource, StudentResource
from crm.services import consultation_log, lead_capture
from tests.crm.test_import_support import run, student_row, students_file

pytestmark = pytest.mark.django_db

# What people type: full-width (U+3000) and non-breaking (U+00A0) spaces inside names and
# schools, line breaks in notes, a note that starts like a formula.
TYPED: dict[str, Any] = {
    "student_name": "王\u3000小明",
    "guardian_name": "王\u00a0妈妈",
    "relation": "妈妈",
    "guardian_email": "Wang.Mama@Example.COM",
    "grade": "三年级",
    "school": "北京\u3000第一\u00a0小学",
    "notes": "喜欢画画\n周末有空\u3000上午",
}


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def typed(front_desk, campus_a) -> Student:
    student = lead_capture(actor=front_desk, campus=campus_a, phone="13800138000", **TYPED).student
    lead_capture(
        actor=front_desk,
        campus=campus_a,
        phone="13900139000",
        student_name="李\u00a0雷",
        notes="- 先试听\n- 再报名",
    )
    consultation_log(
        actor=front_desk,
        student=student,
        channel="visit",
        content="家长关心\u3000周末班\n想了解编程",
        outcome="约试听\u00a0周六",
        consulted_at=timezone.now() - dt.timedelta(days=1),
    )
    return student


def snapshot() -> dict[str, Any]:
    return {
        "students": sorted(Student.objects.values_list("pk", "name", "grade", "school", "notes", "updated_at")),
        "guardians": sorted(Guardian.objects.values_list("pk", "name", "relation", "email", "updated_at")),
        "tags": sorted(StudentTag.objects.values_list("pk", flat=True)),
        "consultations": sorted(Consultation.objects.values_list("pk", "content", "outcome", "consultant_id")),
    }


def page_export(client: Client, kind: str, fmt: str) -> bytes:
    return client.get(reverse("import_export_download", args=[kind, fmt])).content


def admin_export(client: Client, kind: str, fmt: str) -> bytes:
    resource = {"students": StudentResource, "consultations": ConsultationResource}[kind]
    prefix = resource.__name__.lower()
    fields = {f"{prefix}_{name}": "on" for name in resource._meta.fields}
    model = {"students": "student", "consultations": "consultation"}[kind]
    data = {"resource": "0", "format": "1" if fmt == "xlsx" else "0", **fields}
    response = client.post(reverse(f"admin:crm_{model}_export"), data)
    assert response.status_code == 200
    return response.content


@pytest.mark.parametrize("export", [page_export, admin_export], ids=["page", "admin"])
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("kind", ["students", "consultations"])
def test_an_export_imports_back_changing_nothing(client, manager, typed, export, fmt, kind):
    client.force_login(manager)
    before = snapshot()
    content = export(client, kind, fmt)

    report = run(content, actor=manager, campus=manager.campus, kind=kind, name=f"export.{fmt}")

    assert report.committed, report.lines()
    assert report.counts == {"new": 0, "updated": 0, "unchanged": report.total_rows, "error": 0}, report.lines()
    assert snapshot() == before


def test_a_name_typed_with_a_plain_space_finds_the_child_stored_with_another(front_desk, typed):
    content = students_file([student_row("王 小明", "138 0013 8000", 年级="四年级")])

    report = run(content, actor=front_desk, campus=front_desk.campus)

    assert report.counts["new"] == 0 and report.counts["updated"] == 1, report.lines()
    assert list(Student.objects.filter(guardians__phone="+8613800138000").values_list("name", "grade")) == [
        ("王\u3000小明", "四年级")
    ]


def test_rows_of_one_file_naming_a_new_child_with_different_spaces_are_one_child(front_desk, campus_a):
    content = students_file([student_row("赵\u3000小红", "13700137000"), student_row("赵 小红", "13700137000")])

    report = run(content, actor=front_desk, campus=campus_a)

    assert report.committed
    assert list(Student.objects.values_list("name", flat=True)) == ["赵\u3000小红"]


@pytest.mark.parametrize("export", [page_export, admin_export], ids=["page", "admin"])
def test_control_characters_stored_before_do_not_break_an_xlsx_export(client, manager, campus_a, export):
    # Written past the services, as rows typed before they tidied text were.
    student = lead_capture(actor=manager, campus=campus_a, phone="13800138000", student_name="王小明").student
    Student.objects.filter(pk=student.pk).update(notes="第一行\x0b第二行\x07")
    client.force_login(manager)

    content = export(client, "students", "xlsx")

    report = run(content, actor=manager, campus=campus_a, dry_run=True, name="export.xlsx")
    assert report.ok, report.lines()
    assert [o.changes for o in report.outcomes] == [["备注: 第一行\x0b第二行\x07 → 第一行第二行"]]
