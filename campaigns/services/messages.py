"""Every message the product sends goes through here: queued once, sent by a worker, recorded.

- `message_queue(...)` writes the Message row (status queued, a fresh idempotency key) and hands
  it to the task `campaigns.send_message` after commit.
- `message_send(message_id)` (the task) claims the row by a conditional UPDATE (queued ->
  sending, attempts + 1), so two workers given the same id send it once; calls the channel's
  provider; records the provider's id (sent) or its error (failed), or puts the row back to queued
  on a transient error for the task's retry with backoff.
- `message_receipt(...)` applies a provider's delivery receipt.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.messaging import Outgoing, PermanentError, TransientError, provider_for
from campaigns.models import Message, MessageCategory, MessageChannel, MessageStatus
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


def _send_later(message_id: int) -> None:
    from campaigns.tasks import send_message

    send_message.delay(message_id)


@dataclass(frozen=True)
class Sent:
    status: str
    retry: bool = False  # a transient failure: the task tries again later


def _claim(message_id: int) -> Message | None:
    """queued -> sending, once: the worker whose UPDATE matched the row sends it."""
    claimed = Message.objects.filter(pk=message_id, status=MessageStatus.QUEUED).update(
        status=MessageStatus.SENDING, attempts=F("attempts") + 1, updated_at=timezone.now()
    )
    if not claimed:
        return None
    return Message.objects.get(pk=message_id)


def message_send(message_id: int) -> Sent:
    """Send one queued message through its channel's provider and record the outcome."""
    message = _claim(message_id)
    if message is None:
        current = Message.objects.filter(pk=message_id).values_list("status", flat=True).first()
        return Sent(current or "missing")
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
    )
    now = timezone.now()
    try:
        provider_id = provider.send(outgoing)
    except TransientError as error:
        exhausted = message.attempts >= MAX_ATTEMPTS
        status = MessageStatus.FAILED if exhausted else MessageStatus.QUEUED
        _record(message, status=status, provider=provider.name, error_code=error.code, error=str(error))
        return Sent(status, retry=not exhausted)
    except PermanentError as error:
        _record(message, status=MessageStatus.FAILED, provider=provider.name, error_code=error.code, error=str(error))
        return Sent(MessageStatus.FAILED)
    _record(message, status=MessageStatus.SENT, provider=provider.name, provider_message_id=provider_id, sent_at=now)
    return Sent(MessageStatus.SENT)


def _record(message: Message, **fields: object) -> None:
    """Only the claiming worker writes the outcome: the row is still `sending`."""
    if "error" in fields:
        fields["error"] = str(fields["error"])[:200]
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


# A message claimed this long ago and still `sending` was left by a worker that died mid-send.
STUCK_AFTER = dt.timedelta(minutes=5)
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
    - a queued message whose task was lost is handed to a new task."""
    now = now or timezone.now()
    requeued: list[int] = []
    unknown = 0
    stuck = Message.objects.filter(status=MessageStatus.SENDING, updated_at__lt=now - STUCK_AFTER)
    for channel in stuck.values_list("channel", flat=True).distinct():
        of_channel = stuck.filter(channel=channel)
        if provider_for(channel).deduplicates:
            ids = list(of_channel.values_list("pk", flat=True)[:10_000])
            # Conditional: a row its worker finished meanwhile is not touched.
            if of_channel.filter(pk__in=ids).update(status=MessageStatus.QUEUED, updated_at=now):
                requeued += list(
                    Message.objects.filter(pk__in=ids, status=MessageStatus.QUEUED).values_list("pk", flat=True)
                )
        else:
            unknown += of_channel.update(
                status=MessageStatus.UNKNOWN,
                error=_("Left mid-send by a worker; check with the provider."),
                updated_at=now,
            )
    lost = list(
        Message.objects.filter(status=MessageStatus.QUEUED, updated_at__lt=now - LOST_AFTER).values_list(
            "pk", flat=True
        )[:10_000]
    )
    for message_id in [*requeued, *lost]:
        _send_later(message_id)
    return Swept(len(requeued), unknown, lost)
