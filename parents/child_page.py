"""A child's page as the parent API answers it, read in hand-written SQL.

`parents.selectors.child_page` with `parents.api.family.ChildPageSerializer` is the readable
definition of the page; this is the same page without the ORM's query compilation, model
instances and serializers, which cost more than the database on the API's busiest read
(docs/benchmarks.md). `tests/parents/test_child_page.py` proves the two answer the same JSON.
Values are formatted by the very DRF fields the serializers use."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import connection
from django.http import Http404
from django.utils import timezone
from rest_framework import serializers

from crm.models import AttendanceStatus, ContractStatus, TrialStatus
from parents.models import TrialRequest
from parents.selectors import FEEDBACK, HISTORY, UPCOMING

_at = serializers.DateTimeField().to_representation
_day = serializers.DateField().to_representation


def _hours(value: Decimal, digits: int) -> str:
    return serializers.DecimalField(max_digits=digits, decimal_places=1).to_representation(value)


# Who a teacher is to parents: str(User), in SQL.
TEACHER = "COALESCE(NULLIF(u.display_name, ''), NULLIF(TRIM(u.first_name || ' ' || u.last_name), ''), u.username)"

CHILD_SQL = """
SELECT s.id, s.name, s.gender, s.birth_date, s.grade, s.school, c.name AS campus
FROM crm_student s
JOIN crm_campus c ON c.id = s.campus_id
WHERE s.id = %(student)s
  AND EXISTS (SELECT 1 FROM crm_student_guardians sg WHERE sg.student_id = s.id AND sg.guardian_id = %(guardian)s)
"""

LESSONS_SQL = f"""
SELECT l.id, co.name, co.subject, {TEACHER} AS teacher, l.starts_at, l.duration_minutes, l.hours
FROM crm_lesson_students ls
JOIN crm_lesson l ON l.id = ls.lesson_id
JOIN crm_course co ON co.id = l.course_id
JOIN crm_user u ON u.id = l.teacher_id
WHERE ls.student_id = %(student)s AND l.starts_at >= %(now)s
ORDER BY l.starts_at
LIMIT {UPCOMING}
"""

# Booked trials to come, and trials a teacher gave feedback on.
TRIALS_SQL = f"""
(SELECT 'upcoming' AS kind, t.id, co.name, {TEACHER} AS teacher, t.scheduled_at, t.duration_minutes, t.status, t.rating,
        t.comment, t.recommended_level
 FROM crm_triallesson t JOIN crm_course co ON co.id = t.course_id JOIN crm_user u ON u.id = t.teacher_id
 WHERE t.student_id = %(student)s AND t.status = 'booked' AND t.scheduled_at >= %(now)s
 ORDER BY t.scheduled_at LIMIT {UPCOMING})
UNION ALL
(SELECT 'rated' AS kind, t.id, co.name, {TEACHER} AS teacher, t.scheduled_at, t.duration_minutes, t.status, t.rating,
        t.comment, t.recommended_level
 FROM crm_triallesson t JOIN crm_course co ON co.id = t.course_id JOIN crm_user u ON u.id = t.teacher_id
 WHERE t.student_id = %(student)s AND (t.comment <> '' OR t.rating IS NOT NULL)
 ORDER BY t.scheduled_at DESC LIMIT {FEEDBACK})
"""

CONTRACTS_SQL = """
SELECT k.id, co.name, k.hours_bought, k.hours_consumed, k.signed_at, k.valid_until, k.status
FROM crm_contract k JOIN crm_course co ON co.id = k.course_id
WHERE k.student_id = %(student)s AND k.status <> 'cancelled'
ORDER BY k.signed_at DESC
"""

# The latest lessons, and the latest with a teacher's remark.
ATTENDANCE_SQL = f"""
(SELECT 'recent' AS kind, a.id, a.lesson_at, co.name, {TEACHER} AS teacher, a.status, a.hours, a.feedback
 FROM crm_attendance a JOIN crm_contract k ON k.id = a.contract_id JOIN crm_course co ON co.id = k.course_id
 JOIN crm_user u ON u.id = a.teacher_id
 WHERE a.student_id = %(student)s ORDER BY a.lesson_at DESC, a.id DESC LIMIT {HISTORY})
UNION ALL
(SELECT 'remark' AS kind, a.id, a.lesson_at, co.name, {TEACHER} AS teacher, a.status, a.hours, a.feedback
 FROM crm_attendance a JOIN crm_contract k ON k.id = a.contract_id JOIN crm_course co ON co.id = k.course_id
 JOIN crm_user u ON u.id = a.teacher_id
 WHERE a.student_id = %(student)s AND a.feedback <> '' ORDER BY a.lesson_at DESC LIMIT {FEEDBACK})
"""

REQUESTS_SQL = f"""
SELECT r.id, r.student_id, co.name, r.subject, r.wished_at, r.note, r.status, r.created_at
FROM parents_trialrequest r LEFT JOIN crm_course co ON co.id = r.course_id
WHERE r.student_id = %(student)s AND r.guardian_id = %(guardian)s
ORDER BY r.created_at DESC
LIMIT {UPCOMING}
"""


# One round trip: every section as a JSON array of rows (each a JSON object whose keys keep the
# section's column order), beside the child; no row when the child is not this guardian's.
PAGE_SQL = f"""
WITH child AS ({CHILD_SQL})
SELECT row_to_json(child),
       (SELECT COALESCE(json_agg(x), '[]') FROM ({LESSONS_SQL}) x),
       (SELECT COALESCE(json_agg(x), '[]') FROM ({TRIALS_SQL}) x),
       (SELECT COALESCE(json_agg(x), '[]') FROM ({CONTRACTS_SQL}) x),
       (SELECT COALESCE(json_agg(x), '[]') FROM ({ATTENDANCE_SQL}) x),
       (SELECT COALESCE(json_agg(x), '[]') FROM ({REQUESTS_SQL}) x)
