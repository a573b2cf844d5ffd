"""Email through the messaging layer, against a real local SMTP server (tests/campaigns/smtp.py)."""

from __future__ import annotations

import datetime as dt
import socket
import time
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import MIMEPart

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured

from campaigns.messaging import Outgoing, PermanentError, TransientError, provider_for
from campaigns.messaging.base import providers_reset
from campaigns.messaging.email import SmtpEmailProvider
from campaigns.models import Message, MessageCategory, MessageChannel, MessageStatus
from campaigns.services.consent import consent_record
from campaigns.services.messages import message_queue, message_send
from crm.models import Campus, User
from tests import factories
from tests.campaigns.smtp import FROM_EMAIL, SmtpServer, free_port

pytestmark = pytest.mark.django_db(transaction=True)

AFTERNOON = dt.datetime(2026, 12, 3, 14, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
SUBJECT = "春季课程开课啦 · 王小明家长"
TEXT = "王妈妈您好：\n春季班 3 月 1 日开课，欢迎来试听。"
HTML = "<p>王妈妈您好：</p><p><b>春季班</b> 3 月 1 日开课，欢迎来试听。</p>"
UNSUBSCRIBE = {
    "List-Unsubscribe": (
        "<https://crm.example.cn/unsubscribe/8f14e45fceea167a5a36dedd4bea2543?channel=email;sig=3c59dc048e88>, "
        "<mailto:unsubscribe@scrm.example.cn?subject=unsubscribe%208f14e45fceea167a5a36dedd4bea2543>"
    ),
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


def timetable(recipient: str = "wang.mama@example.com", *, html: str = HTML) -> Message:
    """A transactional email (marketing ones are tested with their consent below)."""
    message = message_queue(
        category=MessageCategory.TRANSACTIONAL,
        channel=MessageChannel.EMAIL,
        recipient=recipient,
        subject=SUBJECT,
        text_body=TEXT,
        html=html,
    )
    message.refresh_from_db()
    return message


def outgoing(
    key: str, *, subject: str = SUBJECT, text: str = TEXT, html: str = "", headers: dict[str, str] | None = None
) -> Outgoing:
    return Outgoing(
        key=key,
        channel="email",
        recipient="wang.mama@example.com",
        text=text,
        subject=subject,
        html=html,
        headers=headers or {},
    )


def content(part: MIMEPart | None) -> str:
    """A part's text with \\n line breaks, without the final one SMTP's end of data adds."""
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n").removesuffix("\n")


class TestSending:
    def test_an_email_arrives_with_its_text_and_html(self, smtp_server: SmtpServer) -> None:
        message = timetable()
        assert (message.status, message.provider, message.attempts) == (MessageStatus.SENT, "smtp", 1)
        assert message.provider_message_id == f"<{message.idempotency_key}@scrm.example.cn>"
        [received] = smtp_server.received
        assert received.mail_from == "noreply@scrm.example.cn"
        assert received.rcpt_tos == ["wang.mama@example.com"]
        mail = received.message
        assert mail["From"] == FROM_EMAIL
        assert mail["To"] == "wang.mama@example.com"
        assert mail["Subject"] == SUBJECT
        assert mail["Message-ID"] == message.provider_message_id
        assert mail.get_content_type() == "multipart/alternative"
        assert content(mail.get_body(("plain",))) == TEXT
        assert content(mail.get_body(("html",))) == HTML

    def test_an_email_without_html_is_plain_text(self, smtp_server: SmtpServer) -> None:
        timetable(html="")
        [received] = smtp_server.received
        assert received.message.get_content_type() == "text/plain"
        assert content(received.message) == TEXT

    def test_many_emails_share_one_connection(self, smtp_server: SmtpServer) -> None:
        sent = [timetable(f"parent{n}@example.com") for n in range(5)]
        assert {m.status for m in sent} == {MessageStatus.SENT}
        assert [r.rcpt_tos for r in smtp_server.received] == [[f"parent{n}@example.com"] for n in range(5)]
        assert len(smtp_server.connections) == 1
        # A reset (new settings, shutdown) ends the connection with a QUIT.
        providers_reset()
        assert smtp_server.quits == 1


class TestHeaders:
    def test_the_unsubscribe_headers_are_set_as_given(self, smtp_server: SmtpServer) -> None:
        provider = provider_for("email")
        key = "8f14e45fceea167a5a36dedd4bea2543"
        message_id = provider.send(outgoing(key, subject=SUBJECT, html=HTML, headers=UNSUBSCRIBE))
        assert message_id == f"<{key}@scrm.example.cn>"
        [received] = smtp_server.received
        for name, value in UNSUBSCRIBE.items():
            # On one line, byte for byte: a fold inside a URL would break the one-click link.
            assert f"\r\n{name}: {value}\r\n".encode() in received.raw
            assert received.message[name] == value
        assert received.message["Message-ID"] == message_id

    def test_a_marketing_email_arrives_with_the_one_click_unsubscribe_headers(
        self, smtp_server: SmtpServer, campus_a: Campus, front_desk: User, settings
    ) -> None:
        settings.SITE_URL = "https://crm.example.cn"
        guardian = factories.GuardianFactory(email="wang.mama@example.com")
        factories.StudentFactory(campus=campus_a, guardians=[guardian])
        consent_record(
            guardian=guardian,
            channel=MessageChannel.EMAIL,
            granted=True,
            source="staff",
            wording="同意",
            actor=front_desk,
        )
        with time_machine.travel(AFTERNOON, tick=False):  # outside the quiet hours
            message = message_queue(
                category=MessageCategory.MARKETING,
                channel=MessageChannel.EMAIL,
                recipient=guardian.email,
                subject=SUBJECT,
                text_body=TEXT,
                html=HTML,
                guardian=guardian,
                campus=campus_a,
            )
        message.refresh_from_db()
        assert message.status == MessageStatus.SENT
        [received] = smtp_server.received
        link = received.message["List-Unsubscribe"]
        assert link.startswith("<https://crm.example.cn/unsubscribe/") and link.endswith(">")
        assert f"\r\nList-Unsubscribe: {link}\r\n".encode() in received.raw
        assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    def test_a_message_id_among_the_headers_does_not_replace_the_providers(self, smtp_server: SmtpServer) -> None:
        provider = provider_for("email")
        message_id = provider.send(outgoing("k1", headers={"message-id": "<other@example.com>"}))
        [received] = smtp_server.received
        assert received.message.get_all("Message-ID") == [message_id]

    def test_a_long_chinese_subject_and_body_survive_the_encoding(self, smtp_server: SmtpServer) -> None:
        subject = "【望京校区】" + "春季编程课与美术课限时优惠，老学员续费再享九折，名额有限" * 3
        body = "家长您好！\n" + "孩子上学期的进步我们都看在眼里。" * 80
        provider_for("email").send(outgoing("k2", subject=subject, text=body, html=f"<p>{body}</p>"))
        [received] = smtp_server.received
        assert all(len(line) <= 998 for line in received.raw.split(b"\r\n"))
        assert received.message["Subject"] == subject
        assert content(received.message.get_body(("plain",))) == body

    def test_a_header_with_a_line_break_is_refused_not_sent(self, smtp_server: SmtpServer) -> None:
        with pytest.raises(PermanentError) as refused:
            provider_for("email").send(outgoing("k3", headers={"X-Campaign": "spring\r\nBcc: all@example.com"}))
        assert refused.value.code == "invalid-message"
        assert smtp_server.received == []


class TestFailures:
    def test_a_refused_recipient_fails_with_the_servers_code(self, smtp_server: SmtpServer) -> None:
        smtp_server.refuse("nobody@example.com")
        message = timetable("nobody@example.com")
        assert (message.status, message.error_code) == (MessageStatus.FAILED, "smtp-550")
        assert "No such user" in message.error
        assert message_send(message.pk).status == MessageStatus.FAILED
        # The refusal left the connection usable: the next email goes through it.
        assert timetable().status == MessageStatus.SENT
        assert len(smtp_server.connections) == 1
        assert [r.rcpt_tos for r in smtp_server.received] == [["wang.mama@example.com"]]

    def test_a_451_leaves_the_email_queued_for_a_retry(self, smtp_server: SmtpServer) -> None:
        smtp_server.answer_next("451 4.3.0 Try again later")
        message = timetable()
        assert (message.status, message.error_code, message.attempts) == (MessageStatus.QUEUED, "smtp-451", 1)
        assert smtp_server.received == []
        # The task's retry sends it, on a new connection.
        assert message_send(message.pk).status == MessageStatus.SENT
        assert len(smtp_server.received) == 1
        assert len(smtp_server.connections) == 2

    def test_a_554_for_the_message_is_permanent(self, smtp_server: SmtpServer) -> None:
        smtp_server.answer_next("554 5.7.1 Message rejected as spam")
        message = timetable()
        assert (message.status, message.error_code) == (MessageStatus.FAILED, "smtp-554")

    def test_a_server_that_is_down_is_transient(self, smtp_server: SmtpServer, settings) -> None:
        settings.EMAIL_PORT = free_port()
        providers_reset()
        message = timetable()
        assert (message.status, message.error_code) == (MessageStatus.QUEUED, "network")
        assert "ConnectionRefusedError" in message.error
        settings.EMAIL_PORT = smtp_server.port
        providers_reset()
        assert message_send(message.pk).status == MessageStatus.SENT

    def test_a_server_that_never_answers_times_out(self, smtp_server: SmtpServer, settings) -> None:
        with silent_server() as port:
            settings.EMAIL_PORT = port
            settings.EMAIL_TIMEOUT = 0.3
            providers_reset()
            with pytest.raises(TransientError) as later:
                provider_for("email").send(outgoing("k4"))
        assert later.value.code == "network"

    def test_a_connection_the_server_dropped_is_transient_and_the_next_email_reconnects(
        self, smtp_server: SmtpServer
    ) -> None:
        smtp_server.drop_idle_after(1.0)
        provider = provider_for("email")
        provider.send(outgoing("k5"))
        time.sleep(1.5)
        with pytest.raises(TransientError):
            provider.send(outgoing("k6"))
        provider.send(outgoing("k7"))
        assert [r.message["Message-ID"] for r in smtp_server.received] == [
            "<k5@scrm.example.cn>",
            "<k7@scrm.example.cn>",
        ]

    def test_a_quiet_connection_is_checked_before_use(self, smtp_server: SmtpServer) -> None:
        smtp_server.drop_idle_after(1.0)
        provider = SmtpEmailProvider(idle_check=0.1)
        provider.send(outgoing("k5"))
        time.sleep(1.5)
        provider.send(outgoing("k6"))  # NOOP found the connection gone: a new one, no error
        assert len(smtp_server.received) == 2
        assert len(smtp_server.connections) == 2
        provider.close()

    def test_a_from_address_without_a_domain_stops_the_provider(self, smtp_server: SmtpServer, settings) -> None:
        settings.DEFAULT_FROM_EMAIL = "SCRM"
        with pytest.raises(ImproperlyConfigured):
            SmtpEmailProvider()


@contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections (the kernel does) and never says a word."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield int(listener.getsockname()[1])
