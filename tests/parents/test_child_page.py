"""The child page's SQL (parents/child_page.py) answers exactly what the readable definition
(parents.selectors.child_page through ChildPageSerializer) answers, on varied histories."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
import time_machine
from django.http import Http404

from crm.models import Student
from parents.api.family import ChildPageSerializer
from parents.child_page import child_page_data
from parents.models import TrialRequest
from parents.selectors import child_page
from tests import factories

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 6, 1, 10, 0, 0, tzinfo=dt.UTC)


def both(guardian, child):
    with time_machine.travel(NOW, tick=False):
        readable = json.loads(json.dumps(ChildPageSerializer(child_page(guardian=guardian, student_id=child.pk)).data))
        fast = json.loads(json.dumps(child_page_data(guardian_id=guardian.pk, student_id=child.pk)))
    return readable, fast


def test_an_empty_child_reads_the_same(parent_a):
    readable, fast = both(parent_a, Student.objects.get(guardians=parent_a))
    assert fast == readable


def test_a_long_varied_history_reads_the_same(parent_a, course_a, teacher, campus_a):
    child = Student.objects.get(guardians=parent_a)
    child.birth_date = dt.date(2016, 3, 9)
    child.save()
    named = factories.UserFactory(username="t2", display_name="", first_name="小雨", last_name="林", campus=campus_a)
    active = factories.ContractFactory(student=child, course=course_a, hours_bought=Decimal("40.5"))
    factories.ContractFactory(student=child, course=course_a, hours_bought=Decimal("10"), status="completed")
    factories.ContractFactory(student=child, course=course_a, hours_bought=Decimal("8"), status="cancelled")
    for i in range(45):
        factories.AttendanceFactory(
            student=child,
            contract=active,
            teacher=teacher if i % 3 else named,
            lesson_at=NOW - dt.timedelta(days=i, hours=i % 5, microseconds=i * 7),
            hours=Decimal("1.5") if i % 4 else Decimal("0"),
            status=["present", "absent", "leave"][i % 3],
            feedback=f"第{i}课" if i % 7 == 0 else "",
        )
    for i in range(14):
        lesson = factories.LessonFactory(
            course=course_a, teacher=named if i % 2 else teacher, starts_at=NOW + dt.timedelta(days=i - 2, hours=3)
        )
        lesson.students.add(child)
    for i in range(14):
        factories.TrialLessonFactory(
            student=child,
            course=course_a,
            teacher=teacher,
            scheduled_at=NOW + dt.timedelta(days=i * 3 - 20, minutes=i),
            status="booked" if i > 6 else "attended",
            rating=(i % 5) + 1 if i % 2 else None,
            comment="专注" if i % 3 == 0 else "",
            recommended_level="L2" if i % 4 == 0 else "",
        )
    for i in range(12):
        TrialRequest.objects.create(
            guardian=parent_a,
            student=child,
            campus=campus_a,
            course=course_a if i % 2 else None,
            subject="编程",
            wished_at=NOW + dt.timedelta(days=i + 1),
            note=f"第{i}次",
        )
    readable, fast = both(parent_a, child)
    assert fast == readable
    assert len(fast["recent_attendance"]) == 20 and len(fast["feedback"]) == 10 and fast["upcoming_lessons"]


def test_another_familys_child_is_not_found(parent_a, parent_b):
    with pytest.raises(Http404):
        child_page_data(guardian_id=parent_b.pk, student_id=Student.objects.get(guardians=parent_a).pk)
