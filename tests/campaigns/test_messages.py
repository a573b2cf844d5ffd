"""The messaging layer against a real local HTTP server playing the SMS gateway."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from campaigns.messaging import Outgoing, provider_for
from campaigns.messaging.base import providers_reset
from campaigns.messaging.console import ConsoleProvider
from campaigns.models import Message, MessageCategory, MessageChannel, MessageStatus
from campaigns.services.messages import MAX_ATTEMPTS, message_queue, message_send, messages_sweep
from tests.campaigns.gateway import SECRET, Gateway, signed_post

pytestmark = pytest.mark.django_db(transaction=True)


def login_code(phone: str = "138 0013 8000") -> Message:
    return message_queue(
        category=MessageCategory.TRANSACTIONAL,
        channel=MessageChannel.SMS,
        recipient=phone,
        text_body="【SCRM】您的验证码是 123456，5 分钟内有效。",
        template_code="SMS_LOGIN",
        params={"code": "123456"},
    )


class TestSendingThroughTheGateway:
    def test_a_queued_message_is_sent_once_signed_with_its_key(self, sms_gateway_server: Gateway) -> None:
        message = login_code()
        message.refresh_from_db()
        assert message.status == MessageStatus.SENT
        assert message.recipient == "+8613800138000"
        assert message.attempts == 1
        [request] = sms_gateway_server.requests
        assert request["signed"]
        assert request["path"] == "/v1/sms/send"
        assert request["body"]["phone"] == "+8613800138000"
        assert request["body"]["template_code"] == "SMS_LOGIN"
        assert request["body"]["template_param"] == {"code": "123456"}
        assert request["body"]["out_id"] == message.idempotency_key
        assert request["headers"]["Idempotency-Key"] == message.idempotency_key
        assert message.provider == "sms_gateway"
        assert message.provider_message_id == sms_gateway_server.delivered[message.idempotency_key]["message_id"]

    def test_sending_a_sent_message_again_sends_nothing(self, sms_gateway_server: Gateway) -> None:
        message = login_code()
        assert message_send(message.pk).status == MessageStatus.SENT
        assert len(sms_gateway_server.requests) == 1

    def test_a_busy_gateway_leaves_the_message_queued_for_a_retry(self, sms_gateway_server: Gateway) -> None:
        sms_gateway_server.answer_next(("status", 429))
        message = login_code()
        message.refresh_from_db()
        assert (message.status, message.error_code, message.attempts) == (MessageStatus.QUEUED, "http_429", 1)
        assert message_send(message.pk).status == MessageStatus.SENT
        assert sms_gateway_server.sent_count == 1

    def test_a_5xx_is_transient_too(self, sms_gateway_server: Gateway) -> None:
        sms_gateway_server.answer_next(("status", 503))
        message = login_code()
        message.refresh_from_db()
        assert (message.status, message.error_code) == (MessageStatus.QUEUED, "http_503")

    def test_a_slow_gateway_times_out_and_the_retry_is_deduplicated(
        self, sms_gateway_server: Gateway, settings
    ) -> None:
        settings.SMS_GATEWAY_TIMEOUT = 0.3
        providers_reset()
        sms_gateway_server.answer_next(("delay", 0.8))
        message = login_code()
        message.refresh_from_db()
        assert (message.status, message.error_code) == (MessageStatus.QUEUED, "network")
        time.sleep(0.8)  # the slow answer completes: the gateway took the message after all
        assert message_send(message.pk).status == MessageStatus.SENT
        # Two requests with one key: one message reached the phone.
        assert len(sms_gateway_server.requests) == 2
        assert sms_gateway_server.sent_count == 1

    def test_a_refused_message_fails_with_the_gateways_code(self, sms_gateway_server: Gateway) -> None:
        sms_gateway_server.answer_next(("error", "isv.MOBILE_NUMBER_ILLEGAL"))
        message = login_code()
        message.refresh_from_db()
        assert (message.status, message.error_code) == (MessageStatus.FAILED, "isv.MOBILE_NUMBER_ILLEGAL")
        assert message_send(message.pk).status == MessageStatus.FAILED
        assert len(sms_gateway_server.requests) == 1

    def test_transient_failures_end_as_failed_after_the_last_attempt(self, sms_gateway_server: Gateway) -> None:
        sms_gateway_server.answer_next(*[("status", 500)] * MAX_ATTEMPTS)
        message = login_code()
        for _ in range(MAX_ATTEMPTS - 1):
            message_send(message.pk)
        message.refresh_from_db()
        assert (message.status, message.attempts) == (MessageStatus.FAILED, MAX_ATTEMPTS)
        assert sms_gateway_server.sent_count == 0

    def test_a_wrong_secret_is_refused_by_the_gateway(self, sms_gateway_server: Gateway, settings) -> None:
        settings.SMS_GATEWAY_SECRET = "not-the-secret"
        providers_reset()
        message = login_code()
        message.refresh_from_db()
        assert (message.status, message.error_code) == (MessageStatus.FAILED, "SignatureDoesNotMatch")
        assert sms_gateway_server.sent_count == 0


class TestBadInput:
    @pytest.mark.parametrize(
        ("channel", "recipient"),
        [(MessageChannel.SMS, "12"), (MessageChannel.SMS, "not a phone"), (MessageChannel.EMAIL, "parent@")],
    )
    def test_a_message_to_nobody_is_refused_and_nothing_is_written(self, channel: str, recipient: str) -> None:
        with pytest.raises(ValidationError):
            message_queue(category=MessageCategory.MARKETING, channel=channel, recipient=recipient, text_body="hi")
        assert not Message.objects.exists()

    def test_unknown_category_channel_and_empty_text_are_refused(self) -> None:
        cases: list[dict[str, Any]] = [
            {"category": "spam", "channel": "sms", "text_body": "hi"},
            {"category": "marketing", "channel": "fax", "text_body": "hi"},
            {"category": "marketing", "channel": "sms", "text_body": "  "},
            {"category": "marketing", "channel": "sms", "text_body": "hi", "subject": "x" * 201},
        ]
        for kwargs in cases:
            with pytest.raises(ValidationError):
                message_queue(recipient="13800138000", **kwargs)
        assert not Message.objects.exists()


class NoDedupConsole(ConsoleProvider):
    """A provider that does not honour idempotency keys."""

    deduplicates = False


class TestSweep:
    def test_a_message_left_mid_send_is_resent_with_its_key(self, sms_gateway_server: Gateway) -> None:
        message = login_code()
        # A worker took it, the gateway sent it, and the worker died before recording it.
        Message.objects.filter(pk=message.pk).update(
            status=MessageStatus.SENDING, updated_at=timezone.now() - dt.timedelta(minutes=10)
        )
        swept = messages_sweep()
        assert (swept.requeued, swept.unknown) == (1, 0)
        message.refresh_from_db()
        assert message.status == MessageStatus.SENT
        assert len(sms_gateway_server.requests) == 2
        assert sms_gateway_server.sent_count == 1

    def test_without_deduplication_it_is_left_to_a_person(self, settings) -> None:
        settings.MESSAGING_PROVIDERS = {**settings.MESSAGING_PROVIDERS, "sms": f"{__name__}.NoDedupConsole"}
        providers_reset()
        message = login_code()
        Message.objects.filter(pk=message.pk).update(
            status=MessageStatus.SENDING, updated_at=timezone.now() - dt.timedelta(minutes=10)
        )
        assert messages_sweep().unknown == 1
        message.refresh_from_db()
        assert message.status == MessageStatus.UNKNOWN
        providers_reset()

    def test_a_recent_send_is_left_alone(self, sms_gateway_server: Gateway) -> None:
        message = login_code()
        Message.objects.filter(pk=message.pk).update(status=MessageStatus.SENDING)
        assert messages_sweep().requeued == 0
        message.refresh_from_db()
        assert message.status == MessageStatus.SENDING

    def test_a_queued_message_whose_task_was_lost_is_sent(self, sms_gateway_server: Gateway) -> None:
        message = login_code()
        sms_gateway_server.delivered.clear()
        Message.objects.filter(pk=message.pk).update(
            status=MessageStatus.QUEUED, updated_at=timezone.now() - dt.timedelta(minutes=3)
        )
        assert messages_sweep().resent == [message.pk]
        message.refresh_from_db()
        assert message.status == MessageStatus.SENT


def test_the_console_provider_is_the_default(caplog) -> None:
    assert provider_for("sms").name == "console"
    message = login_code()
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert "123456" in caplog.text
    assert (
        provider_for("sms").send(Outgoing(key="k", channel="sms", recipient="+8613800138000", text="x")) == "console-k"
    )


class TestReceipts:
    path = reverse("api_sms_receipts")

    def test_a_signed_receipt_marks_the_message_delivered(self, client, sms_gateway_server: Gateway) -> None:
        message = login_code()
        message.refresh_from_db()
        receipt = {"message_id": message.provider_message_id, "status": "delivered", "reported_at": int(time.time())}
        response = signed_post(client, self.path, [receipt])
        assert (response.status_code, response.json()) == (200, {"applied": 1})
        message.refresh_from_db()
        assert message.status == MessageStatus.DELIVERED
        assert message.delivered_at is not None
        # The same receipt again changes nothing.
        assert signed_post(client, self.path, [receipt]).json() == {"applied": 0}

    def test_a_failure_receipt_records_the_code(self, client, sms_gateway_server: Gateway) -> None:
        message = login_code()
        message.refresh_from_db()
        receipt = {"message_id": message.provider_message_id, "status": "failed", "reported_at": 1, "code": "UNDELIV"}
        assert signed_post(client, self.path, [receipt]).json() == {"applied": 1}
        message.refresh_from_db()
        assert (message.status, message.error_code) == (MessageStatus.FAILED, "UNDELIV")

    @pytest.mark.parametrize("how", ["wrong secret", "stale", "unsigned"])
    def test_an_unsigned_or_stale_receipt_is_refused(self, client, sms_gateway_server: Gateway, how: str) -> None:
        message = login_code()
        message.refresh_from_db()
        receipt = [{"message_id": message.provider_message_id, "status": "delivered", "reported_at": 1}]
        if how == "unsigned":
            response = client.post(self.path, data=receipt, content_type="application/json")
        else:
            response = signed_post(
                client,
                self.path,
                receipt,
                secret="nope" if how == "wrong secret" else SECRET,
                age=3600 * (how == "stale"),
            )
        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"
        message.refresh_from_db()
        assert message.status == MessageStatus.SENT

    @pytest.mark.parametrize(
        "payload",
        [{"message_id": "x"}, [{"message_id": "x", "status": "read", "reported_at": 1}], "[", [{"status": 1}]],
    )
    def test_a_malformed_receipt_is_a_400(self, client, sms_gateway_server: Gateway, payload: object) -> None:
        response = signed_post(client, self.path, payload)
        assert response.status_code == 400
        assert set(response.json()) == {"code", "message", "fields"}


def test_a_single_message_waits_for_an_unreachable_rate_limiter(sms_gateway_server: Gateway, settings) -> None:
    """Login codes and reminders share the provider's limit with the campaigns: while the shared
    counters cannot be read, nothing goes, and the message stays queued with no attempt spent."""
    settings.MESSAGING_RATE_LIMITS = {**settings.MESSAGING_RATE_LIMITS, "sms": 100}
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    message = login_code()
    message.refresh_from_db()
    assert (message.status, message.attempts, message.error_code) == (MessageStatus.QUEUED, 0, "rate_limiter")
    assert sms_gateway_server.requests == []
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert message_send(message.pk).status == MessageStatus.SENT
    assert sms_gateway_server.sent_count == 1
