"""The staff API's trials and attendance (crm/api/trials.py, attendance.py): teachers work
with their own trials and lessons only, as on their day page; writes go through the same
services (the overlap refusal, the hours bought, who may correct); errors in the one shape
with nothing written; lists in a constant number of queries; creating POSTs idempotent."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from crm.models import Attendance, AttendanceStatus, AuditAction, TrialLesson, TrialStatus
from tests import factories
from tests.crm.records_api import as_, assert_constant_queries, assert_error, audit_count, parent_client, post

pytestmark = pytest.mark.django_db

TRIALS = reverse("api_trial_list")
ATTENDANCE = reverse("api_attendance_list")


def feedback_url(trial):
    return reverse("api_trial_feedback", args=[trial.pk])


def cancel_url(trial):
    return reverse("api_trial_cancel", args=[trial.pk])


def sheet_url(lesson):
    return reverse("api_lesson_attendance", args=[lesson.pk])


def correct_url(attendance):
    return reverse("api_attendance_correct", args=[attendance.pk])


def in_days(days, hour=10):
    """A local time `days` from today, at `hour` o'clock."""
    day = timezone.localdate() + dt.timedelta(days=days)
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


@pytest.fixture
def student_a(campus_a):
    return factories.StudentFactory(campus=campus_a, name="小明")


@pytest.fixture
def other_teacher(campus_a):
    return factories.UserFactory(username="ted", display_name="李老师", campus=campus_a, role="teacher")


def trial_of(student, course, teacher, **kwargs):
    return factories.TrialLessonFactory(
        student=student, course=course, teacher=teacher, scheduled_at=kwargs.pop("at", in_days(2)), **kwargs
    )


# --- who may call -------------------------------------------------------------------------


@pytest.mark.parametrize("url", [TRIALS, ATTENDANCE])
def test_strangers_are_asked_to_sign_in_and_parents_are_refused(client, url):
    assert_error(client.get(url), 401)
    assert_error(parent_client().get(url), 403)


def test_a_teacher_never_sees_a_parents_phone(client, teacher, student_a, course_a):
    """No list here carries a phone at all, so a teacher cannot read one in full."""
    trial_of(student_a, course_a, teacher)
    contract = factories.ContractFactory(student=student_a, course=course_a)
    factories.AttendanceFactory(student=student_a, contract=contract, teacher=teacher)
    phone = student_a.guardians.get().phone
    as_(client, teacher)
    for url in (TRIALS, ATTENDANCE):
        response = client.get(url)
        assert response.status_code == 200 and response.json()["results"], url
        assert phone[-8:] not in response.content.decode(), url


# --- trials -------------------------------------------------------------------------------


def booking(student, course, teacher, at=None, **extra):
    return {
        "student": student.pk,
        "course": course.pk,
        "teacher": teacher.pk,
        "scheduled_at": (at or in_days(2)).isoformat(),
        **extra,
    }


def test_front_desk_books_a_trial_through_the_service(client, front_desk, student_a, course_a, teacher):
    response = post(as_(client, front_desk), TRIALS, booking(student_a, course_a, teacher, duration_minutes=45))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["teacher"] == {"id": teacher.pk, "name": "王老师"} and body["status"] == "booked"
    assert TrialLesson.objects.get().booked_by == front_desk
    assert audit_count(AuditAction.TRIAL_BOOK) == 1


def test_a_teacher_already_teaching_then_is_refused_as_on_the_page(client, front_desk, student_a, course_a, teacher):
    trial_of(factories.StudentFactory(campus=student_a.campus), course_a, teacher, at=in_days(2))
    body = assert_error(
        post(
            as_(client, front_desk),
            TRIALS,
            booking(student_a, course_a, teacher, at=in_days(2) + dt.timedelta(minutes=30)),
        ),
        400,
        "scheduled_at",
    )
    assert "already has a lesson" in body["message"]
    assert TrialLesson.objects.count() == 1 and audit_count(AuditAction.TRIAL_BOOK) == 0


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"scheduled_at": "2001-01-01T10:00:00+08:00"}, "scheduled_at"),  # in the past
        ({"scheduled_at": "2099-01-01T10:00:00+08:00"}, "scheduled_at"),  # beyond a year ahead
        ({"scheduled_at": "tomorrow"}, "scheduled_at"),
        ({"duration_minutes": 600}, "duration_minutes"),
        ({"duration_minutes": 10**30}, "duration_minutes"),
    ],
)
def test_a_bad_booking_is_refused_and_nothing_is_written(
    client, front_desk, student_a, course_a, teacher, extra, field
):
    assert_error(post(as_(client, front_desk), TRIALS, booking(student_a, course_a, teacher, **extra)), 400, field)
    assert not TrialLesson.objects.exists() and audit_count(AuditAction.TRIAL_BOOK) == 0


