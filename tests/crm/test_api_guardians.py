"""The guardians and tags API under /api/v1/ (crm/api/guardians.py, crm/api/tags.py), and the
admin page where an administrator hands an integration its token (crm/admin/tokens.py)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.authtoken.models import Token

from crm.models import AuditAction, AuditEntry, Guardian
from tests import factories
from tests.crm.json_client import as_, patch, post

pytestmark = pytest.mark.django_db

LIST = "/api/v1/guardians/"
TAGS = "/api/v1/tags/"
KEPT_ELSEWHERE = (
    "This guardian's name, relation and email are kept by 望京校区 (their first child's campus); "
    "ask that campus to change them, or leave them as they are."
)


@pytest.fixture
def mum(db):
    return factories.GuardianFactory(name="王妈妈", phone="+8613800138000", relation="妈妈", email="wang@example.com")


@pytest.fixture
def student(campus_a, mum):
    return factories.StudentFactory(name="王小明", campus=campus_a, guardians=[mum])


@pytest.fixture
def student_b(campus_b):
    return factories.StudentFactory(name="李小红", campus=campus_b)


def detail(guardian):
    return reverse("api_guardian_detail", args=[guardian.pk])


def add_url(student):
    return reverse("api_student_guardian_add", args=[student.pk])


# --- reading -------------------------------------------------------------------------------


def test_the_guardians_of_the_campus(client, front_desk, student, student_b, mum):
    body = as_(client, front_desk).get(LIST).json()
    assert set(body) == {"next", "previous", "results"}
    assert body["results"] == [
        {
            "id": mum.pk,
            "name": "王妈妈",
            "relation": "妈妈",
            "phone": "138 0013 8000",
            "email": "wang@example.com",
            "children": [{"id": student.pk, "name": "王小明"}],
        }
    ]


def test_a_family_across_campuses_shows_each_campus_its_own_children(client, manager_b, student, campus_b, mum):
    sibling = factories.StudentFactory(name="王小丽", campus=campus_b, guardians=[mum])
    body = as_(client, manager_b).get(detail(mum)).json()
    assert body["children"] == [{"id": sibling.pk, "name": "王小丽"}]
    assert body["home_campus"]["name"] == "望京校区" and body["kept_elsewhere"] == KEPT_ELSEWHERE


@pytest.mark.parametrize("term", ["13800138000", "138-0013-8000", "+86 138 0013 8000", "8000"])
def test_search_by_phone_in_any_format(client, manager, student, mum, term):
    factories.StudentFactory(campus=student.campus)  # another family
    body = as_(client, manager).get(LIST, {"phone": term}).json()
    assert [row["id"] for row in body["results"]] == [mum.pk]


@pytest.mark.parametrize("term", ["abc", "12", "王妈妈"])
def test_a_search_that_is_no_phone_is_a_400(client, manager, student, term):
    response = as_(client, manager).get(LIST, {"phone": term})
    assert response.status_code == 400 and list(response.json()["fields"]) == ["phone"]


def test_teachers_read_masked_and_may_not_search_by_phone(client, teacher, student, mum):
    as_(client, teacher)
    row = client.get(LIST).json()["results"][0]
    assert row["phone"] == "138 **** 8000" and row["email"] == ""
    body = client.get(detail(mum)).content.decode()
    assert "138 **** 8000" in body and "13800138000" not in body and "0013" not in body
    assert "wang@example.com" not in body
    response = client.get(LIST, {"phone": "8000"})
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"


def test_another_campus_guardian_is_a_404(client, front_desk_b, teacher_b, manager_b, mum, student):
    for user in (front_desk_b, teacher_b, manager_b):
        as_(client, user)
        assert client.get(detail(mum)).status_code == 404
        assert client.get(LIST).json()["results"] == []
        if user != teacher_b:  # who may not search by phone at all
            assert client.get(LIST, {"phone": "13800138000"}).json()["results"] == []
    as_(client, manager_b)
    assert patch(client, detail(mum), {"name": "x"}).status_code == 404
    assert post(client, add_url(student), {"phone": "13912345678"}).status_code == 404
    assert Guardian.objects.get(pk=mum.pk).name == "王妈妈" and Guardian.objects.count() == 1


@pytest.mark.parametrize("role", ["manager", "teacher", "admin_user"])
def test_a_constant_number_of_queries(client, request, campus_a, role):
    as_(client, request.getfixturevalue(role))

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert client.get(LIST).status_code == 200
        return len(queries)

    factories.StudentFactory.create_batch(2, campus=campus_a)
    small = count()
    for _ in range(20):
        factories.StudentFactory(campus=campus_a, guardians=[factories.GuardianFactory(), factories.GuardianFactory()])
    assert count() == small


# --- writing -------------------------------------------------------------------------------


def test_the_home_campus_corrects_a_guardian(client, front_desk, student, mum):
    response = patch(as_(client, front_desk), detail(mum), {"name": "王丽", "email": "Li@EXAMPLE.com"})
    assert response.status_code == 200, response.json()
    assert response.json()["name"] == "王丽" and response.json()["email"] == "Li@example.com"
    mum.refresh_from_db()
    assert (mum.name, mum.email, mum.relation) == ("王丽", "Li@example.com", "妈妈")
    entry = AuditEntry.objects.get(action=AuditAction.GUARDIAN_UPDATE)
    assert entry.actor == front_desk and entry.detail["fields"] == "email,name"


def test_another_campus_of_the_family_is_refused_as_on_the_page(client, manager_b, student, campus_b, mum):
    factories.StudentFactory(campus=campus_b, guardians=[mum])
    response = patch(as_(client, manager_b), detail(mum), {"name": "改名"})
    assert response.status_code == 400
    assert response.json()["fields"]["name"][0]["message"] == KEPT_ELSEWHERE
    assert Guardian.objects.get(pk=mum.pk).name == "王妈妈" and not AuditEntry.objects.exists()


def test_an_administrator_corrects_any_guardian(client, admin_user, student, mum):
    assert patch(as_(client, admin_user), detail(mum), {"relation": "外婆"}).status_code == 200
    assert Guardian.objects.get(pk=mum.pk).relation == "外婆"


@pytest.mark.parametrize(
    "body, field", [({"email": "nope"}, "email"), ({"name": "长" * 500}, "name"), ({"name": 5}, None)]
)
def test_a_bad_correction_is_a_400_and_writes_nothing(client, front_desk, student, mum, body, field):
    response = patch(as_(client, front_desk), detail(mum), body)
    if field is None:  # a number is read as its text: no error, a name "5"
        assert response.status_code == 200
        return
    assert response.status_code == 400 and field in response.json()["fields"], response.json()
    assert Guardian.objects.get(pk=mum.pk).name == "王妈妈" and not AuditEntry.objects.exists()


def test_a_guardian_is_added_and_a_known_phone_links_the_family(client, front_desk, student, campus_a, mum):
    as_(client, front_desk)
    response = post(client, add_url(student), {"phone": "139-1234-5678", "name": "王爸爸", "relation": "爸爸"})
    assert response.status_code == 201, response.json()
    dad = Guardian.objects.get(phone="+8613912345678")
    assert response.json()["id"] == dad.pk and response.json()["phone"] == "139 1234 5678"
    assert set(student.guardians.all()) == {mum, dad}
    # Another child's known parent: linked, never copied.
    other = factories.StudentFactory(campus=campus_a, guardians=[])
    assert post(client, add_url(other), {"phone": "13800138000"}).status_code == 201
    assert Guardian.objects.count() == 2 and list(other.guardians.all()) == [mum]
    assert AuditEntry.objects.filter(action=AuditAction.GUARDIAN_ADD).count() == 2


def test_a_retried_add_links_once(client, front_desk, student):
    as_(client, front_desk)
    body = {"phone": "13912345678", "name": "王爸爸"}
    first = post(client, add_url(student), body, HTTP_IDEMPOTENCY_KEY="add-dad")
    second = post(client, add_url(student), body, HTTP_IDEMPOTENCY_KEY="add-dad")
    assert first.status_code == second.status_code == 201 and second["Idempotent-Replayed"] == "true"
    assert AuditEntry.objects.filter(action=AuditAction.GUARDIAN_ADD).count() == 1


@pytest.mark.parametrize(
    "body, field", [({"phone": "12"}, "phone"), ({}, "phone"), ({"phone": "13912345678", "email": "x@"}, "email")]
)
def test_a_bad_guardian_is_a_400_and_writes_nothing(client, front_desk, student, body, field):
    response = post(as_(client, front_desk), add_url(student), body)
    assert response.status_code == 400 and field in response.json()["fields"], response.json()
    assert Guardian.objects.count() == 1 and not AuditEntry.objects.exists()


def test_teachers_and_strangers_may_not_write(client, teacher, student, mum):
    as_(client, teacher)
    assert patch(client, detail(mum), {"name": "x"}).status_code == 403
    assert post(client, add_url(student), {"phone": "13912345678"}).status_code == 403
    client.logout()
    assert client.get(LIST).status_code == 401
    assert client.get(detail(mum)).status_code == 401
    assert patch(client, detail(mum), {"name": "x"}).status_code == 401
    assert post(client, add_url(student), {"phone": "13912345678"}).status_code == 401
    assert Guardian.objects.count() == 1 and not AuditEntry.objects.exists()


# --- tags --------------------------------------------------------------------------------


def test_the_tag_groups_with_their_tags(client, front_desk):
    intent = factories.TagGroupFactory(name="意向度", exclusive=True)
    high = factories.TagFactory(group=intent, name="高")
    low = factories.TagFactory(group=intent, name="低")
    interest = factories.TagGroupFactory(name="兴趣")
    art = factories.TagFactory(group=interest, name="美术")
    body = as_(client, front_desk).get(TAGS).json()
    assert body["count"] == 2
    assert body["results"] == [
        {"id": interest.pk, "name": "兴趣", "exclusive": False, "tags": [{"id": art.pk, "name": "美术"}]},
        {
            "id": intent.pk,
            "name": "意向度",
            "exclusive": True,
            "tags": [{"id": low.pk, "name": "低"}, {"id": high.pk, "name": "高"}],
        },
    ]


@pytest.mark.parametrize("role", ["front_desk", "manager", "admin_user", "manager_b"])
def test_the_tags_for_the_front_office_in_constant_queries(client, request, role):
    as_(client, request.getfixturevalue(role))

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert client.get(TAGS).status_code == 200
        return len(queries)

    factories.TagFactory(group=factories.TagGroupFactory(name="g0"))
    small = count()
    for n in range(1, 20):
        group = factories.TagGroupFactory(name=f"g{n}")
        factories.TagFactory.create_batch(3, group=group)
    assert count() == small


def test_teachers_and_strangers_get_no_tags(client, teacher):
    assert client.get(TAGS).status_code == 401
    response = as_(client, teacher).get(TAGS)
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"


# --- tokens for integrations, handed out in the admin -------------------------------------------


def test_an_administrator_creates_a_token_in_the_admin(client, admin_user, manager, teacher):
    as_(client, admin_user)
    add = reverse("admin:authtoken_tokenproxy_add")
    page = client.get(add)
    assert page.status_code == 200
    choices = page.context["adminform"].form.fields["user"].queryset
    assert manager in choices and teacher in choices
    assert client.post(add, {"user": manager.pk}).status_code == 302
    token = Token.objects.get(user=manager)
    assert client.get(reverse("admin:authtoken_tokenproxy_changelist")).status_code == 200
    assert client.get("/api/v1/tags/", HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 200


def test_an_administrator_role_without_superuser_may_too(client, campus_a, manager):
    administrator = factories.UserFactory(campus=None, role="admin")
    as_(client, administrator)
    assert client.post(reverse("admin:authtoken_tokenproxy_add"), {"user": manager.pk}).status_code == 302
    assert Token.objects.filter(user=manager).exists()


def test_roleless_and_inactive_staff_get_no_token(client, admin_user, campus_a):
    roleless = factories.UserFactory(campus=campus_a)
    gone = factories.UserFactory(campus=campus_a, role="manager", is_active=False)
    as_(client, admin_user)
    choices = client.get(reverse("admin:authtoken_tokenproxy_add")).context["adminform"].form.fields["user"].queryset
    assert roleless not in choices and gone not in choices


@pytest.mark.parametrize("role", ["front_desk", "manager"])
def test_other_roles_never_see_tokens(client, request, role):
    user = request.getfixturevalue(role)
    Token.objects.create(user=user)
    as_(client, user)
    for url in (reverse("admin:authtoken_tokenproxy_changelist"), reverse("admin:authtoken_tokenproxy_add")):
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("admin:authtoken_tokenproxy_add"), {"user": user.pk}).status_code == 403
    assert "authtoken" not in client.get(reverse("admin:index")).content.decode()
