"""Shared families (defect 2.5): a guardian's name and relation are kept by their home campus,
the campus of their first child. Another campus that has a sibling in the family links
children to the guardian but cannot rename them: every door (lead capture service, page
and admin; "add a guardian" service, page and admin; the guardian admin; an import row and
the command) gives the same refusal and writes nothing. The home campus, with the same
input, changes them; so does an administrator."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from crm.models import AuditEntry, Campus, Guardian, Student, User
from crm.services import guardian_add, guardian_update, lead_capture
from crm.services.families import guardian_change_problem, home_campuses
from tests import factories
from tests.crm.test_admin import change_form_data, client_for, form_errors, url
from tests.crm.test_import_support import run, student_row, students_file

pytestmark = pytest.mark.django_db

PHONE = "13800138000"
NEW_NAME = "王芳芳"


@pytest.fixture
def family(campus_a: Campus, campus_b: Campus, front_desk: User, front_desk_b: User) -> SimpleNamespace:
    """王芳's family: 王小明 at campus A (first), then 王小红 captured as a sibling at campus B."""
    first = lead_capture(
        actor=front_desk, campus=campus_a, phone=PHONE, student_name="王小明", guardian_name="王芳", relation="妈妈"
    )
    sibling = lead_capture(actor=front_desk_b, campus=campus_b, phone=PHONE, student_name="王小红", add_to_family=True)
    return SimpleNamespace(guardian=first.guardian, first=first.student, sibling=sibling.student)


def refusal(campus_a: Campus) -> str:
    problem = guardian_change_problem(campus_id=-1, home_campus_id=campus_a.pk, home_campus_name=campus_a.name)
    assert problem
    return problem


def assert_unchanged(guardian: Guardian) -> None:
    guardian.refresh_from_db()
    assert (guardian.name, guardian.relation) == ("王芳", "妈妈")
    assert not AuditEntry.objects.filter(action="guardian_update").exists()


def test_the_home_campus_is_the_first_childs() -> None:
    assert home_campuses([(1, 30, 2), (1, 10, 1), (2, 5, 3), (1, 20, 2)]) == {1: 1, 2: 3}
    assert home_campuses([]) == {}


def test_linking_a_sibling_without_renaming_is_fine(family: SimpleNamespace, campus_b: Campus) -> None:
    assert family.sibling.campus == campus_b
    assert set(family.guardian.students.all()) == {family.first, family.sibling}
    assert_unchanged(family.guardian)


# --- campus B, every door: refused, nothing written --------------------------------------------


def test_lead_capture_service_refuses(
    family: SimpleNamespace, front_desk_b: User, campus_a: Campus, campus_b: Campus
) -> None:
    with pytest.raises(ValidationError) as exc:
        lead_capture(
            actor=front_desk_b,
            campus=campus_b,
            phone=PHONE,
            student_name="王小刚",
            guardian_name=NEW_NAME,
            relation="妈妈",
            add_to_family=True,
        )
    assert exc.value.message_dict == {"guardian_name": [refusal(campus_a)]}
    assert not Student.objects.filter(name="王小刚").exists()
    assert_unchanged(family.guardian)


def test_lead_capture_page_refuses(
    family: SimpleNamespace, client: Client, front_desk_b: User, campus_a: Campus
) -> None:
    client.force_login(front_desk_b)
    data = {"phone": PHONE, "student_name": "王小刚", "channel": "douyin", "add_to_family": "on"}
    response = client.post(reverse("lead_capture"), {**data, "relation": "奶奶"})
    assert response.status_code == 200
    assert response.context["form"].errors["relation"] == [refusal(campus_a)]
    assert not Student.objects.filter(name="王小刚").exists()
    assert_unchanged(family.guardian)


def test_admin_student_add_refuses(family: SimpleNamespace, front_desk_b: User, campus_a: Campus) -> None:
    client = client_for(front_desk_b)
    data = {
        "phone": PHONE,
        "name": "王小刚",
        "campus": front_desk_b.campus_id,
        "channel": "douyin",
        "guardian_name": NEW_NAME,
        "add_to_family": "on",
    }
    assert form_errors(client.post(url(Student, "add"), data))["guardian_name"] == [refusal(campus_a)]
    assert not Student.objects.filter(name="王小刚").exists()
    assert_unchanged(family.guardian)


def test_guardian_add_service_refuses(family: SimpleNamespace, front_desk_b: User, campus_a: Campus) -> None:
    with pytest.raises(ValidationError) as exc:
        guardian_add(actor=front_desk_b, student=family.sibling, phone=PHONE, name=NEW_NAME)
    assert exc.value.message_dict == {"name": [refusal(campus_a)]}
    assert_unchanged(family.guardian)


def test_student_page_add_guardian_refuses(
    family: SimpleNamespace, client: Client, front_desk_b: User, campus_a: Campus
) -> None:
    client.force_login(front_desk_b)
    response = client.post(
        reverse("student_action", args=[family.sibling.pk, "guardian"]), {"g-phone": PHONE, "g-name": NEW_NAME}
    )
    assert response.status_code == 400
    assert escape(refusal(campus_a)) in response.content.decode()
    assert_unchanged(family.guardian)


