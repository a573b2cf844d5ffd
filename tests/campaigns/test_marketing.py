"""The marketing rules at send time: consent, quiet hours in the campus's zone, the frequency cap;
transactional messages skip them all. Sent through the real local SMS gateway."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection

from campaigns.models import Message, MessageCategory, MessageChannel, MessageStatus, SuppressionReason
from campaigns.rules import SMS_OPT_OUT_WORDING
from campaigns.services.consent import consent_opt_out_by_reply, consent_record
from campaigns.services.marketing import cap_claim
from campaigns.services.marketing_settings import marketing_settings_update
from campaigns.services.messages import message_queue, messages_sweep, unsubscribe_headers
from crm.models import Campus, Guardian, User
from tests import factories
from tests.campaigns.gateway import Gateway
from tests.concurrency import race

pytestmark = pytest.mark.django_db(transaction=True)

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def shanghai(day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, second, tzinfo=SHANGHAI)


@pytest.fixture
def clock() -> Iterator[Any]:
    with time_machine.travel(shanghai(3, 14), tick=False) as traveller:
        yield traveller


@pytest.fixture
def family(campus_a: Campus, front_desk: User) -> Guardian:
    guardian = factories.GuardianFactory(phone="+8613800138000", name="王妈妈")
    factories.StudentFactory(campus=campus_a, guardians=[guardian])
    for channel in (MessageChannel.SMS, MessageChannel.EMAIL):
        consent_record(
            guardian=guardian, channel=channel, granted=True, source="staff", wording="同意", actor=front_desk
        )
    return guardian


def offer(guardian: Guardian, campus: Campus, channel: str = MessageChannel.SMS) -> Message:
    message = message_queue(
        category=MessageCategory.MARKETING,
        channel=channel,
        recipient=guardian.phone if channel == MessageChannel.SMS else "wang@example.cn",
        text_body="【SCRM】小明好久没来上课啦，本周回来免费体验一节。",
        subject="本周免费体验" if channel == MessageChannel.EMAIL else "",
        html="<p>小明好久没来上课啦</p>" if channel == MessageChannel.EMAIL else "",
        guardian=guardian,
        campus=campus,
    )
    message.refresh_from_db()
    return message


def login_code(phone: str) -> Message:
    message = message_queue(
        category=MessageCategory.TRANSACTIONAL, channel=MessageChannel.SMS, recipient=phone, text_body="验证码 123456"
    )
    message.refresh_from_db()
    return message


class TestConsent:
    def test_a_consenting_family_gets_the_offer_with_the_opt_out_wording(
        self, clock, sms_gateway_server: Gateway, family: Guardian, campus_a: Campus
    ) -> None:
        message = offer(family, campus_a)
        assert message.status == MessageStatus.SENT
        [request] = sms_gateway_server.requests
        assert request["body"]["content"].endswith(SMS_OPT_OUT_WORDING)

    def test_a_family_never_asked_gets_nothing(self, clock, sms_gateway_server: Gateway, campus_a: Campus) -> None:
        stranger = factories.GuardianFactory()
        message = offer(stranger, campus_a)
        assert (message.status, message.suppressed_reason) == (MessageStatus.SUPPRESSED, SuppressionReason.NO_CONSENT)
        assert sms_gateway_server.requests == []

    def test_an_opt_out_between_queueing_and_sending_is_honoured(
        self, clock, sms_gateway_server: Gateway, family: Guardian, campus_a: Campus
    ) -> None:
        clock.move_to(shanghai(3, 22))
        waiting = offer(family, campus_a)
        assert waiting.status == MessageStatus.QUEUED
        assert consent_opt_out_by_reply(phone=family.phone, reply="TD", at=shanghai(3, 22, 5))
        clock.move_to(shanghai(4, 9))
        messages_sweep()
        waiting.refresh_from_db()
        assert (waiting.status, waiting.suppressed_reason) == (MessageStatus.SUPPRESSED, SuppressionReason.OPTED_OUT)
        assert sms_gateway_server.requests == []

    def test_a_marketing_message_must_name_its_guardian(self, sms_gateway_server: Gateway) -> None:
        with pytest.raises(ValidationError):
            message_queue(
                category=MessageCategory.MARKETING, channel="sms", recipient="+8613800138000", text_body="优惠"
            )
        assert not Message.objects.exists()


class TestQuietHours:
    @pytest.mark.parametrize(
        ("sent_at", "waits_until"),
        [
            (shanghai(3, 20, 59, 59), None),
            (shanghai(3, 21), shanghai(4, 9)),
            (shanghai(4, 8, 59, 59), shanghai(4, 9)),
            (shanghai(4, 9), None),
        ],
    )
    def test_the_boundaries_in_the_campus_zone(
        self,
        clock,
        sms_gateway_server: Gateway,
        family: Guardian,
        campus_a: Campus,
        sent_at: dt.datetime,
        waits_until: dt.datetime | None,
    ) -> None:
        clock.move_to(sent_at)
        message = offer(family, campus_a)
        if waits_until is None:
            assert message.status == MessageStatus.SENT
            return
        assert (message.status, message.not_before, message.attempts) == (MessageStatus.QUEUED, waits_until, 0)
        assert sms_gateway_server.requests == []
        # Still waiting a second before the end: the sweep hands it to nobody.
        clock.move_to(waits_until - dt.timedelta(seconds=1))
        assert messages_sweep().resent == []
        clock.move_to(waits_until)
        assert messages_sweep().resent == [message.pk]
        message.refresh_from_db()
        assert (message.status, message.attempts) == (MessageStatus.SENT, 1)
        assert sms_gateway_server.sent_count == 1

    def test_a_campus_in_another_zone_with_its_own_hours(
        self, clock, sms_gateway_server: Gateway, family: Guardian, campus_a: Campus, manager: User
    ) -> None:
        marketing_settings_update(
            actor=manager, campus=campus_a, time_zone="Asia/Urumqi", quiet_from=dt.time(22), quiet_until=dt.time(8)
        )
        # 23:30 in Beijing is 21:30 in Urumqi (UTC+6): not quiet there.
        clock.move_to(shanghai(3, 23, 30))
        assert offer(family, campus_a).status == MessageStatus.SENT

    def test_a_login_code_goes_out_at_night_without_consent_and_past_the_cap(
        self, clock, sms_gateway_server: Gateway, family: Guardian, campus_a: Campus
    ) -> None:
        assert offer(family, campus_a).status == MessageStatus.SENT  # the cap is used
        consent_opt_out_by_reply(phone=family.phone, reply="TD", at=shanghai(3, 14))
        clock.move_to(shanghai(3, 23))
        assert login_code(family.phone).status == MessageStatus.SENT
        assert login_code("+8613900000009").status == MessageStatus.SENT  # nobody we know
        assert sms_gateway_server.sent_count == 3


class TestFrequencyCap:
    def test_one_marketing_message_per_family_in_seven_days_across_channels(
        self, clock, sms_gateway_server: Gateway, family: Guardian, campus_a: Campus
    ) -> None:
        assert offer(family, campus_a).status == MessageStatus.SENT
        clock.move_to(shanghai(10, 13, 59))
        second = offer(family, campus_a, MessageChannel.EMAIL)
        assert (second.status, second.suppressed_reason) == (MessageStatus.SUPPRESSED, SuppressionReason.FREQUENCY_CAP)
        clock.move_to(shanghai(10, 14))
        assert offer(family, campus_a).status == MessageStatus.SENT
        assert sms_gateway_server.sent_count == 2

    def test_a_campus_sets_its_own_window(
        self, clock, sms_gateway_server: Gateway, family: Guardian, campus_a: Campus, manager: User
    ) -> None:
        marketing_settings_update(actor=manager, campus=campus_a, cap_days=1)
        offer(family, campus_a)
        clock.move_to(shanghai(4, 14))
        assert offer(family, campus_a).status == MessageStatus.SENT

    def test_two_senders_at_once_reach_the_family_once(self, family: Guardian) -> None:
        if connection.vendor != "postgresql":
            pytest.skip("a race needs PostgreSQL's concurrent connections")
        now = shanghai(3, 14)
        outcomes = race(
            *[lambda by=f"campaign:{n}": cap_claim(guardian_id=family.pk, by=by, now=now, days=7) for n in range(4)]
        )
        assert sorted(outcomes, key=bool) == [False, False, False, True]

    def test_one_campaigns_channels_are_one_contact(self, family: Guardian) -> None:
        now = shanghai(3, 14)
        assert cap_claim(guardian_id=family.pk, by="campaign:1", now=now, days=7)
        assert cap_claim(guardian_id=family.pk, by="campaign:1", now=now + dt.timedelta(hours=1), days=7)
        assert not cap_claim(guardian_id=family.pk, by="campaign:2", now=now + dt.timedelta(hours=2), days=7)


class TestEmail:
    def test_a_marketing_email_carries_its_unsubscribe_link_in_text_html_and_headers(
        self, clock, family: Guardian, campus_a: Campus, settings
    ) -> None:
        settings.SITE_URL = "https://crm.example.cn"
        message = offer(family, campus_a, MessageChannel.EMAIL)
        assert message.status == MessageStatus.SENT  # the console provider
        assert "https://crm.example.cn/unsubscribe/" in message.text
        assert 'href="https://crm.example.cn/unsubscribe/' in message.html
        headers = unsubscribe_headers(message)
        assert headers["List-Unsubscribe"].startswith("<https://crm.example.cn/unsubscribe/")
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    def test_a_transactional_email_has_no_unsubscribe(self, clock, family: Guardian) -> None:
        message = message_queue(
            category=MessageCategory.TRANSACTIONAL, channel="email", recipient="wang@example.cn", text_body="课表"
        )
        assert "unsubscribe" not in message.text
        assert unsubscribe_headers(message) == {}
