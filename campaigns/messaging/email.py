"""Email over SMTP, through Django's mail backends (settings EMAIL_*, read from the environment).

One email per message: the text, and the HTML as an alternative when there is one, from
DEFAULT_FROM_EMAIL to the recipient. Its Message-ID is made from the message's idempotency key
and is the provider's id. Every entry of `Outgoing.headers` is set on the email as given: the
messaging layer passes `List-Unsubscribe` and `List-Unsubscribe-Post` (RFC 8058 one-click) for
marketing mail.

SMTP has no idempotency: a send cut off after the server took the message may have delivered
it, so the provider does not deduplicate and the sweep leaves such a message to a person.

The server's answers map to the two errors: a 5xx refusal of the recipient, the sender or the
message is permanent (`smtp-550`); a 4xx answer (greylisting, a full queue), a refused, cut or
timed-out connection, and a failed greeting or login (the server or our settings, not this
message) are transient. Each thread keeps one connection open between messages, so a campaign
is not one TCP, TLS and EHLO handshake per email, and opens a new one after a failure.
"""

from __future__ import annotations

import contextlib
import smtplib
import threading
import time
import weakref
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.core.mail.message import RFC5322_EMAIL_LINE_LENGTH_LIMIT
from django.utils.encoding import punycode

from campaigns.messaging.base import Outgoing, PermanentError, SendError, TransientError

# A connection idle this long is checked with NOOP before it is used again: servers drop idle
# clients (Postfix after 300 s, some relays after 60 s), and a send on a dropped connection fails.
IDLE_CHECK_SECONDS = 30.0
# The provider's id (Message.provider_message_id) holds the Message-ID.
PROVIDER_ID_LENGTH = 100
KEY_LENGTH = 32  # campaigns.services.messages: uuid4().hex


class _Email(EmailMultiAlternatives):
    def message(self, **kwargs: Any) -> Any:
        msg = super().message(**kwargs)
        # Python's legacy email policy folds a header longer than 78 characters at ';' and ','
        # too, which can put a space inside a List-Unsubscribe URL. Headers up to the hard limit
        # stay on one line, exactly as given; the subject is encoded and folded by Django already.
        msg.policy = msg.policy.clone(max_line_length=RFC5322_EMAIL_LINE_LENGTH_LIMIT)
        return msg