def test_admin_student_change_add_guardian_refuses(
    family: SimpleNamespace, manager_b: User, campus_a: Campus, campus_b: Campus
) -> None:
    cousin = factories.StudentFactory(campus=campus_b)  # linking the guardian to a campus-B child is fine
    client = client_for(manager_b)
    data = {
        **change_form_data(client, cousin),
        "new_guardian_phone": PHONE,
        "new_guardian_relation": "奶奶",
        "link_existing_guardian": "on",
    }
    response = client.post(url(Student, "change", cousin.pk), data)
    assert form_errors(response) == {"new_guardian_relation": [refusal(campus_a)]}
    assert not cousin.guardians.filter(pk=family.guardian.pk).exists()
    assert_unchanged(family.guardian)


def test_guardian_admin_refuses(family: SimpleNamespace, manager_b: User, campus_a: Campus) -> None:
    client = client_for(manager_b)
    response = client.post(url(Guardian, "change", family.guardian.pk), {"name": NEW_NAME, "relation": "妈妈"})
    assert form_errors(response) == {"name": [refusal(campus_a)]}
    with pytest.raises(ValidationError):
        guardian_update(actor=manager_b, guardian=family.guardian, name=NEW_NAME)
    assert_unchanged(family.guardian)


def test_import_row_refuses(family: SimpleNamespace, front_desk_b: User, campus_a: Campus, campus_b: Campus) -> None:
    content = students_file([student_row("王小红", PHONE, 家长姓名=NEW_NAME, 关系="妈妈")])
    report = run(content, actor=front_desk_b, campus=campus_b)
    assert [str(e) for e in report.errors] == [f"第 2 行, 家长姓名: {refusal(campus_a)}"]
    assert_unchanged(family.guardian)


def test_command_refuses(
    family: SimpleNamespace, tmp_path: Any, capsys: Any, front_desk_b: User, campus_a: Campus
) -> None:
    path = tmp_path / "students.csv"
    path.write_bytes(students_file([student_row("王小红", PHONE, 关系="奶奶")]))
    with pytest.raises(CommandError, match="nothing was written"):
        call_command("import_data", "students", str(path), "--user", front_desk_b.username)
    assert f"第 2 行, 关系: {refusal(campus_a)}" in capsys.readouterr().out
    assert_unchanged(family.guardian)


def test_an_import_that_repeats_the_stored_details_is_fine(
    family: SimpleNamespace, front_desk_b: User, campus_b: Campus
) -> None:
    content = students_file([student_row("王小红", PHONE, 家长姓名="王芳", 关系="妈妈", 年级="一年级")])
    report = run(content, actor=front_desk_b, campus=campus_b)
    assert report.committed, report.lines()
    assert_unchanged(family.guardian)


# --- the home campus and an administrator, the same input: changed ----------------------------


def renamed(guardian: Guardian, name: str = NEW_NAME) -> bool:
    guardian.refresh_from_db()
    return guardian.name == name


def test_the_home_campus_renames_through_lead_capture(
    family: SimpleNamespace, front_desk: User, campus_a: Campus
) -> None:
    lead_capture(
        actor=front_desk,
        campus=campus_a,
        phone=PHONE,
        student_name="王小刚",
        guardian_name=NEW_NAME,
        add_to_family=True,
    )
    assert renamed(family.guardian)
    assert AuditEntry.objects.filter(action="guardian_update", actor=front_desk).exists()


def test_the_home_campus_renames_through_guardian_add(family: SimpleNamespace, front_desk: User) -> None:
    guardian_add(actor=front_desk, student=family.first, phone=PHONE, name=NEW_NAME)
    assert renamed(family.guardian)


def test_the_home_campus_renames_through_an_import(family: SimpleNamespace, front_desk: User, campus_a: Campus) -> None:
    report = run(students_file([student_row("王小明", PHONE, 家长姓名=NEW_NAME)]), actor=front_desk, campus=campus_a)
    assert report.committed, report.lines()
    assert renamed(family.guardian)


def test_the_home_campus_and_an_administrator_rename_in_the_admin(
    family: SimpleNamespace, manager: User, admin_user: User
) -> None:
    response = client_for(manager).post(url(Guardian, "change", family.guardian.pk), {"name": NEW_NAME, "relation": ""})
    assert response.status_code == 302, form_errors(response)
    assert renamed(family.guardian)
    response = client_for(admin_user).post(
        url(Guardian, "change", family.guardian.pk), {"name": "王芳", "relation": "外婆"}
    )
    assert response.status_code == 302, form_errors(response)
    assert renamed(family.guardian, "王芳")
    assert family.guardian.relation == "外婆"


def test_a_too_long_name_is_refused_with_a_message(family: SimpleNamespace, front_desk: User) -> None:
    with pytest.raises(ValidationError) as exc:
        guardian_add(actor=front_desk, student=family.first, phone=PHONE, name="王" * 51)
    assert list(exc.value.message_dict) == ["name"]
    assert_unchanged(family.guardian)


def test_a_too_long_name_for_a_new_family_is_refused_with_a_message(front_desk: User, campus_a: Campus) -> None:
    with pytest.raises(ValidationError) as exc:
        lead_capture(actor=front_desk, campus=campus_a, phone=PHONE, student_name="王小明", relation="妈" * 21)
    assert list(exc.value.message_dict) == ["relation"]
    assert not Guardian.objects.exists()


def test_lead_capture_says_beforehand_who_keeps_the_guardian(
    family: SimpleNamespace, client: Client, front_desk: User, front_desk_b: User, campus_a: Campus
) -> None:
    url_ = reverse("lead_check_phone") + f"?phone={PHONE}"
    client.force_login(front_desk_b)
    assert escape(refusal(campus_a)) in client.get(url_).content.decode()
    client.force_login(front_desk)
    assert "data-kept-elsewhere" not in client.get(url_).content.decode()
