"""WeChat subscription messages against a real local HTTP server playing WeChat."""

from __future__ import annotations

import importlib
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

from campaigns.messaging import Outgoing, TransientError, provider_for
from campaigns.messaging.base import providers_reset
from campaigns.messaging.wechat import TOKEN_CACHE_KEY, WeChatSubscriptionProvider
from campaigns.models import Message, MessageCategory, MessageChannel, MessageStatus
from campaigns.services.messages import message_queue, message_send
from tests import factories
from tests.campaigns.wechat import APPID, PAGE, SECRET, WeChatServer

pytestmark = pytest.mark.django_db(transaction=True)

TEMPLATE = "tpl-lesson-reminder"


def lesson_reminder(openid: str = "o-parent-1") -> Message:
    guardian = factories.GuardianFactory(wechat_openid=openid)
    return message_queue(
        category=MessageCategory.TRANSACTIONAL,
        channel=MessageChannel.WECHAT,
        recipient=guardian.wechat_openid,
        text_body="上课提醒：钢琴课 12月5日 10:00",
        template_code=TEMPLATE,
        params={"thing1": "钢琴课", "time2": "2026-12-05 10:00"},
        guardian=guardian,
    )


def outgoing(n: int) -> Outgoing:
    return Outgoing(key=f"k{n}", channel="wechat", recipient=f"o-{n}", text="x", template_code=TEMPLATE)


def assert_status(message: Message, status: str, error_code: str = "") -> None:
    message.refresh_from_db()
    assert (message.status, message.error_code) == (status, error_code)


class TestSending:
    def test_a_message_reaches_wechat_and_is_recorded_sent_with_its_msgid(self, wechat_server: WeChatServer) -> None:
        message = lesson_reminder()
        message.refresh_from_db()
        assert (message.status, message.provider, message.attempts) == (MessageStatus.SENT, "wechat", 1)
        [send] = wechat_server.sends
        assert send["body"] == {
            "touser": "o-parent-1",
            "template_id": TEMPLATE,
            "page": PAGE,
            "miniprogram_state": "trial",
            "lang": "zh_CN",
            "data": {"thing1": {"value": "钢琴课"}, "time2": {"value": "2026-12-05 10:00"}},
        }
        [delivered] = wechat_server.delivered
        assert message.provider_message_id == str(delivered["msgid"])
        assert wechat_server.token_requests == [{"grant_type": "client_credential", "appid": APPID, "secret": SECRET}]

    def test_one_token_and_one_connection_for_many_messages(self, wechat_server: WeChatServer) -> None:
        messages = [lesson_reminder(f"o-{n}") for n in range(5)]
        assert Message.objects.filter(pk__in=[m.pk for m in messages], status=MessageStatus.SENT).count() == 5
        assert wechat_server.token_count == 1
        assert len(wechat_server.delivered) == 5
        assert len(wechat_server.connections) == 1  # the token request and the sends, kept alive

    def test_a_second_worker_takes_the_token_from_the_cache(self, wechat_server: WeChatServer) -> None:
        first, second = WeChatSubscriptionProvider(), WeChatSubscriptionProvider()
        first.send(outgoing(1))
        second.send(outgoing(2))
        assert wechat_server.token_count == 1
        assert cache.get(TOKEN_CACHE_KEY.format(appid=APPID)) in wechat_server.tokens

    def test_a_fleet_of_workers_waits_for_one_token_fetch(self, wechat_server: WeChatServer) -> None:
        wechat_server.answer_token_next(("delay", 0.3))
        provider = WeChatSubscriptionProvider()
        with ThreadPoolExecutor(max_workers=8) as pool:
            ids = list(pool.map(provider.send, [outgoing(n) for n in range(8)]))
        assert wechat_server.token_count == 1
        assert len(set(ids)) == 8
        assert len(wechat_server.connections) == 8  # one connection per thread

    def test_a_template_is_required(self, wechat_server: WeChatServer) -> None:
        message = message_queue(
            category=MessageCategory.TRANSACTIONAL, channel=MessageChannel.WECHAT, recipient="o-1", text_body="hi"
        )
        assert_status(message, MessageStatus.FAILED, "wechat-no-template")
        assert wechat_server.sends == []


class TestTokens:
    @pytest.mark.parametrize(("outdate", "errcode"), [("expire_tokens", 42001), ("revoke_tokens", 40001)])
    def test_a_refused_token_is_replaced_and_the_message_goes_out_once(
        self, wechat_server: WeChatServer, outdate: str, errcode: int
    ) -> None:
        lesson_reminder("o-1")
        getattr(wechat_server, outdate)()
        message = lesson_reminder("o-2")
        assert_status(message, MessageStatus.SENT)
        assert [send["errcode"] for send in wechat_server.sends] == [0, errcode, 0]
        assert wechat_server.token_count == 2
        assert [d["touser"] for d in wechat_server.delivered] == ["o-1", "o-2"]

    def test_a_new_token_refused_too_leaves_the_message_queued(self, wechat_server: WeChatServer) -> None:
        wechat_server.answer_next(("errcode", 40001), ("errcode", 40001))
        message = lesson_reminder()
        assert_status(message, MessageStatus.QUEUED, "wechat-40001")
        assert (wechat_server.token_count, len(wechat_server.sends)) == (2, 2)  # tried once more, not again
        assert message_send(message.pk).status == MessageStatus.SENT

    def test_the_token_is_refreshed_before_it_expires(self, wechat_server: WeChatServer) -> None:
        # A 2-second token is kept 1 second: the next send after that fetches a new one first.
        wechat_server.expires_in = 2
        lesson_reminder("o-1")
        time.sleep(1.2)
        lesson_reminder("o-2")
        assert wechat_server.token_count == 2
        assert [send["errcode"] for send in wechat_server.sends] == [0, 0]  # no refused token on the way
        assert wechat_server.sends[0]["token"] != wechat_server.sends[1]["token"]

    def test_a_wrong_secret_fails_the_message_with_wechats_code(self, wechat_server: WeChatServer, settings) -> None:
        settings.WECHAT_SECRET = "not-the-secret"
        providers_reset()
        message = lesson_reminder()
        assert_status(message, MessageStatus.FAILED, "wechat-40125")
        assert wechat_server.sends == []

    def test_a_busy_token_endpoint_leaves_the_message_queued(self, wechat_server: WeChatServer) -> None:
        wechat_server.answer_token_next(("errcode", -1))
        message = lesson_reminder()
        assert_status(message, MessageStatus.QUEUED, "wechat--1")
        assert message_send(message.pk).status == MessageStatus.SENT


