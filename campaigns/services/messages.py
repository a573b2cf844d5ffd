"""Every message the product sends goes through here: queued once, sent by a worker, recorded.

- `message_queue(...)` writes the Message row (status queued, a fresh idempotency key) and hands
  it to the task `campaigns.send_message` after commit.
- `message_send(message_id)` (the task) claims the row by a conditional UPDATE (queued ->
  sending, attempts + 1), so two workers given the same id send it once; calls the channel's
  provider; records the provider's id (sent) or its error (failed), or puts the row back to queued
  on a transient error for the task's retry with backoff.
- `message_receipt(...)` applies a provider's delivery receipt.

A marketing message names its guardian and meets the marketing rules when it is about to go out
(`campaigns.services.marketing`): without consent it is suppressed, in quiet hours it waits
(`not_before`; the sweep hands it to a worker when they end), over the cap it is suppressed. A
marketing SMS carries the opt-out wording; a marketing email its unsubscribe link, in the text
and in RFC 8058's `List-Unsubscribe` headers. Transactional messages skip all of this.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.html import escape
from django.utils.translation import gettext as _

from campaigns.messaging import Outgoing, PermanentError, TransientError, provider_for
from campaigns.messaging.ratelimit import LimiterUnavailable, rate_acquire
from campaigns.models import Message, MessageCategory, MessageChannel, MessageStatus
from campaigns.rules import with_opt_out_wording
from campaigns.services.consent import unsubscribe_url
from campaigns.services.marketing import marketing_gate
from crm import text
from crm.models import Campus, Guardian
from crm.phones import normalize_phone

# A send that failed this many times for transient reasons is recorded as failed.
MAX_ATTEMPTS = 6


def _recipient_problem(channel: str, recipient: str) -> str | None:
    if channel == MessageChannel.SMS:
        try:
            normalize_phone(recipient)
        except ValidationError:
            return _("Not a phone number: %(recipient)s") % {"recipient": recipient}
    elif channel == MessageChannel.EMAIL:
        try:
            validate_email(recipient)
        except ValidationError:
            return _("Not an email address: %(recipient)s") % {"recipient": recipient}
    elif not recipient:
        return _("The message has no recipient.")
    return None


def message_queue(
    *,
    category: str,
    channel: str,
    recipient: str,
    text_body: str,
    subject: str = "",
    html: str = "",
    template_code: str = "",
    params: dict[str, str] | None = None,
    guardian: Guardian | None = None,
    campus: Campus | None = None,
) -> Message:
    """Record a message and send it after commit; ValidationError for a message that cannot be sent."""
    if category not in MessageCategory.values:
        raise ValidationError(_("Unknown message category: %(category)s") % {"category": category})
    if channel not in MessageChannel.values:
        raise ValidationError(_("Unknown channel: %(channel)s") % {"channel": channel})
    recipient = text.tidy(recipient)
    if channel == MessageChannel.SMS and not _recipient_problem(channel, recipient):
        recipient = normalize_phone(recipient)
    problem = _recipient_problem(channel, recipient)
    if problem:
        raise ValidationError(problem)
    if not text.tidy(text_body):
        raise ValidationError(_("The message has no text."))
    if category == MessageCategory.MARKETING:
        if guardian is None:
            raise ValidationError(_("A marketing message must name its guardian, whose consent it needs."))
        text_body, html = with_unsubscribe(channel, guardian.pk, text_body, html)
    subject = text.tidy(subject)
    if len(subject) > Message._meta.get_field("subject").max_length:  # type: ignore[operator]
        raise ValidationError(_("The subject is too long."))
    message = Message.objects.create(
        category=category,
        channel=channel,
        recipient=recipient,
        text=text_body,
        subject=subject,
        html=html,
        template_code=template_code,
        params=params or {},
        guardian=guardian,
        campus=campus,
        idempotency_key=uuid.uuid4().hex,
    )
    transaction.on_commit(lambda: _send_later(message.pk))
    return message


def with_unsubscribe(channel: str, guardian_id: int, text_body: str, html: str) -> tuple[str, str]:
    """A marketing message's text (and HTML) with the way to stop them: the SMS opt-out wording,
    an email's unsubscribe link."""
    if channel == MessageChannel.SMS:
        return with_opt_out_wording(text_body), html
    if channel == MessageChannel.EMAIL:
        url = unsubscribe_url(guardian_id, channel)
        footer = _("Unsubscribe from these emails: %(url)s") % {"url": url}
        text_body = f"{text_body.rstrip()}\n\n{footer}"
        if html:
            link = _("Unsubscribe from these emails")
            html = f'{html}\n<p style="font-size:12px;color:#888"><a href="{escape(url)}">{escape(link)}</a></p>'
    return text_body, html


