"""The admin at /admin/: scoped per role and campus, writes through the services, cheap on big tables."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crm.admin import students as student_admin
from crm.admin.paginators import ApproximateCount, EstimatedCountPaginator
from crm.models import (
    Attendance,
    AuditEntry,
    Campus,
    Consultation,
    Contract,
    ContractStatus,
    Course,
    Guardian,
    ImportJob,
    Lesson,
    Student,
    StudentStage,
    StudentTag,
    TagGroup,
    TrialLesson,
    TrialStatus,
    User,
)
from crm.phones import phone_display
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    """The actors' passwords are hashed as they are made; these tests log in with force_login."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- helpers -----------------------------------------------------------------------------


def client_for(user: User) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def url(model: type[Any] | str, view: str, *args: Any) -> str:
    name = model if isinstance(model, str) else model._meta.model_name
    return reverse(f"admin:crm_{name}_{view}", args=args)


def split(moment: dt.datetime) -> tuple[str, str]:
    """The admin's split date/time widget values, in the current time zone."""
    local = timezone.localtime(moment)
    return local.strftime("%Y-%m-%d"), local.strftime("%H:%M:%S")


def form_errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200, response.status_code
    form = response.context["adminform"].form if "adminform" in response.context else response.context["form"]
    return {key: list(messages) for key, messages in form.errors.items()}


def result_pks(response: Any) -> set[int]:
    assert response.status_code == 200
    return {obj.pk for obj in response.context["cl"].result_list}


def change_form_data(client: Client, student: Student) -> dict[str, Any]:
    """What the student's change page would post back unchanged."""
    response = client.get(url(Student, "change", student.pk))
    assert response.status_code == 200
    form = response.context["adminform"].form
    data: dict[str, Any] = {}
    for name in form.fields:
        value = form[name].value()
        if value is None or value is False:
            continue
        if value is True:
            data[name] = "on"
        elif isinstance(value, list | tuple):
            data[name] = [str(v) for v in value]
        else:
            data[name] = str(value)
    # The history inlines are read-only; an empty management form is what they need.
    for inline in response.context["inline_admin_formsets"]:
        data[f"{inline.formset.prefix}-TOTAL_FORMS"] = "0"
        data[f"{inline.formset.prefix}-INITIAL_FORMS"] = "0"
    return data


def run_action(client: Client, model: type[Any], action: str, pks: list[int], **fields: Any) -> Any:
    """Pick the action on the change list; with fields, also submit its intermediate page."""
    data: dict[str, Any] = {"action": action, "_selected_action": [str(pk) for pk in pks]}
    if not fields:
        return client.post(url(model, "changelist"), {**data, "index": "0"})
    return client.post(url(model, "changelist"), {**data, "apply": "1", **fields})


def build_world(campus: Campus, teacher: User, staff: User) -> SimpleNamespace:
    """One of everything at a campus."""
    guardian = factories.GuardianFactory.create()
    student = factories.StudentFactory.create(campus=campus, guardians=[guardian])
    course = factories.CourseFactory.create(campus=campus)
    contract = factories.ContractFactory.create(student=student, course=course)
    lesson = factories.LessonFactory.create(course=course, teacher=teacher)
    lesson.students.add(student)
    return SimpleNamespace(
        campus=campus,
        user=staff,
        guardian=guardian,
        student=student,
        course=course,
        studenttag=StudentTag.objects.create(
            student=student, tag=factories.TagFactory.create(name=f"tag-{campus.code}")
        ),
        consultation=factories.ConsultationFactory.create(student=student, consultant=staff),
        triallesson=factories.TrialLessonFactory.create(student=student, course=course, teacher=teacher),
        contract=contract,
        lesson=lesson,
        attendance=factories.AttendanceFactory.create(
            student=student, contract=contract, lesson=lesson, teacher=teacher
        ),
        auditentry=AuditEntry.objects.create(actor=staff, action="lead_capture", student=student),
        importjob=ImportJob.objects.create(
            kind="students", campus=campus, file="imports/a.csv", original_name="a.csv", created_by=staff
        ),
    )


@pytest.fixture
def world_a(campus_a: Campus, teacher: User, front_desk: User) -> SimpleNamespace:
    return build_world(campus_a, teacher, front_desk)


@pytest.fixture
def world_b(campus_b: Campus, teacher_b: User, front_desk_b: User) -> SimpleNamespace:
    return build_world(campus_b, teacher_b, front_desk_b)


CAMPUS_SCOPED = (
    "campus",
    "user",
    "student",
    "guardian",
    "studenttag",
    "course",
    "consultation",
    "triallesson",
    "contract",
    "lesson",
    "attendance",
    "auditentry",
    "importjob",
)