def test_only_a_teacher_of_the_campus_can_be_booked(
    client, front_desk, manager, student_a, course_a, course_b, teacher_b
):
    as_(client, front_desk)
    assert_error(post(client, TRIALS, booking(student_a, course_a, manager)), 400, "teacher")
    assert_error(post(client, TRIALS, booking(student_a, course_a, teacher_b)), 400, "teacher")
    assert_error(post(client, TRIALS, booking(student_a, course_b, manager)), 400, "course")
    assert not TrialLesson.objects.exists()


def test_a_teacher_does_not_book_trials(client, teacher, student_a, course_a):
    assert_error(post(as_(client, teacher), TRIALS, booking(student_a, course_a, teacher)), 403)
    assert not TrialLesson.objects.exists()


def test_a_retried_booking_books_once(client, front_desk, student_a, course_a, teacher):
    as_(client, front_desk)
    first = post(client, TRIALS, booking(student_a, course_a, teacher), HTTP_IDEMPOTENCY_KEY="t-1")
    again = post(client, TRIALS, booking(student_a, course_a, teacher), HTTP_IDEMPOTENCY_KEY="t-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert TrialLesson.objects.count() == 1 and audit_count(AuditAction.TRIAL_BOOK) == 1


def test_a_teacher_lists_their_own_trials_the_front_desk_the_campus(
    client, front_desk, teacher, other_teacher, student_a, course_a, course_b, teacher_b
):
    mine = trial_of(student_a, course_a, teacher, at=in_days(1))
    theirs = trial_of(student_a, course_a, other_teacher, at=in_days(3))
    trial_of(factories.StudentFactory(campus=course_b.campus), course_b, teacher_b)

    def ids(user, query=""):
        response = as_(client, user).get(f"{TRIALS}?{query}")
        assert response.status_code == 200, response.content
        return [t["id"] for t in response.json()["results"]]

    assert ids(teacher) == [mine.pk]
    assert ids(front_desk) == [theirs.pk, mine.pk]
    assert ids(front_desk, f"teacher={teacher.pk}") == [mine.pk]
    assert ids(front_desk, f"day={timezone.localdate(in_days(3)).isoformat()}") == [theirs.pk]
    assert ids(front_desk, "status=cancelled") == []
    assert ids(front_desk, f"student={student_a.pk}") == [theirs.pk, mine.pk]
    assert_error(client.get(f"{TRIALS}?teacher={teacher_b.pk}"), 400, "teacher")
    assert_error(client.get(f"{TRIALS}?day=9999-12-31"), 400, "day")


def test_trials_list_in_constant_queries(client, front_desk, campus_a, course_a, teacher):
    as_(client, front_desk)

    def book(n):
        for _ in range(n):
            day = 1 + TrialLesson.objects.count()  # a day each: the factory skips the overlap check
            trial_of(factories.StudentFactory(campus=campus_a), course_a, teacher, at=in_days(day))

    assert_constant_queries(client, TRIALS, book)


def test_the_teacher_records_a_trials_feedback(client, teacher, student_a, course_a):
    trial = trial_of(student_a, course_a, teacher)
    body = {"attended": True, "rating": 5, "comment": "很专注", "recommended_level": "L2"}
    response = post(as_(client, teacher), feedback_url(trial), body)
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "attended" and response.json()["rating"] == 5
    trial.refresh_from_db()
    assert trial.status == TrialStatus.ATTENDED and trial.recommended_level == "L2"
    assert audit_count(AuditAction.TRIAL_FEEDBACK_RECORD) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"attended": True, "rating": 7, "comment": "好"}, "rating"),
        ({"attended": True, "rating": 4, "comment": ""}, "comment"),
        ({"attended": "maybe"}, "attended"),
    ],
)
def test_bad_feedback_is_refused_and_nothing_changes(client, teacher, student_a, course_a, body, field):
    trial = trial_of(student_a, course_a, teacher)
    assert_error(post(as_(client, teacher), feedback_url(trial), body), 400, field)
    trial.refresh_from_db()
    assert trial.status == TrialStatus.BOOKED and audit_count(AuditAction.TRIAL_FEEDBACK_RECORD) == 0


@pytest.mark.parametrize(("role", "status"), [("other_teacher", 404), ("teacher_b", 404), ("front_desk", 403)])
def test_only_the_trials_teacher_or_a_manager_gives_feedback(
    client, request, student_a, course_a, teacher, role, status
):
    trial = trial_of(student_a, course_a, teacher)
    assert_error(post(as_(client, request.getfixturevalue(role)), feedback_url(trial), {"attended": False}), status)
    trial.refresh_from_db()
    assert trial.status == TrialStatus.BOOKED


