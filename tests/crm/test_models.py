"""The database itself holds the lines, even for writes that skip the services
(a bulk import, a `QuerySet.update()`, a shell session)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F

from crm.models import Attendance, Contract, Course, Guardian, TrialLesson, TrialStatus
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def refused(write: Callable[[], object]) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        write()


def test_two_guardians_cannot_share_a_phone() -> None:
    Guardian.objects.create(phone="+8613800138000")
    refused(lambda: Guardian.objects.create(phone="+8613800138000"))
    assert Guardian.objects.count() == 1


@pytest.mark.parametrize("phone", ["13800138000", "8613800138000", "", "0086 13800138000"])
def test_a_phone_not_in_e164_is_refused(phone: str) -> None:
    refused(lambda: Guardian.objects.create(phone=phone))
    guardian = factories.GuardianFactory.create()
    refused(lambda: Guardian.objects.filter(pk=guardian.pk).update(phone=phone))


def test_wechat_ids_are_unique_but_optional() -> None:
    Guardian.objects.create(phone="+8613800138000", wechat_openid="o-1")
    Guardian.objects.create(phone="+8613800138001")
    Guardian.objects.create(phone="+8613800138002")  # two without an openid are fine
    refused(lambda: Guardian.objects.create(phone="+8613800138003", wechat_openid="o-1"))


@pytest.mark.parametrize("rating", [0, 6, 10])
def test_a_trial_rating_outside_1_to_5_is_refused(rating: int) -> None:
    trial = factories.TrialLessonFactory.create()
    refused(lambda: TrialLesson.objects.filter(pk=trial.pk).update(rating=rating))
    for good in (1, 5, None):
        TrialLesson.objects.filter(pk=trial.pk).update(rating=good)


def test_a_teacher_cannot_hold_two_live_trials_at_the_same_instant() -> None:
    first = factories.TrialLessonFactory.create()
    same_slot = {"teacher": first.teacher, "scheduled_at": first.scheduled_at, "course": first.course}
    refused(lambda: factories.TrialLessonFactory.create(**same_slot))
    # A cancelled trial does not hold the slot.
    factories.TrialLessonFactory.create(**same_slot, status=TrialStatus.CANCELLED)
    TrialLesson.objects.filter(pk=first.pk).update(status=TrialStatus.CANCELLED)
    factories.TrialLessonFactory.create(**same_slot)


@pytest.mark.parametrize(
    "values",
    [
        {"amount": Decimal("-1"), "paid_amount": Decimal("0")},
        {"paid_amount": Decimal("-1")},
        {"amount": Decimal("100"), "paid_amount": Decimal("100.01")},
        {"hours_bought": Decimal("0")},
        {"hours_bought": Decimal("-1")},
        {"hours_consumed": Decimal("-1")},
        {"hours_bought": Decimal("10"), "hours_consumed": Decimal("10.5")},
        {"refund_amount": Decimal("-1")},
        {"paid_amount": Decimal("100"), "refund_amount": Decimal("100.01")},
    ],
)
def test_contract_amounts_and_hours_are_held_by_the_database(values: dict[str, Decimal]) -> None:
    refused(lambda: factories.ContractFactory.create(**values))
    contract = factories.ContractFactory.create()
    refused(lambda: Contract.objects.filter(pk=contract.pk).update(**values))


def test_hours_consumed_cannot_pass_hours_bought_by_an_update() -> None:
    contract = factories.ContractFactory.create(hours_bought=Decimal("10"), hours_consumed=Decimal("9"))
    refused(lambda: Contract.objects.filter(pk=contract.pk).update(hours_consumed=F("hours_consumed") + 2))
    Contract.objects.filter(pk=contract.pk).update(hours_consumed=F("hours_consumed") + 1)
    contract.refresh_from_db()
    assert contract.hours_consumed == contract.hours_bought


def test_attendance_hours_are_non_negative_and_once_per_lesson() -> None:
    refused(lambda: factories.AttendanceFactory.create(hours=Decimal("-1")))
    lesson = factories.LessonFactory.create()
    first = factories.AttendanceFactory.create(lesson=lesson)
    refused(lambda: factories.AttendanceFactory.create(lesson=lesson, student=first.student, contract=first.contract))
    # Without a lesson, a student may have many.
    factories.AttendanceFactory.create(student=first.student, contract=first.contract)
    factories.AttendanceFactory.create(student=first.student, contract=first.contract)
    assert Attendance.objects.filter(student=first.student).count() == 3


def test_course_price_and_lesson_hours() -> None:
    refused(lambda: factories.CourseFactory.create(price_per_hour=Decimal("-1")))
    course = factories.CourseFactory.create()
    refused(lambda: Course.objects.create(campus=course.campus, name=course.name, subject="x", price_per_hour=1))
    refused(lambda: factories.LessonFactory.create(hours=Decimal("0")))
