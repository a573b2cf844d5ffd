"""The parents' satisfaction endpoints (parents/api/satisfaction.py): the children a question is
due for, the answer (201, idempotent), another family's child a 404, not due a clear 400 in the
one error shape, staff tokens refused (403), strangers 401; answers audited with the parent."""

from __future__ import annotations

import json
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.authtoken.models import Token

from crm.models import AuditAction, AuditEntry, Guardian
from parents.services.sessions import session_open
from personas.models import CareTask, SatisfactionAnswer
from tests import factories
from tests.personas.test_satisfaction import NOW, attended, family_child

pytestmark = pytest.mark.django_db

DUE = reverse("parent_api:satisfaction")


def answer_url(student_id: int) -> str:
    return reverse("parent_api:child_satisfaction", args=[student_id])


@pytest.fixture(autouse=True)
def frozen() -> Any:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def as_parent(guardian: Guardian) -> Client:
    tokens = session_open(guardian=guardian, via="sms")
    return Client(HTTP_AUTHORIZATION=f"Bearer {tokens.access}")


def post(client: Client, url: str, body: Any, **headers: str) -> Any:
    return client.post(url, json.dumps(body), content_type="application/json", headers=headers)


@pytest.fixture
def family(campus_a, course_a, teacher, front_desk) -> tuple[Guardian, Any]:
    return family_child(campus_a, course_a, teacher, owner=front_desk)


def test_the_children_a_question_is_due_for(family, campus_a, course_a, teacher) -> None:
    guardian, student = family
    younger = factories.StudentFactory(campus=campus_a, guardians=[guardian])
    attended(younger, course_a, teacher, 2)
    response = as_parent(guardian).get(DUE)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    (row,) = body["results"]
    assert row["student"] == {"id": student.pk, "name": student.name}
    assert row["lessons_attended"] == 8 and row["last_answered_at"] is None
    assert campus_a.name in row["question"] and row["reason_prompt"]
    assert (row["score_min"], row["score_max"]) == (0, 10)


def test_an_answer_is_201_and_the_question_closes(family) -> None:
    guardian, student = family
    client = as_parent(guardian)
    response = post(client, answer_url(student.pk), {"score": 9, "reason": "老师很负责"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["student"], body["score"], body["category"], body["reason"]) == (
        student.pk,
        9,
        "promoter",
        "老师很负责",
    )
    assert client.get(DUE).json()["count"] == 0
    entry = AuditEntry.objects.get(action=AuditAction.SATISFACTION_ANSWER)
    assert (entry.guardian, entry.student) == (guardian, student)
    assert not CareTask.objects.exists()


def test_a_detractor_answer_opens_a_care_task(family, front_desk) -> None:
    guardian, student = family
    assert post(as_parent(guardian), answer_url(student.pk), {"score": 3, "reason": "上课时间总变"}).status_code == 201
    task = CareTask.objects.get()
    assert (task.student, task.consultant) == (student, front_desk)


def test_not_due_is_a_clear_400_and_writes_nothing(family) -> None:
    guardian, student = family
    client = as_parent(guardian)
    assert post(client, answer_url(student.pk), {"score": 8}).status_code == 201
    response = post(client, answer_url(student.pk), {"score": 2, "reason": "再说一次"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and "we will ask again from 2026-08-11" in body["message"]
    assert SatisfactionAnswer.objects.count() == 1 and not CareTask.objects.exists()


@pytest.mark.parametrize(
    "body", [{"score": 11}, {"score": -1}, {"score": "very"}, {}, {"score": 5, "reason": "长" * 10_001}, [1]]
)
def test_bad_input_is_a_400_in_the_one_shape(family, body) -> None:
    guardian, student = family
    response = post(as_parent(guardian), answer_url(student.pk), body)
    assert response.status_code == 400
    assert set(response.json()) == {"code", "message", "fields"}
    assert not SatisfactionAnswer.objects.exists()


def test_another_familys_child_is_a_404(family, campus_a, course_a, teacher) -> None:
    _guardian, student = family
    other, child = family_child(campus_a, course_a, teacher)
    client = as_parent(other)
    assert post(client, answer_url(student.pk), {"score": 1}).status_code == 404
    assert post(client, answer_url(999_999), {"score": 1}).status_code == 404
    assert [r["student"]["id"] for r in client.get(DUE).json()["results"]] == [child.pk]
    assert not SatisfactionAnswer.objects.exists()


def test_staff_are_refused_and_strangers_asked_to_log_in(family, front_desk, manager) -> None:
    _guardian, student = family
    for user in (front_desk, manager):
        token = Token.objects.create(user=user)
        staff = Client(HTTP_AUTHORIZATION=f"Token {token.key}")
        assert staff.get(DUE).status_code == 403
        assert post(staff, answer_url(student.pk), {"score": 1}).status_code == 403
        session = Client()
        session.force_login(user)
        assert session.get(DUE).status_code == 403
    stranger = Client()
    assert stranger.get(DUE).status_code == 401
    assert post(stranger, answer_url(student.pk), {"score": 1}).status_code == 401
    assert not SatisfactionAnswer.objects.exists()


def test_a_retried_answer_is_replayed_not_refused(family) -> None:
    guardian, student = family
    client = as_parent(guardian)
    first = post(client, answer_url(student.pk), {"score": 6}, **{"Idempotency-Key": "tap-1"})
    again = post(client, answer_url(student.pk), {"score": 6}, **{"Idempotency-Key": "tap-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert SatisfactionAnswer.objects.count() == 1 and CareTask.objects.count() == 1


def test_the_due_list_runs_as_many_queries_for_2_children_as_for_20(family, campus_a, course_a, teacher) -> None:
    guardian, _student = family
    client = as_parent(guardian)

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(DUE).status_code == 200
        return len(ctx.captured_queries)

    factories.StudentFactory(campus=campus_a, guardians=[guardian])
    small = count()
    for _ in range(18):
        child = factories.StudentFactory(campus=campus_a, guardians=[guardian])
        attended(child, course_a, teacher, 8)
    assert count() == small
    assert client.get(DUE).json()["count"] == 19
