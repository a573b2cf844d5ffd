"""The care tasks in /followups/ (a consultant's own, a manager's campus's with the unowned ones,
nothing of another campus), their "done" form (care_task_close), the page's constant queries,
and the persona card's feedback dimension with the parents' answers."""

from __future__ import annotations

from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm.models import AuditAction, AuditEntry, User
from personas.models import CareTask, CareTaskStatus, SatisfactionAnswer
from personas.services.satisfaction import satisfaction_answer
from tests import factories
from tests.personas.test_satisfaction import DAY, NOW, family_child

pytestmark = pytest.mark.django_db

FOLLOWUPS = reverse("followups")


@pytest.fixture(autouse=True)
def frozen() -> Any:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def detractor(campus, course, teacher, owner: User | None, reason: str = "作业太多") -> CareTask:
    guardian, student = family_child(campus, course, teacher, owner=owner)
    answer = satisfaction_answer(guardian=guardian, student=student, score=4, reason=reason)
    return CareTask.objects.get(answer=answer)


def care_rows(client: Client) -> list[int]:
    response = client.get(FOLLOWUPS)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-section="care"' in html
    tasks = [s for s in response.context["sections"] if s.template == "personas/_followup_care.html"]
    return [t.pk for t in tasks[0].context["tasks"]]


def test_the_consultant_sees_their_own_and_the_manager_the_campus(
    campus_a, course_a, teacher, front_desk, manager, manager_b, front_desk_b
) -> None:
    mine = detractor(campus_a, course_a, teacher, front_desk)
    colleague = factories.UserFactory(campus=campus_a, role="front_desk")
    theirs = detractor(campus_a, course_a, teacher, colleague)
    unowned = detractor(campus_a, course_a, teacher, None)
    assert care_rows(logged_in(front_desk)) == [mine.pk]
    assert care_rows(logged_in(colleague)) == [theirs.pk]
    assert care_rows(logged_in(manager)) == [mine.pk, theirs.pk, unowned.pk]
    for other in (manager_b, front_desk_b):
        assert care_rows(logged_in(other)) == []
    html = logged_in(front_desk).get(FOLLOWUPS).content.decode()
    assert f'data-care-task="{mine.pk}"' in html and "作业太多" in html and 'data-score="4"' in html


def test_closing_from_the_page(campus_a, course_a, teacher, front_desk) -> None:
    task = detractor(campus_a, course_a, teacher, front_desk)
    client = logged_in(front_desk)
    response = client.post(reverse("care_task_done", args=[task.pk]), {"note": "已回电，家长满意"})
    assert response.status_code == 302 and response["Location"] == FOLLOWUPS
    task.refresh_from_db()
    assert (task.status, task.note, task.done_by) == (CareTaskStatus.DONE, "已回电，家长满意", front_desk)
    assert AuditEntry.objects.filter(action=AuditAction.CARE_TASK_CLOSE, actor=front_desk).count() == 1
    assert care_rows(client) == []
    # Sent twice (a double tap): told it is done, nothing written again.
    assert client.post(reverse("care_task_done", args=[task.pk]), {}).status_code == 302
    assert AuditEntry.objects.filter(action=AuditAction.CARE_TASK_CLOSE).count() == 1


def test_who_may_not_close_it(campus_a, course_a, teacher, front_desk, manager_b, front_desk_b) -> None:
    task = detractor(campus_a, course_a, teacher, front_desk)
    url = reverse("care_task_done", args=[task.pk])
    colleague = factories.UserFactory(campus=campus_a, role="front_desk")
    assert logged_in(colleague).post(url).status_code == 403
    assert logged_in(teacher).post(url).status_code == 403
    for other in (manager_b, front_desk_b):
        assert logged_in(other).post(url).status_code == 404
    assert logged_in(front_desk).get(url).status_code == 405
    assert Client().post(url).status_code == 302  # to the login page
    assert CareTask.objects.get().status == CareTaskStatus.OPEN


def test_the_page_runs_as_many_queries_for_20_tasks_as_for_2(campus_a, course_a, teacher, front_desk, manager) -> None:
    for viewer in (front_desk, manager):
        CareTask.objects.all().delete()
        for _ in range(2):
            detractor(campus_a, course_a, teacher, front_desk)
        client = logged_in(viewer)
        client.get(FOLLOWUPS)

        def count() -> int:
            with CaptureQueriesContext(connection) as ctx:
                assert client.get(FOLLOWUPS).status_code == 200  # noqa: B023
            return len(ctx.captured_queries)

        small = count()
        for _ in range(18):
            detractor(campus_a, course_a, teacher, front_desk)
        assert count() == small
        assert len(care_rows(client)) == 20


def test_the_card_shows_the_parents_answers(campus_a, course_a, teacher, front_desk) -> None:
    task = detractor(campus_a, course_a, teacher, front_desk, reason="换了老师不习惯")
    client = logged_in(front_desk)
    url = reverse("student_detail", args=[task.student_id])

    def count() -> tuple[str, int]:
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url)
        assert response.status_code == 200
        return response.content.decode(), len(ctx.captured_queries)

    html, small = count()
    assert 'id="feedback"' in html and "换了老师不习惯" in html and 'data-score="4"' in html
    assert "1 answer, average 4.0, NPS -100" in html
    for score in (9, 10, 8):  # older answers, straight into the table (the service refuses within a quarter)
        SatisfactionAnswer.objects.create(student_id=task.student_id, score=score, answered_at=NOW - score * 30 * DAY)
    html, big = count()
    assert big == small and "4 answers, average 7.8, NPS 25" in html
    api = client.get(reverse("api_student_persona", args=[task.student_id])).json()["satisfaction"]
    assert api["count"] == 4 and api["nps"] == 25 and api["latest"]["reason"] == "换了老师不习惯"
    assert api["latest"]["category"] == "detractor" and api["average"] == "7.8"
