"""One rule, every door: the same input gives the same answer from the page, the admin, an
import (page, admin, command), the board and the services behind them.

Each rule lives once (crm.services.owners, crm.services.tags, crm.selectors.student_search_q,
crm.selectors.in_viewers_campuses); a door added later belongs in these tests.
"""

from __future__ import annotations

import ast
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from crm.admin.scoping import scope_to_viewer
from crm.models import Campus, ImportJob, Stage, Student, StudentStage, StudentTag, Tag, TagGroup, User
from crm.selectors import stage_rows_visible_to, student_search, students_visible_to
from crm.services import lead_capture, student_tag_add, student_tags_change, student_update
from crm.services.owners import owner_problem
from crm.services.referrals import guardian_by_invite_code, guardian_invite_code
from lifecycle.filters import StudentFilter, owners_for
from lifecycle.models import StageChange
from lifecycle.services.pool import pool_claim, pool_list_for
from parents.api.throttles import InviteIpThrottle
from tests import factories
from tests.crm.test_admin import change_form_data, client_for, form_errors, url
from tests.crm.test_import_support import run, student_row, students_file

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
OWNER_REFUSED = "Choose a consultant or manager of this campus as the owner."


@pytest.fixture(autouse=True)
def _media_and_english(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.LANGUAGE_CODE = "en"


def messages_of(exc: ValidationError, key: str) -> list[str]:
    return exc.message_dict[key]


# --- who may own a student ------------------------------------------------------------------


def owner_answers(candidate: User, *, campus: Campus, manager: User, tmp_path: Path) -> dict[str, list[str]]:
    """What each door says when `candidate` is named the owner of a student of `campus`."""
    answers: dict[str, list[str]] = {}
    family = factories.GuardianFactory(phone="+8613900139000")
    student = factories.StudentFactory(campus=campus, name="李小华", guardians=[family])

    with pytest.raises(ValidationError) as caught:
        lead_capture(actor=manager, campus=campus, phone="13800138000", student_name="王小明", owner=candidate)
    answers["service: lead_capture"] = messages_of(caught.value, "owner")
    with pytest.raises(ValidationError) as caught:
        student_update(actor=manager, student=student, owner=candidate)
    answers["service: student_update"] = messages_of(caught.value, "owner")

    client = client_for(manager)
    add = {
        "phone": "13800138000",
        "name": "王小明",
        "campus": campus.pk,
        "channel": "douyin",
        "owner": candidate.pk,
    }
    answers["admin: add"] = form_errors(client.post(url(Student, "add"), add))["owner"]
    change = {**change_form_data(client, student), "owner": candidate.pk}
    answers["admin: change"] = form_errors(client.post(url(Student, "change", student.pk), change))["owner"]

    content = students_file([student_row("王小明", "13800138000", 负责顾问=candidate.username)])
    report = run(content, actor=manager, campus=campus, dry_run=True)
    answers["import: service"] = [e.message for e in report.errors if e.column == "负责顾问"]

    page = Client(HTTP_ACCEPT_LANGUAGE="en")
    page.force_login(manager)
    upload = {"kind": "students", "campus": campus.pk, "file": SimpleUploadedFile("学生.csv", content)}
    page.post(reverse("import_list"), upload)
    job = ImportJob.objects.latest("pk")
    answers["import: page"] = [e["message"] for e in job.report["errors"] if e["column"] == "负责顾问"]

    preview = client.post(
        reverse("admin:crm_student_import"),
        {"resource": "0", "format": "0", "campus": campus.pk, "import_file": SimpleUploadedFile("学生.csv", content)},
    )
    answers["import: admin"] = [
        message for row in preview.context["result"].invalid_rows for message in row.error_dict.get("负责顾问", [])
    ]

    path = tmp_path / "学生.csv"
    path.write_bytes(content)
    out = Path(tmp_path / "out.txt")
    with out.open("w") as stdout, pytest.raises(CommandError):
        call_command(
            "import_data", "students", str(path), "--user", manager.username, "--campus", campus.code, stdout=stdout
        )
    answers["import: command"] = [line for line in out.read_text().splitlines() if OWNER_REFUSED in line]

    assert not Student.objects.filter(name="王小明").exists()
    assert Student.objects.get(pk=student.pk).owner_id is None
    return answers


@pytest.mark.parametrize("who", ["teacher", "front_desk_b"])
@pytest.mark.parametrize("acting", ["manager", "admin_user"])
def test_every_door_refuses_the_same_owners_in_the_same_words(
    who: str, acting: str, request: pytest.FixtureRequest, campus_a: Campus, tmp_path: Path
) -> None:
    candidate, actor = request.getfixturevalue(who), request.getfixturevalue(acting)
    answers = owner_answers(candidate, campus=campus_a, manager=actor, tmp_path=tmp_path)
    for door, said in answers.items():
        if door == "import: command":
            assert len(said) == 1, (door, said)
        elif door.startswith("admin") and acting == "manager" and who == "front_desk_b":
            # Another campus's staff do not exist for a campus's manager in the admin's choices.
            assert said == ["Select a valid choice. That choice is not one of the available choices."]
        else:
            assert said == [OWNER_REFUSED], (door, said)


def test_a_consultant_of_the_campus_is_accepted_by_every_door(
    front_desk: User, manager: User, campus_a: Campus
) -> None:
    captured = lead_capture(
        actor=manager, campus=campus_a, phone="13800138000", student_name="王小明", owner=front_desk
    )
    assert captured.student.owner == front_desk
    content = students_file([student_row("王小红", "13900139000", 负责顾问=front_desk.username)])
    assert run(content, actor=manager, campus=campus_a).committed
    assert Student.objects.get(name="王小红").owner == front_desk


def test_the_pool_refuses_a_claimer_who_may_not_own_the_lead(admin_user: User, campus_a: Campus) -> None:
    """An administrator sees every campus but belongs to none: claiming would make them an owner
    no campus page lists."""
    student = factories.StudentFactory(campus=campus_a, stage=Stage.CONSULTING)
    with pytest.raises(ValidationError) as caught:
        pool_claim(actor=admin_user, student=student)
    assert messages_of(caught.value, "owner") == [OWNER_REFUSED]
    assert Student.objects.get(pk=student.pk).owner_id is None


def test_the_owner_choices_offered_agree_with_the_rule(
    manager: User, front_desk: User, teacher: User, front_desk_b: User, admin_user: User, campus_a: Campus
) -> None:
    """The owners a door offers (the board's filter, the admin's autocomplete) are exactly those
    the rule accepts."""
    factories.UserFactory(username="gone", campus=campus_a, role="front_desk", is_active=False)
    factories.UserFactory(username="norole", campus=campus_a, is_staff=True)
    accepted = {u.pk for u in User.objects.all() if owner_problem(u, campus_a.pk) is None}
    assert accepted == {manager.pk, front_desk.pk}
    assert {u.pk for u in owners_for(manager)} == accepted
    response = client_for(manager).get(
        reverse("admin:autocomplete"), {"app_label": "crm", "model_name": "student", "field_name": "owner"}
    )
    assert {int(row["id"]) for row in response.json()["results"]} == accepted


def test_the_owner_rule_reads_in_chinese() -> None:
    with translation.override("zh-hans"):
        assert translation.gettext(OWNER_REFUSED) == "请选择本校区的顾问或校长作为负责人。"


# --- exclusive tag groups -------------------------------------------------------------------


@pytest.fixture
def intent() -> dict[str, Tag]:
    group = TagGroup.objects.create(name="意向", exclusive=True)
    return {name: Tag.objects.create(group=group, name=name) for name in ("高", "中", "低")}


def tags_of(student: Student) -> set[str]:
    return set(StudentTag.objects.filter(student=student).values_list("tag__name", flat=True))


def test_a_later_write_replaces_the_groups_tag_at_every_door(
    manager: User, campus_a: Campus, intent: dict[str, Tag]
) -> None:
    family = factories.GuardianFactory(phone="+8613800138000")
    students = {door: factories.StudentFactory(campus=campus_a, name=door, guardians=[family]) for door in "ABCDE"}
    for student in students.values():
        StudentTag.objects.create(student=student, tag=intent["低"])
    client = client_for(manager)

    student_tag_add(actor=manager, student=students["A"], tag=intent["高"])
    # The admin's change page keeps the old tag ticked and ticks the new one too.
    data = {**change_form_data(client, students["B"]), "tag_list": [str(intent["低"].pk), str(intent["高"].pk)]}
    assert client.post(url(Student, "change", students["B"].pk), data).status_code == 302
    add = {"student": students["C"].pk, "tag": intent["高"].pk}
    assert client.post(url(StudentTag, "add"), add).status_code == 302
    action = {"action": "add_tag", "_selected_action": [students["D"].pk], "apply": "1", "tag": intent["高"].pk}
    assert client.post(url(Student, "changelist"), action).status_code == 302
    content = students_file([student_row("E", "13800138000", 标签="意向:高")])
    assert run(content, actor=manager, campus=campus_a).committed

    assert {door: tags_of(s) for door, s in students.items()} == {door: {"高"} for door in students}


def test_two_tags_of_one_group_in_one_write_are_refused_at_every_door(
    manager: User, campus_a: Campus, intent: dict[str, Tag]
) -> None:
    family = factories.GuardianFactory(phone="+8613800138000")
    student = factories.StudentFactory(campus=campus_a, name="张小明", guardians=[family])
    StudentTag.objects.create(student=student, tag=intent["低"])
    refused = "Choose one tag of “意向”: 高 or 中."
    answers: dict[str, list[str]] = {}

    with pytest.raises(ValidationError) as caught:
        student_tags_change(actor=manager, student=student, add=[intent["高"], intent["中"]])
    answers["service"] = messages_of(caught.value, "tags")
    client = client_for(manager)
    data = {**change_form_data(client, student), "tag_list": [str(intent["高"].pk), str(intent["中"].pk)]}
    answers["admin"] = form_errors(client.post(url(Student, "change", student.pk), data))["tag_list"]
    content = students_file([student_row("张小明", "13800138000", 标签="意向:高;意向:中")])
    answers["import"] = [e.message for e in run(content, actor=manager, campus=campus_a).errors]

    assert answers == {door: [refused] for door in answers}
    assert tags_of(student) == {"低"}


def test_an_import_applies_its_rows_in_order(manager: User, campus_a: Campus, intent: dict[str, Tag]) -> None:
    """Each row is one write: a later row's tag replaces an earlier row's, as on the page."""
    content = students_file(
        [student_row("张小明", "13800138000", 标签="意向:低"), student_row("张小明", "13800138000", 标签="意向:高")]
    )
    assert run(content, actor=manager, campus=campus_a).committed
    assert tags_of(Student.objects.get(name="张小明")) == {"高"}


# --- student search -------------------------------------------------------------------------


@pytest.fixture
def searched(campus_a: Campus, campus_b: Campus) -> dict[str, Student]:
    wang = factories.GuardianFactory(phone="+8613800138000")
    li = factories.GuardianFactory(phone="+8613900139111")
    students: dict[str, Student] = {
        "王小明": factories.StudentFactory(campus=campus_a, name="王小明", guardians=[wang]),
        "王小红": factories.StudentFactory(campus=campus_a, name="王小红", guardians=[wang]),
        "李雷": factories.StudentFactory(campus=campus_a, name="李雷", guardians=[li]),
        "Amy Wang": factories.StudentFactory(campus=campus_a, name="Amy Wang", guardians=[li]),
        # Same family name, another campus: no door of campus A finds her.
        "王小丽": factories.StudentFactory(campus=campus_b, name="王小丽", guardians=[wang]),
    }
    for student in students.values():
        StageChange.objects.create(
            student_id=student.pk, to_stage=Stage.LEAD, source="event", reason="created", changed_at=timezone.now()
        )
    return students


def search_answers(viewer: User, term: str) -> dict[str, set[str]]:
    client = client_for(viewer)
    answers: dict[str, set[str]] = {}
    page = client.get(reverse("student_list"), {"q": term})
    answers["page"] = {s.name for s in page.context["page"].object_list}
    admin = client.get(url(Student, "changelist"), {"q": term})
    answers["admin"] = {s.name for s in admin.context["cl"].result_list}
    board = client.get(reverse("board"), {"q": term})
    answers["board"] = {card.student.name for col in board.context["columns"] for card in col.cards}
    answers["selector"] = set(student_search(viewer=viewer, query=term).values_list("name", flat=True))
    answers["filterset"] = set(StudentFilter({"q": term}, viewer=viewer).qs.values_list("name", flat=True))
    history = client.get(reverse("admin:lifecycle_stagechange_changelist"), {"q": term})
    answers["lifecycle admin"] = set(
        Student.objects.filter(pk__in=[row.student_id for row in history.context["cl"].result_list]).values_list(
            "name", flat=True
        )
    )
    return answers


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("王小", {"王小明", "王小红"}),
        ("amy", {"Amy Wang"}),
        ("138-0013-8000", {"王小明", "王小红"}),
        ("+86 138 0013 8000", {"王小明", "王小红"}),
        ("0086 13800138000", {"王小明", "王小红"}),
        ("8000", {"王小明", "王小红"}),  # the last four digits
        ("9111", {"李雷", "Amy Wang"}),
        ("无此人", set()),
    ],
)
def test_every_door_finds_the_same_students(
    term: str, expected: set[str], manager: User, searched: dict[str, Student]
) -> None:
    answers = search_answers(manager, term)
    assert answers == {door: expected for door in answers}


