"""The columns of each kind of file: the Chinese header institutions use, its aliases
(the English field name among them), and whether it must be present.

docs/import.md documents the same tables for operators; keep them in step.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.translation import gettext as _

from crm.services.imports.cells import choice_key
from crm.services.imports.report import RowError


@dataclass(frozen=True)
class Column:
    key: str  # the English field name, also accepted as a header
    header: str  # the Chinese header exports write
    aliases: tuple[str, ...] = ()
    required: bool = False

    def names(self) -> tuple[str, ...]:
        return (self.header, self.key, *self.aliases)


PHONE = Column(
    "phone",
    "家长电话",
    ("电话", "手机", "手机号", "手机号码", "联系电话", "家长手机", "家长手机号", "mobile", "guardian phone"),
    required=True,
)

STUDENT_COLUMNS: tuple[Column, ...] = (
    Column(
        "name", "学生姓名", ("姓名", "学员姓名", "孩子姓名", "student_name", "student name", "student"), required=True
    ),
    Column("gender", "性别", ("sex",)),
    Column("birth_date", "出生日期", ("生日", "出生年月日", "birthday", "date of birth")),
    Column("grade", "年级", ()),
    Column("school", "学校", ("就读学校",)),
    Column("channel", "来源渠道", ("渠道", "来源", "source", "source channel")),
    Column("guardian_name", "家长姓名", ("家长", "guardian", "parent", "parent name")),
    Column("relation", "关系", ("与学生关系", "家长关系", "relationship")),
    PHONE,
    Column("guardian_email", "家长邮箱", ("邮箱", "电子邮箱", "家长电子邮箱", "email", "e-mail", "guardian email")),
    Column("tags", "标签", ()),
    Column("notes", "备注", ("note", "remarks")),
    Column("owner", "负责顾问", ("顾问", "课程顾问", "负责人", "consultant")),
)

STUDENT_REF_COLUMNS: tuple[Column, ...] = (
    PHONE,
    Column(
        "student_name", "学生姓名", ("姓名", "学员姓名", "孩子姓名", "name", "student name", "student"), required=True
    ),
)

CONSULTATION_COLUMNS: tuple[Column, ...] = (
    *STUDENT_REF_COLUMNS,
    Column("consulted_at", "咨询时间", ("咨询日期", "时间", "日期", "consulted at", "date"), required=True),
    Column("channel", "方式", ("咨询方式", "沟通方式")),
    Column("content", "内容", ("咨询内容", "沟通内容", "记录"), required=True),
    Column("intent", "意向", ("意向度", "意向等级", "意向程度")),
    Column("outcome", "结果", ("咨询结果", "沟通结果", "result")),
    Column(
        "next_follow_up_at",
        "下次跟进",
        ("下次跟进时间", "下次回访", "下次回访时间", "next follow-up", "next follow up"),
    ),
    Column("consultant", "顾问", ("咨询顾问", "负责顾问", "课程顾问", "owner")),
)

CONTRACT_COLUMNS: tuple[Column, ...] = (
    *STUDENT_REF_COLUMNS,
    Column("course", "课程", ("课程名称", "报读课程", "course name"), required=True),
    Column("hours_bought", "课时", ("购买课时", "课时数", "总课时", "hours", "hours bought"), required=True),
    Column("amount", "金额", ("合同金额", "应收", "应收金额", "总价"), required=True),
    Column("paid_amount", "实收", ("实收金额", "已付", "已付金额", "paid", "paid amount")),
    Column("signed_at", "签约时间", ("签约日期", "签订日期", "签约", "signed at", "signed"), required=True),
    Column("valid_until", "有效期至", ("有效期", "到期日", "到期日期", "valid until", "expires")),
    Column("status", "状态", ("合同状态",)),
    Column("hours_consumed", "已消课时", ("已用课时", "已上课时", "hours consumed")),
    Column("refund_amount", "退费金额", ("退款金额", "refund", "refund amount")),
    Column("refund_reason", "退费原因", ("退款原因", "refund reason")),
)

COLUMNS_BY_KIND: dict[str, tuple[Column, ...]] = {
    "students": STUDENT_COLUMNS,
    "consultations": CONSULTATION_COLUMNS,
    "contracts": CONTRACT_COLUMNS,
}


def header_key(header: str) -> str:
    """家长电话(必填)*, "Guardian Phone", "guardian_phone" compare as one header each."""
    text = re.sub(r"[（(].*?[)）]", "", header)
    text = text.replace("*", "").replace("＊", "").replace(":", "").replace("：", "")
    return choice_key(text)


@dataclass
class ColumnMap:
    index: dict[str, int]  # column key -> position in the row
    header: dict[str, str]  # column key -> the header as the file spells it
    ignored: list[str]

    def title(self, key: str, columns: Sequence[Column]) -> str:
        if key in self.header:
            return self.header[key]
        return next(c.header for c in columns if c.key == key)


def resolve_columns(headers: Sequence[str], columns: Sequence[Column]) -> tuple[ColumnMap, list[RowError]]:
    by_name: dict[str, Column] = {}
    for column in columns:
        for name in column.names():
            by_name.setdefault(header_key(name), column)
    index: dict[str, int] = {}
    header: dict[str, str] = {}
    ignored: list[str] = []
    errors: list[RowError] = []
    for position, text in enumerate(headers):
        if not text:
            continue
        found = by_name.get(header_key(text))
        if found is None:
            ignored.append(text)
            continue
        if found.key in index:
            errors.append(
                RowError(
                    row=1,
                    column=text,
                    message=_("Duplicate column: “%(first)s” already holds %(key)s.")
                    % {"first": header[found.key], "key": found.header},
                )
            )
            continue
        index[found.key] = position
        header[found.key] = text
    for column in columns:
        if column.required and column.key not in index:
            errors.append(
                RowError(
                    row=1,
                    column=column.header,
                    message=_("This column is missing; the file needs a column headed “%(header)s”.")
                    % {"header": column.header},
                )
            )
    return ColumnMap(index=index, header=header, ignored=ignored), errors