def _reply(text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text[:150]


def _answer(code: int, text: bytes | str) -> SendError:
    """The server's reply to this message: 5xx is final, anything else may pass later."""
    if 500 <= code < 600:
        return PermanentError(f"smtp-{code}", _reply(text))
    return TransientError(f"smtp-{code}", _reply(text))


class SmtpEmailProvider:
    name = "smtp"
    # SMTP has no idempotency key: a message sent twice arrives twice.
    deduplicates = False

    def __init__(self, *, idle_check: float = IDLE_CHECK_SECONDS) -> None:
        self.idle_check = idle_check
        self.from_email = settings.DEFAULT_FROM_EMAIL
        _name, address = parseaddr(self.from_email)
        local, _at, domain = address.rpartition("@")
        if not local or not domain:
            raise ImproperlyConfigured(f"DEFAULT_FROM_EMAIL={self.from_email!r} is not an email address")
        self.message_id_domain = punycode(domain.lower())
        if len(self.message_id(KEY_LENGTH * "0")) > PROVIDER_ID_LENGTH:
            raise ImproperlyConfigured(f"DEFAULT_FROM_EMAIL={self.from_email!r}: its domain is too long")
        self.backend_path = settings.EMAIL_BACKEND
        self.local = threading.local()
        self.lock = threading.Lock()
        # Every thread's connection, for close(); weak, so a thread that ends takes its own with it.
        self.open_backends: weakref.WeakSet[BaseEmailBackend] = weakref.WeakSet()

    def message_id(self, key: str) -> str:
        """The Message-ID of the message with this idempotency key (RFC 5322 msg-id)."""
        return f"<{key}@{self.message_id_domain}>"

    def send(self, message: Outgoing) -> str:
        message_id = self.message_id(message.key)
        headers = {name: value for name, value in message.headers.items() if name.lower() != "message-id"}
        headers["Message-ID"] = message_id
        email = _Email(
            subject=message.subject,
            body=message.text,
            from_email=self.from_email,
            to=[message.recipient],
            headers=headers,
        )
        if message.html:
            email.attach_alternative(message.html, "text/html")
        try:
            sent = self._backend().send_messages([email])
        except smtplib.SMTPRecipientsRefused as error:
            # One recipient per email: it was refused, and smtplib reset the session for the next.
            code, text = next(iter(error.recipients.values()), (550, b""))
            raise self._failed(_answer(code, text)) from None
        except (smtplib.SMTPConnectError, smtplib.SMTPHeloError, smtplib.SMTPAuthenticationError) as error:
            # The server's greeting or our login failed: not this message's fault, whatever the code.
            raise self._failed(TransientError(f"smtp-{error.smtp_code}", _reply(error.smtp_error))) from None
        except smtplib.SMTPResponseException as error:  # the sender or the message refused
            raise self._failed(_answer(error.smtp_code, error.smtp_error)) from None
        except OSError as error:  # refused, timed out, cut (SMTPServerDisconnected), TLS, other SMTP errors
            raise self._failed(TransientError("network", type(error).__name__)) from None
        except ValueError as error:  # an address or header Django refuses to write (a line break)
            raise PermanentError("invalid-message", str(error)[:150]) from None
        if not sent:
            raise PermanentError("no-recipient")
        self.local.used_at = time.monotonic()
        return message_id

    def _backend(self) -> BaseEmailBackend:
        """This thread's open connection, checked after a quiet while; a new one if it is gone."""
        backend: BaseEmailBackend | None = getattr(self.local, "backend", None)
        if backend is not None:
            quiet = time.monotonic() - self.local.used_at > self.idle_check
            # close() took it, or the server may have dropped it while it was quiet.
            if backend not in self.open_backends or (quiet and not _answers_noop(backend)):
                self._drop()
                backend = None
        if backend is None:
            backend = get_connection(self.backend_path, fail_silently=False)
            try:
                backend.open()
            except BaseException:
                _abandon(backend)  # a greeting, TLS or login that failed may leave a socket behind
                raise
            self.local.backend = backend
            self.local.used_at = time.monotonic()
            with self.lock:
                self.open_backends.add(backend)
        return backend

    def _failed(self, error: SendError) -> SendError:
        """The error to raise; after a transient one the connection may be dead (a 421 closes
        it), so the next message opens a new one. A permanent refusal leaves it usable."""
        if isinstance(error, TransientError):
            self._drop()
        return error

    def _drop(self) -> None:
        """Forget this thread's connection."""
        backend = getattr(self.local, "backend", None)
        self.local.backend = None
        if backend is None:
            return
        with self.lock:
            self.open_backends.discard(backend)
        _abandon(backend)

    def close(self) -> None:
        """QUIT every connection the provider holds (called by `providers_reset`)."""
        with self.lock:
            backends, self.open_backends = list(self.open_backends), weakref.WeakSet()
        for backend in backends:
            _close(backend)


def _answers_noop(backend: BaseEmailBackend) -> bool:
    if not isinstance(backend, SmtpBackend):
        return True  # nothing held open to go stale
    connection = backend.connection
    if connection is None:
        return False
    try:
        return bool(connection.noop()[0] == 250)
    except OSError:  # smtplib's errors are OSErrors
        return False


def _abandon(backend: BaseEmailBackend) -> None:
    """Close without a QUIT, which a dead or slow server would make us wait for."""
    if not isinstance(backend, SmtpBackend):
        _close(backend)
    elif backend.connection is not None:
        backend.connection.close()
        backend.connection = None


def _close(backend: BaseEmailBackend) -> None:
    with contextlib.suppress(OSError):  # the server went first: nothing left to close
        backend.close()