# --- campus scoping -------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["front_desk", "manager", "teacher", "manager_b", "admin_user", "no role"])
def test_every_door_shows_a_viewer_the_same_campus(
    who: str, request: pytest.FixtureRequest, campus_a: Campus, campus_b: Campus
) -> None:
    if who == "no role":
        viewer = factories.UserFactory(username="norole", campus=campus_a, is_staff=True)
    else:
        viewer = request.getfixturevalue(who)
    students = [
        factories.StudentFactory(campus=c, name=name, stage=Stage.CONSULTING)
        for c, name in ((campus_a, "望京的孩子"), (campus_b, "中关村的孩子"))
    ]
    for student in students:
        StageChange.objects.create(
            student_id=student.pk, to_stage=Stage.CONSULTING, source="event", reason="x", changed_at=timezone.now()
        )
    expected = set(students_visible_to(viewer).values_list("pk", flat=True))

    seen: dict[str, set[Any]] = {
        "stage rows": set(stage_rows_visible_to(viewer).values_list("pk", flat=True)),
        "crm admin": set(scope_to_viewer(Student.objects.all(), viewer).values_list("pk", flat=True)),
        "crm admin, stage rows": set(
            scope_to_viewer(StudentStage.objects.all(), viewer).values_list("student_id", flat=True)
        ),
        "pool": set(pool_list_for(viewer=viewer).values_list("pk", flat=True)),
        "board": set(StudentFilter({}, viewer=viewer).qs.values_list("pk", flat=True)),
    }
    # The admins' lists, for the roles that use the admin at all.
    client = client_for(viewer)
    crm_list = client.get(url(Student, "changelist"))
    if crm_list.status_code == 200:
        seen["crm admin list"] = {s.pk for s in crm_list.context["cl"].result_list}
    history = client.get(reverse("admin:lifecycle_stagechange_changelist"))
    if history.status_code == 200:
        seen["lifecycle admin list"] = {row.student_id for row in history.context["cl"].result_list}
    export = client.get(reverse("import_export_download", args=["students", "csv"]))
    if export.status_code == 200:
        names = {s.name: s.pk for s in students}
        body = export.getvalue() if export.streaming else export.content  # type: ignore[attr-defined]
        exported = body.decode("utf-8-sig")
        seen["students export"] = {pk for name, pk in names.items() if name in exported}
    if who in ("front_desk", "manager", "admin_user"):
        assert {"crm admin list", "lifecycle admin list", "students export"} <= set(seen)
    assert seen == {door: expected for door in seen}


