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
from tests.crm.test_import_support import STUDENT_HEADER, csv_bytes, run, student_row, students_file

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


# --- a guardian's email: one rule (guardian_email_clean), every door ---------------------------


def not_an_email(value: str) -> str:
    return f"“{value}” is not an email address; write it like name@example.com."


def test_an_email_is_stored_with_its_domain_in_lower_case(front_desk: User, campus_a: Campus) -> None:
    captured = lead_capture(
        actor=front_desk, campus=campus_a, phone=PHONE, student_name="王小明", guardian_email=" Wang.Fang@Example.COM "
    )
    assert captured.guardian.email == "Wang.Fang@example.com"
    # A Chinese input method's full-width ＠ is the @ the parent meant.
    dad = guardian_add(actor=front_desk, student=captured.student, phone="13900139000", email="wang.wei＠163.com")
    assert Guardian.objects.get(pk=dad.pk).email == "wang.wei@163.com"


def bad_email_answers(bad: str, *, student: Student, actor: User, tmp_path: Any) -> dict[str, list[str]]:
    """What each door says when a guardian's email is `bad`."""
    answers: dict[str, list[str]] = {}
    guardian = student.guardians.get()
    with pytest.raises(ValidationError) as exc:
        lead_capture(actor=actor, campus=student.campus, phone="13700137000", student_name="李雷", guardian_email=bad)
    answers["service: lead_capture"] = exc.value.message_dict["guardian_email"]
    with pytest.raises(ValidationError) as exc:
        guardian_add(actor=actor, student=student, phone="13700137000", email=bad)
    answers["service: guardian_add"] = exc.value.message_dict["email"]
    with pytest.raises(ValidationError) as exc:
        guardian_update(actor=actor, guardian=guardian, email=bad)
    answers["service: guardian_update"] = exc.value.message_dict["email"]

    client = client_for(actor)
    page = {"phone": "13700137000", "student_name": "李雷", "channel": "douyin", "guardian_email": bad}
    answers["page: lead capture"] = form_errors(client.post(reverse("lead_capture"), page))["guardian_email"]
    response = client.post(
        reverse("student_action", args=[student.pk, "guardian"]), {"g-phone": "13700137000", "g-email": bad}
    )
    assert response.status_code == 400
    answers["page: add a parent"] = [m for m in [not_an_email(bad)] if escape(m) in response.content.decode()]
    add = {"phone": "13700137000", "name": "李雷", "campus": student.campus_id, "channel": "douyin"}
    answers["admin: student add"] = form_errors(client.post(url(Student, "add"), {**add, "guardian_email": bad}))[
        "guardian_email"
    ]
    change = {**change_form_data(client, student), "new_guardian_phone": "13700137000", "new_guardian_email": bad}
    answers["admin: add a guardian"] = form_errors(client.post(url(Student, "change", student.pk), change))[
        "new_guardian_email"
    ]
    correction = {"name": guardian.name, "relation": guardian.relation, "email": bad}
    answers["admin: guardian"] = form_errors(client.post(url(Guardian, "change", guardian.pk), correction))["email"]

    header = [*STUDENT_HEADER, "家长邮箱"]
    report = run(
        csv_bytes(header, [student_row("李雷", "13700137000", 家长邮箱=bad)]), actor=actor, campus=student.campus
    )
    answers["import"] = [e.message for e in report.errors if e.column == "家长邮箱"]
    path = tmp_path / "students.csv"
    path.write_bytes(csv_bytes(header, [student_row(student.name, PHONE, 家长邮箱=bad)]))
    out = tmp_path / "out.txt"
    with out.open("w") as stdout, pytest.raises(CommandError):
        call_command("import_data", "students", str(path), "--user", actor.username, stdout=stdout)
    answers["import: command"] = [m for m in [not_an_email(bad)] if m in out.read_text()]
    return answers


@pytest.mark.parametrize("bad", ["wang.fang", "wang@", "wang fang@example.com", "王芳@", "a@b@example.com"])
def test_every_door_refuses_a_bad_email_in_the_same_words_and_writes_nothing(
    bad: str, front_desk: User, campus_a: Campus, tmp_path: Any
) -> None:
    student = lead_capture(
        actor=front_desk, campus=campus_a, phone=PHONE, student_name="王小明", guardian_name="王芳", relation="妈妈"
    ).student
    answers = bad_email_answers(bad, student=student, actor=front_desk, tmp_path=tmp_path)
    assert answers == {door: [not_an_email(bad)] for door in answers}
    assert list(Guardian.objects.values_list("phone", "email")) == [("+8613800138000", "")]
    assert list(Student.objects.values_list("name", flat=True)) == ["王小明"]
    assert_unchanged(student.guardians.get())


def test_the_home_campus_sets_the_email_through_the_admin_and_an_import(
    family: SimpleNamespace, manager: User, front_desk: User, campus_a: Campus
) -> None:
    data = {"name": "王芳", "relation": "妈妈", "email": "Wang.Fang@QQ.com"}
    response = client_for(manager).post(url(Guardian, "change", family.guardian.pk), data)
    assert response.status_code == 302, form_errors(response)
    family.guardian.refresh_from_db()
    assert family.guardian.email == "Wang.Fang@qq.com"

    content = csv_bytes([*STUDENT_HEADER, "家长邮箱"], [student_row("王小明", PHONE, 家长邮箱="fang.wang@163.com")])
    report = run(content, actor=front_desk, campus=campus_a)
    assert report.committed, report.lines()
    assert "家长邮箱: Wang.Fang@qq.com → fang.wang@163.com" in report.outcomes[0].changes
    family.guardian.refresh_from_db()
    assert family.guardian.email == "fang.wang@163.com"


def test_a_new_family_imported_with_an_email_keeps_it(front_desk: User, campus_a: Campus) -> None:
    content = csv_bytes(
        ["学生姓名", "家长电话", "邮箱"], [{"学生姓名": "李雷", "家长电话": PHONE, "邮箱": "Li@Example.cn"}]
    )
    assert run(content, actor=front_desk, campus=campus_a).committed
    assert Guardian.objects.get().email == "Li@example.cn"


def test_another_campus_may_not_change_the_email(family: SimpleNamespace, front_desk_b: User, campus_a: Campus) -> None:
    with pytest.raises(ValidationError) as exc:
        guardian_add(actor=front_desk_b, student=family.sibling, phone=PHONE, email="other@example.com")
    assert exc.value.message_dict == {"email": [refusal(campus_a)]}
    content = csv_bytes([*STUDENT_HEADER, "家长邮箱"], [student_row("王小红", PHONE, 家长邮箱="other@example.com")])
    report = run(content, actor=front_desk_b, campus=family.sibling.campus)
    assert [str(e) for e in report.errors] == [f"第 2 行, 家长邮箱: {refusal(campus_a)}"]
    family.guardian.refresh_from_db()
    assert family.guardian.email == ""
