"""Builders shared by the import tests (no tests here)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import openpyxl

from crm.models import Campus, User
from crm.services.imports import ImportReport, import_rows, read_table

STUDENT_HEADER = [
    "学生姓名",
    "性别",
    "出生日期",
    "年级",
    "学校",
    "来源渠道",
    "家长姓名",
    "关系",
    "家长电话",
    "标签",
    "备注",
    "负责顾问",
]
CONSULTATION_HEADER = ["家长电话", "学生姓名", "咨询时间", "方式", "内容", "意向", "结果", "下次跟进"]
CONTRACT_HEADER = ["家长电话", "学生姓名", "课程", "课时", "金额", "实收", "签约时间", "有效期至", "状态"]


def student_row(name: str, phone: str, **cells: str) -> dict[str, str]:
    row = {"学生姓名": name, "家长电话": phone, "来源渠道": "抖音", "年级": "三年级"}
    row.update(cells)
    return row


def csv_bytes(header: Sequence[str], rows: Sequence[dict[str, Any]], encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(column, "") for column in header])
    return out.getvalue().encode(encoding)


def xlsx_bytes(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def run(
    content: bytes,
    *,
    actor: User,
    campus: Campus,
    kind: str = "students",
    dry_run: bool = False,
    name: str = "file.csv",
) -> ImportReport:
    return import_rows(
        kind=kind, table=read_table(content, name), campus=campus, actor=actor, dry_run=dry_run, file_name=name
    )


def students_file(rows: Sequence[dict[str, str]], encoding: str = "utf-8") -> bytes:
    return csv_bytes(STUDENT_HEADER, rows, encoding)
