"""The persona card page at /students/<id>/: its sections, the next action one click from its
form, the paged timeline, and who may see and act."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm.models import Attendance, AttendanceStatus, Consultation, TagSource, TrialStatus
from lifecycle.models import StudentActivity
from personas.next_action import NextActionCode
from tests import factories

NOW = dt.datetime(2026, 5, 13, 10, 0, tzinfo=dt.UTC)


def chinese(client, user):
    client.force_login(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    return client


@pytest.fixture
def regular(campus_a, course_a, teacher):
    """An active, high-value student at risk, with a rule tag and a manual one."""
    with time_machine.travel(NOW - dt.timedelta(days=120), tick=False):
        student = factories.StudentFactory(campus=campus_a, name="陈小雨", stage="active")
    contract = factories.ContractFactory(student=student, course=course_a, signed_at=NOW - dt.timedelta(days=100))
    Attendance.objects.bulk_create(
        Attendance(
            student=student,
            contract=contract,
            teacher=teacher,
            lesson_at=NOW - dt.timedelta(days=3 * i + 1),
            status=AttendanceStatus.PRESENT if i % 4 else AttendanceStatus.ABSENT,
            hours=Decimal("0"),
        )
        for i in range(30)
    )
    student.pipeline.at_risk, student.pipeline.risk_recent, student.pipeline.risk_before = True, 2, 6
    student.pipeline.save()
    StudentActivity.objects.create(student=student, consecutive_absences=0)
    factories.StudentProfileFactory(student=student, remaining_hours=Decimal("30"))
    student.student_tags.create(tag=factories.TagFactory(name="升学型"), source=TagSource.RULE, rule="三年级以上")
    student.student_tags.create(tag=factories.TagFactory(name="高意向"))
    return student


@time_machine.travel(NOW, tick=False)
def test_the_card_in_chinese(client, front_desk, regular):
    html = chinese(client, front_desk).get(reverse("student_detail", args=[regular.pk])).content.decode()
    for section in ("profile", "family", "stage", "value", "behaviour", "journey", "contracts", "actions", "timeline"):
        assert f'id="{section}"' in html, section
    assert "重要价值" in html or "冠军" in html or 'data-segment="champions"' in html
    assert 'data-tier="high"' in html
    assert "有流失风险" in html or 'data-flag="at_risk"' in html
    assert "下降 67%" in html  # the at-risk reason in words: 2 against 6
    assert "三年级以上" in html  # the rule that set the tag is named
    assert 'data-next-action="care_call"' in html
    assert 'id="persona-chart-data"' in html and "echarts.common.min.js" in html


@time_machine.travel(NOW, tick=False)
def test_no_profile_yet_is_said_plainly(client, front_desk, campus_a):
    student = factories.StudentFactory(campus=campus_a)
    html = chinese(client, front_desk).get(reverse("student_detail", args=[student.pk])).content.decode()
    assert "data-no-profile" in html and "画像尚未计算" in html


@time_machine.travel(NOW, tick=False)
def test_the_next_action_opens_its_form_prefilled_and_focused(client, front_desk, campus_a, course_a, teacher):
    student = factories.StudentFactory(campus=campus_a, stage="trial")
    factories.TrialLessonFactory(
        student=student,
        course=course_a,
        teacher=teacher,
        scheduled_at=NOW - dt.timedelta(days=5),
        status=TrialStatus.ATTENDED,
    )
    client.force_login(front_desk)
    url = reverse("student_detail", args=[student.pk])
    html = client.get(url).content.decode()
    assert f'href="?do={NextActionCode.DECISION_CALL}"' in html
    html = client.get(url, {"do": NextActionCode.DECISION_CALL}).content.decode()
    assert 'details id="consultation" open' in html
    assert "autofocus" in html and "Decision call: trial lesson 5 days ago, no contract since." in html
    # Recording it is the consultation form as ever.
    response = client.post(
        reverse("student_action", args=[student.pk, "consultation"]),
        {"c-channel": "phone", "c-intent": "high", "c-content": "Decision call: 家长考虑中"},
    )
    assert response.status_code == 302
    assert Consultation.objects.get(student=student).content == "Decision call: 家长考虑中"


@time_machine.travel(NOW, tick=False)
def test_a_stale_suggestion_is_not_prefilled(client, front_desk, regular):
    client.force_login(front_desk)
    html = client.get(reverse("student_detail", args=[regular.pk]), {"do": "renewal_call"}).content.decode()
    assert "autofocus" not in html


@time_machine.travel(NOW, tick=False)
def test_the_timeline_pages(client, front_desk, regular):
    client.force_login(front_desk)
    html = client.get(reverse("student_detail", args=[regular.pk])).content.decode()
    assert html.count('data-kind="attendance"') == 20
    assert "data-older" in html
    more = client.get(reverse("student_timeline", args=[regular.pk]), {"page": 2}).content.decode()
    # 30 lessons, a contract, the creation: 12 on page 2, and nothing older.
    assert more.count("data-kind=") == 12 and "data-older" not in more
    assert 'data-kind="created"' in more
    assert client.get(reverse("student_detail", args=[regular.pk]), {"page": "x"}).status_code == 200


@time_machine.travel(NOW, tick=False)
def test_teachers_see_the_card_with_masked_phones_and_no_forms(client, teacher, regular):
    guardian = regular.guardians.get()
    client.force_login(teacher)
    html = client.get(reverse("student_detail", args=[regular.pk])).content.decode()
    assert 'id="actions"' not in html and "data-next-action-link" not in html
    assert guardian.phone not in html and guardian.phone[3:] not in html
    assert client.get(reverse("student_timeline", args=[regular.pk])).status_code == 200


def test_another_campus_gets_a_404_everywhere(client, front_desk_b, teacher_b, manager_b, regular):
    for user in (front_desk_b, teacher_b, manager_b):
        client.force_login(user)
        assert client.get(reverse("student_detail", args=[regular.pk])).status_code == 404
        assert client.get(reverse("student_timeline", args=[regular.pk])).status_code == 404
        post = client.post(reverse("student_action", args=[regular.pk, "consultation"]), {"c-content": "x"})
        assert post.status_code in (403, 404)
    assert not Consultation.objects.exists()


def test_anonymous_goes_to_log_in(client, regular):
    for url in (reverse("student_detail", args=[regular.pk]), reverse("student_timeline", args=[regular.pk])):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response.url


@time_machine.travel(NOW, tick=False)
def test_manager_and_admin_act_on_the_card(client, manager, admin_user, regular):
    for user in (manager, admin_user):
        client.force_login(user)
        assert 'id="actions"' in client.get(reverse("student_detail", args=[regular.pk])).content.decode()


def test_teachers_may_not_record_on_the_card(client, teacher, regular):
    client.force_login(teacher)
    for action in ("consultation", "trial", "contract", "lost", "guardian"):
        assert client.post(reverse("student_action", args=[regular.pk, action]), {}).status_code == 403
    assert not Consultation.objects.exists()


@time_machine.travel(NOW, tick=False)
def test_the_page_runs_as_many_queries_for_500_touches_as_for_5(client, front_desk, regular, teacher):
    client.force_login(front_desk)
    url = reverse("student_detail", args=[regular.pk])
    client.get(url)

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx.captured_queries)

    small = count()
    contract = regular.contracts.get()
    Attendance.objects.bulk_create(
        Attendance(
            student=regular,
            contract=contract,
            teacher=teacher,
            lesson_at=NOW - dt.timedelta(hours=i + 1),
            hours=Decimal("0"),
        )
        for i in range(470)
    )
    assert count() == small
    assert count() < 25