# --- who gets in -------------------------------------------------------------------------


# Shown where staff look for it rather than as a list of its own: the stage on the student's
# admin page and list (with its filter), the flags in lifecycle's activity list; a child's
# link to a parent on the student's page (guardians inline) and the guardians list.
# IdempotencyRecord: the API's stored answers, plumbing with families' data in it, swept nightly.
NOT_REGISTERED = {"IdempotencyRecord", "StudentGuardian", "StudentStage"}


def test_every_crm_model_is_registered() -> None:
    from django.apps import apps

    missing = [m.__name__ for m in apps.get_app_config("crm").get_models() if not admin.site.is_registered(m)]
    assert sorted(missing) == sorted(NOT_REGISTERED)


def test_teacher_never_gets_into_the_admin(teacher: User, world_a: SimpleNamespace) -> None:
    client = client_for(teacher)
    for path in ("/admin/", url(Student, "changelist"), url(Student, "change", world_a.student.pk)):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_teacher_made_staff_by_mistake_still_sees_nothing(teacher: User, world_a: SimpleNamespace) -> None:
    teacher.is_staff = True
    teacher.save(update_fields=["is_staff"])
    client = client_for(teacher)
    assert client.get("/admin/").context["available_apps"] == []
    assert client.get(url(Student, "changelist")).status_code == 403
    assert client.get(url(Student, "change", world_a.student.pk)).status_code == 403


def test_admin_loads_every_changelist_change_and_add_page(
    admin_user: User, world_a: SimpleNamespace, world_b: SimpleNamespace
) -> None:
    client = client_for(admin_user)
    # Read-only records have no add page: guardians join through a student; the rest nobody writes.
    no_add_page = {"guardian", "auditentry", "importjob"}
    for model in admin.site._registry:
        name = str(model._meta.model_name)
        if model._meta.app_label != "crm":
            continue
        assert client.get(url(name, "changelist")).status_code == 200, name
        obj = getattr(world_a, name, None) or model._default_manager.first()
        assert obj is not None, name
        assert client.get(url(name, "change", obj.pk)).status_code == 200, name
        assert client.get(url(name, "add")).status_code == (403 if name in no_add_page else 200), name
    # Both campuses' students are listed for the administrator.
    assert {world_a.student.pk, world_b.student.pk} <= result_pks(client.get(url(Student, "changelist")))


@pytest.mark.parametrize(
    ("who", "add_pages"),
    [
        ("front_desk", ["student", "studenttag", "consultation", "triallesson", "contract"]),
        (
            "manager",
            [
                "student",
                "studenttag",
                "tag",
                "taggroup",
                "course",
                "consultation",
                "triallesson",
                "contract",
                "lesson",
                "attendance",
            ],
        ),
    ],
)
def test_staff_index_and_add_pages_load(
    who: str, add_pages: list[str], request: pytest.FixtureRequest, world_a: SimpleNamespace
) -> None:
    client = client_for(request.getfixturevalue(who))
    assert client.get("/admin/").status_code == 200
    for name in add_pages:
        assert client.get(url(name, "add")).status_code == 200, name


@pytest.mark.parametrize("model_name", CAMPUS_SCOPED)
def test_manager_sees_only_their_campus(
    model_name: str, manager: User, world_a: SimpleNamespace, world_b: SimpleNamespace
) -> None:
    client = client_for(manager)
    own, other = getattr(world_a, model_name), getattr(world_b, model_name)
    listed = result_pks(client.get(url(model_name, "changelist")))
    assert own.pk in listed
    assert other.pk not in listed
    assert client.get(url(model_name, "change", own.pk)).status_code == 200
    assert client.get(url(model_name, "change", other.pk)).status_code == 404
    assert client.post(url(model_name, "change", other.pk), {}).status_code in (403, 404)


@pytest.mark.parametrize(
    "model_name",
    ("student", "guardian", "studenttag", "course", "consultation", "triallesson", "contract", "lesson", "attendance"),
)
def test_front_desk_sees_only_their_campus(
    model_name: str, front_desk: User, world_a: SimpleNamespace, world_b: SimpleNamespace
) -> None:
    client = client_for(front_desk)
    own, other = getattr(world_a, model_name), getattr(world_b, model_name)
    listed = result_pks(client.get(url(model_name, "changelist")))
    assert own.pk in listed and other.pk not in listed
    assert client.get(url(model_name, "change", other.pk)).status_code == 404