# --- a parent's invite code -----------------------------------------------------------------


def invite_answers(code: str, *, front_desk: User, campus: Campus) -> dict[str, object]:
    """What each lead-capturing door makes of an invite code: the lead's inviter and channel, or
    the words (or status) it refuses the code with."""
    answers: dict[str, object] = {}
    phones = iter(["13900139001", "13900139002", "13900139003"])

    def captured(name: str) -> object:
        student = Student.objects.filter(name=name).first()
        return (student.referred_by_id, student.channel) if student else None

    try:
        lead_capture(actor=front_desk, campus=campus, phone=next(phones), student_name="服务", referral_code=code)
        answers["service: lead_capture"] = captured("服务")
    except ValidationError as exc:
        answers["service: lead_capture"] = messages_of(exc, "referral_code")

    page = client_for(front_desk)
    form = {"phone": next(phones), "student_name": "页面", "channel": "douyin", "referral_code": code}
    response = page.post(reverse("lead_capture"), form)
    if response.status_code == 302:
        answers["page: lead capture"] = captured("页面")
    else:
        answers["page: lead capture"] = response.context["form"].errors["referral_code"]

    link = Client().post(
        reverse("parent_api:invite_lead", args=[code]),
        {"phone": next(phones), "student_name": "链接"},
        content_type="application/json",
    )
    answers["parent API: invite link"] = captured("链接") if link.status_code == 201 else link.status_code
    inviter = guardian_by_invite_code(code)
    answers["expected"] = (inviter.pk, "referral") if inviter else None
    return answers