def unsubscribe_headers(message: Message) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe, for mail clients that offer the button themselves."""
    if message.channel != MessageChannel.EMAIL or message.category != MessageCategory.MARKETING:
        return {}
    if message.guardian_id is None:
        return {}
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(message.guardian_id, message.channel)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def _send_later(message_id: int) -> None:
    from campaigns.tasks import send_message

    send_message.delay(message_id)


@dataclass(frozen=True)
class Sent:
    status: str
    retry: bool = False  # a transient failure: the task tries again later


def due(now: dt.datetime) -> Q:
    """Queued messages whose time has come (not waiting for quiet hours to end)."""
    return Q(status=MessageStatus.QUEUED) & (Q(not_before__isnull=True) | Q(not_before__lte=now))


def _claim(message_id: int, now: dt.datetime) -> Message | None:
    """queued -> sending, once: the worker whose UPDATE matched the row sends it."""
    # A campaign's rows are claimed in batches by its workers (`campaigns.services.outbox`).
    claimed = Message.objects.filter(due(now), pk=message_id, campaign__isnull=True).update(
        status=MessageStatus.SENDING, attempts=F("attempts") + 1, updated_at=now
    )
    if not claimed:
        return None
    return Message.objects.get(pk=message_id)


def message_send(message_id: int) -> Sent:
    """Send one queued message through its channel's provider and record the outcome."""
    now = timezone.now()
    message = _claim(message_id, now)
    if message is None:
        current = Message.objects.filter(pk=message_id).values_list("status", flat=True).first()
        return Sent(current or "missing")
    if message.category == MessageCategory.MARKETING:
        gate = marketing_gate(message, now=now)
        if gate.wait_until is not None:
            # Waiting is not an attempt: the claim's count is given back.
            _record(message, status=MessageStatus.QUEUED, not_before=gate.wait_until, attempts=message.attempts - 1)
            return Sent(MessageStatus.QUEUED)
        if not gate.send:
            _record(message, status=MessageStatus.SUPPRESSED, suppressed_reason=gate.reason)
            return Sent(MessageStatus.SUPPRESSED)
    try:
        rate_acquire(message.channel, settings.MESSAGING_RATE_LIMITS.get(message.channel, 0))
    except LimiterUnavailable:
        # Nobody knows how many went out this second: back to the queue, no attempt spent.
        _record(message, status=MessageStatus.QUEUED, attempts=message.attempts - 1, error_code="rate_limiter")
        return Sent(MessageStatus.QUEUED, retry=True)
    outcome = deliver(message, now=now)
    _record(message, **outcome.fields)
    return Sent(outcome.fields["status"], retry=outcome.retry)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Outcome:
    """What one provider call left to record on the message row."""

    fields: dict[str, object]
    retry: bool = False


def deliver(message: Message, *, now: dt.datetime) -> Outcome:
    """Hand a claimed message to its channel's provider: sent, failed, or queued again for a
    retry (transient, within MAX_ATTEMPTS). No database access: batches call it from threads."""
    provider = provider_for(message.channel)
    outgoing = Outgoing(
        key=message.idempotency_key,
        channel=message.channel,
        recipient=message.recipient,
        text=message.text,
        subject=message.subject,
        html=message.html,
        template_code=message.template_code,
        params=message.params,
        headers=unsubscribe_headers(message),
    )
    try:
        provider_id = provider.send(outgoing)
    except TransientError as error:
        exhausted = message.attempts >= MAX_ATTEMPTS
        status = MessageStatus.FAILED if exhausted else MessageStatus.QUEUED
        fields: dict[str, object] = {"status": status, "provider": provider.name}
        return Outcome({**fields, "error_code": error.code, "error": str(error)[:200]}, retry=not exhausted)
    except PermanentError as error:
        failed: dict[str, object] = {"status": MessageStatus.FAILED, "provider": provider.name}
        return Outcome({**failed, "error_code": error.code, "error": str(error)[:200]})
    return Outcome(
        {"status": MessageStatus.SENT, "provider": provider.name, "provider_message_id": provider_id, "sent_at": now}
    )


