"""Referrals (转介绍): a parent's invite code, the leads it brings (front desk and the public
link), the reward when the referred child signs (once), and what the parent sees."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.authtoken.models import Token

from crm import events
from crm.models import AuditAction, AuditEntry, Campus, Channel, Contract, ContractStatus, Guardian, Student, User
from crm.services import lead_capture, referral_lead_capture
from crm.services.contracts import contract_sign
from crm.services.referrals import INVITE_ALPHABET, guardian_invite_code
from parents.api.throttles import InviteIpThrottle
from parents.models import ReferralReward, ReferralSettings
from parents.services import referrals as reward_service
from parents.services.referrals import referral_rewards_apply, referral_settings_update
from tests import factories
from tests.conftest import bearer

pytestmark = pytest.mark.django_db

NEW_PHONE = "13900139000"


@pytest.fixture(autouse=True)
def _fresh_throttle_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Throttle counts live in the shared cache: each test counts under its own keys (never
    flushing a cache other tests use), at the product's default rate."""
    monkeypatch.setattr(InviteIpThrottle, "cache_format", f"throttle_{uuid.uuid4().hex}_%(scope)s_%(ident)s")
    monkeypatch.setattr(InviteIpThrottle, "THROTTLE_RATES", {"invite_ip": "10/hour"})


def as_parent(guardian: Guardian) -> Client:
    client = Client()
    client.defaults.update(bearer(guardian))
    return client


def code_of(guardian: Guardian) -> str:
    return guardian_invite_code(guardian)


def invite_url(code: str, lead: bool = False) -> str:
    return reverse("parent_api:invite_lead" if lead else "parent_api:invite", args=[code])


def leave_lead(client: Client, code: str, **data: Any) -> Any:
    body = {"phone": NEW_PHONE, "student_name": "赵小龙", "guardian_name": "赵妈妈", "note": "周末有空", **data}
    return client.post(invite_url(code, lead=True), body, content_type="application/json")


def sign(student: Student, actor: User, course: Any, hours: str = "20") -> Contract:
    """The referred child signs, through the service, with the after-commit listeners run."""
    return contract_sign(
        actor=actor,
        student=student,
        course=course,
        hours_bought=Decimal(hours),
        amount=Decimal(0),
        paid_amount=Decimal(0),
    )


# --- the code ----------------------------------------------------------------------------------


def test_a_code_is_given_once_short_unambiguous_and_unique(parent_a: Guardian, parent_b: Guardian) -> None:
    code = code_of(parent_a)
    assert len(code) == 6 and set(code) <= set(INVITE_ALPHABET)
    assert not set(code) & set("0O1I")
    assert code_of(parent_a) == code
    assert Guardian.objects.get(pk=parent_a.pk).invite_code == code
    stale = Guardian.objects.get(pk=parent_a.pk)
    stale.invite_code = None  # another request gave the code meanwhile: that one stays
    assert code_of(stale) == code
    assert code_of(parent_b) != code


