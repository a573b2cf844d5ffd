"""GET /api/v1/students/<id>/persona/: the card's data, scoped like the page, every role."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from crm.models import Attendance, AttendanceStatus, TagSource
from tests import factories

NOW = dt.datetime(2026, 5, 13, 10, 0, tzinfo=dt.UTC)


def url(student):
    return reverse("api_student_persona", args=[student.pk])


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def student(campus_a, course_a, teacher):
    with time_machine.travel(NOW - dt.timedelta(days=90), tick=False):
        student = factories.StudentFactory(campus=campus_a, name="陈小雨", stage="active")
    student.guardians.update(phone="+8613800135678")
    contract = factories.ContractFactory(student=student, course=course_a, signed_at=NOW - dt.timedelta(days=80))
    Attendance.objects.bulk_create(
        Attendance(
            student=student,
            contract=contract,
            teacher=teacher,
            lesson_at=NOW - dt.timedelta(days=i + 1),
            status=AttendanceStatus.PRESENT,
            hours=Decimal("0"),
        )
        for i in range(25)
    )
    factories.StudentProfileFactory(student=student, rfm_segment="new")
    student.student_tags.create(tag=factories.TagFactory(name="升学型"), source=TagSource.RULE, rule="三年级以上")
    return student


@time_machine.travel(NOW, tick=False)
def test_the_card_as_json(api, front_desk, student):
    api.force_authenticate(front_desk)
    data = api.get(url(student)).json()
    assert data["student"]["name"] == "陈小雨"
    assert data["guardians"][0]["phone"] == "138 0013 5678"
    assert data["stage"]["stage"] == "active" and data["stage"]["days_in_stage"] >= 0
    assert data["tags"] == [{"group": "意向", "name": "升学型", "source": "rule", "rule": "三年级以上"}]
    assert data["profile"]["rfm_segment"] == "new" and data["profile"]["value_tier"] == "high"
    assert [s["code"] for s in data["journey"]][:4] == ["first_touch", "consultation", "trial", "contract"]
    assert data["journey_now"] == "lesson"
    assert len(data["attendance_weeks"]) == 12
    assert data["contracts"][0]["hours_bought"] == "40.0"
    assert data["timeline"]["page"] == 1 and data["timeline"]["next_page"] == 2
    assert len(data["timeline"]["results"]) == 20
    assert data["timeline"]["results"][0]["kind"] == "attendance"
    assert data["timeline"]["results"][0]["detail"]["status"] == "present"


@time_machine.travel(NOW, tick=False)
def test_keys_in_english_labels_in_chinese(api, front_desk, student):
    api.force_authenticate(front_desk)
    api.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    data = api.get(url(student)).json()
    assert (data["profile"]["rfm_segment"], data["profile"]["segment_label"]) == ("new", "新客户")
    assert (data["profile"]["value_tier"], data["profile"]["value_tier_label"]) == ("high", "高价值")
    assert data["journey"][0]["label"] == "首次接触"


@time_machine.travel(NOW, tick=False)
def test_the_timeline_pages(api, front_desk, student):
    api.force_authenticate(front_desk)
    second = api.get(url(student), {"page": 2}).json()["timeline"]
    # 25 lessons, a contract and the creation: 7 on page 2.
    assert second["page"] == 2 and second["next_page"] is None and len(second["results"]) == 7
    assert second["results"][-1]["kind"] == "created"
    assert api.get(url(student), {"page": "two"}).status_code == 400


@time_machine.travel(NOW, tick=False)
def test_a_constant_number_of_queries(api, front_desk, student, teacher):
    api.force_authenticate(front_desk)

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert api.get(url(student)).status_code == 200
        return len(ctx.captured_queries)

    count()  # the first request also reads the viewer's role, kept on the forced user
    small = count()
    contract = student.contracts.get()
    Attendance.objects.bulk_create(
        Attendance(
            student=student,
            contract=contract,
            teacher=teacher,
            lesson_at=NOW - dt.timedelta(hours=i + 1),
            status=AttendanceStatus.ABSENT,
            hours=Decimal("0"),
        )
        for i in range(300)
    )
    assert count() == small


@time_machine.travel(NOW, tick=False)
def test_every_role_of_the_campus(api, front_desk, teacher, manager, admin_user, student):
    for user in (front_desk, manager, admin_user):
        api.force_authenticate(user)
        assert api.get(url(student)).json()["guardians"][0]["phone"] == "138 0013 5678"
    api.force_authenticate(teacher)
    response = api.get(url(student))
    assert response.status_code == 200
    assert response.json()["guardians"][0]["phone"] == "138 **** 5678"
    assert "13800135678" not in response.content.decode() and "0013" not in response.content.decode()


def test_another_campus_is_a_404(api, front_desk_b, teacher_b, manager_b, student):
    for user in (front_desk_b, teacher_b, manager_b):
        api.force_authenticate(user)
        assert api.get(url(student)).status_code == 404


def test_anonymous_and_roleless_users_are_refused(api, campus_a, student):
    assert api.get(url(student)).status_code in (401, 403)
    api.force_authenticate(factories.UserFactory(campus=campus_a))  # no role group
    assert api.get(url(student)).status_code == 403


def test_a_session_login_works_and_writes_are_refused(client, front_desk, student):
    client.force_login(front_desk)
    assert client.get(url(student)).status_code == 200
    assert client.post(url(student), {}).status_code in (403, 405)


def test_the_schema_describes_it():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/v1/students/{id}/persona/"]["get"]
    assert operation["operationId"] == "student_persona"
    assert {p["name"] for p in operation["parameters"]} >= {"id", "page"}
    assert "PersonaCard" in schema["components"]["schemas"]
