"""seed_demo builds a believable institution with every kind of history, through the services."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth import authenticate
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db.models import Count, F, Max, Q, Sum
from django.utils import timezone

from crm.management.demo import DEMO_PASSWORD, MIN_STUDENTS, demo_account_specs
from crm.models import (
    Attendance,
    Campus,
    Consultation,
    Contract,
    ContractStatus,
    Guardian,
    Lesson,
    Role,
    Student,
    StudentTag,
    TrialLesson,
    TrialStatus,
    User,
)
from crm.phones import normalize_phone
from tests import factories

pytestmark = pytest.mark.django_db

CJK = re.compile(r"^[\u4e00-\u9fff]{2,4}$")


def seed(students: int = MIN_STUDENTS, *args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, students=students, stdout=out)
    return out.getvalue()


def today_bounds() -> tuple[dt.datetime, dt.datetime]:
    start = timezone.make_aware(dt.datetime.combine(timezone.localdate(), dt.time()))
    return start, start + dt.timedelta(days=1)


# Just after midnight in Asia/Shanghai: the day's trials, lessons and follow-ups are all ahead,
# and nothing of the demo may be dated later than now.
@time_machine.travel(dt.datetime(2027, 1, 1, 0, 0, 30, tzinfo=ZoneInfo("Asia/Shanghai")), tick=False)
def test_seed_demo_builds_every_kind_of_history() -> None:
    # As after a test that flushed the database: the role groups must come back.
    Group.objects.all().delete()

    output = seed()
    now = timezone.now()
    start, end = today_bounds()

    # The institution: two campuses, staff for every role, one admin, known passwords.
    assert set(Campus.objects.values_list("name", flat=True)) == {"望京校区", "中关村校区"}
    for campus in Campus.objects.all():
        roles = set(User.objects.filter(campus=campus).values_list("groups__name", flat=True))
        assert {Role.FRONT_DESK, Role.TEACHER, Role.MANAGER} <= roles, campus
    assert User.objects.filter(groups__name=Role.ADMIN, is_superuser=True).count() == 1
    accounts = demo_account_specs()
    assert {a.role for a in accounts} == {Role.FRONT_DESK, Role.TEACHER, Role.MANAGER, Role.ADMIN}
    for account in accounts:
        assert account.username in output
    assert DEMO_PASSWORD in output
    for role in Role:
        account = next(a for a in accounts if a.role == role)
        assert authenticate(username=account.username, password=DEMO_PASSWORD) is not None, account

    # People: Chinese names, many channels, families matched by phone, some siblings.
    assert Student.objects.count() == MIN_STUDENTS
    assert all(CJK.match(name) for name in Student.objects.values_list("name", flat=True))
    assert Student.objects.values("channel").distinct().count() >= 4
    phones = list(Guardian.objects.values_list("phone", flat=True))
    assert len(phones) == len(set(phones)), "two guardians share a phone"
    assert all(normalize_phone(phone) == phone for phone in phones)
    assert Guardian.objects.annotate(n=Count("students")).filter(n__gte=2).exists(), "no siblings"
    assert set(StudentTag.objects.values_list("tag__group__name", flat=True)) >= {"意向", "兴趣", "目标"}

    # A year of history.
    assert Student.objects.filter(created_at__lt=now - dt.timedelta(days=200)).exists()
    assert not Student.objects.filter(created_at__gt=now).exists()

    # Leads never consulted.
    assert Student.objects.filter(consultations=None, trials=None, contracts=None, lost_at=None).exists()
    # Consulted, with follow-ups due today and overdue.
    assert Consultation.objects.filter(consulted_at__lt=now - dt.timedelta(days=30)).exists()
    assert Student.objects.filter(next_follow_up_at__gte=start, next_follow_up_at__lt=end).exists()
    assert Student.objects.filter(next_follow_up_at__lt=start).exists()
    # Trials: past ones with the teacher's feedback, one today for each teacher, later ones.
    assert (
        TrialLesson.objects.filter(
            status=TrialStatus.ATTENDED, scheduled_at__lt=start, rating__isnull=False, feedback_at__isnull=False
        )
        .exclude(comment="")
        .exists()
    )
    teachers = User.objects.filter(groups__name=Role.TEACHER)
    for teacher in teachers:
        assert TrialLesson.objects.filter(teacher=teacher, scheduled_at__gte=start, scheduled_at__lt=end).exists(), (
            f"{teacher} has no trial today"
        )
    assert TrialLesson.objects.filter(status=TrialStatus.BOOKED, scheduled_at__gte=end).exists()

    # Contracts: signed, attending regularly, silent, refunded, used up; lost leads.
    last_attended = Student.objects.filter(contracts__status=ContractStatus.ACTIVE).annotate(
        last=Max("attendances__lesson_at")
    )
    assert last_attended.filter(last__gte=now - dt.timedelta(days=8)).exists(), "nobody attends regularly"
    assert last_attended.filter(last__lt=now - dt.timedelta(days=28), last__gte=now - dt.timedelta(days=95)).exists(), (
        "no silent students"
    )
    assert Student.objects.filter(contracts__status=ContractStatus.ACTIVE, attendances=None).exists(), "no enrolled"
    refunded = Contract.objects.filter(status=ContractStatus.REFUNDED)
    assert refunded.exists()
    assert not refunded.filter(Q(refund_reason="") | Q(refunded_at__isnull=True) | Q(refunded_at__gt=now)).exists()
    assert Contract.objects.filter(status=ContractStatus.COMPLETED).exists()
    assert Student.objects.filter(lost_at__lt=now).exclude(lost_reason="").exists()
    # Renewals: some students signed more than once.
    assert Student.objects.annotate(n=Count("contracts")).filter(n__gte=2).exists()

    # Attendance always against a contract of the student, never beyond the hours bought.
    for contract in Contract.objects.annotate(used=Sum("attendances__hours")):
        assert contract.hours_consumed == (contract.used or Decimal(0)), contract
        assert contract.hours_consumed <= contract.hours_bought, contract
    assert not Attendance.objects.exclude(contract__student=F("student")).exists()
    # The demo records through the attendance rule: a leave costs nothing, a lesson held costs hours.
    assert Attendance.objects.filter(status="leave").exists()
    assert not Attendance.objects.filter(status="leave").exclude(hours=0).exists()
    assert not Attendance.objects.filter(status__in=("present", "absent"), hours=0).exists()

    # Today's classes: every teacher has a lesson with a roster of students holding a
    # contract for that course.
    for teacher in teachers:
        lessons = Lesson.objects.filter(teacher=teacher, starts_at__gte=start, starts_at__lt=end)
        assert lessons.exists(), f"{teacher} has no lesson today"
        for lesson in lessons:
            roster = list(lesson.students.all())
            assert roster, lesson
            for student in roster:
                assert student.contracts.filter(course=lesson.course, status=ContractStatus.ACTIVE).exists()


@time_machine.travel(dt.datetime(2027, 1, 1, 0, 0, 30, tzinfo=ZoneInfo("Asia/Shanghai")), tick=False)
def test_the_demo_has_a_campaign_to_try_on_families_with_and_without_consent() -> None:
    from campaigns.models import Campaign, Consent
    from campaigns.services.campaigns import campaign_dry_run

    seed()
    for campus in Campus.objects.all():
        campaign = Campaign.objects.get(campus=campus, status="draft")
        manager = User.objects.get(campus=campus, groups__name=Role.MANAGER)
        dry = campaign_dry_run(actor=manager, campaign=campaign)
        assert dry.reached["sms"] > 0, campus
        assert dry.suppressed["sms"]["no_consent"] > 0, campus
        assert dry.calls > 0, campus
    assert Consent.objects.filter(granted=True, record__wording__contains="回复TD退订").exists()


def test_refuses_a_database_that_has_students() -> None:
    factories.StudentFactory()

    with pytest.raises(CommandError, match="already has 1 students"):
        seed()

    assert Student.objects.count() == 1


def test_if_empty_leaves_a_populated_database_alone() -> None:
    factories.StudentFactory()

    output = seed(MIN_STUDENTS, "--if-empty")

    assert "not seeding" in output
    assert Student.objects.count() == 1


def test_too_few_students_is_refused() -> None:
    with pytest.raises(CommandError, match=str(MIN_STUDENTS)):
        seed(MIN_STUDENTS - 1)


@time_machine.travel(dt.datetime(2027, 1, 1, 9, 0, 30, tzinfo=ZoneInfo("Asia/Shanghai")), tick=False)
def test_the_printed_demo_parent_logs_in_to_the_parent_app(
    client, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks
) -> None:
    """`make run` prints a parent's phone; with the code the console provider prints, that parent
    logs in through the parent API and finds a child at each campus, with lessons and feedback."""
    from django.urls import reverse

    output = seed()
    printed = re.search(r"Demo parent for the parent app at /m/.*: phone ([0-9 ]+)$", output, re.M)
    assert printed, output
    phone = printed.group(1).strip()
    guardian = Guardian.objects.get(phone=normalize_phone(phone))
    children = list(guardian.students.all())
    assert len({child.campus_id for child in children}) == 2 == len(children)
    for child in children:
        assert child.name in output
        assert Contract.objects.filter(student=child, status=ContractStatus.ACTIVE).exists(), child
        assert Attendance.objects.filter(student=child).exclude(feedback="").exists(), child

    caplog.set_level("WARNING", logger="campaigns.console")
    with django_capture_on_commit_callbacks(execute=True):
        sent = client.post(reverse("parent_api:auth_code"), {"phone": phone}, content_type="application/json")
    assert sent.status_code == 202
    [line] = [r.getMessage() for r in caplog.records if r.name == "campaigns.console"]
    code = re.search(r"\b(\d{6})\b", line)
    assert code, line
    tokens = client.post(
        reverse("parent_api:auth_login"), {"phone": phone, "code": code.group(1)}, content_type="application/json"
    )
    assert tokens.status_code == 200
    listed = client.get(reverse("parent_api:children"), HTTP_AUTHORIZATION=f"Bearer {tokens.json()['access']}")
    assert sorted(row["name"] for row in listed.json()["results"]) == sorted(child.name for child in children)