def test_front_desk_has_no_staff_list_or_audit_log(front_desk: User, world_a: SimpleNamespace) -> None:
    client = client_for(front_desk)
    assert client.get(url(User, "changelist")).status_code == 403
    assert client.get(url(AuditEntry, "changelist")).status_code == 403


def test_autocomplete_is_scoped_to_the_campus(
    manager: User, front_desk: User, teacher: User, world_a: SimpleNamespace, world_b: SimpleNamespace
) -> None:
    client = client_for(manager)

    def ids(model_name: str, field_name: str, term: str = "") -> set[str]:
        response = client.get(
            reverse("admin:autocomplete"),
            {"app_label": "crm", "model_name": model_name, "field_name": field_name, "term": term},
        )
        assert response.status_code == 200
        return {row["id"] for row in response.json()["results"]}

    assert ids("consultation", "student") == {str(world_a.student.pk)}
    assert ids("consultation", "student", world_b.student.name) == set()
    assert ids("triallesson", "course") == {str(world_a.course.pk)}
    assert ids("attendance", "contract") == {str(world_a.contract.pk)}
    # Colleagues: a front-desk consultant may pick a teacher of their campus, and only a teacher.
    client = client_for(front_desk)
    assert ids("triallesson", "teacher") == {str(teacher.pk)}
    assert str(front_desk.pk) in ids("student", "owner")


def test_form_choices_are_limited_to_the_campus(
    manager: User, campus_a: Campus, campus_b: Campus, course_a: Course, course_b: Course
) -> None:
    client = client_for(manager)
    form = client.get(url(Student, "add")).context["adminform"].form
    assert list(form.fields["campus"].queryset) == [campus_a]
    form = client.get(url(TrialLesson, "add")).context["adminform"].form
    assert list(form.fields["course"].queryset) == [course_a]


# --- adding through the services -----------------------------------------------------------


def test_student_add_captures_a_lead_through_the_service(front_desk: User, campus_a: Campus) -> None:
    client = client_for(front_desk)
    data = {"phone": "138-0013-8000", "name": "王小明", "campus": campus_a.pk, "channel": "douyin", "grade": "三年级"}
    response = client.post(url(Student, "add"), data)
    assert response.status_code == 302, form_errors(response)
    student = Student.objects.get(name="王小明")
    assert student.owner == front_desk
    assert [g.phone for g in student.guardians.all()] == ["+8613800138000"]
    assert AuditEntry.objects.filter(action="lead_capture", student=student, actor=front_desk).exists()

    # The same family typed another way: a form error, not a duplicate (nor a 500).
    response = client.post(url(Student, "add"), {**data, "phone": "+86 138 0013 8000", "name": "王小红"})
    assert "already belongs to a family" in form_errors(response)["phone"][0]
    assert Guardian.objects.count() == 1
    assert not Student.objects.filter(name="王小红").exists()

    # Ticking "add as a sibling" joins the family.
    response = client.post(
        url(Student, "add"), {**data, "phone": "13800138000", "name": "王小红", "add_to_family": "on"}
    )
    assert response.status_code == 302
    assert Student.objects.get(name="王小红").guardians.get().phone == "+8613800138000"


def test_student_add_shows_service_errors_and_refuses_another_campus(manager: User, campus_b: Campus) -> None:
    client = client_for(manager)
    data = {"phone": "12345", "name": "李雷", "channel": "website"}
    response = client.post(url(Student, "add"), {**data, "campus": campus_b.pk})
    assert "campus" in form_errors(response)  # not a choice for a campus-A manager
    response = client.post(url(Student, "add"), {**data, "campus": manager.campus_id})
    assert "phone" in form_errors(response)
    assert not Student.objects.exists()


def test_consultation_add_logs_through_the_service(front_desk: User, world_a: SimpleNamespace) -> None:
    client = client_for(front_desk)
    follow_up = timezone.now() + dt.timedelta(days=2)
    data = {
        "student": world_a.student.pk,
        "channel": "phone",
        "content": "问了编程课的价格",
        "intent": "high",
        "next_follow_up_at_0": split(follow_up)[0],
        "next_follow_up_at_1": split(follow_up)[1],
    }
    response = client.post(url(Consultation, "add"), data)
    assert response.status_code == 302, form_errors(response)
    consultation = Consultation.objects.get(content="问了编程课的价格")
    assert consultation.consultant == front_desk
    world_a.student.refresh_from_db()
    assert world_a.student.next_follow_up_at is not None
    assert AuditEntry.objects.filter(action="consultation_log", actor=front_desk).exists()

    future = timezone.now() + dt.timedelta(days=1)
    response = client.post(
        url(Consultation, "add"),
        {**data, "content": "未来", "consulted_at_0": split(future)[0], "consulted_at_1": split(future)[1]},
    )
    assert "consulted_at" in form_errors(response)
    assert not Consultation.objects.filter(content="未来").exists()


