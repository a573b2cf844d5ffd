"""Parent login by phone and SMS code: the code goes through the messaging layer, works once,
expires, and the sixth wrong code within the window is refused; tokens expire, refresh rotates,
logout revokes."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Message, MessageCategory
from crm.models import AuditAction, AuditEntry
from parents.models import LoginCode, ParentSession
from tests.campaigns.gateway import Gateway

pytestmark = pytest.mark.django_db

CODE = reverse("parent_api:auth_code")
LOGIN = reverse("parent_api:auth_login")
REFRESH = reverse("parent_api:auth_refresh")
LOGOUT = reverse("parent_api:auth_logout")
ME = reverse("parent_api:me")
T0 = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _no_throttle_carry_over(settings, own_throttle_counts):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"auth_ip": "1000/min", "auth_phone": "1000/hour", "invite_ip": "1000/hour"},
    }


def sent_code(phone: str = "+8613800138001") -> str:
    message = Message.objects.filter(recipient=phone, template_code="login_code").latest("created_at")
    return message.params["code"]


def ask_code(client, phone="138 0013 8001"):
    return client.post(CODE, {"phone": phone}, content_type="application/json")


def login(client, code, phone="13800138001"):
    return client.post(LOGIN, {"phone": phone, "code": code}, content_type="application/json")


class TestCode:
    def test_the_code_goes_out_by_sms_through_the_gateway(
        self, client, parent_a, sms_gateway_server: Gateway, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            response = ask_code(client)
        assert response.status_code == 202, response.json()
        assert response.json()["phone"] == "138 0013 8001"
        [request] = sms_gateway_server.requests
        code = sent_code()
        assert code in str(request) and len(code) == 6
        message = Message.objects.get(template_code="login_code")
        assert message.category == MessageCategory.TRANSACTIONAL and message.guardian == parent_a
        assert LoginCode.objects.get().code_hash != code  # never kept in clear

    def test_a_stranger_phone_gets_the_same_answer_and_no_message(self, client, parent_a):
        response = ask_code(client, "139 0000 0000")
        assert response.status_code == 202
        assert set(response.json()) == {"phone", "expires_in", "resend_in"}
        assert not Message.objects.exists() and not LoginCode.objects.exists()

    def test_a_bad_phone_is_a_400_on_the_field(self, client, parent_a):
        response = ask_code(client, "12")
        assert response.status_code == 400
        assert response.json()["code"] == "invalid" and "phone" in response.json()["fields"]

    def test_asking_again_within_the_interval_is_a_429_with_the_wait(self, client, parent_a):
        with time_machine.travel(T0, tick=False):
            assert ask_code(client).status_code == 202
            again = ask_code(client)
        assert again.status_code == 429 and again.json()["code"] == "throttled"
        assert int(again["Retry-After"]) == 60
        with time_machine.travel(T0 + dt.timedelta(seconds=61), tick=False):
            assert ask_code(client).status_code == 202
        assert LoginCode.objects.count() == 2

    def test_codes_per_phone_are_throttled_whatever_the_address(self, client, parent_a, settings):
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"auth_ip": "1000/min", "auth_phone": "2/hour", "invite_ip": "1/hour"},
        }
        settings.PARENT_CODE_RESEND_SECONDS = 0
        assert ask_code(client).status_code == 202
        assert ask_code(client, "+86 138 0013 8001").status_code == 202
        third = client.post(CODE, {"phone": "13800138001"}, content_type="application/json", REMOTE_ADDR="10.0.0.9")
        assert third.status_code == 429 and third.json()["message"]
        assert LoginCode.objects.count() == 2


class TestLogin:
    def test_a_right_code_logs_in_once(self, client, parent_a):
        with time_machine.travel(T0, tick=False):
            ask_code(client)
            code = sent_code()
            response = login(client, code)
            assert response.status_code == 200, response.json()
            body = response.json()
            assert body["token_type"] == "Bearer" and body["access"] and body["refresh"]
            me = client.get(ME, HTTP_AUTHORIZATION=f"Bearer {body['access']}")
            assert me.status_code == 200 and me.json()["name"] == "王妈妈" and me.json()["children"] == 1
            # The same code again: refused, though it is right.
            again = login(client, code)
        assert again.status_code == 400 and "code" in again.json()["fields"]
        assert ParentSession.objects.count() == 1
        assert AuditEntry.objects.filter(action=AuditAction.PARENT_LOGIN, guardian=parent_a).count() == 1

    def test_an_expired_code_is_refused(self, client, parent_a):
        with time_machine.travel(T0, tick=False):
            ask_code(client)
            code = sent_code()
        with time_machine.travel(T0 + dt.timedelta(minutes=5, seconds=1), tick=False):
            assert login(client, code).status_code == 400
        assert not ParentSession.objects.exists()

    def test_the_sixth_wrong_code_is_refused_even_when_right(self, client, parent_a):
        with time_machine.travel(T0, tick=False):
            ask_code(client)
            code = sent_code()
            wrong = "000000" if code != "000000" else "111111"
            for _ in range(5):
                response = login(client, wrong)
                assert response.status_code == 400, response.json()
            sixth = login(client, code)
            assert sixth.status_code == 429 and sixth.json()["code"] == "throttled"
            # A new code does not reopen the window.
        with time_machine.travel(T0 + dt.timedelta(minutes=2), tick=False):
            ask_code(client)
            assert login(client, sent_code()).status_code == 429
        assert not ParentSession.objects.exists()
        with time_machine.travel(T0 + dt.timedelta(minutes=16), tick=False):
            ask_code(client)
            assert login(client, sent_code()).status_code == 200

    def test_a_phone_with_no_code_is_refused(self, client, parent_a):
        assert login(client, "123456").status_code == 400

    def test_bad_bodies_are_400s(self, client, parent_a):
        assert client.post(LOGIN, {"phone": "13800138001"}, content_type="application/json").status_code == 400
        assert client.post(LOGIN, "[]", content_type="application/json").status_code == 400
        assert client.post(LOGIN, {"phone": ["x"], "code": 1}, content_type="application/json").status_code == 400


class TestTokens:
    def _tokens(self, client):
        ask_code(client)
        return login(client, sent_code()).json()

    def test_an_expired_access_token_is_a_401_and_refresh_gives_new_ones(self, client, parent_a):
        with time_machine.travel(T0, tick=False):
            tokens = self._tokens(client)
        with time_machine.travel(T0 + dt.timedelta(hours=2, seconds=1), tick=False):
            expired = client.get(ME, HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
            assert expired.status_code == 401 and expired.json()["code"] == "authentication_failed"
            fresh = client.post(REFRESH, {"refresh": tokens["refresh"]}, content_type="application/json")
            assert fresh.status_code == 200
            assert client.get(ME, HTTP_AUTHORIZATION=f"Bearer {fresh.json()['access']}").status_code == 200
            # The refresh token was used up.
            reused = client.post(REFRESH, {"refresh": tokens["refresh"]}, content_type="application/json")
            assert reused.status_code == 401

    def test_logout_revokes_access_and_refresh(self, client, parent_a):
        tokens = self._tokens(client)
        auth = f"Bearer {tokens['access']}"
        assert client.post(LOGOUT, HTTP_AUTHORIZATION=auth).status_code == 204
        assert client.get(ME, HTTP_AUTHORIZATION=auth).status_code == 401
        assert client.post(REFRESH, {"refresh": tokens["refresh"]}, content_type="application/json").status_code == 401
        assert AuditEntry.objects.filter(action=AuditAction.PARENT_LOGOUT, guardian=parent_a).count() == 1

    def test_the_refresh_window_ends_the_session(self, client, parent_a):
        with time_machine.travel(T0, tick=False):
            tokens = self._tokens(client)
        with time_machine.travel(T0 + dt.timedelta(days=30, seconds=1), tick=False):
            assert (
                client.post(REFRESH, {"refresh": tokens["refresh"]}, content_type="application/json").status_code == 401
            )

    def test_a_refreshed_access_never_outlives_the_session(self, client, parent_a):
        with time_machine.travel(T0, tick=False):
            tokens = self._tokens(client)
        with time_machine.travel(T0 + dt.timedelta(days=29, hours=23), tick=False):
            client.post(REFRESH, {"refresh": tokens["refresh"]}, content_type="application/json")
        session = ParentSession.objects.get()
        assert session.access_expires_at == session.refresh_expires_at

    def test_garbage_and_staff_tokens_are_not_parents(self, client, parent_a, manager):
        assert client.get(ME, HTTP_AUTHORIZATION="Bearer nope").status_code == 401
        assert client.get(ME, HTTP_AUTHORIZATION="Bearer").status_code == 401
        assert client.get(ME).status_code == 401
        client.force_login(manager)
        assert client.get(ME).status_code == 403
        assert timezone.now()  # the clock is real here


def test_staff_never_read_a_login_code(client, parent_a, admin_user):
    ask_code(client)
    code = sent_code()
    message = Message.objects.get(template_code="login_code")
    client.force_login(admin_user)
    page = client.get(reverse("admin:campaigns_message_change", args=[message.pk]))
    assert page.status_code == 200 and "+8613800138001" in page.content.decode()
    assert code not in page.content.decode()
    assert code not in client.get(reverse("admin:campaigns_message_changelist")).content.decode()