def test_the_front_desk_cancels_a_booked_trial(client, front_desk, student_a, course_a, teacher):
    trial = trial_of(student_a, course_a, teacher)
    as_(client, front_desk)
    response = post(client, cancel_url(trial), {"reason": "家长改期"})
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert audit_count(AuditAction.TRIAL_CANCEL) == 1
    assert_error(post(client, cancel_url(trial), {}), 400)  # only a booked trial
    assert audit_count(AuditAction.TRIAL_CANCEL) == 1


@pytest.mark.parametrize(("role", "status"), [("teacher", 403), ("front_desk_b", 404), ("manager_b", 404)])
def test_cancelling_is_the_campus_front_office(client, request, student_a, course_a, teacher, role, status):
    trial = trial_of(student_a, course_a, teacher)
    assert_error(post(as_(client, request.getfixturevalue(role)), cancel_url(trial), {}), status)
    trial.refresh_from_db()
    assert trial.status == TrialStatus.BOOKED


# --- attendance ---------------------------------------------------------------------------


@pytest.fixture
def lesson(course_a, teacher, campus_a):
    """Today's lesson of `teacher` with two students, each with 10 hours of course_a bought."""
    lesson = factories.LessonFactory(course=course_a, teacher=teacher, starts_at=in_days(0, hour=9), hours=Decimal("2"))
    for name in ("小明", "小华"):
        student = factories.StudentFactory(campus=campus_a, name=name)
        factories.ContractFactory(student=student, course=course_a, hours_bought=Decimal("10"))
        lesson.students.add(student)
    return lesson


def sheet(lesson, **statuses):
    return {"marks": [{"student": s.pk, "status": statuses.get(s.name, "present")} for s in lesson.students.all()]}


def test_the_teacher_records_a_whole_lesson(client, teacher, lesson):
    response = post(as_(client, teacher), sheet_url(lesson), sheet(lesson, 小华="leave"))
    assert response.status_code == 201, response.content
    rows = {r["student"]["name"]: r for r in response.json()}
    assert rows["小明"]["hours"] == "2.0" and rows["小华"]["hours"] == "0.0"  # leave costs nothing
    assert Attendance.objects.count() == 2 and audit_count(AuditAction.ATTENDANCE_RECORD) == 2
    consumed = {a.student.name: a.contract.hours_consumed for a in Attendance.objects.select_related("contract")}
    assert consumed == {"小明": Decimal("2"), "小华": Decimal("0")}


def test_hours_beyond_those_bought_record_nobody(client, teacher, lesson):
    contract = lesson.students.get(name="小华").contracts.get()
    contract.hours_bought = Decimal("1")
    contract.save()
    body = assert_error(post(as_(client, teacher), sheet_url(lesson), sheet(lesson)), 400)
    assert "小华" in body["message"]
    assert not Attendance.objects.exists() and audit_count(AuditAction.ATTENDANCE_RECORD) == 0


@pytest.mark.parametrize(
    ("marks", "field"),
    [
        ("off_roster", None),
        ("other_campus", "marks.2.student"),
        ("bad_status", "marks.0.status"),
        ("empty", None),
    ],
)
def test_a_bad_sheet_is_refused_and_nothing_is_written(client, teacher, lesson, campus_a, campus_b, marks, field):
    body = sheet(lesson)
    if marks == "off_roster":
        body["marks"].append({"student": factories.StudentFactory(campus=campus_a).pk})
    elif marks == "other_campus":
        body["marks"].append({"student": factories.StudentFactory(campus=campus_b).pk})
    elif marks == "bad_status":
        body["marks"][0]["status"] = "asleep"
    else:
        body["marks"] = []
    assert_error(post(as_(client, teacher), sheet_url(lesson), body), 400, field)
    assert not Attendance.objects.exists()


@pytest.mark.parametrize(("role", "status"), [("other_teacher", 404), ("manager_b", 404), ("front_desk", 403)])
def test_a_lesson_is_recorded_by_its_teacher_or_the_campus_manager(client, request, lesson, role, status):
    assert_error(post(as_(client, request.getfixturevalue(role)), sheet_url(lesson), sheet(lesson)), status)
    assert not Attendance.objects.exists()


