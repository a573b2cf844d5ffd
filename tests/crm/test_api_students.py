"""The students API under /api/v1/students/ (lifecycle/api/students.py): the board's filters,
scoped like the pages, written through crm's services with the pages' rules, errors in the one
JSON shape, a constant number of queries, and integrations signing in with a staff token."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.authtoken.models import Token

from crm.models import AuditAction, AuditEntry, Guardian, Stage, Student, StudentTag
from tests import factories
from tests.crm.json_client import as_, patch, post

pytestmark = pytest.mark.django_db

LIST = "/api/v1/students/"


@pytest.fixture
def mum(db):
    return factories.GuardianFactory(name="王妈妈", phone="+8613800138000", relation="妈妈")


@pytest.fixture
def student(campus_a, mum):
    return factories.StudentFactory(name="王小明", campus=campus_a, guardians=[mum])


@pytest.fixture
def student_b(campus_b):
    return factories.StudentFactory(name="李小红", campus=campus_b)


def detail(student):
    return reverse("api_student_detail", args=[student.pk])


def lead(**extra):
    return {"phone": "139 1234 5678", "student_name": "张小华", "channel": "douyin", **extra}


# --- reading -------------------------------------------------------------------------------


def test_the_list_shows_the_campus_newest_first(client, front_desk, student, student_b, campus_a):
    newer = factories.StudentFactory(name="陈小东", campus=campus_a, stage=Stage.TRIAL)
    newer.pipeline.at_risk = True
    newer.pipeline.save()
    body = as_(client, front_desk).get(LIST).json()
    assert [row["id"] for row in body["results"]] == [newer.pk, student.pk]
    assert set(body) == {"next", "previous", "results"}  # a cursor: never a count
    row = body["results"][0]
    assert row["stage"] == "trial" and row["flags"] == ["at_risk"]
    assert row["campus"] == {"id": campus_a.pk, "name": campus_a.name}
    assert set(row) == {
        "id",
        "name",
        "campus",
        "grade",
        "channel",
        "stage",
        "flags",
        "owner",
        "created_at",
        "guardians",
    }
    mum_row = body["results"][1]["guardians"][0]
    assert mum_row == {"id": mum_row["id"], "name": "王妈妈", "relation": "妈妈", "phone": "138 0013 8000"}


def test_an_administrator_sees_every_campus_and_chooses_one(client, admin_user, student, student_b, campus_b):
    as_(client, admin_user)
    assert {row["id"] for row in client.get(LIST).json()["results"]} == {student.pk, student_b.pk}
    assert [row["id"] for row in client.get(LIST, {"campus": campus_b.pk}).json()["results"]] == [student_b.pk]


def test_the_boards_filters_apply(client, manager, campus_a, student):
    trial = factories.StudentFactory(campus=campus_a, stage=Stage.TRIAL, channel="referral")
    tag = factories.TagFactory(name="高意向")
    StudentTag.objects.create(student=student, tag=tag)
    as_(client, manager)

    def ids(**params):
        response = client.get(LIST, params)
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids(stage=["trial", "active"]) == [trial.pk]
    assert ids(channel="referral") == [trial.pk]
    assert ids(tag=tag.pk) == [student.pk]
    assert ids(q="王小明") == [student.pk]
    assert ids(q="138-0013-8000") == [student.pk]  # a parent's phone typed in any format
    assert ids(owner="null") == [trial.pk, student.pk]
    assert ids(value_tier="high") == []  # a filter personas contributes


def test_a_segment_filters_the_list(client, manager, campus_a, student):
    dormant = factories.StudentFactory(campus=campus_a, stage=Stage.DORMANT)
    segment = factories.SegmentFactory(
        campus=campus_a, conditions={"all": [{"field": "stage", "op": "in", "value": ["dormant"]}]}
    )
    response = as_(client, manager).get(LIST, {"segment": segment.pk})
    assert [row["id"] for row in response.json()["results"]] == [dormant.pk]


@pytest.mark.parametrize(
    "params",
    [
        {"stage": "asleep"},
        {"channel": "tv"},
        {"flag": "sad"},
        {"tag": "abc"},
        {"tag": "999999"},
        {"owner": "abc"},
        {"value_tier": "gold"},
        {"segment": "1x"},
        {"campus": "999999"},
        {"cursor": "not-a-cursor"},
        {"cursor": "cD1hYmM="},  # decodes, but its position ("abc") is no id
    ],
)
def test_a_bad_filter_is_a_400_in_the_one_shape(client, manager, student, params):
    response = as_(client, manager).get(LIST, params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid" and body["message"]
    assert list(body["fields"]) == list(params)


def test_a_campus_only_administrators_choose(client, manager, student, campus_a, campus_b):
    as_(client, manager)
    assert client.get(LIST, {"campus": campus_a.pk}).status_code == 200
    assert client.get(LIST, {"campus": campus_b.pk}).status_code == 400


def test_the_detail(client, front_desk, student, mum):
    tag = factories.TagFactory(name="编程")
    StudentTag.objects.create(student=student, tag=tag)
    body = as_(client, front_desk).get(detail(student)).json()
    assert body["name"] == "王小明" and body["stage"] == "lead"
    assert body["tags"][0]["id"] == tag.pk and body["tags"][0]["name"] == "编程"
    assert body["guardians"][0]["phone"] == "138 0013 8000"


def test_teachers_read_with_phones_masked_and_may_not_search_by_phone(client, teacher, student):
    as_(client, teacher)
    row = client.get(LIST).json()["results"][0]
    assert row["guardians"][0]["phone"] == "138 **** 8000"
    assert client.get(detail(student)).json()["guardians"][0]["phone"] == "138 **** 8000"
    assert "13800138000" not in client.get(detail(student)).content.decode()
    # A search by digits would give away the digits the mask hides.
    for term in ("13800138000", "0013"):
        response = client.get(LIST, {"q": term})
        assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert client.get(LIST, {"q": "王小明"}).status_code == 200


def test_another_campus_student_is_a_404(client, front_desk_b, teacher_b, manager_b, student):
    for user in (front_desk_b, teacher_b, manager_b):
        as_(client, user)
        assert client.get(detail(student)).status_code == 404
        assert client.get(LIST).json()["results"] == []
    as_(client, manager_b)
    assert patch(client, detail(student), {"grade": "四年级"}).status_code == 404
    assert post(client, reverse("api_student_close_lost", args=[student.pk]), {"reason": "x"}).status_code == 404
    assert Student.objects.get(pk=student.pk).grade == "三年级"


def list_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("role", ["manager", "teacher", "admin_user"])
def test_a_constant_number_of_queries(client, request, campus_a, role):
    as_(client, request.getfixturevalue(role))
    owner = factories.UserFactory(campus=campus_a, role="front_desk")
    factories.StudentFactory.create_batch(2, campus=campus_a, owner=owner)
    small = list_queries(client, LIST)
    for _ in range(20):
        factories.StudentFactory(campus=campus_a, owner=factories.UserFactory(campus=campus_a, role="front_desk"))
    large = list_queries(client, LIST)
    assert small == large
    assert list_queries(client, f"{LIST}?stage=lead&channel=douyin") == large


GENERATE = """
    WITH made AS (
        INSERT INTO crm_student
            (name, gender, grade, school, campus_id, channel, notes, lost_reason, created_at, updated_at)
        SELECT 'student ' || g, '', '', '', CASE WHEN g %% 50 = 0 THEN %(small)s ELSE %(big)s END, 'douyin', '', '',
               now(), now()
        FROM generate_series(1, 4000) AS g
        RETURNING id, campus_id
    )
    INSERT INTO crm_studentstage (student_id, campus_id, stage, at_risk, risk_recent, risk_before, renewal_due)
    SELECT id, campus_id, 'lead', false, 0, 0, false FROM made
