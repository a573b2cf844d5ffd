"""Messaging tasks: take a message id, call one service, retry only what is transient."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

__all__ = ["send_message", "sweep_messages"]

MESSAGING_QUEUE = "default"


class SendLater(Exception):
    """The provider was busy or unreachable: the message waits in the queue for a retry."""


@shared_task(
    name="campaigns.send_message",
    queue=MESSAGING_QUEUE,
    autoretry_for=(OperationalError, InterfaceError, SendLater),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
    soft_time_limit=60,
    time_limit=90,
)
def send_message(message_id: int) -> str:
    """Send one message (idempotent: a message already claimed or sent is left alone)."""
    from campaigns.services.messages import message_send

    sent = message_send(message_id)
    # In-process (the embedded default) a retry would run at once; the sweep sends it again later.
    if sent.retry and not send_message.request.is_eager:
        raise SendLater(message_id)
    return sent.status


@shared_task(name="campaigns.sweep_messages", queue=MESSAGING_QUEUE, soft_time_limit=50, time_limit=60)
def sweep_messages() -> int:
    """Every minute: messages left mid-send by a dead worker, and queued ones whose task was lost."""
    from campaigns.services.messages import messages_sweep

    swept = messages_sweep()
    return swept.requeued + swept.unknown + len(swept.resent)
