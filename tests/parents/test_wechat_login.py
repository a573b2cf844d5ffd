"""Parent login by WeChat against a real local server playing WeChat (tests/campaigns/wechat.py):
jscode2session gives the openid; the first time the phone WeChat vouches for finds the family,
which is linked to the WeChat account; later logins need the openid alone. A phone no family
has, a WeChat account linked to another family, WeChat's errcodes and a WeChat that is down all
answer in the one error shape, write nothing, and the session_key is never kept anywhere."""

from __future__ import annotations

import logging
import socket

import pytest
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.urls import reverse

from crm.models import AuditAction, AuditEntry, Guardian
from crm.services.families import guardian_wechat_bind
from parents.models import ParentSession
from tests.campaigns.wechat import APPID, WeChatServer

pytestmark = pytest.mark.django_db

WECHAT = reverse("parent_api:auth_wechat")
ME = reverse("parent_api:me")


@pytest.fixture(autouse=True)
def _no_throttle_carry_over(settings, own_throttle_counts):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"auth_ip": "1000/min", "auth_phone": "1000/hour", "invite_ip": "1000/hour"},
    }


def wechat_login(client, code: str, phone_code: str | None = None):
    body = {"code": code} if phone_code is None else {"code": code, "phone_code": phone_code}
    return client.post(WECHAT, body, content_type="application/json")


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.json()
    body = response.json()
    assert set(body) == {"code", "message", "fields"} and body["code"] == code and body["message"], body
    return body


def nothing_written() -> bool:
    return (
        not Guardian.objects.filter(wechat_openid__isnull=False).exists()
        and not ParentSession.objects.exists()
        and not AuditEntry.objects.exists()
    )


def first_login(client, wechat_server: WeChatServer, openid: str = "o-mom", phone: str = "13800138001"):
    """What the mini program does the first time: login, phone_required, then login with the phone."""
    wechat_server.login_code("first", openid, unionid=f"u-{openid}")
    assert_error(wechat_login(client, "first"), 400, "phone_required")
    wechat_server.login_code("second", openid, unionid=f"u-{openid}")
    wechat_server.phone_code("phone", phone)
    return wechat_login(client, "second", "phone")


class TestLogin:
    def test_the_first_login_links_the_family_by_its_phone_and_opens_a_session(
        self, client, parent_a, wechat_server: WeChatServer
    ):
        response = first_login(client, wechat_server)
        assert response.status_code == 200, response.json()
        body = response.json()
        assert body["token_type"] == "Bearer" and body["access"] and body["refresh"]
        me = client.get(ME, HTTP_AUTHORIZATION=f"Bearer {body['access']}")
        assert me.status_code == 200 and me.json()["name"] == "王妈妈"
        parent_a.refresh_from_db()
        assert (parent_a.wechat_openid, parent_a.wechat_unionid) == ("o-mom", "u-o-mom")
        assert ParentSession.objects.get().via == "wechat"
        bind = AuditEntry.objects.get(action=AuditAction.PARENT_WECHAT_BIND)
        assert bind.guardian == parent_a and bind.actor is None and bind.detail == {"replaced": "no"}
        assert AuditEntry.objects.filter(action=AuditAction.PARENT_LOGIN, guardian=parent_a).count() == 1
        # WeChat was asked as documented: the app's credentials, the phone code with a token it issued.
        assert wechat_server.login_requests[-1] == {
            "appid": APPID,
            "secret": "test-app-secret",
            "js_code": "second",
            "grant_type": "authorization_code",
        }
        [request] = wechat_server.phone_requests
        assert request["body"] == {"code": "phone"} and request["token"] in wechat_server.tokens
        assert wechat_server.token_count == 1

    def test_the_next_login_needs_the_openid_alone(self, client, parent_a, wechat_server: WeChatServer):
        assert first_login(client, wechat_server).status_code == 200
        wechat_server.login_code("third", "o-mom", unionid="u-o-mom")
        response = wechat_login(client, "third")
        assert response.status_code == 200, response.json()
        assert len(wechat_server.phone_requests) == 1  # the phone was not asked for again
        assert ParentSession.objects.filter(guardian=parent_a, via="wechat").count() == 2
        assert AuditEntry.objects.filter(action=AuditAction.PARENT_WECHAT_BIND).count() == 1

    def test_without_a_linked_family_the_phone_is_required(
        self, client, parent_a, wechat_server: WeChatServer, settings
    ):
        settings.LANGUAGE_CODE = "zh-hans"  # what parents read
        wechat_server.login_code("c", "o-new")
        body = assert_error(wechat_login(client, "c", ""), 400, "phone_required")
        assert "手机号" in body["message"]
        assert wechat_server.phone_requests == [] and nothing_written()

    def test_a_phone_no_family_has_is_refused_and_links_nothing(
        self, client, parent_a, wechat_server: WeChatServer, settings
    ):
        settings.LANGUAGE_CODE = "zh-hans"
        wechat_server.login_code("c", "o-stranger")
        wechat_server.phone_code("p", "13900000000")
        body = assert_error(wechat_login(client, "c", "p"), 400, "no_family")
        assert "校区" in body["message"]
        assert nothing_written() and not Guardian.objects.filter(phone="+8613900000000").exists()

    def test_an_account_linked_to_another_family_is_refused(
        self, client, parent_a, parent_b, wechat_server: WeChatServer
    ):
        # The unionid (the same WeChat user) is already parent_b's.
        Guardian.objects.filter(pk=parent_b.pk).update(wechat_openid="o-dad", wechat_unionid="u-dad")
        wechat_server.login_code("c", "o-dad-other-app", unionid="u-dad")
        wechat_server.phone_code("p", "13800138001")
        assert_error(wechat_login(client, "c", "p"), 400, "wechat_bound_elsewhere")
        parent_a.refresh_from_db()
        assert parent_a.wechat_openid is None and not ParentSession.objects.exists()
        assert not AuditEntry.objects.exists()

    def test_a_family_moves_to_its_new_wechat_account(self, client, parent_a, wechat_server: WeChatServer):
        Guardian.objects.filter(pk=parent_a.pk).update(wechat_openid="o-old-phone", wechat_unionid="u-old")
        response = first_login(client, wechat_server, openid="o-new-phone")
        assert response.status_code == 200, response.json()
        parent_a.refresh_from_db()
        assert (parent_a.wechat_openid, parent_a.wechat_unionid) == ("o-new-phone", "u-o-new-phone")
        assert AuditEntry.objects.get(action=AuditAction.PARENT_WECHAT_BIND).detail == {"replaced": "yes"}

    def test_a_token_wechat_refused_is_replaced_for_the_phone_exchange(
        self, client, parent_a, wechat_server: WeChatServer
    ):
        wechat_server.login_code("a", "o-other")
        wechat_server.phone_code("pa", "13900000000")
        assert_error(wechat_login(client, "a", "pa"), 400, "no_family")  # a token is now cached
        wechat_server.revoke_tokens()
        response = first_login(client, wechat_server)
        assert response.status_code == 200, response.json()
        assert [r["errcode"] for r in wechat_server.phone_requests] == [0, 40001, 0]
        assert wechat_server.token_count == 2