"""


def test_the_default_page_is_a_walk_down_the_primary_key(client, campus_a, campus_b):
    """The load test's query (1,000,000 students, 50 requests a second): no COUNT, and the newest
    rows of the campus read backward along the primary key and cut by the LIMIT, never collected
    and sorted. (A campus this small, 80 rows, is sorted whole, which is cheaper; checked by hand
    on 200,000 rows, a campus of 1% walks the primary key too, in about a millisecond.)"""
    with connection.cursor() as cursor:
        cursor.execute(GENERATE, {"big": campus_a.pk, "small": campus_b.pk})
        cursor.execute("ANALYZE crm_student; ANALYZE crm_studentstage")
    viewer = factories.UserFactory(campus=campus_a, role="manager")
    with CaptureQueriesContext(connection) as queries:
        assert as_(client, viewer).get(LIST).status_code == 200
    statements = [q["sql"] for q in queries.captured_queries]
    assert not any("COUNT(" in sql for sql in statements)
    (sql,) = [sql for sql in statements if 'FROM "crm_student" ' in sql]
    assert 'ORDER BY "crm_student"."id" DESC LIMIT 51' in sql
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan Backward using crm_student_pkey on crm_student" in plan, plan
    assert "Sort" not in plan and "Hash" not in plan, plan


# --- writing -------------------------------------------------------------------------------


def test_a_lead_is_captured_phone_first(client, front_desk, campus_a):
    response = post(as_(client, front_desk), LIST, lead(guardian_name="张爸爸", relation="爸爸"))
    assert response.status_code == 201, response.json()
    body = response.json()
    student = Student.objects.get(pk=body["id"])
    assert student.campus == campus_a and student.owner == front_desk and student.channel == "douyin"
    assert body["guardians"][0]["phone"] == "139 1234 5678" and body["stage"] == "lead"
    assert Guardian.objects.get(phone="+8613912345678").name == "张爸爸"
    assert AuditEntry.objects.filter(action=AuditAction.LEAD_CAPTURE, student=student, actor=front_desk).exists()


def test_a_known_family_is_refused_unless_added_to(client, front_desk, student, mum):
    as_(client, front_desk)
    response = post(client, LIST, lead(phone="138-0013-8000"))
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "existing_family"
    assert body["message"] == "This phone already belongs to a family. Open it, or add this child as a sibling."
    assert list(body["fields"]) == ["phone"]
    assert Student.objects.count() == 1
    response = post(client, LIST, lead(phone="138-0013-8000", add_to_family=True))
    assert response.status_code == 201
    assert set(mum.students.values_list("name", flat=True)) == {"王小明", "张小华"}
    assert Guardian.objects.count() == 1
    # The same child twice in one family: the page's message.
    again = post(client, LIST, lead(phone="138-0013-8000", add_to_family=True))
    assert (
        again.status_code == 400
        and again.json()["fields"]["student_name"][0]["message"] == "张小华 is already in this family."
    )


@pytest.mark.parametrize(
    "body, field",
    [
        (lead(phone="12"), "phone"),
        (lead(student_name=""), "student_name"),
        ({"phone": "139 1234 5678", "channel": "douyin"}, "student_name"),
        (lead(channel="tv"), "channel"),
        (lead(gender="x"), "gender"),
        (lead(birth_date="1800-01-01"), "birth_date"),
        (lead(birth_date="soon"), "birth_date"),
        (lead(guardian_email="not-an-email"), "guardian_email"),
        (lead(student_name="长" * 500), "student_name"),
        (lead(owner=999999), "owner"),
        (lead(campus="x"), "campus"),
    ],
)
def test_bad_input_is_a_400_and_writes_nothing(client, front_desk, campus_a, body, field):
    response = post(as_(client, front_desk), LIST, body)
    assert response.status_code == 400, response.json()
    problem = response.json()
    assert problem["code"] == "invalid" and problem["message"] and field in problem["fields"]
    assert not Student.objects.exists() and not Guardian.objects.exists() and not AuditEntry.objects.exists()


def test_staff_capture_for_their_own_campus_and_administrators_choose_one(
    client, manager, admin_user, campus_a, campus_b
):
    assert post(as_(client, manager), LIST, lead(campus=campus_b.pk)).status_code == 400
    response = post(as_(client, admin_user), LIST, lead())
    assert response.status_code == 400 and "campus" in response.json()["fields"]
    assert not Student.objects.exists()
    response = post(client, LIST, lead(campus=campus_b.pk))
    assert response.status_code == 201 and Student.objects.get().campus == campus_b


def test_a_retried_capture_creates_one_student(client, front_desk):
    as_(client, front_desk)
    first = post(client, LIST, lead(), HTTP_IDEMPOTENCY_KEY="capture-1")
    second = post(client, LIST, lead(), HTTP_IDEMPOTENCY_KEY="capture-1")
    assert first.status_code == second.status_code == 201
    assert second["Idempotent-Replayed"] == "true" and second.json() == first.json()
    assert Student.objects.count() == 1
    assert AuditEntry.objects.filter(action=AuditAction.LEAD_CAPTURE).count() == 1


def test_a_student_is_corrected(client, manager, student, campus_a):
    owner = factories.UserFactory(campus=campus_a, role="front_desk")
    response = patch(as_(client, manager), detail(student), {"grade": "四年级", "owner": owner.pk, "channel": "flyer"})
    assert response.status_code == 200, response.json()
    assert response.json()["owner"] == {"id": owner.pk, "name": str(owner)}
    student.refresh_from_db()
    assert (student.grade, student.owner, student.channel) == ("四年级", owner, "flyer")
    entry = AuditEntry.objects.get(action=AuditAction.STUDENT_UPDATE)
    assert entry.actor == manager and entry.detail["fields"] == "channel,grade,owner"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": ""}, "name"),
        ({"channel": "tv"}, "channel"),
        ({"birth_date": "2999-01-01"}, "birth_date"),
        ({"notes": "x" * 100_000}, "notes"),
        ({}, "non_field_errors"),
    ],
)
def test_a_bad_correction_is_a_400_and_writes_nothing(client, manager, student, body, field):
    response = patch(as_(client, manager), detail(student), body)
    assert response.status_code == 400 and field in response.json()["fields"], response.json()
    assert not AuditEntry.objects.exists()


def test_an_owner_of_another_campus_or_role_is_refused(client, manager, student, campus_a, campus_b):
    as_(client, manager)
    other_campus = factories.UserFactory(campus=campus_b, role="front_desk")
    teacher = factories.UserFactory(campus=campus_a, role="teacher")
    assert patch(client, detail(student), {"owner": other_campus.pk}).status_code == 400
    response = patch(client, detail(student), {"owner": teacher.pk})
    assert response.status_code == 400 and "owner" in response.json()["fields"]
    assert Student.objects.get(pk=student.pk).owner is None


def test_close_as_lost(client, front_desk, student):
    url = reverse("api_student_close_lost", args=[student.pk])
    as_(client, front_desk)
    refused = post(client, url, {"reason": "  "})
    assert (
        refused.status_code == 400 and refused.json()["fields"]["reason"][0]["message"] == "Say why this lead is lost."
    )
    response = post(client, url, {"reason": "价格太高"})
    assert response.status_code == 200 and response.json()["lost_reason"] == "价格太高"
    assert AuditEntry.objects.filter(action=AuditAction.LEAD_CLOSE_LOST, student=student).count() == 1


def test_tags_added_replaced_and_removed(client, front_desk, student):
    intent = factories.TagGroupFactory(name="意向度", exclusive=True)
    high = factories.TagFactory(group=intent, name="高")
    low = factories.TagFactory(group=intent, name="低")
    add = reverse("api_student_tag_add", args=[student.pk])
    as_(client, front_desk)
    response = post(client, add, {"tag": high.pk})
    assert response.status_code == 201 and [t["name"] for t in response.json()["tags"]] == ["高"]
    # An exclusive group keeps one tag: the newer judgement replaces the older.
    assert [t["name"] for t in post(client, add, {"tag": low.pk}).json()["tags"]] == ["低"]
    assert list(StudentTag.objects.filter(student=student).values_list("tag", flat=True)) == [low.pk]
    assert post(client, add, {"tag": 999999}).status_code == 400
    assert post(client, add, {"tag": "高"}).status_code == 400
    remove = reverse("api_student_tag_remove", args=[student.pk, low.pk])
    assert client.delete(remove).status_code == 204
    assert client.delete(remove).status_code == 204  # a retry: no longer held, nothing written
    assert client.delete(reverse("api_student_tag_remove", args=[student.pk, 999999])).status_code == 404
    assert not StudentTag.objects.exists()
    actions = list(AuditEntry.objects.filter(student=student).order_by("pk").values_list("action", flat=True))
    assert actions == [
        AuditAction.STUDENT_TAG_ADD,
        AuditAction.STUDENT_TAG_REMOVE,
        AuditAction.STUDENT_TAG_ADD,
        AuditAction.STUDENT_TAG_REMOVE,
    ]


def writes(student, tag):
    return [
        ("post", LIST, lead()),
        ("patch", detail(student), {"grade": "四年级"}),
        ("post", reverse("api_student_close_lost", args=[student.pk]), {"reason": "太远"}),
        ("post", reverse("api_student_tag_add", args=[student.pk]), {"tag": tag.pk}),
        ("delete", reverse("api_student_tag_remove", args=[student.pk, tag.pk]), None),
    ]


def call(client, method, url, body):
    if method == "delete":
        return client.delete(url)
    return (post if method == "post" else patch)(client, url, body)


def test_teachers_may_not_write(client, teacher, student):
    tag = factories.TagFactory()
    StudentTag.objects.create(student=student, tag=tag)
    as_(client, teacher)
    for method, url, body in writes(student, tag):
        response = call(client, method, url, body)
        assert response.status_code == 403, url
        assert response.json()["code"] == "permission_denied"
    assert Student.objects.count() == 1 and StudentTag.objects.count() == 1 and not AuditEntry.objects.exists()


def test_strangers_are_asked_to_sign_in(client, student):
    tag = factories.TagFactory()
    assert client.get(LIST).status_code == 401
    assert client.get(detail(student)).status_code == 401
    for method, url, body in writes(student, tag):
        assert call(client, method, url, body).status_code == 401, url


def test_a_parent_token_is_refused(client, student, mum):
    from parents.services.sessions import session_open

    tokens = session_open(guardian=mum, via="sms")
    response = client.get(LIST, HTTP_AUTHORIZATION=f"Bearer {tokens.access}")
    assert response.status_code == 403


# --- integrations: a staff token -----------------------------------------------------------


def test_an_integration_lists_students_with_a_managers_token(client, manager, student):
    token = Token.objects.create(user=manager)
    response = client.get(LIST, HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [student.pk]


def test_a_token_of_a_deactivated_or_roleless_user_is_refused(client, manager, campus_a, student):
    token = Token.objects.create(user=manager)
    manager.is_active = False
    manager.save()
    roleless = Token.objects.create(user=factories.UserFactory(campus=campus_a))
    for key in (token.key, roleless.key, "not-a-key"):
        response = client.get(LIST, HTTP_AUTHORIZATION=f"Token {key}")
        assert response.status_code == 401, key
        assert response.json()["code"] == "authentication_failed"