def test_a_retried_sheet_records_once(client, teacher, lesson):
    as_(client, teacher)
    first = post(client, sheet_url(lesson), sheet(lesson), HTTP_IDEMPOTENCY_KEY="s-1")
    again = post(client, sheet_url(lesson), sheet(lesson), HTTP_IDEMPOTENCY_KEY="s-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert Attendance.objects.count() == 2 and audit_count(AuditAction.ATTENDANCE_RECORD) == 2


def record(lesson, name, status=AttendanceStatus.PRESENT, **kwargs):
    student = lesson.students.get(name=name)
    contract = student.contracts.get()
    contract.hours_consumed = kwargs.get("hours", lesson.hours)
    contract.save()
    return factories.AttendanceFactory(
        student=student,
        contract=contract,
        lesson=lesson,
        lesson_at=kwargs.get("at", lesson.starts_at),
        status=status,
        hours=kwargs.get("hours", lesson.hours),
        teacher=lesson.teacher,
    )


def test_attendance_lists_the_teachers_own_and_filters(client, teacher, other_teacher, front_desk, lesson, course_a):
    mine = record(lesson, "小明")
    earlier = factories.LessonFactory(course=course_a, teacher=other_teacher, starts_at=in_days(-3))
    earlier.students.add(lesson.students.get(name="小华"))
    theirs = record(earlier, "小华")

    def ids(user, query=""):
        response = as_(client, user).get(f"{ATTENDANCE}?{query}")
        assert response.status_code == 200, response.content
        return [a["id"] for a in response.json()["results"]]

    assert ids(teacher) == [mine.pk]
    assert ids(front_desk) == [theirs.pk, mine.pk]
    assert ids(front_desk, f"lesson={earlier.pk}") == [theirs.pk]
    assert ids(front_desk, f"student={mine.student_id}") == [mine.pk]
    assert ids(front_desk, f"date_to={in_days(-1).date().isoformat()}") == [theirs.pk]
    assert ids(front_desk, f"date_from={in_days(0).date().isoformat()}") == [mine.pk]
    assert_error(as_(client, teacher).get(f"{ATTENDANCE}?lesson={earlier.pk}"), 400, "lesson")


def test_attendance_list_in_constant_queries(client, manager, campus_a, course_a, teacher):
    as_(client, manager)

    def attend(n):
        for _ in range(n):
            student = factories.StudentFactory(campus=campus_a)
            contract = factories.ContractFactory(student=student, course=course_a)
            factories.AttendanceFactory(student=student, contract=contract, teacher=teacher)

    assert_constant_queries(client, ATTENDANCE, attend)


def test_the_teacher_corrects_a_record_on_the_lessons_day(client, teacher, lesson):
    attendance = record(lesson, "小明")
    response = post(as_(client, teacher), correct_url(attendance), {"status": "leave", "reason": "家长请过假"})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "leave" and response.json()["hours"] == "0.0"
    attendance.contract.refresh_from_db()
    assert attendance.contract.hours_consumed == 0  # the hours went back to the contract
    assert audit_count(AuditAction.ATTENDANCE_CORRECT) == 1


def test_a_teacher_cannot_correct_an_earlier_day_a_manager_can(client, teacher, manager, lesson, course_a):
    earlier = factories.LessonFactory(course=course_a, teacher=teacher, starts_at=in_days(-2), hours=Decimal("2"))
    earlier.students.add(*lesson.students.all())
    attendance = record(earlier, "小明")
    body = {"status": "absent", "hours": "1.5"}
    assert_error(post(as_(client, teacher), correct_url(attendance), body), 403)
    attendance.refresh_from_db()
    assert attendance.status == AttendanceStatus.PRESENT and audit_count(AuditAction.ATTENDANCE_CORRECT) == 0
    response = post(as_(client, manager), correct_url(attendance), body)
    assert response.status_code == 200 and response.json()["hours"] == "1.5"
    assert audit_count(AuditAction.ATTENDANCE_CORRECT) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "present", "hours": "0.25"}, "hours"),  # one decimal place
        ({"status": "present", "hours": "abc"}, "hours"),
        ({"status": "present", "hours": "20"}, "hours"),  # beyond the 10 bought
        ({"status": "late"}, "status"),
        ({"status": "present"}, None),  # nothing to correct
    ],
)
def test_a_bad_correction_is_refused_and_nothing_changes(client, manager, lesson, body, field):
    attendance = record(lesson, "小明")
    assert_error(post(as_(client, manager), correct_url(attendance), body), 400, field)
    attendance.refresh_from_db()
    assert attendance.hours == Decimal("2") and audit_count(AuditAction.ATTENDANCE_CORRECT) == 0


@pytest.mark.parametrize(("role", "status"), [("front_desk", 403), ("other_teacher", 404), ("manager_b", 404)])
def test_who_may_not_correct(client, request, lesson, role, status):
    attendance = record(lesson, "小明")
    assert_error(post(as_(client, request.getfixturevalue(role)), correct_url(attendance), {"status": "leave"}), status)
    attendance.refresh_from_db()
    assert attendance.status == AttendanceStatus.PRESENT