def test_trial_add_books_through_the_service(front_desk: User, teacher: User, world_a: SimpleNamespace) -> None:
    client = client_for(front_desk)
    when = timezone.now().replace(microsecond=0, second=0) + dt.timedelta(days=3)
    data = {
        "student": world_a.student.pk,
        "course": world_a.course.pk,
        "teacher": teacher.pk,
        "scheduled_at_0": split(when)[0],
        "scheduled_at_1": split(when)[1],
        "duration_minutes": "60",
    }
    response = client.post(url(TrialLesson, "add"), data)
    assert response.status_code == 302, form_errors(response)
    assert TrialLesson.objects.filter(teacher=teacher, scheduled_at=when, booked_by=front_desk).exists()
    assert AuditEntry.objects.filter(action="trial_book").exists()

    # The same slot again: the teacher is busy, shown on the form.
    response = client.post(url(TrialLesson, "add"), data)
    assert "already has a lesson" in form_errors(response)["scheduled_at"][0]
    assert TrialLesson.objects.filter(teacher=teacher, scheduled_at=when).count() == 1


def test_contract_add_signs_through_the_service(front_desk: User, world_a: SimpleNamespace) -> None:
    client = client_for(front_desk)
    data = {
        "student": world_a.student.pk,
        "course": world_a.course.pk,
        "hours_bought": "48",
        "amount": "9600",
        "paid_amount": "9600",
    }
    response = client.post(url(Contract, "add"), data)
    assert response.status_code == 302, form_errors(response)
    assert Contract.objects.filter(student=world_a.student, hours_bought=48, signed_by=front_desk).exists()
    assert AuditEntry.objects.filter(action="contract_sign").exists()

    response = client.post(url(Contract, "add"), {**data, "paid_amount": "10000"})
    assert "cannot exceed" in form_errors(response)["paid_amount"][0]
    assert Contract.objects.filter(hours_bought=48).count() == 1


def test_attendance_add_records_through_the_service(manager: User, world_a: SimpleNamespace) -> None:
    client = client_for(manager)
    contract = factories.ContractFactory.create(
        student=world_a.student, course=world_a.course, hours_bought=Decimal("3")
    )
    data = {"student": world_a.student.pk, "contract": contract.pk, "status": "present", "hours": "2"}
    response = client.post(url(Attendance, "add"), data)
    assert response.status_code == 302, form_errors(response)
    contract.refresh_from_db()
    assert contract.hours_consumed == Decimal("2")
    assert AuditEntry.objects.filter(action="attendance_record", actor=manager).exists()

    response = client.post(url(Attendance, "add"), {**data, "hours": "5"})
    assert "Only 1.0 hours are left" in form_errors(response)["hours"][0]
    contract.refresh_from_db()
    assert contract.hours_consumed == Decimal("2")


def test_permission_denied_by_a_service_is_a_403(front_desk: User, world_a: SimpleNamespace) -> None:
    client = client_for(front_desk)
    assert client.get(url(Attendance, "add")).status_code == 403  # no model permission
    # Given the model permission by hand, the service still refuses the role.
    front_desk.user_permissions.add(Permission.objects.get(codename="add_attendance"))
    client = client_for(User.objects.get(pk=front_desk.pk))
    data = {"student": world_a.student.pk, "contract": world_a.contract.pk, "status": "present", "hours": "1"}
    assert client.post(url(Attendance, "add"), data).status_code == 403
    assert Attendance.objects.count() == 1  # the world's own


# --- the student page --------------------------------------------------------------------


def test_student_change_goes_through_student_update(manager: User, world_a: SimpleNamespace) -> None:
    client = client_for(manager)
    data = change_form_data(client, world_a.student)
    response = client.post(
        url(Student, "change", world_a.student.pk), {**data, "grade": "四年级", "school": "实验小学"}
    )
    assert response.status_code == 302, form_errors(response)
    world_a.student.refresh_from_db()
    assert (world_a.student.grade, world_a.student.school) == ("四年级", "实验小学")
    entry = AuditEntry.objects.get(action="student_update")
    assert entry.detail["fields"] == "grade,school"