class TestWeChatRefuses:
    def test_an_unknown_code_is_invalid_code(self, client, parent_a, wechat_server: WeChatServer):
        assert_error(wechat_login(client, "never-issued"), 400, "invalid_code")
        assert nothing_written()

    def test_a_code_used_twice_is_code_used(self, client, parent_a, wechat_server: WeChatServer):
        assert first_login(client, wechat_server).status_code == 200
        assert_error(wechat_login(client, "second"), 400, "code_used")
        assert ParentSession.objects.count() == 1

    def test_an_unknown_phone_code_is_phone_code_invalid(self, client, parent_a, wechat_server: WeChatServer):
        wechat_server.login_code("c", "o-mom")
        assert_error(wechat_login(client, "c", "forged"), 400, "phone_code_invalid")
        assert nothing_written()

    def test_wechats_rate_limit_is_a_429_with_the_wait(self, client, parent_a, wechat_server: WeChatServer):
        wechat_server.answer_login_next(("errcode", 45011))
        response = wechat_login(client, "c")
        assert_error(response, 429, "throttled")
        assert int(response["Retry-After"]) == 60
        assert nothing_written()

    def test_a_blocked_account_is_wechat_refused(self, client, parent_a, wechat_server: WeChatServer):
        wechat_server.answer_login_next(("errcode", 40226))
        assert_error(wechat_login(client, "c"), 400, "wechat_refused")

    def test_login_is_off_without_the_apps_credentials(self, client, parent_a, wechat_server, settings):
        settings.WECHAT_APPID = ""
        assert_error(wechat_login(client, "c"), 404, "not_enabled")
        assert wechat_server.login_requests == [] and nothing_written()

    @pytest.mark.parametrize("body", [{}, {"code": ""}, {"code": "x" * 129}, {"code": "c", "phone_code": "p" * 129}])
    def test_bad_bodies_are_400s_on_the_field(self, client, parent_a, wechat_server: WeChatServer, body):
        response = client.post(WECHAT, body, content_type="application/json")
        assert assert_error(response, 400, "invalid")["fields"]
        assert wechat_server.login_requests == []


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