@pytest.fixture
def own_throttle_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The public link's throttle counts in the shared cache: this test's own keys."""
    monkeypatch.setattr(InviteIpThrottle, "cache_format", f"throttle_{uuid.uuid4().hex}_%(scope)s_%(ident)s")


@pytest.mark.usefixtures("own_throttle_counts")
def test_every_door_reads_an_invite_code_alike(front_desk: User, campus_a: Campus) -> None:
    inviter = factories.GuardianFactory(name="王妈妈", phone="+8613800138001")
    factories.StudentFactory(campus=campus_a, name="王小明", guardians=[inviter])
    code = guardian_invite_code(inviter)
    answers = invite_answers(f" {code.lower()}", front_desk=front_desk, campus=campus_a)
    expected = answers.pop("expected")
    assert answers == {door: expected for door in answers}


@pytest.mark.usefixtures("own_throttle_counts")
def test_every_door_refuses_an_unknown_invite_code(front_desk: User, campus_a: Campus) -> None:
    answers = invite_answers("ZZZZZZ", front_desk=front_desk, campus=campus_a)
    refused = ["No parent has this invite code. Check it with the parent who sent it."]
    assert answers == {
        "service: lead_capture": refused,
        "page: lead capture": refused,
        "parent API: invite link": 404,  # the public link: no such page
        "expected": None,
    }
    assert not Student.objects.exists()


# --- the audit log --------------------------------------------------------------------------


def test_only_the_audit_service_writes_audit_entries() -> None:
    writers = []
    for path in [*REPO.glob("crm/**/*.py"), *REPO.glob("lifecycle/**/*.py")]:
        if "migrations" in path.parts or path.name == "audit.py":
            continue
        text = path.read_text()
        if re.search(
            r"AuditEntry(\.objects\.(create|bulk_create|update_or_create|get_or_create)\b|\((actor|action|student|detail)=)",
            text,
        ):
            writers.append(str(path.relative_to(REPO)))
    assert writers == []


# --- where code lives -----------------------------------------------------------------------


def test_no_app_imports_another_apps_private_names() -> None:
    apps = ("crm", "lifecycle", "personas", "campaigns", "config")
    reaching = []
    for app in apps:
        for path in (REPO / app).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ImportFrom) or not node.module:
                    continue
                source_app = node.module.split(".")[0]
                if source_app in apps and source_app != app:
                    reaching += [
                        f"{path.relative_to(REPO)}: {alias.name}" for alias in node.names if alias.name[0] == "_"
                    ]
    assert reaching == []
