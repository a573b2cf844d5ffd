"""The staff API's courses, consultations and contracts (crm/api/courses.py, consultations.py,
contracts.py): scoped like the pages, written through the same services, errors in the one
shape with nothing written, lists in a constant number of queries, creating POSTs idempotent.
Trials and attendance: test_api_lessons.py."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from crm.models import AuditAction, Consultation, Contract, ContractStatus
from tests import factories
from tests.crm.records_api import (
    as_,
    assert_constant_queries,
    assert_error,
    audit_count,
    parent_client,
    post,
    token_client,
)

pytestmark = pytest.mark.django_db

COURSES = reverse("api_course_list")
CONSULTATIONS = reverse("api_consultation_list")
CONTRACTS = reverse("api_contract_list")


def refund_url(contract):
    return reverse("api_contract_refund", args=[contract.pk])


@pytest.fixture
def student_a(campus_a):
    return factories.StudentFactory(campus=campus_a, name="小明")


@pytest.fixture
def student_b(campus_b):
    return factories.StudentFactory(campus=campus_b, name="小红")


# --- who may call -------------------------------------------------------------------------


@pytest.mark.parametrize("url", [COURSES, CONSULTATIONS, CONTRACTS])
def test_strangers_are_asked_to_sign_in_and_parents_are_refused(client, url):
    assert_error(client.get(url), 401)
    assert_error(parent_client().get(url), 403)


@pytest.mark.parametrize("url", [CONSULTATIONS, CONTRACTS])
def test_teachers_keep_no_consultations_or_contracts(client, teacher, url):
    assert_error(as_(client, teacher).get(url), 403)
    assert_error(post(client, url, {}), 403)


def test_an_integration_reads_with_a_staff_token(manager, course_a):
    response = token_client(manager).get(COURSES)
    assert response.status_code == 200
    assert [c["id"] for c in response.json()["results"]] == [course_a.pk]


# --- courses ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["front_desk", "teacher", "manager"])
def test_courses_are_the_viewers_campus(client, request, role, course_a, course_b):
    rows = as_(client, request.getfixturevalue(role)).get(COURSES).json()["results"]
    assert [(c["id"], c["campus"]["id"]) for c in rows] == [(course_a.pk, course_a.campus_id)]


def test_an_administrator_sees_every_campus_course(client, admin_user, course_a, course_b):
    rows = as_(client, admin_user).get(COURSES).json()["results"]
    assert {c["id"] for c in rows} == {course_a.pk, course_b.pk}


def test_courses_list_in_constant_queries(client, manager, campus_a):
    as_(client, manager)
    assert_constant_queries(client, COURSES, lambda n: factories.CourseFactory.create_batch(n, campus=campus_a))


# --- consultations ------------------------------------------------------------------------


def consultation_body(student, **extra):
    return {"student": student.pk, "channel": "phone", "content": "问了编程课", "intent": "high", **extra}


def test_front_desk_logs_a_consultation_through_the_service(client, front_desk, student_a):
    follow_up = timezone.now() + dt.timedelta(days=3)
    response = post(
        as_(client, front_desk), CONSULTATIONS, consultation_body(student_a, next_follow_up_at=follow_up.isoformat())
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["student"] == {"id": student_a.pk, "name": "小明"}
    assert body["consultant"]["id"] == front_desk.pk and body["intent"] == "high"
    student_a.refresh_from_db()
    # The service's rules ran: the first consultant owns the lead, and the follow-up is set.
    assert student_a.owner == front_desk and student_a.next_follow_up_at == follow_up
    assert audit_count(AuditAction.CONSULTATION_LOG) == 1


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"consulted_at": "2099-01-01T10:00:00+08:00"}, "consulted_at"),  # in the future
        ({"consulted_at": "1990-01-01T10:00:00+08:00"}, "consulted_at"),  # before the history window
        ({"next_follow_up_at": f"{timezone.localdate().year + 3}-01-01T10:00:00+08:00"}, "next_follow_up_at"),
        ({"next_follow_up_at": "2001-01-01T10:00:00+08:00"}, "next_follow_up_at"),  # before it
        ({"channel": "fax"}, "channel"),
        ({"content": "   "}, "content"),
        ({"consulted_at": "not a date"}, "consulted_at"),
        ({"consulted_at": "0001-01-01T00:00:00"}, "consulted_at"),  # before year 1 once in UTC
    ],
)
def test_a_bad_consultation_is_refused_and_nothing_is_written(client, front_desk, student_a, extra, field):
    assert_error(post(as_(client, front_desk), CONSULTATIONS, consultation_body(student_a, **extra)), 400, field)
    assert not Consultation.objects.exists()
    assert audit_count(AuditAction.CONSULTATION_LOG) == 0


def test_another_campus_student_cannot_be_named(client, front_desk, student_b):
    assert_error(post(as_(client, front_desk), CONSULTATIONS, consultation_body(student_b)), 400, "student")
    assert not Consultation.objects.exists()


def test_a_retried_consultation_is_logged_once(client, front_desk, student_a):
    as_(client, front_desk)
    first = post(client, CONSULTATIONS, consultation_body(student_a), HTTP_IDEMPOTENCY_KEY="c-1")
    again = post(client, CONSULTATIONS, consultation_body(student_a), HTTP_IDEMPOTENCY_KEY="c-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert Consultation.objects.count() == 1 and audit_count(AuditAction.CONSULTATION_LOG) == 1


def test_consultations_are_the_campus_and_filter(client, manager, front_desk, student_a, student_b, campus_a):
    other = factories.StudentFactory(campus=campus_a)
    now = timezone.now()
    mine = factories.ConsultationFactory(student=student_a, consultant=front_desk, consulted_at=now)
    old = factories.ConsultationFactory(student=other, consultant=manager, consulted_at=now - dt.timedelta(days=10))
    factories.ConsultationFactory(student=student_b)
    as_(client, manager)

    def ids(query=""):
        response = client.get(f"{CONSULTATIONS}?{query}")
        assert response.status_code == 200, response.content
        return [c["id"] for c in response.json()["results"]]

    assert ids() == [old.pk, mine.pk]
    assert ids(f"student={student_a.pk}") == [mine.pk]
    assert ids(f"consultant={manager.pk}") == [old.pk]
    day = timezone.localdate(now)
    assert ids(f"date_from={day.isoformat()}") == [mine.pk]
    assert ids(f"date_to={(day - dt.timedelta(days=1)).isoformat()}") == [old.pk]


@pytest.mark.parametrize(
    "query", ["student={other}", "date_from=yesterday", "date_to=9999-12-31", "date_from=0001-01-01", "consultant=x"]
)
def test_a_bad_filter_is_a_400(client, manager, student_b, query):
    response = as_(client, manager).get(f"{CONSULTATIONS}?{query.format(other=student_b.pk)}")
    assert_error(response, 400)


def test_consultations_list_in_constant_queries(client, manager, campus_a):
    as_(client, manager)

    def consult(n):
        for _ in range(n):
            factories.ConsultationFactory(student=factories.StudentFactory(campus=campus_a), consultant=manager)

    assert_constant_queries(client, CONSULTATIONS, consult)


def test_consultations_page_by_cursor(client, manager, student_a):
    factories.ConsultationFactory.create_batch(3, student=student_a, consultant=manager)
    page = as_(client, manager).get(f"{CONSULTATIONS}?page_size=2").json()
    assert len(page["results"]) == 2 and "count" not in page
    rest = client.get(page["next"]).json()
    assert len(rest["results"]) == 1 and rest["next"] is None


# --- contracts ----------------------------------------------------------------------------


def contract_body(student, course, **extra):
    return {
        "student": student.pk,
        "course": course.pk,
        "hours_bought": "40",
        "amount": "8000.00",
        "paid_amount": "6000.00",
        **extra,
    }


def test_front_desk_signs_a_contract_through_the_service(client, front_desk, student_a, course_a):
    student_a.next_follow_up_at = timezone.now() + dt.timedelta(days=1)
    student_a.save()
    response = post(
        as_(client, front_desk),
        CONTRACTS,
        contract_body(student_a, course_a, valid_until=f"{timezone.localdate() + dt.timedelta(days=400)}"),
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["hours_bought"] == "40.0" and body["hours_remaining"] == "40.0" and body["status"] == "active"
    contract = Contract.objects.get()
    assert contract.signed_by == front_desk and contract.paid_amount == Decimal("6000")
    student_a.refresh_from_db()
    assert student_a.next_follow_up_at is None  # signed: no follow-up is due any more
    assert audit_count(AuditAction.CONTRACT_SIGN) == 1


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"hours_bought": "1.25"}, "hours_bought"),  # the column keeps one decimal place
        ({"hours_bought": "0"}, "hours_bought"),
        ({"hours_bought": "1e9"}, "hours_bought"),
        ({"amount": "abc"}, "amount"),
        ({"amount": "NaN"}, "amount"),
        ({"amount": "100.001"}, "amount"),
        ({"paid_amount": "9000"}, "paid_amount"),  # more than the amount
        ({"paid_amount": "-1"}, "paid_amount"),
        ({"signed_at": "2099-01-01T10:00:00+08:00"}, "signed_at"),
        ({"signed_at": "1990-01-01T10:00:00+08:00"}, "signed_at"),
        ({"valid_until": "2099-01-01"}, "valid_until"),  # beyond ten years
        ({"valid_until": "2000-01-01"}, "valid_until"),  # before the signing
    ],
)
def test_a_bad_contract_is_refused_and_nothing_is_written(client, front_desk, student_a, course_a, extra, field):
    response = post(as_(client, front_desk), CONTRACTS, contract_body(student_a, course_a, **extra))
    assert_error(response, 400, field)
    assert not Contract.objects.exists() and audit_count(AuditAction.CONTRACT_SIGN) == 0


def test_another_campus_course_cannot_be_sold(client, front_desk, student_a, course_b):
    assert_error(post(as_(client, front_desk), CONTRACTS, contract_body(student_a, course_b)), 400, "course")
    assert not Contract.objects.exists()


def test_a_retried_signing_signs_once(client, front_desk, student_a, course_a):
    as_(client, front_desk)
    first = post(client, CONTRACTS, contract_body(student_a, course_a), HTTP_IDEMPOTENCY_KEY="k-1")
    again = post(client, CONTRACTS, contract_body(student_a, course_a), HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert Contract.objects.count() == 1 and audit_count(AuditAction.CONTRACT_SIGN) == 1


def test_contracts_are_the_campus_and_filter(client, front_desk, student_a, student_b, course_a, campus_a):
    active = factories.ContractFactory(student=student_a, course=course_a)
    refunded = factories.ContractFactory(
        student=factories.StudentFactory(campus=campus_a), course=course_a, status=ContractStatus.REFUNDED
    )
    factories.ContractFactory(student=student_b)
    as_(client, front_desk)

    def ids(query=""):
        response = client.get(f"{CONTRACTS}?{query}")
        assert response.status_code == 200, response.content
        return {c["id"] for c in response.json()["results"]}

    assert ids() == {active.pk, refunded.pk}
    assert ids(f"student={student_a.pk}") == {active.pk}
    assert ids("status=refunded") == {refunded.pk}
    assert_error(client.get(f"{CONTRACTS}?status=lost"), 400, "status")
    assert_error(client.get(f"{CONTRACTS}?student={student_b.pk}"), 400, "student")


def test_contracts_list_in_constant_queries(client, front_desk, campus_a, course_a):
    as_(client, front_desk)

    def sign(n):
        for _ in range(n):
            factories.ContractFactory(student=factories.StudentFactory(campus=campus_a), course=course_a)

    assert_constant_queries(client, CONTRACTS, sign)


def test_a_manager_refunds_a_contract(client, manager, student_a, course_a):
    contract = factories.ContractFactory(student=student_a, course=course_a, paid_amount=Decimal("8000"))
    response = post(as_(client, manager), refund_url(contract), {"amount": "3000.50", "reason": "搬家"})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "refunded" and response.json()["refund_amount"] == "3000.50"
    contract.refresh_from_db()
    assert contract.status == ContractStatus.REFUNDED and contract.refund_reason == "搬家"
    assert audit_count(AuditAction.CONTRACT_REFUND) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "9000", "reason": "搬家"}, "amount"),  # more than was paid
        ({"amount": "1.001", "reason": "搬家"}, "amount"),
        ({"amount": "x", "reason": "搬家"}, "amount"),
        ({"amount": "10", "reason": " "}, "reason"),
    ],
)
def test_a_bad_refund_is_refused_and_nothing_changes(client, manager, student_a, course_a, body, field):
    contract = factories.ContractFactory(student=student_a, course=course_a)
    assert_error(post(as_(client, manager), refund_url(contract), body), 400, field)
    contract.refresh_from_db()
    assert contract.status == ContractStatus.ACTIVE and audit_count(AuditAction.CONTRACT_REFUND) == 0


@pytest.mark.parametrize(("role", "status"), [("front_desk", 403), ("teacher", 403), ("manager_b", 404)])
def test_only_the_campus_manager_refunds(client, request, student_a, course_a, role, status):
    contract = factories.ContractFactory(student=student_a, course=course_a)
    response = post(as_(client, request.getfixturevalue(role)), refund_url(contract), {"amount": "1", "reason": "x"})
    assert_error(response, status)
    contract.refresh_from_db()
    assert contract.status == ContractStatus.ACTIVE


@pytest.mark.parametrize("role", ["front_desk_b", "manager_b"])
def test_another_campus_sees_none_of_these_records(client, request, role, student_a, course_a, front_desk):
    factories.ConsultationFactory(student=student_a, consultant=front_desk)
    factories.ContractFactory(student=student_a, course=course_a)
    as_(client, request.getfixturevalue(role))
    for url in (COURSES, CONSULTATIONS, CONTRACTS):
        assert client.get(url).json()["results"] == [], url


LISTS = [
    COURSES,
    CONSULTATIONS,
    CONTRACTS,
    reverse("api_trial_list"),
    reverse("api_attendance_list"),
]


@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize(
    "query",
    [
        "student=99999999999999999999999",
        "student=-1",
        "lesson=abc",
        "teacher=1.5",
        "status=%00",
        "day=0000-00-00",
        "date_from=10000-01-01",
        "page_size=-3",
        "page=99999999999999999999",
    ],
)
def test_odd_query_strings_are_refused_never_a_500(client, manager, url, query):
    """What a fuzzer sends: a 400 in the one shape (or a 404 for a page past the end)."""
    response = as_(client, manager).get(f"{url}?{query}")
    assert response.status_code in (200, 400, 404), (query, response.content)
    if response.status_code != 200:
        assert_error(response, response.status_code)


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        {"student": 99999999999999999999999, "course": "x"},
        {"student": None, "hours_bought": "1e999999999", "amount": "-0", "paid_amount": "1e-999999999"},
        {"marks": "all present"},
    ],
)
def test_odd_bodies_are_refused_never_a_500(client, manager, student_a, course_a, body):
    as_(client, manager)
    for url in (CONSULTATIONS, CONTRACTS, reverse("api_trial_list")):
        assert_error(post(client, url, body), 400)
