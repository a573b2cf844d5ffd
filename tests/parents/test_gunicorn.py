"""A parent's session end to end over HTTP against a running gunicorn (2 workers) on the test
database: the code comes through the real SMS gateway, then children, a child's page, a trial
request, the satisfaction question, a friend invited whose lead then signs (the reward applied
once), opting out of SMS marketing, logout, and the old token refused."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from campaigns.models import Consent
from crm.models import Contract, Student
from parents.models import ReferralReward, TrialRequest
from personas.models import CareTask, SatisfactionAnswer
from tests import factories
from tests.campaigns.gateway import KEY, SECRET, Gateway
from tests.gunicorn import call, gunicorn

pytestmark = pytest.mark.django_db(transaction=True)
P = "/api/v1/parent"


def sms_codes(gateway: Gateway) -> list[str]:
    """The login codes the gateway was asked to send, each also in the text the parent reads."""
    codes = []
    for request in gateway.requests:
        body = request["body"]
        if body.get("template_code") == "login_code":
            code = body["template_param"]["code"]
            assert re.search(rf"\b{code}\b", body["content"])
            codes.append(code)
    return codes


def test_a_parents_session_over_http(
    parent_two_campuses, course_a, teacher, manager, sms_gateway_server: Gateway
) -> None:
    # 张一 has attended eight lessons (the satisfaction question is due) on a contract the
    # referral reward will credit.
    zhang_yi = Student.objects.get(guardians=parent_two_campuses, campus=course_a.campus)
    contract = factories.ContractFactory(student=zhang_yi, course=course_a, hours_bought=Decimal("20"))
    for day in range(8):
        factories.AttendanceFactory(
            student=zhang_yi,
            contract=contract,
            teacher=teacher,
            lesson_at=timezone.now() - dt.timedelta(days=7 * day + 1),
        )
    staff = f"Token {Token.objects.create(user=manager).key}"
    env = {
        "SMS_PROVIDER": "sms_gateway",
        "SMS_GATEWAY_URL": sms_gateway_server.url,
        "SMS_GATEWAY_KEY": KEY,
        "SMS_GATEWAY_SECRET": SECRET,
        # Throttles count in the shared Redis per address: other tests' logins are not this one's.
        "API_AUTH_RATE_IP": "1000/min",
        "API_AUTH_RATE_PHONE": "1000/hour",
        "API_INVITE_RATE_IP": "1000/hour",
    }
    with gunicorn(env=env) as base:
        sent = call(base, "POST", f"{P}/auth/code/", {"phone": "138 0013 8003"})
        assert sent.status == 202, sent.body
        [code] = sms_codes(sms_gateway_server)
        tokens = call(base, "POST", f"{P}/auth/login/", {"phone": "13800138003", "code": code})
        assert tokens.status == 200, tokens.body
        auth = f"Bearer {tokens.body['access']}"

        children = call(base, "GET", f"{P}/children/", token=auth)
        assert sorted(c["name"] for c in children.body["results"]) == ["张一", "张二"]
        child = next(c for c in children.body["results"] if c["name"] == "张一")
        page = call(base, "GET", f"{P}/children/{child['id']}/", token=auth)
        assert page.status == 200 and page.body["child"]["name"] == "张一"

        wished = (timezone.localtime() + dt.timedelta(days=3)).replace(microsecond=0).isoformat()
        body = {"wished_at": wished, "course": course_a.pk, "note": "周六上午"}
        first = call(base, "POST", f"{P}/children/{child['id']}/trial-requests/", body, auth, Idempotency_Key="e2e-1")
        again = call(base, "POST", f"{P}/children/{child['id']}/trial-requests/", body, auth, Idempotency_Key="e2e-1")
        assert first.status == again.status == 201 and again.body == first.body
        assert TrialRequest.objects.filter(student_id=child["id"]).count() == 1

        due = call(base, "GET", f"{P}/satisfaction/", token=auth)
        assert [c["student"]["id"] for c in due.body["results"]] == [child["id"]], due.body
        answer = {"score": 4, "reason": "上课时间总变"}
        answered = call(base, "POST", f"{P}/children/{child['id']}/satisfaction/", answer, auth)
        assert answered.status == 201, answered.body
        assert SatisfactionAnswer.objects.get().score == 4 and CareTask.objects.filter(student=zhang_yi).count() == 1
        assert call(base, "GET", f"{P}/satisfaction/", token=auth).body["results"] == []

        referral = call(base, "GET", f"{P}/referral/", token=auth)
        code = referral.body["code"]
        assert referral.body["link"].endswith(f"/m/#/invite/{code}")
        friend = {"phone": "136 0013 6000", "student_name": "小友", "guardian_name": "赵妈妈"}
        assert call(base, "POST", f"{P}/invites/{code}/lead/", friend).status == 201
        friend_child = Student.objects.get(name="小友")
        assert friend_child.referred_by == parent_two_campuses and friend_child.campus == course_a.campus
        signing = {"student": friend_child.pk, "course": course_a.pk, "hours_bought": "24", "amount": "4800"}
        signing["paid_amount"] = "4800"
        for key in ("sign-1", "sign-2"):  # the second is a new contract: the reward is still once
            signed = call(base, "POST", "/api/v1/contracts/", signing, staff, Idempotency_Key=key)
            assert signed.status == 201, signed.body
        reward = ReferralReward.objects.get()
        assert reward.student == friend_child and reward.status == "applied"
        contract.refresh_from_db()
        assert contract.hours_bought == Decimal("20") + reward.hours
        invitations = call(base, "GET", f"{P}/referral/invitations/", token=auth).body["results"]
        assert [(i["signed"], i["reward_status"]) for i in invitations] == [(True, "applied")]
        assert Contract.objects.filter(student=friend_child).count() == 2

        prefs = call(base, "PATCH", f"{P}/preferences/", {"sms": True}, auth)
        assert prefs.status == 200
        off = call(base, "PATCH", f"{P}/preferences/", {"sms": False}, auth)
        assert {c["channel"]: c["granted"] for c in off.body["channels"]}["sms"] is False
        assert Consent.objects.get(guardian=parent_two_campuses, channel="sms").granted is False

        assert call(base, "POST", f"{P}/auth/logout/", token=auth).status == 204
        refused = call(base, "GET", f"{P}/me/", token=auth)
        assert refused.status == 401 and refused.body["code"] == "authentication_failed"
        stale = call(base, "POST", f"{P}/auth/refresh/", {"refresh": tokens.body["refresh"]})
        assert stale.status == 401