class TestRefusals:
    @pytest.mark.parametrize("errcode", [43101, 40003, 40037, 47003])
    def test_a_refused_message_fails_with_the_code(self, wechat_server: WeChatServer, errcode: int) -> None:
        wechat_server.answer_next(("errcode", errcode))
        message = lesson_reminder()
        assert_status(message, MessageStatus.FAILED, f"wechat-{errcode}")
        assert message_send(message.pk).status == MessageStatus.FAILED
        assert len(wechat_server.sends) == 1

    @pytest.mark.parametrize(
        ("answer", "code"),
        [
            (("errcode", -1), "wechat--1"),
            (("errcode", 45009), "wechat-45009"),
            (("status", 503), "http_503"),
            (("status", 429), "http_429"),
        ],
    )
    def test_busy_or_down_leaves_the_message_queued_for_a_retry(
        self, wechat_server: WeChatServer, answer: tuple[str, object], code: str
    ) -> None:
        wechat_server.answer_next(answer)
        message = lesson_reminder()
        assert_status(message, MessageStatus.QUEUED, code)
        assert message_send(message.pk).status == MessageStatus.SENT
        assert len(wechat_server.delivered) == 1
        assert wechat_server.token_count == 1

    def test_a_timeout_is_retried_and_may_arrive_twice(self, wechat_server: WeChatServer, settings) -> None:
        settings.WECHAT_TIMEOUT = 0.3
        providers_reset()
        provider = provider_for("wechat")
        provider.send(outgoing(0))  # the token is fetched and cached
        wechat_server.answer_next(("delay", 0.8))
        message = lesson_reminder()
        assert_status(message, MessageStatus.QUEUED, "network")
        time.sleep(0.8)  # the slow answer completes: WeChat took the message after all
        assert message_send(message.pk).status == MessageStatus.SENT
        # WeChat takes no idempotency key: why the provider says it does not deduplicate.
        assert not provider.deduplicates
        assert [d["touser"] for d in wechat_server.delivered] == ["o-0", "o-parent-1", "o-parent-1"]

    def test_a_connection_refused_is_transient(self, wechat_server: WeChatServer, settings) -> None:
        with socket.socket() as probe:  # a port that was free a moment ago: nobody listens there
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        settings.WECHAT_API_BASE = f"http://127.0.0.1:{port}"
        providers_reset()
        with pytest.raises(TransientError) as error:
            provider_for("wechat").send(outgoing(1))
        assert error.value.code == "network"


class TestConfiguration:
    @pytest.mark.parametrize("missing", ["WECHAT_APPID", "WECHAT_SECRET"])
    def test_the_provider_refuses_to_start_without_app_credentials(
        self, wechat_server: WeChatServer, settings, missing: str
    ) -> None:
        setattr(settings, missing, "")
        providers_reset()
        with pytest.raises(ImproperlyConfigured, match="WECHAT_APPID and WECHAT_SECRET"):
            provider_for("wechat")

    def test_choosing_wechat_without_an_appid_stops_the_settings(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("WECHAT_PROVIDER", "wechat")
        monkeypatch.delenv("WECHAT_APPID", raising=False)
        monkeypatch.setenv("WECHAT_SECRET", "s")
        monkeypatch.delitem(sys.modules, "config.settings", raising=False)
        with pytest.raises(ImproperlyConfigured, match="WECHAT_PROVIDER=wechat needs WECHAT_APPID"):
            importlib.import_module("config.settings")

    def test_choosing_wechat_with_credentials_loads(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("WECHAT_PROVIDER", "wechat")
        monkeypatch.setenv("WECHAT_APPID", "wx1")
        monkeypatch.setenv("WECHAT_SECRET", "s")
        monkeypatch.setenv("WECHAT_MINIPROGRAM_STATE", "developer")
        monkeypatch.delitem(sys.modules, "config.settings", raising=False)
        loaded = importlib.import_module("config.settings")
        assert loaded.MESSAGING_PROVIDERS["wechat"] == "campaigns.messaging.wechat.WeChatSubscriptionProvider"
        assert loaded.WECHAT_MINIPROGRAM_STATE == "developer"

    def test_an_unknown_miniprogram_state_stops_the_settings(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("WECHAT_MINIPROGRAM_STATE", "release")
        monkeypatch.delitem(sys.modules, "config.settings", raising=False)
        with pytest.raises(ImproperlyConfigured, match="WECHAT_MINIPROGRAM_STATE='release'"):
            importlib.import_module("config.settings")
