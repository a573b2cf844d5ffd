"""What a logged-in parent reads and asks: their children only (one phone, any campus), a
child's page in constant queries, trial requests that reach the front desk, message
preferences with proof, and their family's data."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from campaigns.models import ConsentRecord, ConsentSource
from crm.models import AuditAction, AuditEntry, Student
from parents.models import TrialRequest
from tests import factories
from tests.conftest import bearer

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)


def child_of(guardian, campus=None) -> Student:
    children = Student.objects.filter(guardians=guardian)
    return (children.filter(campus=campus) if campus else children).get()


def url(name, *args):
    return reverse(f"parent_api:{name}", args=args)


class TestChildren:
    def test_one_phone_sees_its_children_in_every_campus_and_no_other(
        self, client, parent_two_campuses, parent_a, campus_a, campus_b
    ):
        response = client.get(url("children"), **bearer(parent_two_campuses))
        assert response.status_code == 200
        rows = response.json()["results"]
        assert sorted((r["name"], r["campus"]) for r in rows) == [("张一", campus_a.name), ("张二", campus_b.name)]
        other = child_of(parent_a)
        assert client.get(url("child", other.pk), **bearer(parent_two_campuses)).status_code == 404
        assert client.get(url("child_attendance", other.pk), **bearer(parent_two_campuses)).status_code == 404
        assert client.get(url("child_courses", other.pk), **bearer(parent_two_campuses)).status_code == 404

    def test_hours_left_add_up_the_active_contracts(self, client, parent_a, course_a):
        child = child_of(parent_a)
        factories.ContractFactory(student=child, course=course_a, hours_bought=Decimal("20"))
        factories.ContractFactory(student=child, course=course_a, hours_bought=Decimal("10"), status="refunded")
        [row] = client.get(url("children"), **bearer(parent_a)).json()["results"]
        assert row["hours_left"] == "20.0"

    def test_staff_and_strangers_are_refused(self, client, parent_a, manager):
        child = child_of(parent_a)
        assert client.get(url("child", child.pk)).status_code == 401
        client.force_login(manager)
        assert client.get(url("child", child.pk)).status_code == 403


def history(child, course, teacher, n):
    contract = factories.ContractFactory(student=child, course=course, hours_bought=Decimal(n + 10))
    for i in range(n):
        factories.AttendanceFactory(
            student=child,
            contract=contract,
            teacher=teacher,
            lesson_at=NOW - dt.timedelta(days=i + 1),
            hours=Decimal("1"),
            feedback=f"第{i}课表现很好" if i % 2 else "",
        )
        lesson = factories.LessonFactory(course=course, teacher=teacher, starts_at=NOW + dt.timedelta(days=i + 1))
        lesson.students.add(child)
    factories.TrialLessonFactory(
        student=child,
        course=course,
        teacher=teacher,
        scheduled_at=NOW - dt.timedelta(days=60, minutes=child.pk),
        rating=5,
        comment="专注",
    )


class TestChildPage:
    def test_the_page_shows_lessons_hours_attendance_and_feedback(self, client, parent_a, course_a, teacher):
        child = child_of(parent_a)
        history(child, course_a, teacher, 3)
        with time_machine.travel(NOW, tick=False):
            body = client.get(url("child", child.pk), **bearer(parent_a)).json()
        assert body["child"]["name"] == "王小明"
        assert len(body["upcoming_lessons"]) == 3 and body["upcoming_lessons"][0]["course"] == course_a.name
        assert body["hours_left"] == "13.0"  # factories record attendance without consuming hours
        assert [a["status"] for a in body["recent_attendance"]] == ["present"] * 3
        times = [a["lesson_at"] for a in body["recent_attendance"]]
        assert times == sorted(times, reverse=True)  # newest lesson first, whatever the entry order
        kinds = [(f["kind"], f["comment"]) for f in body["feedback"]]
        assert ("lesson", "第1课表现很好") in kinds and ("trial", "专注") in kinds
        assert "phone" not in str(body["upcoming_lessons"])  # teachers are names only

    def test_the_page_runs_the_same_queries_for_3_or_30_lessons(self, client, parent_a, parent_b, course_a, teacher):
        small, big = child_of(parent_a), child_of(parent_b)
        history(small, course_a, teacher, 3)
        history(big, course_a, teacher, 30)
        counts = []
        for guardian, child in ((parent_a, small), (parent_b, big)):
            headers = bearer(guardian)
            with time_machine.travel(NOW, tick=False), CaptureQueriesContext(connection) as queries:
                assert client.get(url("child", child.pk), **headers).status_code == 200
            counts.append(len(queries))
        assert counts[0] == counts[1], counts

    def test_the_attendance_history_pages_by_cursor(self, client, parent_a, course_a, teacher):
        child = child_of(parent_a)
        history(child, course_a, teacher, 30)
        first = client.get(url("child_attendance", child.pk) + "?page_size=20", **bearer(parent_a)).json()
        assert len(first["results"]) == 20 and first["next"]
        second = client.get(first["next"], **bearer(parent_a)).json()
        assert len(second["results"]) == 10 and not second["next"]
        times = [a["lesson_at"] for a in first["results"] + second["results"]]
        assert times == sorted(times, reverse=True) and len(set(times)) == 30


class TestTrialRequests:
    def post(self, client, guardian, child, body, **headers):
        return client.post(
            url("trial_requests", child.pk), body, content_type="application/json", **bearer(guardian), **headers
        )

    def test_a_request_reaches_the_front_desk_and_is_handled(self, client, parent_a, course_a, front_desk):
        child = child_of(parent_a)
        with time_machine.travel(NOW, tick=False):
            response = self.post(
                client,
                parent_a,
                child,
                {"wished_at": "2026-06-06T10:00:00+08:00", "course": course_a.pk, "note": "周末上午"},
            )
        assert response.status_code == 201, response.json()
        request = TrialRequest.objects.get()
        assert (request.student, request.campus, request.course, request.subject) == (
            child,
            child.campus,
            course_a,
            course_a.subject,
        )
        assert AuditEntry.objects.filter(action=AuditAction.TRIAL_REQUEST, guardian=parent_a, student=child).exists()
        client.force_login(front_desk)
        page = client.get(reverse("followups")).content.decode()
        assert f'data-trial-request="{request.pk}"' in page and "周末上午" in page
        handled = client.post(reverse("trial_request_handle", args=[request.pk]), {"outcome": "booked"})
        assert handled.status_code == 302
        request.refresh_from_db()
        assert request.status == "booked" and request.handled_by == front_desk
        assert f'data-trial-request="{request.pk}"' not in client.get(reverse("followups")).content.decode()

    def test_another_campus_neither_sees_nor_handles_it(self, client, parent_a, front_desk_b, teacher):
        child = child_of(parent_a)
        request = TrialRequest.objects.create(
            guardian=parent_a, student=child, campus=child.campus, wished_at=NOW + dt.timedelta(days=3)
        )
        for viewer in (front_desk_b, teacher):
            client.force_login(viewer)
            assert f'data-trial-request="{request.pk}"' not in client.get(reverse("followups")).content.decode()
            assert client.post(
                reverse("trial_request_handle", args=[request.pk]), {"outcome": "booked"}
            ).status_code in (
                403,
                404,
            )
        request.refresh_from_db()
        assert request.status == "open"

    def test_bad_requests_are_refused_and_write_nothing(self, client, parent_a, course_b):
        child = child_of(parent_a)
        with time_machine.travel(NOW, tick=False):
            past = self.post(client, parent_a, child, {"wished_at": "2026-05-01T10:00:00+08:00"})
            assert past.status_code == 400 and "wished_at" in past.json()["fields"]
            other_campus = self.post(
                client, parent_a, child, {"wished_at": "2026-06-06T10:00:00+08:00", "course": course_b.pk}
            )
            assert other_campus.status_code == 400 and "course" in other_campus.json()["fields"]
            garbage = self.post(client, parent_a, child, {"wished_at": "soon"})
            assert garbage.status_code == 400
            # The first instant of the calendar, before year 1 once in UTC: a 400, not an overflow.
            edge = self.post(client, parent_a, child, {"wished_at": "0001-01-01T00:00:00"})
            assert edge.status_code == 400 and "wished_at" in edge.json()["fields"]
        assert not TrialRequest.objects.exists()

    def test_a_replayed_idempotency_key_creates_nothing_new(self, client, parent_a):
        child = child_of(parent_a)
        body = {"wished_at": "2026-06-06T10:00:00+08:00"}
        with time_machine.travel(NOW, tick=False):
            first = self.post(client, parent_a, child, body, HTTP_IDEMPOTENCY_KEY="k-1")
            # Each call logs in afresh (self.post): a second session of the same parent replays.
            again = self.post(client, parent_a, child, body, HTTP_IDEMPOTENCY_KEY="k-1")
            other_body = self.post(client, parent_a, child, {**body, "note": "x"}, HTTP_IDEMPOTENCY_KEY="k-1")
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
        assert other_body.status_code == 422 and other_body.json()["code"] == "idempotency_key_reused"
        assert TrialRequest.objects.count() == 1

    def test_another_familys_child_is_a_404(self, client, parent_a, parent_b):
        with time_machine.travel(NOW, tick=False):
            response = self.post(client, parent_b, child_of(parent_a), {"wished_at": "2026-06-06T10:00:00+08:00"})
        assert response.status_code == 404 and not TrialRequest.objects.exists()


class TestPreferences:
    def test_switches_record_consent_with_proof_and_unsubscribe_stops_all(self, client, parent_a):
        headers = bearer(parent_a)
        before = client.get(url("preferences"), **headers).json()
        assert {c["channel"]: c["granted"] for c in before["channels"]} == {
            "sms": False,
            "email": False,
            "wechat": False,
        }
        on = client.patch(url("preferences"), {"sms": True, "wechat": True}, content_type="application/json", **headers)
        assert {c["channel"]: c["granted"] for c in on.json()["channels"]} == {
            "sms": True,
            "email": False,
            "wechat": True,
        }
        record = ConsentRecord.objects.get(channel="sms")
        assert record.granted and record.source == ConsentSource.PARENT_APP and "SMS" in record.wording
        # The same switch again records nothing.
        client.patch(url("preferences"), {"sms": True}, content_type="application/json", **headers)
        assert ConsentRecord.objects.count() == 2
        off = client.post(url("unsubscribe"), **headers)
        assert not any(c["granted"] for c in off.json()["channels"])
        assert ConsentRecord.objects.filter(granted=False).count() == 2
        assert AuditEntry.objects.filter(action=AuditAction.PARENT_CONSENT, guardian=parent_a).count() == 2

    def test_a_bad_value_is_a_400(self, client, parent_a):
        response = client.patch(
            url("preferences"), {"sms": "maybe"}, content_type="application/json", **bearer(parent_a)
        )
        assert response.status_code == 400 and "sms" in response.json()["fields"]
        assert not ConsentRecord.objects.exists()


class TestFamilyData:
    def test_the_download_holds_the_family_and_nobody_else(self, client, parent_a, parent_b, course_a, teacher):
        history(child_of(parent_a), course_a, teacher, 2)
        history(child_of(parent_b), course_a, teacher, 2)
        response = client.get(url("data"), **bearer(parent_a))
        assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
        data = response.json()
        assert data["guardian"]["phone"] == "138 0013 8001"
        assert [c["name"] for c in data["children"]] == ["王小明"]
        assert len(data["attendance"]) == 2 and len(data["contracts"]) == 1
        assert "李小红" not in response.content.decode()
        assert AuditEntry.objects.filter(action=AuditAction.PARENT_DATA_EXPORT, guardian=parent_a).exists()


def test_the_download_holds_satisfaction_answers_and_rewards(client, parent_a):
    from personas.models import SatisfactionAnswer

    SatisfactionAnswer.objects.create(
        student=child_of(parent_a), guardian=parent_a, score=9, reason="老师耐心", answered_at=NOW
    )
    data = client.get(url("data"), **bearer(parent_a)).json()
    assert [(a["score"], a["reason"]) for a in data["satisfaction"]] == [(9, "老师耐心")]
    assert data["referral_rewards"] == []
