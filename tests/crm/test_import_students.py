"""Importing students with their guardians and tags through the one import service."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import translation

from crm.models import AuditEntry, Guardian, Student, StudentTag, Tag, TagGroup, TagSource
from crm.phones import normalize_phone
from crm.services import lead_capture
from crm.services.imports import read_table
from crm.services.imports.cells import fast_cn_mobile
from tests import factories
from tests.crm.test_import_support import STUDENT_HEADER, csv_bytes, run, student_row, students_file, xlsx_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):  # messages are compared word for word
        yield


def test_preview_classifies_every_row_and_writes_nothing(front_desk, campus_a):
    existing = factories.StudentFactory(
        name="王小明", campus=campus_a, grade="二年级", guardians=[factories.GuardianFactory(phone="+8613900139000")]
    )
    same = factories.StudentFactory(
        name="赵小雨",
        campus=campus_a,
        grade="三年级",
        channel="douyin",
        guardians=[factories.GuardianFactory(phone="+8613700137000", name="赵妈妈", relation="妈妈")],
    )
    content = students_file(
        [
            student_row("张小明", "13800138000", 家长姓名="张伟"),  # new
            student_row("王小明", "139 0013 9000", 年级="三年级"),  # updated: grade
            student_row("赵小雨", "13700137000", 家长姓名="赵妈妈", 关系="妈妈"),  # unchanged
            student_row("李雷", "12345"),  # error
        ]
    )
    report = run(content, actor=front_desk, campus=campus_a, dry_run=True)

    assert [(o.row, o.status) for o in report.outcomes] == [(2, "new"), (3, "updated"), (4, "unchanged"), (5, "error")]
    assert report.outcomes[1].changes == ["年级: 二年级 → 三年级"]
    assert [str(e) for e in report.errors] == ["第 5 行, 家长电话: “12345” is not a valid phone number."]
    assert report.counts == {"new": 1, "updated": 1, "unchanged": 1, "error": 1}
    assert not report.committed
    assert Student.objects.count() == 2
    existing.refresh_from_db()
    assert existing.grade == "二年级"
    assert same.guardians.count() == 1


def test_commit_creates_students_guardians_and_tags(front_desk, campus_a):
    content = students_file(
        [
            student_row(
                "张小明",
                "+86 138 0013 8000",
                性别="男",
                出生日期="2015/3/5",
                学校="实验小学",
                家长姓名="张伟",
                关系="爸爸",
                标签="意向:高;兴趣:编程",
                备注="周末上课",
                负责顾问="alice",
            ),
            student_row("张小红", "13800138000", 性别="女", 标签="兴趣：美术"),
        ]
    )
    report = run(content, actor=front_desk, campus=campus_a)

    assert report.committed, report.lines()
    assert report.counts["new"] == 2
    guardian = Guardian.objects.get()
    assert (guardian.phone, guardian.name, guardian.relation) == ("+8613800138000", "张伟", "爸爸")
    ming = Student.objects.get(name="张小明")
    assert ming.campus == campus_a
    assert (ming.gender, ming.birth_date, ming.school, ming.channel) == (
        "male",
        dt.date(2015, 3, 5),
        "实验小学",
        "douyin",
    )
    assert ming.owner == front_desk
    assert ming.created_by == front_desk
    assert ming.stage == "lead"
    assert ming.notes == "周末上课"
    assert set(Student.objects.get(name="张小红").guardians.all()) == {guardian}
    tags = {(st.tag.group.name, st.tag.name, st.source) for st in StudentTag.objects.filter(student=ming)}
    assert tags == {("意向", "高", TagSource.IMPORT), ("兴趣", "编程", TagSource.IMPORT)}
    assert StudentTag.objects.get(student__name="张小红").tag.name == "美术"
    audit = AuditEntry.objects.get(action="import_students")
    assert audit.actor == front_desk
    assert audit.detail["new"] == "2"


def test_reimporting_the_same_file_changes_nothing(front_desk, campus_a):
    content = students_file(
        [
            student_row("张小明", "13800138000", 家长姓名="张伟", 标签="意向:高;兴趣:编程", 负责顾问="alice"),
            student_row("张小红", "138-0013-8000", 出生日期="2017-06-01"),
        ]
    )
    assert run(content, actor=front_desk, campus=campus_a).committed
    before = {s.pk: s.updated_at for s in Student.objects.all()}
    guardians_before = list(Guardian.objects.values_list("pk", "updated_at"))
    tags_before = list(StudentTag.objects.values_list("pk", flat=True))
    audits = AuditEntry.objects.count()

    again = run(content, actor=front_desk, campus=campus_a)

    assert again.committed
    assert again.counts == {"new": 0, "updated": 0, "unchanged": 2, "error": 0}
    assert {s.pk: s.updated_at for s in Student.objects.all()} == before
    assert list(Guardian.objects.values_list("pk", "updated_at")) == guardians_before
    assert list(StudentTag.objects.values_list("pk", flat=True)) == tags_before
    assert AuditEntry.objects.count() == audits + 1  # the import itself, nothing else


def test_phone_formats_reach_one_family_in_the_file_and_in_the_database(front_desk, campus_a):
    captured = lead_capture(actor=front_desk, campus=campus_a, phone="13900139000", student_name="刘一")
    content = students_file(
        [
            student_row("张小明", "+86 138 0013 8000"),
            student_row("张小红", "13800138000"),
            student_row("张小刚", "138-0013-8000"),
            student_row("张小丽", "0086 138 0013 8000"),
            student_row("刘二", "+86 139-0013-9000"),  # a sibling in an existing family
            student_row("刘一", "139 0013 9000", 学校="朝阳小学"),  # the existing child
        ]
    )
    report = run(content, actor=front_desk, campus=campus_a)

    assert report.committed, report.lines()
    assert Guardian.objects.count() == 2
    zhang = Guardian.objects.get(phone="+8613800138000")
    assert sorted(zhang.students.values_list("name", flat=True)) == ["张小丽", "张小刚", "张小明", "张小红"]
    liu = captured.guardian
    assert sorted(liu.students.values_list("name", flat=True)) == ["刘一", "刘二"]
    assert Student.objects.get(pk=captured.student.pk).school == "朝阳小学"
    assert [o.status for o in report.outcomes] == ["new", "new", "new", "new", "new", "updated"]


def test_one_bad_row_writes_nothing_and_names_row_column_and_reason(front_desk, campus_a):
    rows = [student_row(f"学生{i}", f"1380013{8000 + i}") for i in range(5)]
    rows.insert(5, student_row("坏行", "12345"))  # spreadsheet row 7
    rows.append(student_row("生日错", "13900000001", 出生日期="2015-13-45"))  # row 8
    report = run(students_file(rows), actor=front_desk, campus=campus_a)

    assert not report.committed
    assert [str(e) for e in report.errors] == [
        "第 7 行, 家长电话: “12345” is not a valid phone number.",
        "第 8 行, 出生日期: “2015-13-45” is not a date (write it as 2024-03-05).",
    ]
    assert "Nothing was written" in report.lines()[-1]
    assert Student.objects.count() == Guardian.objects.count() == 0
    assert not AuditEntry.objects.exists()


def test_missing_required_column_is_reported_on_the_header_row(front_desk, campus_a):
    content = csv_bytes(["学生姓名", "年级"], [{"学生姓名": "张小明", "年级": "三年级"}])
    report = run(content, actor=front_desk, campus=campus_a)
    assert [str(e) for e in report.errors] == [
        "第 1 行, 家长电话: This column is missing; the file needs a column headed “家长电话”."
    ]
    assert not Student.objects.exists()


def test_english_field_names_work_as_headers(front_desk, campus_a):
    content = csv_bytes(
        ["name", "phone", "guardian_name", "grade", "channel", "tags", "Unknown column"],
        [
            {
                "name": "Amy",
                "phone": "13800138000",
                "guardian_name": "Bob",
                "grade": "G3",
                "channel": "referral",
                "tags": "兴趣:编程",
            }
        ],
    )
    report = run(content, actor=front_desk, campus=campus_a)
    assert report.committed, report.lines()
    assert report.ignored_columns == ["Unknown column"]
    student = Student.objects.get()
    assert (student.name, student.grade, student.channel) == ("Amy", "G3", "referral")
    assert student.guardians.get().name == "Bob"


def test_duplicate_rows_of_one_student_merge(front_desk, campus_a):
    content = students_file(
        [
            student_row("张小明", "13800138000", 年级="三年级", 标签="兴趣:编程"),
            student_row("张小明", "+86 138 0013 8000", 年级="四年级", 学校="实验小学", 标签="兴趣:美术"),
        ]
    )
    report = run(content, actor=front_desk, campus=campus_a)

    assert report.committed, report.lines()
    student = Student.objects.get()
    assert (student.grade, student.school) == ("四年级", "实验小学")
    assert set(StudentTag.objects.values_list("tag__name", flat=True)) == {"美术", "编程"}
    assert report.outcomes[1].note == "Same student as row 2; merged."
    assert [o.status for o in report.outcomes] == ["new", "new"]
    assert run(content, actor=front_desk, campus=campus_a).counts["unchanged"] == 2


def test_another_campus_family_is_an_error_not_an_update(manager, manager_b, campus_a, campus_b):
    theirs = factories.StudentFactory(
        name="陈小北", campus=campus_b, grade="一年级", guardians=[factories.GuardianFactory(phone="+8613600136000")]
    )
    content = students_file(
        [
            student_row("陈小北", "13600136000", 年级="六年级"),
            student_row("陈小南", "13600136000"),
        ]
    )
    report = run(content, actor=manager, campus=campus_a)

    assert not report.committed
    assert {(e.row, e.column) for e in report.errors} == {(2, "学生姓名"), (3, "家长电话")}
    assert "中关村校区" in report.errors[0].message
    theirs.refresh_from_db()
    assert theirs.grade == "一年级"
    assert Student.objects.count() == 1

    with pytest.raises(PermissionDenied):
        run(content, actor=manager, campus=campus_b)
    assert run(content, actor=manager_b, campus=campus_b, dry_run=True).counts == {
        "new": 1,
        "updated": 1,
        "unchanged": 0,
        "error": 0,
    }


def test_teachers_may_not_import(teacher, campus_a):
    with pytest.raises(PermissionDenied):
        run(students_file([student_row("张小明", "13800138000")]), actor=teacher, campus=campus_a, dry_run=True)


def test_admin_imports_into_the_chosen_campus(admin_user, campus_b):
    report = run(students_file([student_row("张小明", "13800138000")]), actor=admin_user, campus=campus_b)
    assert report.committed
    assert Student.objects.get().campus == campus_b


def test_owner_must_be_staff_of_the_campus(front_desk, front_desk_b, campus_a):
    content = students_file(
        [
            student_row("甲", "13800138001", 负责顾问="nobody"),
            student_row("乙", "13800138002", 负责顾问="bella"),
            student_row("丙", "13800138003", 负责顾问="前台小李"),  # display names work too
        ]
    )
    report = run(content, actor=front_desk, campus=campus_a, dry_run=True)
    assert [(e.row, e.column) for e in report.errors] == [(2, "负责顾问"), (3, "负责顾问")]
    assert report.outcomes[2].status == "new"


def test_exclusive_tag_group_replaces_the_previous_tag(front_desk, campus_a):
    intent = TagGroup.objects.create(name="意向", exclusive=True)
    low = Tag.objects.create(group=intent, name="低")
    student = factories.StudentFactory(
        name="张小明", campus=campus_a, guardians=[factories.GuardianFactory(phone="+8613800138000")]
    )
    StudentTag.objects.create(student=student, tag=low)
    content = students_file([student_row("张小明", "13800138000", 年级=student.grade, 标签="意向:高")])

    report = run(content, actor=front_desk, campus=campus_a)

    assert report.committed
    assert report.outcomes[0].changes == ["标签: +意向:高", "标签: −意向:低"]
    assert list(StudentTag.objects.filter(student=student).values_list("tag__name", flat=True)) == ["高"]
    both = students_file([student_row("张小明", "13800138000", 标签="意向:高;意向:低")])
    assert [e.column for e in run(both, actor=front_desk, campus=campus_a).errors] == ["标签"]


def test_blank_cells_keep_stored_values(front_desk, campus_a):
    student = factories.StudentFactory(
        name="张小明",
        campus=campus_a,
        grade="三年级",
        school="实验小学",
        guardians=[factories.GuardianFactory(phone="+8613800138000", name="张伟")],
    )
    content = csv_bytes(
        ["学生姓名", "家长电话", "年级", "学校", "家长姓名"], [{"学生姓名": "张小明", "家长电话": "13800138000"}]
    )
    report = run(content, actor=front_desk, campus=campus_a)
    assert report.counts["unchanged"] == 1
    student.refresh_from_db()
    assert (student.grade, student.school, student.guardians.get().name) == ("三年级", "实验小学", "张伟")


def test_gbk_csv_imports_correctly(front_desk, campus_a):
    content = students_file(
        [
            student_row(
                "张小明", "13800138000", 家长姓名="张伟", 关系="爸爸", 学校="北京市第一实验小学", 标签="兴趣:编程"
            )
        ],
        encoding="gbk",
    )
    with pytest.raises(UnicodeDecodeError):
        content.decode("utf-8")  # really GBK bytes
    table = read_table(content, "学生.csv")
    assert table.encoding == "gb18030"

    report = run(content, actor=front_desk, campus=campus_a, name="学生.csv")

    assert report.committed, report.lines()
    student = Student.objects.get()
    assert (student.name, student.school) == ("张小明", "北京市第一实验小学")
    assert student.guardians.get().name == "张伟"
    assert StudentTag.objects.get().tag.name == "编程"


def test_utf8_with_bom_and_semicolons(front_desk, campus_a):
    content = "\ufeff学生姓名;家长电话;标签\n张小明;13800138000;意向:高,兴趣:编程\n".encode()
    report = run(content, actor=front_desk, campus=campus_a)
    assert report.committed, report.lines()
    assert sorted(StudentTag.objects.values_list("tag__name", flat=True)) == ["编程", "高"]


def test_xlsx_with_typed_cells(front_desk, campus_a):
    content = xlsx_bytes(
        STUDENT_HEADER,
        [
            [
                "张小明",
                "男",
                dt.datetime(2015, 3, 5),
                "三年级",
                "实验小学",
                "抖音",
                "张伟",
                "爸爸",
                13800138000,
                "",
                "",
                "",
            ],
            [None] * 12,  # a blank row keeps the numbering
            ["李雷", "男", "2014-01-02", "四年级", "", "官网", "", "", "bad", "", "", ""],
        ],
    )
    report = run(content, actor=front_desk, campus=campus_a, name="students.xlsx", dry_run=True)
    assert [str(e) for e in report.errors] == [
        "第 4 行, 家长电话: “bad” is not a phone number: use digits only, without an extension."
    ]

    fixed = xlsx_bytes(
        STUDENT_HEADER,
        [
            [
                "张小明",
                "男",
                dt.datetime(2015, 3, 5),
                "三年级",
                "实验小学",
                "抖音",
                "张伟",
                "爸爸",
                13800138000,
                "",
                "",
                "",
            ]
        ],
    )
    report = run(fixed, actor=front_desk, campus=campus_a, name="students.xlsx")
    assert report.committed, report.lines()
    student = Student.objects.get()
    assert student.birth_date == dt.date(2015, 3, 5)
    assert student.guardians.get().phone == "+8613800138000"


def test_fast_phone_path_agrees_with_normalize_phone():
    rng = random.Random(7)
    samples = []
    for prefix in range(100, 200):
        for _ in range(3):
            digits = f"{prefix}{rng.randint(0, 99_999_999):08d}"
            samples += [
                digits,
                f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}",
                f"{digits[:3]}-{digits[3:7]}-{digits[7:]}",
            ]
            samples += [f"0086{digits}", f"+86-{digits}"]
    for text in samples:
        fast = fast_cn_mobile(text)
        if fast is not None:
            assert fast == normalize_phone(text), text
    assert fast_cn_mobile("13800138000") == "+8613800138000"
    assert fast_cn_mobile("１３８００１３８０００") is None  # full width: left to normalize_phone