def _record(message: Message, **fields: object) -> None:
    """Only the claiming worker writes the outcome: the row is still `sending`."""
    Message.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(updated_at=timezone.now(), **fields)


RECEIPT_STATUSES = {"delivered": MessageStatus.DELIVERED, "failed": MessageStatus.FAILED}


def message_receipt(*, provider: str, provider_message_id: str, outcome: str, at: dt.datetime, code: str = "") -> bool:
    """A provider's delivery receipt: the sent message becomes delivered or failed. False when no
    sent message of that provider has the id (an unknown or repeated receipt changes nothing)."""
    status = RECEIPT_STATUSES.get(outcome)
    if status is None:
        raise ValidationError(_("Unknown delivery outcome: %(outcome)s") % {"outcome": outcome})
    fields: dict[str, object] = {"status": status, "updated_at": timezone.now()}
    if status == MessageStatus.DELIVERED:
        fields["delivered_at"] = at
    else:
        fields["error_code"] = code[:100]
    return bool(
        Message.objects.filter(
            provider=provider, provider_message_id=provider_message_id, status=MessageStatus.SENT
        ).update(**fields)
    )


# A message queued this long ago and never claimed lost its task (the broker was down at commit).
LOST_AFTER = dt.timedelta(minutes=2)


@dataclass(frozen=True)
class Swept:
    requeued: int
    unknown: int
    resent: list[int]  # queued messages whose task was lost


def messages_sweep(*, now: dt.datetime | None = None) -> Swept:
    """Reconcile what workers left behind (the beat task, every minute):
    - a message left `sending` goes back to the queue with its key where its provider
      deduplicates (the provider drops a second copy), else it becomes `unknown` for a person;
    - a queued message whose task was lost, or whose quiet hours have ended, is handed to a new task."""
    now = now or timezone.now()
    requeued = 0
    resend: list[int] = []
    unknown = 0
    # Claimed this long ago and still `sending`: left by a worker that died mid-send.
    stuck_after = dt.timedelta(seconds=settings.MESSAGING_STUCK_SECONDS)
    stuck = Message.objects.filter(status=MessageStatus.SENDING, updated_at__lt=now - stuck_after)
    for channel in stuck.values_list("channel", flat=True).distinct():
        of_channel = stuck.filter(channel=channel)
        if provider_for(channel).deduplicates:
            ids = list(of_channel.values_list("pk", flat=True)[:10_000])
            # Conditional: a row its worker finished meanwhile is not touched.
            moved = of_channel.filter(pk__in=ids).update(status=MessageStatus.QUEUED, updated_at=now)
            requeued += moved
            if moved:
                # A campaign's rows go back to its outbox, which its workers (or the beat) take up.
                resend += list(
                    Message.objects.filter(pk__in=ids, status=MessageStatus.QUEUED, campaign__isnull=True).values_list(
                        "pk", flat=True
                    )
                )
        else:
            unknown += of_channel.update(
                status=MessageStatus.UNKNOWN,
                error=_("Left mid-send by a worker; check with the provider."),
                updated_at=now,
            )
    lost = list(
        Message.objects.filter(due(now), Q(updated_at__lt=now - LOST_AFTER) | Q(not_before__isnull=False))
        .filter(campaign__isnull=True)
        .values_list("pk", flat=True)
        .order_by("pk")[:10_000]
    )
    for message_id in [*resend, *lost]:
        _send_later(message_id)
    return Swept(requeued, unknown, lost)