FROM child
"""
TIMES = {"birth_date", "starts_at", "scheduled_at", "signed_at", "valid_until", "lesson_at", "wished_at", "created_at"}
NUMBERS = {"hours", "hours_bought", "hours_consumed"}


def _value(key: str, value: Any) -> Any:
    """A JSON value back to what the database holds (json_agg writes times and numerics as text
    and numbers)."""
    if value is None:
        return None
    if key in NUMBERS:
        return Decimal(str(value))
    if key in ("birth_date", "valid_until"):
        return dt.date.fromisoformat(value)
    if key in TIMES:
        return dt.datetime.fromisoformat(value)
    return value


def _rows(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [tuple(_value(key, value) for key, value in item.items()) for item in items]


def child_page_data(*, guardian_id: int, student_id: int) -> dict[str, Any]:
    """The page of a child of this guardian (Http404 for any other), ready to answer."""
    params: dict[str, Any] = {"student": student_id, "guardian": guardian_id, "now": timezone.now()}
    with connection.cursor() as cursor:
        cursor.execute(PAGE_SQL, params)
        found = cursor.fetchone()
    if found is None:
        raise Http404
    child = _rows([found[0]])[0]
    lessons, trials, contracts, attendance, requests = (_rows(section) for section in found[1:])
    # Each UNION ALL branch is ordered, but the union's order is not promised: order each kind
    # again, as the ORM definition does (stable sorts: ties keep the database's order).
    trials = sorted((t for t in trials if t[0] == "upcoming"), key=lambda t: t[4]) + sorted(
        (t for t in trials if t[0] == "rated"), key=lambda t: t[4], reverse=True
    )
    attendance = sorted((a for a in attendance if a[0] == "recent"), key=lambda a: (a[2], a[1]), reverse=True) + sorted(
        (a for a in attendance if a[0] == "remark"), key=lambda a: a[2], reverse=True
    )

    left = sum((bought - used for _, _, bought, used, _, _, status in contracts if status == "active"), Decimal("0"))
    feedback: list[tuple[dt.datetime, dict[str, Any]]] = [
        (
            at,
            {
                "kind": "trial",
                "at": _at(at),
                "course": course,
                "teacher": teacher,
                "rating": rating,
                "comment": comment,
                "recommended_level": level,
            },
        )
        for kind, _, course, teacher, at, _, _, rating, comment, level in trials
        if kind == "rated"
    ]
    feedback += [
        (
            at,
            {
                "kind": "lesson",
                "at": _at(at),
                "course": course,
                "teacher": teacher,
                "rating": None,
                "comment": remark,
                "recommended_level": "",
            },
        )
        for kind, _, at, course, teacher, _, _, remark in attendance
        if kind == "remark"
    ]
    feedback.sort(key=lambda item: item[0], reverse=True)
    student, name, gender, birth_date, grade, school, campus = child
    return {
        "child": {
            "id": student,
            "name": name,
            "gender": gender,
            "birth_date": _day(birth_date) if birth_date else None,
            "grade": grade,
            "school": school,
            "campus": campus,
            "hours_left": _hours(left, 9),
        },
        "hours_left": _hours(left, 9),
        "upcoming_lessons": [
            {
                "id": i,
                "course": course,
                "subject": subject,
                "teacher": teacher,
                "starts_at": _at(at),
                "duration_minutes": minutes,
                "hours": _hours(hours, 4),
            }
            for i, course, subject, teacher, at, minutes, hours in lessons
        ],
        "upcoming_trials": [
            {
                "id": i,
                "course": course,
                "teacher": teacher,
                "scheduled_at": _at(at),
                "duration_minutes": minutes,
                "status": status,
                "status_label": str(TrialStatus(status).label),
            }
            for kind, i, course, teacher, at, minutes, status, *_ in trials
            if kind == "upcoming"
        ],
        "contracts": [
            {
                "id": i,
                "course": course,
                "hours_bought": _hours(bought, 7),
                "hours_consumed": _hours(used, 7),
                "hours_left": _hours(bought - used, 8),
                "signed_at": _at(signed),
                "valid_until": _day(until) if until else None,
                "status": status,
                "status_label": str(ContractStatus(status).label),
            }
            for i, course, bought, used, signed, until, status in contracts
        ],
        "recent_attendance": [
            {
                "id": i,
                "lesson_at": _at(at),
                "course": course,
                "teacher": teacher,
                "status": status,
                "status_label": str(AttendanceStatus(status).label),
                "hours": _hours(hours, 4),
                "feedback": remark,
            }
            for kind, i, at, course, teacher, status, hours, remark in attendance
            if kind == "recent"
        ],
        "feedback": [item for _, item in feedback[:FEEDBACK]],
        "trial_requests": [
            {
                "id": i,
                "student": sid,
                "course": course,
                "subject": subject,
                "wished_at": _at(wished),
                "note": note,
                "status": status,
                "status_label": str(TrialRequest.Status(status).label),
                "created_at": _at(created),
            }
            for i, sid, course, subject, wished, note, status, created in requests
        ],
    }
