"""A real local SMTP server (aiosmtpd) for the email tests.

It records every message it accepts (the envelope, the raw bytes and the parsed email), counts
the connections that sent mail and the QUITs, and can be told to refuse a recipient with 550 or
to answer the next message with a reply of our choice (451: try again later).
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from campaigns.messaging.base import providers_reset

FROM_EMAIL = "SCRM 学校 <noreply@scrm.example.cn>"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage


@dataclass
class SmtpServer:
    host: str = "127.0.0.1"
    port: int = 0
    received: list[Received] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)  # recipients answered 550
    script: list[str] = field(default_factory=list)  # replies to the next messages, in turn
    quits: int = 0
    connections: list[Any] = field(default_factory=list)  # aiosmtpd's SMTP session of each that sent mail
    lock: threading.Lock = field(default_factory=threading.Lock)
    smtp_options: dict[str, Any] = field(default_factory=dict)  # for the sessions opened from now on

    def drop_idle_after(self, seconds: float) -> None:
        """Close connections quiet this long (aiosmtpd answers 421 and hangs up), as servers do."""
        self.smtp_options["timeout"] = seconds

    def refuse(self, recipient: str) -> None:
        with self.lock:
            self.refused.add(recipient.lower())

    def answer_next(self, *replies: str) -> None:
        with self.lock:
            self.script.extend(replies)

    # aiosmtpd's handler hooks, run on the server's event loop thread.

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        with self.lock:
            if not any(seen is server for seen in self.connections):
                self.connections.append(server)
            refused = address.lower() in self.refused
        if refused:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            reply = self.script.pop(0) if self.script else None
        if reply:
            return reply
        raw = bytes(envelope.original_content)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        with self.lock:
            self.received.append(
                Received(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    raw=raw,
                    message=parsed,  # type: ignore[arg-type]
                )
            )
        return "250 Message accepted for delivery"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.quits += 1
        return "221 Bye"


class _Controller(Controller):
    """aiosmtpd's controller on a socket bound to a free port beforehand (it needs the port)."""

    def __init__(self, handler: SmtpServer) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        super().__init__(handler, hostname="127.0.0.1", port=self.listener.getsockname()[1])
        # One dict shared with the handler: a session takes the options of the moment it opens.
        handler.smtp_options = self.SMTP_kwargs

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self.listener)


def free_port() -> int:
    """A port nothing listens on: connecting to it is refused."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_server(settings) -> Iterator[SmtpServer]:
    """The SMTP server running on a free local port; the email channel sends to it."""
    server = SmtpServer()
    controller = _Controller(server)
    controller.start()
    server.port = controller.port
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"  # not the tests' locmem
    settings.EMAIL_HOST = server.host
    settings.EMAIL_PORT = server.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = FROM_EMAIL
    settings.MESSAGING_PROVIDERS = {
        **settings.MESSAGING_PROVIDERS,
        "email": "campaigns.messaging.email.SmtpEmailProvider",
    }
    providers_reset()
    try:
        yield server
    finally:
        providers_reset()
        controller.stop()
