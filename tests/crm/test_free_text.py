"""Free text (crm/text.py): tidied at the ends only, one length limit per field, the same
answer from every door, and the database refusing what slips past."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.migrations import AddConstraint
from django.db.migrations.loader import MigrationLoader
from django.urls import reverse
from django.utils import translation

from crm import text
from crm.models import Campus, Consultation, Guardian, Student
from crm.services import (
    attendance_record,
    consultation_log,
    contract_refund,
    guardian_add,
    lead_capture,
    lead_close_lost,
    student_update,
    trial_feedback_record,
)
from tests import factories
from tests.crm.test_admin import change_form_data, client_for, form_errors, url
from tests.crm.test_import_support import run, student_row, students_file

pytestmark = pytest.mark.django_db

NOTE_LIMIT = "Notes: at most 10000 characters (this has 100000)."


def test_tidy_trims_the_ends_only_and_drops_control_characters():
    assert text.tidy("\u3000 王\u3000小明\u00a0\t\n") == "王\u3000小明"
    assert text.tidy("\ufeff北京\u00a0第一小学") == "北京\u00a0第一小学"
    assert text.tidy("第一行\r\n第二行\r第三行\x00\x07\x1b") == "第一行\n第二行\n第三行"
    assert text.tidy("一\t二") == "一\t二"


def test_one_child_whichever_space_was_typed():
    assert text.name_key("王\u3000小明") == text.name_key("王 小明") == text.name_key(" 王\u00a0\u00a0小明 ")
    assert text.name_key("王小明") != text.name_key("王 小明")


def test_every_limit_fits_in_a_spreadsheet_cell():
    for limit in (text.NAME, text.SHORT, text.LABEL, text.TITLE, text.LINE, text.LONG):
        assert limit < 32_767


def test_services_store_what_was_meant(front_desk, campus_a):
    captured = lead_capture(
        actor=front_desk,
        campus=campus_a,
        phone="13800138000",
        student_name="\u3000王\u3000小明\u00a0",
        guardian_name=" 王\u3000妈妈 ",
        relation="妈妈\x00",
        school="北京\u00a0第一小学\u3000",
        notes="\n喜欢画画\r\n周末有空\u3000\n",
    )
    student = Student.objects.get(pk=captured.student.pk)
    assert (student.name, student.school, student.notes) == ("王\u3000小明", "北京\u00a0第一小学", "喜欢画画\n周末有空")
    assert (captured.guardian.name, captured.guardian.relation) == ("王\u3000妈妈", "妈妈")


def test_a_sibling_typed_with_another_space_is_the_same_child(front_desk, campus_a):
    lead_capture(actor=front_desk, campus=campus_a, phone="13800138000", student_name="王\u3000小明")
    with pytest.raises(ValidationError) as refused:
        lead_capture(actor=front_desk, campus=campus_a, phone="13800138000", student_name="王 小明", add_to_family=True)
    assert "is already in this family" in refused.value.message_dict["student_name"][0]
    assert Student.objects.count() == 1


# -- the limit, from every door ------------------------------------------------------------


def test_service_refuses_a_note_over_the_limit_naming_field_and_limit(front_desk, campus_a):
    with pytest.raises(ValidationError) as refused:
        lead_capture(
            actor=front_desk, campus=campus_a, phone="13800138000", student_name="王小明", notes="备" * 100_000
        )
    assert refused.value.message_dict == {"notes": [NOTE_LIMIT]}
    assert not Student.objects.exists() and not Guardian.objects.exists()

    student = factories.StudentFactory(campus=campus_a, notes="旧备注")
    with pytest.raises(ValidationError) as refused:
        student_update(actor=front_desk, student=student, notes="备" * 100_000)
    assert refused.value.message_dict == {"notes": [NOTE_LIMIT]}
    student.refresh_from_db()
    assert student.notes == "旧备注"


def test_a_note_exactly_at_the_limit_is_kept(front_desk, campus_a):
    student = factories.StudentFactory(campus=campus_a)
    student_update(actor=front_desk, student=student, notes="备" * text.LONG)
    student.refresh_from_db()
    assert len(student.notes) == text.LONG


def test_consultation_over_the_limit_is_refused(front_desk, campus_a):
    student = factories.StudentFactory(campus=campus_a)
    with pytest.raises(ValidationError) as refused:
        consultation_log(actor=front_desk, student=student, channel="phone", content="聊" * 200_000)
    assert refused.value.message_dict == {"content": ["Content: at most 10000 characters (this has 200000)."]}
    assert not Consultation.objects.exists()


def test_staff_page_says_the_limit_not_500(client, front_desk):
    client.force_login(front_desk)
    data = {"phone": "13800138000", "student_name": "王小明", "channel": "douyin", "notes": "备" * 100_000}
    response = client.post(reverse("lead_capture"), data)
    assert response.status_code in (200, 400)
    assert NOTE_LIMIT in response.content.decode()
    assert not Student.objects.exists()

    student = factories.StudentFactory(campus=front_desk.campus)
    data = {"c-channel": "phone", "c-intent": "medium", "c-content": "聊" * 200_000}
    response = client.post(reverse("student_action", args=[student.pk, "consultation"]), data)
    assert response.status_code == 400
    assert "Content: at most 10000 characters (this has 200000)." in response.content.decode()
    assert not Consultation.objects.exists()


def test_admin_says_the_limit(manager, campus_a):
    student = factories.StudentFactory(campus=campus_a, notes="旧备注")
    client = client_for(manager)
    data = change_form_data(client, student)
    response = client.post(url(Student, "change", student.pk), {**data, "notes": "备" * 100_000})
    assert "10000" in form_errors(response)["notes"][0]
    student.refresh_from_db()
    assert student.notes == "旧备注"


def test_import_says_the_limit(front_desk, campus_a):
    report = run(
        students_file([student_row("王小明", "13800138000", 备注="备" * 100_000)]), actor=front_desk, campus=campus_a
    )
    assert [(e.row, e.column, e.message) for e in report.errors] == [
        (2, "备注", "Too long: 100000 characters, at most 10000.")
    ]
    assert not Student.objects.exists()


@pytest.mark.parametrize(
    ("factory", "column"),
    [
        (lambda: factories.StudentFactory(), "notes"),
        (lambda: factories.ConsultationFactory(), "content"),
        (lambda: factories.TrialLessonFactory(), "comment"),
        (lambda: factories.AttendanceFactory(), "feedback"),
    ],
)
def test_database_refuses_long_text_written_past_the_services(factory, column):
    row = factory()
    with pytest.raises(IntegrityError), transaction.atomic():
        type(row).objects.filter(pk=row.pk).update(**{column: "长" * (text.LONG + 1)})


def _write(name: str, actor: Any, campus: Campus, value: str) -> Any:
    """Each service that takes free text, given `value` for it."""
    student = factories.StudentFactory(campus=campus)
    course = factories.CourseFactory(campus=campus)
    if name == "guardian_add":
        return guardian_add(actor=actor, student=student, phone="13800138000", name=value)
    if name == "lead_close_lost":
        return lead_close_lost(actor=actor, student=student, reason=value)
    if name == "trial_feedback_record":
        trial = factories.TrialLessonFactory(student=student, course=course, teacher=actor)
        return trial_feedback_record(actor=actor, trial=trial, attended=True, rating=5, comment=value)
    contract = factories.ContractFactory(student=student, course=course)
    if name == "contract_refund":
        return contract_refund(actor=actor, contract=contract, amount=Decimal("1"), reason=value)
    return attendance_record(actor=actor, student=student, hours=Decimal("1"), contract=contract, feedback=value)


@pytest.mark.parametrize(
    ("service", "key", "message"),
    [
        ("guardian_add", "name", "Name: at most 50 characters (this has 51)."),
        ("lead_close_lost", "reason", "Lost reason: at most 200 characters (this has 201)."),
        ("trial_feedback_record", "comment", "Teacher's comment: at most 10000 characters (this has 10001)."),
        ("contract_refund", "reason", "Refund reason: at most 200 characters (this has 201)."),
        ("attendance_record", "feedback", "Feedback: at most 10000 characters (this has 10001)."),
    ],
)
def test_every_service_taking_free_text_holds_its_limit(manager, campus_a, service, key, message):
    limit = int(message.split("at most ")[1].split(" ")[0])
    with pytest.raises(ValidationError) as refused:
        _write(service, manager, campus_a, "字" * (limit + 1))
    assert refused.value.message_dict[key] == [message]
    _write(service, manager, campus_a, "\u3000" + "字" * limit + "\x00\u00a0")  # at the limit once tidied


def test_the_limit_is_said_in_chinese(front_desk, campus_a):
    with translation.override("zh-hans"), pytest.raises(ValidationError) as refused:
        lead_capture(
            actor=front_desk, campus=campus_a, phone="13800138000", student_name="王小明", notes="备" * 100_000
        )
    assert refused.value.message_dict == {"notes": ["备注最多 10000 个字（现在有 100000 个字）。"]}


def test_the_limit_is_added_over_rows_written_before_it(campus_a):
    """NOT VALID: the migration goes through a database holding a longer note, which stays;
    new rows are checked at once."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE crm_student DROP CONSTRAINT student_notes_length")
        legacy = factories.StudentFactory(campus=campus_a, notes="旧" * 100_000)
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE waits for no deferred check
    loader = MigrationLoader(connection)
    migration = loader.get_migration("crm", "0008_free_text_length_limits")
    operation = next(
        op
        for op in migration.operations
        if isinstance(op, AddConstraint) and op.constraint.name == "student_notes_length"
    )
    before = loader.project_state(("crm", "0007_student_stage_table"))
    after = loader.project_state(("crm", "0008_free_text_length_limits"))

    with connection.schema_editor() as editor:
        operation.database_forwards("crm", editor, before, after)

    assert len(Student.objects.get(pk=legacy.pk).notes) == 100_000
    with pytest.raises(IntegrityError), transaction.atomic():
        factories.StudentFactory(campus=campus_a, notes="新" * (text.LONG + 1))