def test_a_code_already_taken_is_drawn_again(
    parent_a: Guardian, parent_b: Guardian, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = code_of(parent_a)
    draws = iter([taken, "ABCDEF"])
    monkeypatch.setattr("crm.services.referrals.invite_code_new", lambda: next(draws))
    assert code_of(parent_b) == "ABCDEF"


# --- the front desk types the code -------------------------------------------------------------


def test_the_front_desk_page_records_the_inviter_and_the_channel(
    client: Client, front_desk: User, parent_a: Guardian
) -> None:
    code = code_of(parent_a)
    client.force_login(front_desk)
    page = {"phone": NEW_PHONE, "student_name": "赵小龙", "channel": "douyin", "referral_code": f" {code.lower()} "}
    response = client.post(reverse("lead_capture"), page)
    assert response.status_code == 302
    student = Student.objects.get(name="赵小龙")
    assert student.referred_by == parent_a
    assert student.channel == Channel.REFERRAL
    assert student.referrer == parent_a.students.get()
    entry = AuditEntry.objects.get(action=AuditAction.LEAD_CAPTURE, student=student)
    assert entry.actor == front_desk and entry.detail["referred_by"] == str(parent_a.pk)


def test_the_referrer_is_the_inviters_child_at_the_same_campus(
    manager_b: User, parent_two_campuses: Guardian, campus_b: Campus
) -> None:
    captured = lead_capture(
        actor=manager_b,
        campus=campus_b,
        phone=NEW_PHONE,
        student_name="赵小龙",
        referral_code=code_of(parent_two_campuses),
    )
    assert captured.student.referrer is not None and captured.student.referrer.name == "张二"


def test_an_unknown_code_is_refused_on_its_field(client: Client, front_desk: User, campus_a: Campus) -> None:
    with pytest.raises(ValidationError) as caught:
        lead_capture(actor=front_desk, campus=campus_a, phone=NEW_PHONE, student_name="赵小龙", referral_code="ZZZZZZ")
    message = "No parent has this invite code. Check it with the parent who sent it."
    assert caught.value.message_dict == {"referral_code": [message]}
    client.force_login(front_desk)
    page = {"phone": NEW_PHONE, "student_name": "赵小龙", "channel": "douyin", "referral_code": "ZZZZZZ"}
    response = client.post(reverse("lead_capture"), page)
    assert response.status_code == 200
    assert response.context["form"].errors["referral_code"] == [message]
    assert not Student.objects.filter(name="赵小龙").exists()


def test_a_parent_cannot_refer_their_own_family(front_desk: User, parent_a: Guardian, campus_a: Campus) -> None:
    code = code_of(parent_a)
    father = factories.GuardianFactory(phone="+8613700137000")
    parent_a.students.get().guardians.add(father)
    # The inviter's own phone, and the other parent of the same child: the same family.
    for phone in ("13800138001", "13700137000"):
        with pytest.raises(ValidationError) as caught:
            lead_capture(
                actor=front_desk,
                campus=campus_a,
                phone=phone,
                student_name="王小二",
                add_to_family=True,
                referral_code=code,
            )
        assert caught.value.message_dict == {"referral_code": ["A parent cannot refer their own family."]}
    assert not Student.objects.filter(name="王小二").exists()


# --- the public invite link --------------------------------------------------------------------


def test_the_landing_page_names_the_campus_and_a_surname_only(parent_a: Guardian, campus_a: Campus) -> None:
    code = code_of(parent_a)
    response = Client().get(invite_url(code.lower()))
    assert response.status_code == 200
    assert response.json() == {"code": code, "campus": campus_a.name, "inviter": "王's parent"}
    assert "138" not in response.content.decode()


def test_an_unknown_code_is_a_404_in_the_one_shape(parent_a: Guardian) -> None:
    # A NUL byte never reaches the database (which refuses it): no code is made of it.
    calls = [Client().get(invite_url("ZZZZZZ")), leave_lead(Client(), "ZZZZZZ")]
    calls += [Client().get("/api/v1/parent/invites/AB%00CD/"), Client().post("/api/v1/parent/invites/AB%00CD/lead/")]
    for response in calls:
        assert response.status_code == 404
        assert set(response.json()) == {"code", "message", "fields"}
    assert not Student.objects.filter(name="赵小龙").exists()


def test_a_lead_through_the_link_is_captured_at_the_inviters_campus(parent_a: Guardian, campus_a: Campus) -> None:
    response = leave_lead(Client(), code_of(parent_a))
    assert response.status_code == 201
    student = Student.objects.get(name="赵小龙")
    assert student.campus == campus_a and student.channel == Channel.REFERRAL
    assert student.referred_by == parent_a and student.referrer == parent_a.students.get()
    assert student.created_by is None and student.owner is None and student.notes == "周末有空"
    assert student.stage == "lead"
    assert list(student.guardians.values_list("phone", "name")) == [("+8613900139000", "赵妈妈")]
    entry = AuditEntry.objects.get(action=AuditAction.REFERRAL_LEAD)
    assert entry.actor is None and entry.guardian == parent_a and entry.student == student


def test_a_phone_that_is_a_family_creates_nothing_and_is_answered_alike(parent_a: Guardian, parent_b: Guardian) -> None:
    code = code_of(parent_a)
    new = leave_lead(Client(), code)
    before = (Student.objects.count(), Guardian.objects.count(), AuditEntry.objects.count())
    known = leave_lead(Client(), code, phone="138 0013 8002", student_name="李小白", guardian_name="别人")
    inviter = leave_lead(Client(), code, phone="13800138001", student_name="王小二")
    assert new.status_code == known.status_code == inviter.status_code == 201
    assert new.json() == known.json() == inviter.json()
    assert (Student.objects.count(), Guardian.objects.count(), AuditEntry.objects.count()) == before
    assert Guardian.objects.get(pk=parent_b.pk).name == "李爸爸"


def test_bad_input_is_a_400_and_writes_nothing(parent_a: Guardian) -> None:
    response = leave_lead(Client(), code_of(parent_a), phone="12", student_name="")
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"code", "message", "fields"} and "student_name" in body["fields"]
    response = leave_lead(Client(), code_of(parent_a), phone="12")
    assert response.status_code == 400 and set(response.json()["fields"]) == {"phone"}
    assert Student.objects.count() == 1


