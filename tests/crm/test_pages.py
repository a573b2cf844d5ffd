"""The staff pages through the test client: landing per role, the front desk's and the
teacher's work, denials per role and campus, and constant query counts."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crm.models import (
    Attendance,
    AttendanceStatus,
    Consultation,
    Contract,
    Guardian,
    Lesson,
    Student,
    TrialLesson,
    TrialStatus,
)
from crm.phones import phone_display
from crm.services.contracts import AttendanceMark, lesson_attendance_record
from tests import factories

pytestmark = pytest.mark.django_db


def login(client, user):
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("actor", "landing"),
    [
        ("front_desk", "followups"),
        ("teacher", "teacher_today"),
        ("manager", "followups"),
        ("admin_user", "student_list"),
    ],
)
def test_each_role_lands_on_its_home(client, request, actor, landing):
    login(client, request.getfixturevalue(actor))
    response = client.get("/")
    assert response.status_code == 302
    assert response.url == reverse(landing)


def test_login_page_logs_in_and_lands_on_role_home(client, front_desk):
    response = client.post(reverse("login"), {"username": "alice", "password": "pass-1234"})
    assert response.status_code == 302
    assert client.get(response.url).status_code == 302  # "/" sends the consultant on to follow-ups


def test_pages_require_login(client):
    for name in ("followups", "lead_capture", "student_list", "teacher_today"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


@pytest.mark.parametrize("page", ["followups", "lead_capture", "student_list"])
def test_teacher_cannot_open_front_desk_pages(client, teacher, page):
    login(client, teacher)
    assert client.get(reverse(page)).status_code == 403


def test_front_desk_cannot_open_teacher_day(client, front_desk):
    login(client, front_desk)
    assert client.get(reverse("teacher_today")).status_code == 403


class TestLeadCapture:
    def post(self, client, **data):
        payload = {"phone": "", "student_name": "", "channel": "douyin", **data}
        return client.post(reverse("lead_capture"), payload)

    def test_captures_a_new_family(self, client, front_desk):
        login(client, front_desk)
        response = self.post(client, phone="138-0013-8000", student_name="王小明", guardian_name="王妈妈")
        student = Student.objects.get(name="王小明")
        assert response.status_code == 302
        assert response.url == reverse("student_detail", args=[student.pk])
        assert student.campus == front_desk.campus and student.owner == front_desk
        assert list(student.guardians.values_list("phone", flat=True)) == ["+8613800138000"]

    def test_existing_family_is_shown_not_duplicated(self, client, front_desk, campus_a):
        guardian = factories.GuardianFactory(phone="+8613800138000", name="王妈妈")
        factories.StudentFactory(name="王小明", campus=campus_a, guardians=[guardian])
        login(client, front_desk)
        response = self.post(client, phone="+86 138 0013 8000", student_name="王小红")
        assert response.status_code == 200
        assert "This phone already belongs to a family" in response.content.decode()
        assert Guardian.objects.count() == 1 and Student.objects.count() == 1

        response = self.post(client, phone="13800138000", student_name="王小红", add_to_family="on")
        assert response.status_code == 302
        assert set(guardian.students.values_list("name", flat=True)) == {"王小明", "王小红"}
        assert Guardian.objects.count() == 1

    def test_live_check_says_new_or_existing(self, client, front_desk, campus_a, campus_b):
        guardian = factories.GuardianFactory(phone="+8613800138000")
        factories.StudentFactory(name="王小明", campus=campus_a, guardians=[guardian])
        factories.StudentFactory(name="李秘密", campus=campus_b, guardians=[guardian])
        login(client, front_desk)
        url = reverse("lead_check_phone")
        assert 'data-family="new"' in client.get(url, {"phone": "13900000000"}).content.decode()
        assert 'data-family="invalid"' in client.get(url, {"phone": "1380"}).content.decode()
        existing = client.get(url, {"phone": "138 0013 8000"}).content.decode()
        assert 'data-family="existing"' in existing and "王小明" in existing
        assert "李秘密" not in existing  # another campus's child is counted, never named
        assert "1 child at another campus" in existing

    def test_bad_phone_is_a_form_error(self, client, front_desk):
        login(client, front_desk)
        response = self.post(client, phone="12345", student_name="王小明")
        assert response.status_code == 200
        assert "is not a valid phone number" in response.content.decode()
        assert not Student.objects.exists()

    def test_no_source_channel_is_preselected_and_one_is_required(self, client, front_desk):
        login(client, front_desk)
        html = client.get(reverse("lead_capture")).content.decode()
        channel = re.search(r'<select name="channel"[^>]*>(.*?)</select>', html, re.S)
        assert channel and re.search(r"\brequired\b", channel.group(0))
        assert '<option value="" selected>Choose…</option>' in channel.group(1)
        assert channel.group(1).count("selected") == 1
        response = self.post(client, phone="13800138000", student_name="王小明", channel="")
        assert response.status_code == 200
        assert "This field is required." in response.content.decode()
        assert not Student.objects.exists()

    def test_relation_and_grade_are_pickers_and_save_their_words(self, client, front_desk):
        login(client, front_desk)
        html = client.get(reverse("lead_capture")).content.decode()
        for name, option in (("relation", "母亲"), ("grade", "高三"), ("grade", "幼儿园大班"), ("grade", "成人")):
            picker = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', html, re.S)
            assert picker and f'<option value="{option}">' in picker.group(1), name
        response = self.post(client, phone="13800138000", student_name="王小明", relation="父亲", grade="初二")
        assert response.status_code == 302
        student = Student.objects.get()
        assert (student.grade, student.guardians.get().relation) == ("初二", "父亲")
        response = self.post(client, phone="13900139000", student_name="李小红", relation="干妈")
        assert response.status_code == 200
        assert not Student.objects.filter(name="李小红").exists()


class TestStudentPage:
    def test_shows_family_and_timeline(self, client, front_desk, campus_a, course_a, teacher):
        student = factories.StudentFactory(campus=campus_a, name="王小明")
        factories.ConsultationFactory(student=student, consultant=front_desk, content="问了编程课")
        factories.TrialLessonFactory(student=student, course=course_a, teacher=teacher)
        contract = factories.ContractFactory(student=student, course=course_a)
        factories.AttendanceFactory(student=student, contract=contract, teacher=teacher)
        login(client, front_desk)
        html = client.get(reverse("student_detail", args=[student.pk])).content.decode()
        for kind in ("consultation", "trial", "contract", "attendance", "created"):
            assert f'data-kind="{kind}"' in html
        assert "问了编程课" in html
        assert phone_display(student.guardians.get().phone) in html  # front desk sees the full number

    def test_other_campus_student_is_404(self, client, front_desk, teacher, manager, campus_b):
        other = factories.StudentFactory(campus=campus_b)
        for user in (front_desk, teacher, manager):
            login(client, user)
            assert client.get(reverse("student_detail", args=[other.pk])).status_code == 404
            assert client.post(reverse("student_action", args=[other.pk, "lost"]), {"l-reason": "x"}).status_code in (
                403,
                404,
            )
        assert Student.objects.get(pk=other.pk).lost_at is None

    def test_admin_sees_every_campus(self, client, admin_user, campus_b):
        other = factories.StudentFactory(campus=campus_b)
        login(client, admin_user)
        assert client.get(reverse("student_detail", args=[other.pk])).status_code == 200

    def test_teacher_sees_masked_phones_and_no_actions(self, client, teacher, campus_a):
        guardian = factories.GuardianFactory(phone="+8613800135678")
        student = factories.StudentFactory(campus=campus_a, guardians=[guardian])
        login(client, teacher)
        html = client.get(reverse("student_detail", args=[student.pk])).content.decode()
        assert "138 **** 5678" in html
        assert "13800135678" not in html and "+8613800135678" not in html
        assert 'id="actions"' not in html
        response = client.post(
            reverse("student_action", args=[student.pk, "consultation"]),
            {"c-channel": "phone", "c-content": "x", "c-intent": "high"},
        )
        assert response.status_code == 403
        assert not Consultation.objects.exists()

    def test_log_consultation_sets_follow_up(self, client, front_desk, campus_a):
        student = factories.StudentFactory(campus=campus_a)
        login(client, front_desk)
        follow_up = (timezone.localtime() + dt.timedelta(days=2)).replace(second=0, microsecond=0)
        response = client.post(
            reverse("student_action", args=[student.pk, "consultation"]),
            {
                "c-channel": "visit",
                "c-intent": "high",
                "c-content": "家长想了解周末班",
                "c-next_follow_up_at": follow_up.strftime("%Y-%m-%dT%H:%M"),
            },
        )
        assert response.status_code == 302
        student.refresh_from_db()
        assert student.next_follow_up_at == follow_up
        assert student.consultations.get().consultant == front_desk

    def test_service_errors_show_on_the_form(self, client, front_desk, campus_a):
        student = factories.StudentFactory(campus=campus_a)
        login(client, front_desk)
        past = timezone.localtime() - dt.timedelta(days=1)
        response = client.post(
            reverse("student_action", args=[student.pk, "consultation"]),
            {
                "c-channel": "visit",
                "c-intent": "high",
                "c-content": "x",
                "c-next_follow_up_at": past.strftime("%Y-%m-%dT%H:%M"),
            },
        )
        assert response.status_code == 400
        assert "The next follow-up must come after the consultation." in response.content.decode()
        assert not Consultation.objects.exists()

    def test_book_trial_refuses_a_busy_teacher(self, client, front_desk, campus_a, course_a, teacher):
        student = factories.StudentFactory(campus=campus_a)
        when = (timezone.localtime() + dt.timedelta(days=1)).replace(hour=15, minute=0, second=0, microsecond=0)
        factories.TrialLessonFactory(teacher=teacher, course=course_a, scheduled_at=when + dt.timedelta(minutes=30))
        login(client, front_desk)
        data = {"t-course": course_a.pk, "t-teacher": teacher.pk, "t-duration_minutes": 60}
        busy = client.post(
            reverse("student_action", args=[student.pk, "trial"]),
            {**data, "t-scheduled_at": when.strftime("%Y-%m-%dT%H:%M")},
        )
        assert busy.status_code == 400
        assert "already has a lesson at this time" in busy.content.decode()
        free = client.post(
            reverse("student_action", args=[student.pk, "trial"]),
            {**data, "t-scheduled_at": (when + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")},
        )
        assert free.status_code == 302
        assert student.trials.get().teacher == teacher

    def test_other_campus_course_cannot_be_chosen(self, client, front_desk, campus_a, course_b, teacher):
        student = factories.StudentFactory(campus=campus_a)
        login(client, front_desk)
        response = client.post(
            reverse("student_action", args=[student.pk, "contract"]),
            {"k-course": course_b.pk, "k-hours_bought": "40", "k-amount": "8000", "k-paid_amount": "8000"},
        )
        assert response.status_code == 400
        assert not Contract.objects.exists()


class TestTeacherDay:
    def make_day(self, campus, teacher, course, n, hour=10):
        now = timezone.localtime().replace(hour=hour, minute=0, second=0, microsecond=0)
        lesson = factories.LessonFactory(course=course, teacher=teacher, starts_at=now + dt.timedelta(hours=5))
        for i in range(n):
            student = factories.StudentFactory(campus=campus)
            factories.TrialLessonFactory(
                student=student, course=course, teacher=teacher, scheduled_at=now + dt.timedelta(minutes=i)
            )
            factories.ContractFactory(student=student, course=course)
            lesson.students.add(student)
        return lesson

    def test_teacher_records_trial_feedback(self, client, teacher, campus_a, course_a):
        self.make_day(campus_a, teacher, course_a, 1)
        trial = TrialLesson.objects.get()
        login(client, teacher)
        html = client.get(reverse("teacher_today")).content.decode()
        assert f'data-trial="{trial.pk}"' in html
        response = client.post(
            reverse("trial_feedback", args=[trial.pk]),
            {f"f{trial.pk}-attended": "1", f"f{trial.pk}-rating": "4", f"f{trial.pk}-comment": "专注力好"},
        )
        assert response.status_code == 302
        trial.refresh_from_db()
        assert (trial.status, trial.rating, trial.comment) == (TrialStatus.ATTENDED, 4, "专注力好")

    def test_feedback_needs_a_rating(self, client, teacher, campus_a, course_a):
        self.make_day(campus_a, teacher, course_a, 1)
        trial = TrialLesson.objects.get()
        login(client, teacher)
        response = client.post(
            reverse("trial_feedback", args=[trial.pk]), {f"f{trial.pk}-attended": "1", f"f{trial.pk}-comment": "好"}
        )
        assert response.status_code == 400
        assert "Give a rating from 1 to 5." in response.content.decode()

    def sheet_post(self, client, lesson, statuses):
        prefix = f"l{lesson.pk}"
        data = {f"{prefix}-status_{student.pk}": status for student, status in statuses.items()}
        return client.post(reverse("lesson_attendance", args=[lesson.pk]), data)

    def test_the_sheet_lists_everyone_present_and_saves_the_lesson_at_once(self, client, teacher, campus_a, course_a):
        lesson = self.make_day(campus_a, teacher, course_a, 3)
        lesson.students.add(factories.StudentFactory(campus=campus_a, name="没合同"))  # no hours to take
        a, b, c = lesson.students.exclude(name="没合同").order_by("pk")
        login(client, teacher)
        html = client.get(reverse("teacher_today")).content.decode()
        present = re.findall(rf'<input type="radio" name="l{lesson.pk}-status_(\d+)" value="present"([^>]*)>', html)
        # Everyone with hours to take is on the sheet, present until marked otherwise.
        assert sorted(int(pk) for pk, _ in present) == [a.pk, b.pk, c.pk]
        assert all(" checked" in attributes for _, attributes in present)
        assert "Save attendance for 3 students" in html

        response = self.sheet_post(
            client, lesson, {a: AttendanceStatus.PRESENT, b: AttendanceStatus.ABSENT, c: AttendanceStatus.LEAVE}
        )
        assert response.status_code == 302
        hours = {s.name: s.attendances.get().hours for s in (a, b, c)}
        assert hours == {a.name: Decimal("1"), b.name: Decimal("1"), c.name: Decimal("0")}
        html = client.get(response.url).content.decode()
        assert "Attendance saved for 少儿编程 L1: 1 present, 1 absent, 1 on leave." in html
        assert f'data-student="{b.pk}" data-recorded="absent"' in html
        assert "Save attendance for" not in html  # nobody left to record
        assert "Correct" in html

    def test_attendance_beyond_hours_refuses_the_whole_sheet_with_the_hours_left(
        self, client, teacher, campus_a, course_a
    ):
        lesson = self.make_day(campus_a, teacher, course_a, 2)
        short, other = lesson.students.order_by("pk")
        Contract.objects.filter(student=short).update(hours_bought=Decimal("40"), hours_consumed=Decimal("39.5"))
        login(client, teacher)
        response = self.sheet_post(client, lesson, {short: AttendanceStatus.PRESENT, other: AttendanceStatus.PRESENT})
        assert response.status_code == 400
        assert f"{short.name}: Only 0.5 hours are left on this contract; 1.0 cannot be recorded." in (
            response.content.decode()
        )
        assert not lesson.attendances.exists()
        response = self.sheet_post(client, lesson, {short: AttendanceStatus.LEAVE, other: AttendanceStatus.PRESENT})
        assert response.status_code == 302
        assert short.attendances.get().hours == 0

    def test_a_sheet_with_a_missing_status_is_refused_without_a_500(self, client, teacher, campus_a, course_a):
        lesson = self.make_day(campus_a, teacher, course_a, 2)
        first, _second = lesson.students.order_by("pk")
        login(client, teacher)
        response = self.sheet_post(client, lesson, {first: "late"})
        assert response.status_code == 400
        assert not lesson.attendances.exists()

    def test_another_campus_cannot_post_a_sheet(self, client, teacher, manager_b, campus_a, course_a):
        lesson = self.make_day(campus_a, teacher, course_a, 1)
        login(client, manager_b)
        response = self.sheet_post(client, lesson, {lesson.students.get(): AttendanceStatus.PRESENT})
        assert response.status_code == 404
        assert not lesson.attendances.exists()

    def test_a_teacher_corrects_today_only_a_manager_any_day(self, client, teacher, manager, campus_a, course_a):
        lesson = self.make_day(campus_a, teacher, course_a, 1)
        student = lesson.students.get()
        login(client, teacher)
        self.sheet_post(client, lesson, {student: AttendanceStatus.ABSENT})
        row = student.attendances.get()
        url = reverse("attendance_correct", args=[row.pk])
        assert f'action="{url}"' in client.get(reverse("teacher_today")).content.decode()
        response = client.post(url, {f"c{row.pk}-status": AttendanceStatus.LEAVE, f"c{row.pk}-reason": "补请假"})
        assert response.status_code == 302
        row.refresh_from_db()
        assert (row.status, row.hours) == (AttendanceStatus.LEAVE, 0)
        assert "Attendance of" in client.get(response.url).content.decode()

        Attendance.objects.filter(pk=row.pk).update(lesson_at=row.lesson_at - dt.timedelta(days=1))
        Lesson.objects.filter(pk=lesson.pk).update(starts_at=lesson.starts_at - dt.timedelta(days=1))
        yesterday = (timezone.localdate(lesson.starts_at) - dt.timedelta(days=1)).isoformat()
        html = client.get(reverse("teacher_today") + f"?date={yesterday}").content.decode()
        assert f'action="{url}"' not in html
        response = client.post(url, {f"c{row.pk}-status": AttendanceStatus.PRESENT})
        assert response.status_code == 400
        assert "only on the day of the lesson" in response.content.decode()

        login(client, manager)
        html = client.get(reverse("teacher_today") + f"?date={yesterday}&teacher={teacher.pk}").content.decode()
        assert f'action="{url}"' in html
        assert client.post(url, {f"c{row.pk}-status": AttendanceStatus.PRESENT}).status_code == 302
        row.refresh_from_db()
        assert (row.status, row.hours) == (AttendanceStatus.PRESENT, Decimal("1"))

    def test_teacher_sees_masked_phones_only(self, client, teacher, campus_a, course_a):
        self.make_day(campus_a, teacher, course_a, 2)
        login(client, teacher)
        html = client.get(reverse("teacher_today")).content.decode()
        for phone in Guardian.objects.values_list("phone", flat=True):
            assert phone[3:] not in html
            assert f"{phone[3:6]} **** {phone[-4:]}" in html
            assert phone_display(phone) not in html

    def test_another_teacher_cannot_record_feedback(self, client, teacher, campus_a, course_a):
        self.make_day(campus_a, teacher, course_a, 1)
        trial = TrialLesson.objects.get()
        other = factories.UserFactory(campus=campus_a, role="teacher")
        login(client, other)
        response = client.post(
            reverse("trial_feedback", args=[trial.pk]),
            {f"f{trial.pk}-attended": "1", f"f{trial.pk}-rating": "4", f"f{trial.pk}-comment": "x"},
        )
        assert response.status_code == 403
        trial.refresh_from_db()
        assert trial.status == TrialStatus.BOOKED

    def test_teacher_of_other_campus_cannot_touch_the_trial(self, client, teacher_b, teacher, campus_a, course_a):
        self.make_day(campus_a, teacher, course_a, 1)
        trial = TrialLesson.objects.get()
        login(client, teacher_b)
        response = client.post(reverse("trial_feedback", args=[trial.pk]), {f"f{trial.pk}-attended": "0"})
        assert response.status_code == 404


def count_queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


class TestQueryCounts:
    """Each page runs the same number of queries with 2 rows as with 12."""

    def grow_followups(self, campus, owner, n):
        due = timezone.now() - dt.timedelta(hours=1)
        for _ in range(n):
            student = factories.StudentFactory(campus=campus, owner=owner, next_follow_up_at=due)
            factories.ConsultationFactory(student=student, consultant=owner)
            tag = factories.TagFactory()
            student.student_tags.create(tag=tag)

    def test_followups(self, client, front_desk, campus_a):
        login(client, front_desk)
        self.grow_followups(campus_a, front_desk, 2)
        small = count_queries(client, reverse("followups"))
        self.grow_followups(campus_a, front_desk, 10)
        assert count_queries(client, reverse("followups")) == small

    def grow_history(self, student, course, staff, teacher, n):
        for _ in range(n):
            factories.ConsultationFactory(student=student, consultant=staff)
            factories.TrialLessonFactory(
                student=student, course=course, teacher=teacher, scheduled_at=timezone.now() + dt.timedelta(days=_ + 1)
            )
            contract = factories.ContractFactory(student=student, course=course)
            factories.AttendanceFactory(student=student, contract=contract, teacher=teacher)
            student.guardians.add(factories.GuardianFactory())
            student.student_tags.create(tag=factories.TagFactory())

    def test_student_page(self, client, front_desk, campus_a, course_a, teacher):
        student = factories.StudentFactory(campus=campus_a)
        login(client, front_desk)
        url = reverse("student_detail", args=[student.pk])
        self.grow_history(student, course_a, front_desk, teacher, 2)
        small = count_queries(client, url)
        self.grow_history(student, course_a, front_desk, teacher, 10)
        assert count_queries(client, url) == small

    def test_teacher_day(self, client, teacher, campus_a, course_a):
        login(client, teacher)
        TestTeacherDay().make_day(campus_a, teacher, course_a, 2)
        small = count_queries(client, reverse("teacher_today"))
        TestTeacherDay().make_day(campus_a, teacher, course_a, 10, hour=8)
        assert count_queries(client, reverse("teacher_today")) == small

    def test_teacher_day_with_its_attendance_recorded(self, client, teacher, campus_a, course_a):
        """Recorded rows bring their correction forms: still the same number of queries."""
        login(client, teacher)
        for n, hour in ((2, 10), (10, 8)):
            lesson = TestTeacherDay().make_day(campus_a, teacher, course_a, n, hour=hour)
            marks = [AttendanceMark(student=s) for s in lesson.students.all()]
            lesson_attendance_record(actor=teacher, lesson=lesson, marks=marks)
            if n == 2:
                small = count_queries(client, reverse("teacher_today"))
        assert count_queries(client, reverse("teacher_today")) == small

    def test_student_list(self, client, front_desk, campus_a):
        login(client, front_desk)
        self.grow_followups(campus_a, front_desk, 2)
        small = count_queries(client, reverse("student_list"))
        self.grow_followups(campus_a, front_desk, 10)
        assert count_queries(client, reverse("student_list")) == small

    def test_a_family_and_its_children_with_their_stages(self, client, front_desk, campus_a):
        """The phone check and the student page list a family's children with their stage
        badges (read from StudentStage): as many queries for 2 children as for 8."""
        guardian = factories.GuardianFactory(phone="+8613800138000")
        first = factories.StudentFactory(campus=campus_a, guardians=[guardian], stage="trial")
        login(client, front_desk)
        check = reverse("lead_check_phone") + "?phone=13800138000"
        page = reverse("student_detail", args=[first.pk])

        def grow(n):
            for _ in range(n):
                factories.StudentFactory(campus=campus_a, guardians=[guardian], stage="active")

        grow(1)
        small = (count_queries(client, check), count_queries(client, page))
        grow(6)
        assert (count_queries(client, check), count_queries(client, page)) == small
        html = client.get(check).content.decode()
        assert html.count('class="badge stage-active"') == 7


def test_a_landline_shows_as_dialled_on_every_page(client, front_desk, teacher, campus_a):
    """Defect 2.6: a Beijing landline showed as 1062345678, without its leading 0."""
    landline = factories.GuardianFactory(phone="+861062345678")
    mobile = factories.GuardianFactory(phone="+8613800138000")
    student = factories.StudentFactory(
        campus=campus_a,
        owner=front_desk,
        guardians=[landline, mobile],
        next_follow_up_at=timezone.now() - dt.timedelta(hours=1),
    )
    login(client, front_desk)
    pages = {
        "list": reverse("student_list"),
        "detail": reverse("student_detail", args=[student.pk]),
        "followups": reverse("followups"),
        "family check": reverse("lead_check_phone") + "?phone=01062345678",
    }
    for name, url in pages.items():
        html = client.get(url).content.decode()
        assert "010-6234 5678" in html, name
        assert ">1062345678" not in html and " 1062345678" not in html, name
    html = client.get(pages["detail"]).content.decode()
    assert "138 0013 8000" in html

    login(client, teacher)
    html = client.get(pages["detail"]).content.decode()
    assert "010-**** 5678" in html and "138 **** 8000" in html
    assert "6234" not in html and "0013" not in html
