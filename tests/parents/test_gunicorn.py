"""A parent's session end to end over HTTP against a running gunicorn (2 workers) on the test
database: the code comes through the real SMS gateway, then children, a child's page, a trial
request, opting out of SMS marketing, logout, and the old token refused."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from campaigns.models import Consent
from parents.models import TrialRequest
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


def test_a_parents_session_over_http(parent_two_campuses, course_a, sms_gateway_server: Gateway) -> None:
    env = {
        "SMS_PROVIDER": "sms_gateway",
        "SMS_GATEWAY_URL": sms_gateway_server.url,
        "SMS_GATEWAY_KEY": KEY,
        "SMS_GATEWAY_SECRET": SECRET,
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