def test_the_link_is_limited_per_address(parent_a: Guardian) -> None:
    code = code_of(parent_a)
    client = Client()
    for n in range(10):
        assert leave_lead(client, code, phone=f"1390013{n:04d}", student_name=f"孩子{n}").status_code == 201
    response = leave_lead(client, code, phone="13900139999", student_name="第十一")
    assert response.status_code == 429
    assert set(response.json()) == {"code", "message", "fields"}
    assert not Student.objects.filter(name="第十一").exists()
    other = Client(REMOTE_ADDR="10.0.0.9")
    assert leave_lead(other, code, phone="13900139998", student_name="别处").status_code == 201


# --- the reward --------------------------------------------------------------------------------


@pytest.fixture
def referred(parent_a: Guardian, campus_a: Campus) -> Student:
    captured = referral_lead_capture(inviter=parent_a, phone=NEW_PHONE, student_name="赵小龙")
    assert captured is not None
    return captured.student


def test_the_reward_is_applied_once_when_the_referred_child_signs(
    django_capture_on_commit_callbacks: Any,
    referred: Student,
    parent_a: Guardian,
    front_desk: User,
    course_a: Any,
) -> None:
    child = parent_a.students.get()
    small = factories.ContractFactory(student=child, course=course_a, hours_bought=Decimal("40"))
    large = factories.ContractFactory(student=child, course=course_a, hours_bought=Decimal("60"))
    with django_capture_on_commit_callbacks(execute=True):
        sign(referred, front_desk, course_a)
    large.refresh_from_db()
    small.refresh_from_db()
    assert large.hours_bought == Decimal("62") and small.hours_bought == Decimal("40")
    reward = ReferralReward.objects.get()
    assert (reward.student, reward.guardian, reward.contract, reward.hours, reward.status) == (
        referred,
        parent_a,
        large,
        Decimal("2.0"),
        ReferralReward.Status.APPLIED,
    )
    assert reward.applied_at is not None
    entry = AuditEntry.objects.get(action=AuditAction.REFERRAL_REWARD)
    assert entry.actor is None and entry.guardian == parent_a and entry.student == child
    assert entry.detail["hours"] == "2.0" and entry.detail["contract"] == str(large.pk)

    # Again by the service, and again by the listener: nothing more.
    assert referral_rewards_apply([referred.pk, child.pk]) == 0
    with django_capture_on_commit_callbacks(execute=True):
        events.student_facts_changed([referred.pk, child.pk])
        events.student_facts_changed([referred.pk])
    large.refresh_from_db()
    assert large.hours_bought == Decimal("62")
    assert ReferralReward.objects.count() == 1
    assert AuditEntry.objects.filter(action=AuditAction.REFERRAL_REWARD).count() == 1


