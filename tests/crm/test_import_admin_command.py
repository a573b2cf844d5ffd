"""The admin's import/export and `manage.py import_data`: the same service as the page."""

from __future__ import annotations

import io

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError
from django.db import connections
from django.urls import reverse

from crm.models import AuditEntry, Guardian, ImportJob, Student
from crm.resources import StudentResource
from tests import factories
from tests.crm.test_import_pages import HYPERLINK
from tests.crm.test_import_support import student_row, students_file

pytestmark = pytest.mark.django_db

CSV_FORMAT = "0"  # the admin's import_formats: [csv (UTF-8 or GBK), xlsx]


@pytest.fixture(autouse=True)
def _media_and_english(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.LANGUAGE_CODE = "en"


def admin_import(client, content: bytes, campus_id: int, name: str = "学生.csv"):
    return client.post(
        reverse("admin:crm_student_import"),
        {"resource": "0", "format": CSV_FORMAT, "campus": campus_id, "import_file": SimpleUploadedFile(name, content)},
    )


def test_admin_import_previews_then_confirms(client, admin_user, campus_b):
    client.force_login(admin_user)
    assert client.get(reverse("admin:crm_student_import")).status_code == 200
    content = students_file([student_row("张小明", "+86 138 0013 8000"), student_row("张小红", "13800138000")], "gbk")

    preview = admin_import(client, content, campus_b.pk)

    assert preview.status_code == 200
    result = preview.context["result"]
    assert result.totals["new"] == 2
    assert not result.has_validation_errors()
    confirm = preview.context["confirm_form"]
    assert not Student.objects.exists()

    response = client.post(reverse("admin:crm_student_process_import"), confirm.initial)

    assert response.status_code == 302
    assert sorted(Student.objects.filter(campus=campus_b).values_list("name", flat=True)) == ["张小明", "张小红"]
    assert Guardian.objects.count() == 1
    assert AuditEntry.objects.filter(action="import_students", actor=admin_user).count() == 1


def test_admin_preview_shows_invalid_rows_and_no_confirm(client, manager, campus_a):
    client.force_login(manager)
    content = students_file([student_row("张小明", "13800138000"), student_row("坏行", "12345")])
    preview = admin_import(client, content, campus_a.pk)
    result = preview.context["result"]
    assert [row.number for row in result.invalid_rows] == [3]
    assert result.invalid_rows[0].error_dict == {"家长电话": ["“12345” is not a valid phone number."]}
    assert "confirm_form" not in preview.context
    assert not Student.objects.exists()


def test_admin_staff_import_only_into_their_campus(client, manager, campus_b):
    client.force_login(manager)
    preview = admin_import(client, students_file([student_row("张小明", "13800138000")]), campus_b.pk)
    assert "campus" in preview.context["form"].errors
    assert not Student.objects.exists()


def test_admin_large_import_runs_as_a_job(client, manager, campus_a, settings, django_capture_on_commit_callbacks):
    settings.IMPORT_ASYNC_ROW_THRESHOLD = 2
    client.force_login(manager)
    rows = [student_row(f"学生{i}", f"1390013{9000 + i}") for i in range(4)]
    preview = admin_import(client, students_file(rows), campus_a.pk)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("admin:crm_student_process_import"), preview.context["confirm_form"].initial)
    job = ImportJob.objects.get()
    assert response["Location"] == reverse("import_detail", args=[job.pk])
    assert job.status == "queued"
    assert len(callbacks) == 1


def test_admin_export_escapes_formulae(client, admin_user, campus_a):
    factories.StudentFactory(name=HYPERLINK, campus=campus_a)
    client.force_login(admin_user)
    fields = {f"studentresource_{name}": "on" for name in StudentResource._meta.fields}
    response = client.post(reverse("admin:crm_student_export"), {"resource": "0", "format": "1", **fields})
    assert response.status_code == 200, response.content[:500]
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    assert sheet is not None
    assert sheet.cell(row=2, column=1).value == "'" + HYPERLINK
    assert sheet.cell(row=2, column=1).data_type == "s"


def test_command_prints_the_report_and_writes(tmp_path, capsys, front_desk):
    path = tmp_path / "students.csv"
    path.write_bytes(students_file([student_row("张小明", "13800138000"), student_row("张小红", "138-0013-8000")]))

    call_command("import_data", "students", str(path), "--user", "alice")

    out = capsys.readouterr().out
    assert "new 2, updated 0, unchanged 0, error 0" in out
    assert Student.objects.filter(campus=front_desk.campus).count() == 2


def test_command_dry_run_writes_nothing(tmp_path, capsys, admin_user, campus_a):
    path = tmp_path / "students.csv"
    path.write_bytes(students_file([student_row("张小明", "13800138000")]))

    call_command("import_data", "students", str(path), "--dry-run", "--campus", campus_a.code, "--user", "root")

    assert "Dry run: nothing was written." in capsys.readouterr().out
    assert not Student.objects.exists()
    assert not AuditEntry.objects.exists()


def test_command_exits_non_zero_with_the_report(tmp_path, capsys, front_desk, monkeypatch):
    rows = [student_row(f"学生{i}", f"1380013{8000 + i}") for i in range(5)] + [student_row("坏行", "12345")]
    path = tmp_path / "students.csv"
    path.write_bytes(students_file(rows))

    # manage.py closes the connections when it exits; this test's transaction needs them.
    monkeypatch.setattr(connections, "close_all", lambda: None)
    with pytest.raises(SystemExit) as exited:
        execute_from_command_line(["manage.py", "import_data", "students", str(path), "--user", "alice"])

    assert exited.value.code == 1
    captured = capsys.readouterr()
    assert "第 7 行, 家长电话: “12345” is not a valid phone number." in captured.out
    assert "nothing was written" in captured.err
    assert not Student.objects.exists()


def test_command_refuses_a_teacher_and_unknown_campus(tmp_path, teacher, campus_a):
    path = tmp_path / "students.csv"
    path.write_bytes(students_file([student_row("张小明", "13800138000")]))
    with pytest.raises(CommandError, match="tom"):
        call_command("import_data", "students", str(path), "--user", "tom")
    with pytest.raises(CommandError, match="No campus"):
        call_command("import_data", "students", str(path), "--user", "tom", "--campus", "nowhere")