def test_student_page_shows_history_inlines(manager: User, world_a: SimpleNamespace) -> None:
    response = client_for(manager).get(url(Student, "change", world_a.student.pk))
    inlines = {f.opts.model: f for f in response.context["inline_admin_formsets"]}
    assert set(inlines) >= {Student.guardians.through, StudentTag, Consultation, TrialLesson, Contract}
    for inline in inlines.values():
        assert not inline.has_add_permission and not inline.has_change_permission
    assert phone_display(world_a.guardian.phone) in response.content.decode()


def test_student_tags_are_edited_through_the_tag_services(manager: User, world_a: SimpleNamespace) -> None:
    client = client_for(manager)
    new_tag = factories.TagFactory.create(name="升学型")
    data = change_form_data(client, world_a.student)
    data["tag_list"] = [str(new_tag.pk)]  # drop the old tag, add the new one
    response = client.post(url(Student, "change", world_a.student.pk), data)
    assert response.status_code == 302, form_errors(response)
    assert list(world_a.student.tags.all()) == [new_tag]
    assert set(AuditEntry.objects.values_list("action", flat=True)) >= {"student_tag_add", "student_tag_remove"}


def test_two_tags_of_an_exclusive_group_are_refused(manager: User, world_a: SimpleNamespace) -> None:
    group = TagGroup.objects.create(name="意向等级", exclusive=True)
    high, low = factories.TagFactory.create(group=group, name="高"), factories.TagFactory.create(group=group, name="低")
    client = client_for(manager)
    data = {**change_form_data(client, world_a.student), "tag_list": [str(high.pk), str(low.pk)]}
    assert "tag_list" in form_errors(client.post(url(Student, "change", world_a.student.pk), data))
    assert not world_a.student.tags.filter(group=group).exists()


def test_a_guardian_is_added_through_guardian_add(manager: User, world_a: SimpleNamespace) -> None:
    client = client_for(manager)
    other_family = factories.GuardianFactory.create(phone="+8613912345678")
    data = change_form_data(client, world_a.student)
    change = url(Student, "change", world_a.student.pk)

    response = client.post(change, {**data, "new_guardian_phone": "139 1234 5678"})
    assert "already belongs to a guardian" in form_errors(response)["new_guardian_phone"][0]
    response = client.post(change, {**data, "new_guardian_phone": "1391234", "new_guardian_name": "x"})
    assert "new_guardian_phone" in form_errors(response)

    response = client.post(change, {**data, "new_guardian_phone": "+86 137-0000-1111", "new_guardian_name": "王爸爸"})
    assert response.status_code == 302, form_errors(response)
    assert world_a.student.guardians.filter(phone="+8613700001111", name="王爸爸").exists()
    response = client.post(change, {**data, "new_guardian_phone": "13912345678", "link_existing_guardian": "on"})
    assert response.status_code == 302, form_errors(response)
    assert world_a.student.guardians.filter(pk=other_family.pk).exists()
    assert AuditEntry.objects.filter(action="guardian_add").count() == 2
    assert Guardian.objects.filter(phone="+8613912345678").count() == 1