def test_a_reward_is_owed_until_the_inviters_child_signs(
    django_capture_on_commit_callbacks: Any,
    referred: Student,
    parent_a: Guardian,
    front_desk: User,
    course_a: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        sign(referred, front_desk, course_a)
    reward = ReferralReward.objects.get()
    assert reward.status == ReferralReward.Status.OWED and reward.contract is None and reward.hours == 2
    with django_capture_on_commit_callbacks(execute=True):
        contract = sign(parent_a.students.get(), front_desk, course_a, hours="30")
    contract.refresh_from_db()
    reward.refresh_from_db()
    assert contract.hours_bought == Decimal("32")
    assert reward.status == ReferralReward.Status.APPLIED and reward.contract == contract
    assert referral_rewards_apply([parent_a.students.get().pk, referred.pk]) == 0
    contract.refresh_from_db()
    assert contract.hours_bought == Decimal("32")


def test_a_cancelled_contract_earns_nothing(referred: Student, parent_a: Guardian, course_a: Any) -> None:
    factories.ContractFactory(student=parent_a.students.get(), course=course_a)
    factories.ContractFactory(student=referred, course=course_a, status=ContractStatus.CANCELLED)
    assert referral_rewards_apply([referred.pk]) == 0
    assert not ReferralReward.objects.exists()


def test_a_campus_with_no_reward_gives_none(
    referred: Student, parent_a: Guardian, manager: User, campus_a: Campus, course_a: Any
) -> None:
    referral_settings_update(actor=manager, campus=campus_a, reward_hours=Decimal("0"))
    factories.ContractFactory(student=parent_a.students.get(), course=course_a)
    factories.ContractFactory(student=referred, course=course_a)
    assert referral_rewards_apply([referred.pk]) == 0
    assert not ReferralReward.objects.exists()


def test_the_campus_rule_is_changed_by_its_managers_and_audited(
    manager: User, manager_b: User, teacher: User, campus_a: Campus
) -> None:
    settings_row = referral_settings_update(actor=manager, campus=campus_a, reward_hours=Decimal("3.5"))
    assert settings_row.reward_hours == Decimal("3.5")
    entry = AuditEntry.objects.get(action=AuditAction.PARENT_SETTINGS_UPDATE)
    assert entry.actor == manager and "2.0 → 3.5" in entry.detail["changes"]
    for who in (manager_b, teacher):
        with pytest.raises(PermissionDenied):
            referral_settings_update(actor=who, campus=campus_a, reward_hours=Decimal("1"))
    for bad in ("-1", "101", "1.25"):
        with pytest.raises(ValidationError) as caught:
            referral_settings_update(actor=manager, campus=campus_a, reward_hours=Decimal(bad))
        assert "reward_hours" in caught.value.message_dict
    assert ReferralSettings.objects.get(campus=campus_a).reward_hours == Decimal("3.5")


def test_two_workers_earning_one_reward_write_one(
    referred: Student, parent_a: Guardian, course_a: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second worker read the student as not yet rewarded; the unique student refuses it."""
    factories.ContractFactory(student=referred, course=course_a)
    contract = factories.ContractFactory(student=parent_a.students.get(), course=course_a)
    assert referral_rewards_apply([referred.pk]) == 1
    assert reward_service._reward_earn(referred.pk, parent_a.pk, referred.campus_id) == 0
    contract.refresh_from_db()
    assert contract.hours_bought == Decimal("42") and ReferralReward.objects.count() == 1


# --- what the parent sees ----------------------------------------------------------------------


def test_the_parent_sees_their_code_link_rule_and_invitations(
    referred: Student, parent_a: Guardian, front_desk: User, course_a: Any, settings: Any
) -> None:
    settings.SITE_URL = "https://scrm.example.cn"
    factories.ContractFactory(student=parent_a.students.get(), course=course_a)
    factories.ContractFactory(student=referred, course=course_a)
    referral_rewards_apply([referred.pk])
    client = as_parent(parent_a)
    body = client.get(reverse("parent_api:referral")).json()
    code = parent_a.invite_code or Guardian.objects.get(pk=parent_a.pk).invite_code
    assert body == {
        "code": code,
        "link": f"https://scrm.example.cn/m/#/invite/{code}",
        "campus": referred.campus.name,
        "reward_hours": "2.0",
        "rule": "When a child you invited signs up, you get 2 bonus lesson hours.",
        "invited": 1,
        "hours_earned": "2.0",
    }
    page = client.get(reverse("parent_api:referral_invitations")).json()
    assert page["count"] == 1
    (row,) = page["results"]
    assert row["name"] == "小龙" and row["signed"] is True and row["stage"]
    assert (row["reward_status"], row["reward_hours"]) == ("applied", "2.0")
    assert "赵" not in str(row) and "139" not in str(row)


def test_another_parent_sees_only_their_own_invitations(referred: Student, parent_b: Guardian) -> None:
    client = as_parent(parent_b)
    assert client.get(reverse("parent_api:referral_invitations")).json()["count"] == 0
    assert client.get(reverse("parent_api:referral")).json()["invited"] == 0


def test_strangers_and_staff_are_refused(front_desk: User) -> None:
    for name in ("parent_api:referral", "parent_api:referral_invitations"):
        assert Client().get(reverse(name)).status_code == 401
        token = Token.objects.get_or_create(user=front_desk)[0]
        response = Client(HTTP_AUTHORIZATION=f"Token {token.key}").get(reverse(name))
        assert response.status_code == 403
        assert set(response.json()) == {"code", "message", "fields"}


def test_the_invitations_take_a_constant_number_of_queries(parent_a: Guardian, course_a: Any) -> None:
    def invite(n: int) -> None:
        for _ in range(n):
            captured = referral_lead_capture(
                inviter=parent_a, phone=f"1390013{Student.objects.count():04d}", student_name="孩子"
            )
            assert captured is not None
            factories.ContractFactory(student=captured.student, course=course_a)

    factories.ContractFactory(student=parent_a.students.get(), course=course_a)
    client = as_parent(parent_a)
    url = reverse("parent_api:referral_invitations")
    invite(2)
    referral_rewards_apply(Student.objects.values_list("pk", flat=True))
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).json()["count"] == 2
    invite(18)
    with CaptureQueriesContext(connection) as many:
        assert client.get(url).json()["count"] == 20
    assert len(many) == len(few)


def test_the_admin_changes_a_campus_rule_through_the_service(
    client: Client, manager: User, manager_b: User, campus_a: Campus, campus_b: Campus
) -> None:
    client.force_login(manager)
    listing = client.get(reverse("admin:parents_referralsettings_changelist"))
    assert listing.status_code == 200
    row = ReferralSettings.objects.get(campus=campus_a)
    assert [r.campus for r in listing.context["cl"].result_list] == [campus_a]
    change = reverse("admin:parents_referralsettings_change", args=[row.pk])
    assert client.post(change, {"reward_hours": "4"}).status_code == 302
    assert ReferralSettings.objects.get(pk=row.pk).reward_hours == Decimal("4")
    assert AuditEntry.objects.filter(action=AuditAction.PARENT_SETTINGS_UPDATE, actor=manager).count() == 1
    other = ReferralSettings.objects.get(campus=campus_b)
    client.force_login(manager_b)
    assert client.post(change, {"reward_hours": "9"}).status_code in (302, 403, 404)
    assert ReferralSettings.objects.get(pk=row.pk).reward_hours == Decimal("4")
    assert other.reward_hours == Decimal("2.0")