class TestWeChatDown:
    def assert_unavailable(self, response) -> None:
        assert_error(response, 503, "wechat_unavailable")
        assert response["Retry-After"]

    def test_a_server_that_is_gone_is_a_503(self, client, parent_a, wechat_server: WeChatServer, settings):
        settings.WECHAT_API_BASE = closed_port_url()
        self.assert_unavailable(wechat_login(client, "c"))
        assert nothing_written()

    @pytest.mark.parametrize("answer", [("errcode", -1), ("status", 502), ("errcode", 40125)])
    def test_a_busy_or_failing_jscode2session_is_a_503(self, client, parent_a, wechat_server: WeChatServer, answer):
        wechat_server.answer_login_next(answer)
        self.assert_unavailable(wechat_login(client, "c"))
        assert nothing_written()

    def test_a_jscode2session_that_times_out_is_a_503(self, client, parent_a, wechat_server: WeChatServer, settings):
        settings.WECHAT_TIMEOUT = 0.3
        wechat_server.answer_login_next(("delay", 1))
        self.assert_unavailable(wechat_login(client, "c"))
        assert nothing_written()

    @pytest.mark.parametrize("answer", [("errcode", -1), ("status", 500), ("delay", 1)])
    def test_a_failing_phone_exchange_links_nothing(
        self, client, parent_a, wechat_server: WeChatServer, settings, answer
    ):
        settings.WECHAT_TIMEOUT = 0.3
        wechat_server.login_code("c", "o-mom")
        wechat_server.phone_code("p", "13800138001")
        wechat_server.answer_phone_next(answer)
        self.assert_unavailable(wechat_login(client, "c", "p"))
        assert nothing_written()

    def test_a_token_wechat_will_not_issue_is_a_503(self, client, parent_a, wechat_server: WeChatServer):
        wechat_server.login_code("c", "o-mom")
        wechat_server.phone_code("p", "13800138001")
        wechat_server.answer_token_next(("errcode", -1))
        self.assert_unavailable(wechat_login(client, "c", "p"))
        assert nothing_written()


class TestSessionKey:
    def test_the_session_key_is_kept_nowhere(self, client, parent_a, wechat_server: WeChatServer, caplog):
        caplog.set_level(logging.DEBUG)
        answers = [first_login(client, wechat_server)]
        wechat_server.login_code("again", "o-mom")
        answers.append(wechat_login(client, "again"))
        wechat_server.login_code("stranger", "o-x")
        wechat_server.phone_code("px", "13900000000")
        answers.append(wechat_login(client, "stranger", "px"))
        wechat_server.answer_phone_next(("errcode", -1))
        wechat_server.login_code("busy", "o-y")
        wechat_server.phone_code("py", "13800138001")
        answers.append(wechat_login(client, "busy", "py"))
        assert [a.status_code for a in answers] == [200, 200, 400, 503]
        assert len(wechat_server.session_keys) == 5  # the phone_required call had one too
        kept = " ".join(
            [
                *(str(row) for row in Guardian.objects.values()),
                *(str(row) for row in AuditEntry.objects.values()),
                *(str(row) for row in ParentSession.objects.values()),
                *(a.content.decode() for a in answers),
                caplog.text,
            ]
        )
        assert "o-mom" in kept  # the rows were read
        assert any(r.name == "parents.services.wechat_login" for r in caplog.records)  # the 503 was logged
        for key in wechat_server.session_keys:
            assert key not in kept
        assert "SESSION-KEY" not in kept


class TestBindService:
    def test_an_openid_of_another_guardian_is_refused(self, parent_a, parent_b):
        guardian_wechat_bind(guardian=parent_b, openid="o-dad")
        with pytest.raises(ValidationError) as refused:
            guardian_wechat_bind(guardian=parent_a, openid="o-dad", unionid="u-x")
        assert refused.value.error_list[0].code == "wechat_bound_elsewhere"
        parent_a.refresh_from_db()
        assert parent_a.wechat_openid is None and parent_a.wechat_unionid is None

    def test_binding_again_writes_nothing(self, parent_a):
        guardian_wechat_bind(guardian=parent_a, openid="o-mom", unionid="u-mom")
        guardian_wechat_bind(guardian=parent_a, openid="o-mom")
        parent_a.refresh_from_db()
        assert parent_a.wechat_unionid == "u-mom"
        assert AuditEntry.objects.filter(action=AuditAction.PARENT_WECHAT_BIND).count() == 1

    def test_the_database_refuses_an_openid_twice(self, parent_a, parent_b, monkeypatch):
        """A concurrent request that took the openid after the check: the unique index decides."""
        guardian_wechat_bind(guardian=parent_b, openid="o-dad")
        # The check before the write sees nothing, as it would while the other request commits.
        monkeypatch.setattr("crm.services.families.Q", lambda *args, **kwargs: Q(pk__in=[]))
        with pytest.raises(ValidationError) as refused:
            guardian_wechat_bind(guardian=parent_a, openid="o-dad")
        assert refused.value.error_list[0].code == "wechat_bound_elsewhere"