def test_an_error_after_a_service_ran_writes_nothing(
    manager: User, world_a: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(**kwargs: Any) -> None:
        raise ValidationError({"phone": "refused"})

    monkeypatch.setattr(student_admin, "guardian_add", refuse)
    client = client_for(manager)
    data = {**change_form_data(client, world_a.student), "grade": "六年级", "new_guardian_phone": "13700001111"}
    errors = form_errors(client.post(url(Student, "change", world_a.student.pk), data))
    assert errors == {"new_guardian_phone": ["refused"]}  # the service's "phone" is this form's guardian phone
    world_a.student.refresh_from_db()
    assert world_a.student.grade != "六年级"
    assert not AuditEntry.objects.filter(action="student_update").exists()


def test_another_campus_cannot_change_a_student(manager_b: User, world_a: SimpleNamespace) -> None:
    client = client_for(manager_b)
    response = client.post(url(Student, "change", world_a.student.pk), {"name": "x", "grade": "x"})
    assert response.status_code == 404
    world_a.student.refresh_from_db()
    assert world_a.student.name != "x"


# --- search ------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["138-0013-8000", "+86 138 0013 8000", "13800138000", "0086 13800138000", "8000"])
def test_student_search_finds_a_phone_typed_in_any_format(typed: str, manager: User, campus_a: Campus) -> None:
    wanted = factories.StudentFactory.create(
        campus=campus_a, guardians=[factories.GuardianFactory.create(phone="+8613800138000")]
    )
    factories.StudentFactory.create(
        campus=campus_a, guardians=[factories.GuardianFactory.create(phone="+8613900139111")]
    )
    client = client_for(manager)
    assert result_pks(client.get(url(Student, "changelist"), {"q": typed})) == {wanted.pk}
    assert result_pks(client.get(url(Consultation, "changelist"), {"q": typed})) == set()
    guardian = wanted.guardians.get()
    assert result_pks(client.get(url(Guardian, "changelist"), {"q": typed})) == {guardian.pk}


def test_student_search_by_name(manager: User, campus_a: Campus, campus_b: Campus) -> None:
    wanted = factories.StudentFactory.create(campus=campus_a, name="张三丰")
    factories.StudentFactory.create(campus=campus_b, name="张三")
    amy = factories.StudentFactory.create(campus=campus_a, name="Amy Wang")
    client = client_for(manager)
    assert result_pks(client.get(url(Student, "changelist"), {"q": "张三"})) == {wanted.pk}
    assert result_pks(client.get(url(Student, "changelist"), {"q": "amy"})) == {amy.pk}


# --- actions -----------------------------------------------------------------------------


def test_close_as_lost_asks_for_a_reason_then_calls_the_service(
    front_desk: User, front_desk_b: User, world_a: SimpleNamespace
) -> None:
    student = factories.StudentFactory.create(campus=world_a.campus)
    # Another campus's consultant cannot reach the student.
    response = run_action(client_for(front_desk_b), Student, "close_as_lost", [student.pk], reason="x")
    assert response.status_code == 302
    student.refresh_from_db()
    assert student.lost_at is None

    client = client_for(front_desk)
    page = run_action(client, Student, "close_as_lost", [student.pk])
    assert page.status_code == 200 and "reason" in page.context["form"].fields
    response = run_action(client, Student, "close_as_lost", [student.pk], reason="选了别家机构")
    assert response.status_code == 302
    student.refresh_from_db()
    assert student.lost_at is not None and student.lost_reason == "选了别家机构"
    assert AuditEntry.objects.filter(action="lead_close_lost", student=student, actor=front_desk).exists()


def test_close_as_lost_refused_by_the_service_shows_why(front_desk: User, world_a: SimpleNamespace) -> None:
    client = client_for(front_desk)  # world_a.student has an active contract
    response = run_action(client, Student, "close_as_lost", [world_a.student.pk], reason="x")
    assert "active contract" in form_errors(response)["__all__"][0]
    world_a.student.refresh_from_db()
    assert world_a.student.lost_at is None

    # With several rows, the refused one is named and the others go ahead.
    lead = factories.StudentFactory.create(campus=world_a.campus)
    response = run_action(client, Student, "close_as_lost", [world_a.student.pk, lead.pk], reason="x")
    assert response.status_code == 302
    lead.refresh_from_db()
    assert lead.lost_at is not None
    texts = [str(m) for m in response.wsgi_request._messages]  # type: ignore[attr-defined]
    assert any(world_a.student.name in t and "active contract" in t for t in texts)


def test_add_tag_action(manager: User, manager_b: User, world_a: SimpleNamespace) -> None:
    tag = factories.TagFactory.create(name="兴趣拓展型")
    run_action(client_for(manager_b), Student, "add_tag", [world_a.student.pk], tag=tag.pk)
    assert not world_a.student.tags.filter(pk=tag.pk).exists()

    response = run_action(client_for(manager), Student, "add_tag", [world_a.student.pk], tag=tag.pk)
    assert response.status_code == 302
    assert world_a.student.tags.filter(pk=tag.pk).exists()
    assert AuditEntry.objects.filter(action="student_tag_add", actor=manager).exists()


def test_cancel_trial_action(front_desk: User, manager_b: User, world_a: SimpleNamespace) -> None:
    trial = world_a.triallesson
    run_action(client_for(manager_b), TrialLesson, "cancel", [trial.pk], reason="x")
    trial.refresh_from_db()
    assert trial.status == TrialStatus.BOOKED

    client = client_for(front_desk)
    assert run_action(client, TrialLesson, "cancel", [trial.pk]).status_code == 200
    response = run_action(client, TrialLesson, "cancel", [trial.pk], reason="孩子生病")
    assert response.status_code == 302
    trial.refresh_from_db()
    assert trial.status == TrialStatus.CANCELLED
    assert AuditEntry.objects.filter(action="trial_cancel", actor=front_desk).exists()


def test_refund_action_is_for_managers_only(front_desk: User, manager: User, world_a: SimpleNamespace) -> None:
    contract = world_a.contract
    client = client_for(front_desk)
    action_form = client.get(url(Contract, "changelist")).context["action_form"]
    assert action_form is None or "refund" not in dict(action_form.fields["action"].choices)
    response = run_action(client, Contract, "refund", [contract.pk], amount="100", reason="x")
    assert response.status_code in (200, 302)  # the list again: front desk has no refund action
    contract.refresh_from_db()
    assert contract.status == ContractStatus.ACTIVE

    client = client_for(manager)
    page = run_action(client, Contract, "refund", [contract.pk])
    assert set(page.context["form"].fields) == {"amount", "reason"}
    response = run_action(client, Contract, "refund", [contract.pk], amount="99999", reason="搬家")
    assert "cannot exceed" in form_errors(response)["amount"][0]
    response = run_action(client, Contract, "refund", [contract.pk], amount="3000", reason="搬家")
    assert response.status_code == 302
    contract.refresh_from_db()
    assert (contract.status, contract.refund_amount, contract.refund_reason) == ("refunded", Decimal("3000"), "搬家")
    assert AuditEntry.objects.filter(action="contract_refund", actor=manager).exists()


def test_untagging_through_the_admin_calls_the_service(front_desk: User, world_a: SimpleNamespace) -> None:
    response = client_for(front_desk).post(url(StudentTag, "delete", world_a.studenttag.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not StudentTag.objects.filter(pk=world_a.studenttag.pk).exists()
    assert AuditEntry.objects.filter(action="student_tag_remove", actor=front_desk).exists()


# Guardians are corrected through guardian_update (tests/crm/test_families.py).
@pytest.mark.parametrize("model_name", ["consultation", "triallesson", "contract", "attendance"])
def test_history_is_read_only(model_name: str, manager: User, world_a: SimpleNamespace) -> None:
    client = client_for(manager)
    obj = getattr(world_a, model_name)
    response = client.get(url(model_name, "change", obj.pk))
    assert response.status_code == 200 and response.context["has_change_permission"] is False
    assert client.post(url(model_name, "change", obj.pk), {}).status_code == 403
    assert client.post(url(model_name, "delete", obj.pk), {"post": "yes"}).status_code == 403


def test_staff_list_shows_role_and_campus_and_groups_are_editable(admin_user: User, manager: User) -> None:
    client = client_for(admin_user)
    response = client.get(url(User, "changelist"))
    assert "Manager" in response.content.decode() and "望京校区" in response.content.decode()
    form = client.get(url(User, "change", manager.pk)).context["adminform"].form
    assert {"groups", "campus"} <= set(form.fields)


# --- big tables ----------------------------------------------------------------------------


def changelist_queries(client: Client, path: str, expected_rows: int) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == expected_rows
    return len(queries)


@pytest.mark.parametrize("who", ["admin_user", "manager"])
def test_changelist_queries_do_not_grow_with_rows(
    who: str, request: pytest.FixtureRequest, campus_a: Campus, course_a: Course, front_desk: User
) -> None:
    client = client_for(request.getfixturevalue(who))

    def add_rows(n: int) -> None:
        for _ in range(n):
            student = factories.StudentFactory.create(campus=campus_a, owner=front_desk)
            student.guardians.add(factories.GuardianFactory.create())
            factories.ConsultationFactory.create(student=student, consultant=front_desk)
            factories.ContractFactory.create(student=student, course=course_a)

    add_rows(5)
    few = {m: changelist_queries(client, url(m, "changelist"), 5) for m in (Student, Consultation, Contract)}
    add_rows(45)
    many = {m: changelist_queries(client, url(m, "changelist"), 50) for m in (Student, Consultation, Contract)}
    assert few == many


def student_count_queries(captured: list[dict[str, str]]) -> list[str]:
    return [q["sql"] for q in captured if "COUNT(" in q["sql"].upper() and "crm_student" in q["sql"]]


def test_unfiltered_student_list_uses_the_planner_estimate(
    admin_user: User, campus_a: Campus, monkeypatch: pytest.MonkeyPatch
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the planner's estimate is PostgreSQL's")
    factories.StudentFactory.create_batch(30, campus=campus_a)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE crm_student")
    # In production an exact count is only taken below 10,000 rows; here, below 10.
    monkeypatch.setattr(EstimatedCountPaginator, "count_cap", 10)
    client = client_for(admin_user)

    with CaptureQueriesContext(connection) as queries:
        response = client.get(url(Student, "changelist"))
    assert response.status_code == 200
    assert student_count_queries(queries.captured_queries) == []
    assert any("pg_class" in q["sql"] for q in queries.captured_queries)
    count = response.context["cl"].result_count
    assert isinstance(count, ApproximateCount) and count == 30
    assert "about 30" in response.content.decode()

    # Filtered: the keys of the first count_cap + 1 rows, no COUNT(*), no second scan for the page.
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url(Student, "changelist"), {"pipeline__stage__exact": "lead"})
    assert student_count_queries(queries.captured_queries) == []
    [keys] = [q["sql"] for q in queries.captured_queries if "LIMIT 11" in q["sql"]]
    assert '"crm_student"."name"' not in keys  # only the keys
    assert str(response.context["cl"].result_count) == "10+"
    assert len(response.context["cl"].result_list) == 10


def test_a_short_filtered_list_is_read_once(manager: User, campus_a: Campus) -> None:
    """Counted exactly, and its rows fetched by the keys the count read: the filter runs once."""
    wanted = factories.StudentFactory.create_batch(3, campus=campus_a, name="张三")
    factories.StudentFactory.create(campus=campus_a, name="李四")
    with CaptureQueriesContext(connection) as queries:
        response = client_for(manager).get(url(Student, "changelist"), {"q": "张三"})
    count = response.context["cl"].result_count
    assert count == 3 and not isinstance(count, ApproximateCount)
    assert [s.pk for s in response.context["cl"].result_list] == sorted((s.pk for s in wanted), reverse=True)
    searches = [q["sql"] for q in queries.captured_queries if "LIKE" in q["sql"] and "crm_student" in q["sql"]]
    assert len(searches) == 2 and "IN (" in searches[1]  # the keys, then the rows by key


def test_pages_of_a_filtered_list(manager: User, campus_a: Campus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(EstimatedCountPaginator, "count_cap", 120)
    students = factories.StudentFactory.create_batch(130, campus=campus_a)
    newest_first = sorted((s.pk for s in students), reverse=True)
    client = client_for(manager)
    pages = [client.get(url(Student, "changelist"), {"p": str(p)}).context["cl"] for p in (1, 2, 3)]
    assert str(pages[0].result_count) == "120+"
    assert [[s.pk for s in cl.result_list] for cl in pages] == [
        newest_first[:50],
        newest_first[50:100],
        newest_first[100:120],
    ]


def test_large_tables_show_no_full_counts_or_facets() -> None:
    for model in (Student, Guardian, Consultation, Attendance, AuditEntry, TrialLesson, Contract, Lesson, StudentTag):
        model_admin = admin.site._registry[model]
        assert model_admin.paginator is EstimatedCountPaginator, model
        assert model_admin.show_full_result_count is False, model
        assert model_admin.show_facets == admin.ShowFacets.NEVER, model
        assert model_admin.date_hierarchy is None, model  # its year list is a full-table DISTINCT


def test_the_stage_is_shown_and_filtered_but_never_edited(manager: User, campus_a: Campus, campus_b: Campus) -> None:
    """The stage comes from StudentStage (written only by the engine): the student list shows it
    and filters by it within the manager's campus; the student's page shows it read-only."""
    trial = factories.StudentFactory.create(campus=campus_a, name="试听中", stage="trial")
    factories.StudentFactory.create(campus=campus_a, name="新线索", stage="lead")
    factories.StudentFactory.create(campus=campus_b, name="别校试听", stage="trial")
    client = client_for(manager)
    response = client.get(url(Student, "changelist"), {"pipeline__stage__exact": "trial"})
    assert [s.name for s in response.context["cl"].result_list] == ["试听中"]
    assert '<td class="field-stage">Trial</td>' in response.content.decode()
    page = client.get(url(Student, "change", trial.pk)).content.decode()
    assert "Trial" in page and 'name="stage"' not in page
    client.post(url(Student, "change", trial.pk), {"stage": "active"})
    assert StudentStage.objects.get(pk=trial.pk).stage == "trial"


def test_admin_lists_show_a_landline_as_dialled(admin_user: User, campus_a: Campus) -> None:
    """Defect 2.6: the admin's lists and the family inline showed 1062345678."""
    guardian = factories.GuardianFactory(phone="+861062345678")
    student = factories.StudentFactory(campus=campus_a, guardians=[guardian])
    client = client_for(admin_user)
    for url in (
        reverse("admin:crm_student_changelist"),
        reverse("admin:crm_guardian_changelist"),
        reverse("admin:crm_student_change", args=[student.pk]),
    ):
        html = client.get(url).content.decode()
        assert "010-6234 5678" in html, url
        assert "1062345678" not in html.replace("+861062345678", ""), url


def test_admin_lists_keep_the_tablets_width_for_their_columns(client: Client, manager: User) -> None:
    client.force_login(manager)
    page = client.get(reverse("admin:crm_student_changelist")).content.decode()
    assert 'id="nav-sidebar"' not in page
    assert "#result_list td, #result_list th { white-space: nowrap; }" in page  # names never broken per character
