"""How a file is read is one rule for every door: the staff page, the admin, the command
and the import task read the same worksheet and answer the same unreadable file alike."""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from crm.models import Campus, ImportJob, Student, User
from crm.services.imports import import_job_create
from crm.tasks import import_commit
from tests.crm.test_import_support import STUDENT_HEADER, csv_bytes, student_row

pytestmark = pytest.mark.django_db

NO_HEADER = "The first row must hold the column headers."
CSV_FORMAT, XLSX_FORMAT = "0", "1"  # the admin's import_formats


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def _row(name: str, phone: str) -> list[str]:
    cells = student_row(name, phone)
    return [cells.get(column, "") for column in STUDENT_HEADER]


def workbook(*sheets: tuple[str, Sequence[Sequence[Any]]], active: int = 0, hidden: Sequence[int] = ()) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.worksheets[0])
    for title, rows in sheets:
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    for index in hidden:
        book.worksheets[index].sheet_state = "hidden"
    book.active = active
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# One door: (client, actor, campus, file content, file name) -> what the person reads.
Door = Callable[[Client, User, Campus, bytes, str], str]


def page(client: Client, actor: User, campus: Campus, content: bytes, name: str) -> str:
    client.force_login(actor)
    response = client.post(reverse("import_list"), {"kind": "students", "file": SimpleUploadedFile(name, content)})
    assert response.status_code == 302
    job = ImportJob.objects.latest("pk")
    if job.total_rows and not job.report.get("errors_total") and not job.report.get("failure"):
        client.post(reverse("import_confirm", args=[job.pk]))
    return client.get(reverse("import_detail", args=[job.pk])).content.decode()


def admin(client: Client, actor: User, campus: Campus, content: bytes, name: str) -> str:
    client.force_login(actor)
    fmt = XLSX_FORMAT if name.endswith(".xlsx") else CSV_FORMAT
    data = {"resource": "0", "format": fmt, "campus": campus.pk, "import_file": SimpleUploadedFile(name, content)}
    preview = client.post(reverse("admin:crm_student_import"), data)
    assert preview.status_code == 200
    confirm = preview.context.get("confirm_form")
    if confirm is not None:
        response = client.post(reverse("admin:crm_student_process_import"), confirm.initial)
        assert response.status_code == 302
    return preview.content.decode()


def command(client: Client, actor: User, campus: Campus, content: bytes, name: str) -> str:
    out = io.StringIO()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(content)
        try:
            call_command("import_data", "students", str(path), "--user", actor.username, stdout=out)
        except CommandError as exc:
            return str(exc)
    return out.getvalue()


def task(client: Client, actor: User, campus: Campus, content: bytes, name: str) -> str:
    job = import_job_create(actor=actor, kind="students", campus=campus, content=content, file_name=name)
    import_commit(job.pk)  # the task's body, as a worker runs it
    job.refresh_from_db()
    return str(job.report)


DOORS: dict[str, Door] = {"page": page, "admin": admin, "command": command, "task": task}

HEADER_LINE = ",".join(STUDENT_HEADER)
NO_HEADER_FILES = {
    "csv, blank first line": ("\n" + HEADER_LINE + "\n张小明,,,三年级,,抖音,,,13800138000\n").encode(),
    "csv, blank first row of commas": ("," * 11 + "\n" + HEADER_LINE + "\n").encode(),
    "csv, only blank lines": b"\n\n\r\n\n",
    "csv, only blank lines, GBK": "\n \n\u3000\n".encode("gb18030"),
    "xlsx, blank first row": workbook(("学生", [[None] * 3, STUDENT_HEADER, _row("张小明", "13800138000")])),
    "xlsx, only blank rows": workbook(("学生", [[None, None], [None, ""], [""]])),
}


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("file", NO_HEADER_FILES)
def test_a_file_without_a_header_row_gets_one_answer_from_every_door(client, front_desk, door, file):
    content = NO_HEADER_FILES[file]
    name = "学生.xlsx" if file.startswith("xlsx") else "学生.csv"

    shown = DOORS[door](client, front_desk, front_desk.campus, content, name)

    assert NO_HEADER in shown
    assert not Student.objects.exists()


def test_the_answer_is_in_chinese(client, front_desk, settings):
    settings.LANGUAGE_CODE = "zh-hans"
    client.force_login(front_desk)
    content = NO_HEADER_FILES["xlsx, blank first row"]
    data = {"resource": "0", "format": XLSX_FORMAT, "campus": front_desk.campus_id}
    data["import_file"] = SimpleUploadedFile("学生.xlsx", content)
    response = client.post(reverse("admin:crm_student_import"), data, headers={"accept-language": "zh-hans"})
    assert "第一行必须是列标题" in response.content.decode()


FIRST = [STUDENT_HEADER, _row("第一页学生", "13800138000")]
SECOND = [STUDENT_HEADER, _row("第二页学生", "13900139000")]
WORKBOOKS = {
    # Saved while the second tab was open: the active sheet is not the first.
    "active sheet is the second": (workbook(("名单", FIRST), ("草稿", SECOND), active=1), "第一页学生"),
    # A hidden first sheet (a lookup list, say) is not what a person sees first.
    "first sheet hidden": (workbook(("隐藏", SECOND), ("名单", FIRST), active=1, hidden=[0]), "第一页学生"),
}


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("book", WORKBOOKS)
def test_every_door_reads_the_first_visible_worksheet(client, front_desk, door, book):
    content, expected = WORKBOOKS[book]

    DOORS[door](client, front_desk, front_desk.campus, content, "学生.xlsx")

    assert list(Student.objects.values_list("name", flat=True)) == [expected]


def _hide_every_sheet(content: bytes) -> bytes:
    """openpyxl will not save such a workbook; other programs do, so edit the saved one."""
    source = zipfile.ZipFile(io.BytesIO(content))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/workbook.xml":
                data = data.replace(b'state="visible"', b'state="hidden"')
                assert b'state="hidden"' in data
            target.writestr(item, data)
    return out.getvalue()


def test_a_workbook_with_no_visible_sheet_is_refused(client, front_desk):
    content = _hide_every_sheet(workbook(("甲", FIRST), ("乙", SECOND)))
    for door in DOORS.values():
        assert "The workbook has no visible worksheet." in door(
            client, front_desk, front_desk.campus, content, "学生.xlsx"
        )
    assert not Student.objects.exists()


def test_the_admin_numbers_rows_as_the_spreadsheet_shows(front_desk, client):
    content = csv_bytes(STUDENT_HEADER, [student_row("张小明", "13800138000"), {}, student_row("坏行", "12345")])
    client.force_login(front_desk)
    data = {"resource": "0", "format": CSV_FORMAT, "campus": front_desk.campus_id}
    data["import_file"] = SimpleUploadedFile("学生.csv", content)
    result = client.post(reverse("admin:crm_student_import"), data).context["result"]
    assert [(row.number, row.error_dict) for row in result.invalid_rows] == [
        (4, {"家长电话": ["“12345” is not a valid phone number."]})
    ]
