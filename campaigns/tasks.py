"""Messaging and campaign tasks: take ids, call the services, retry only what is transient."""

from __future__ import annotations

import time

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

__all__ = ["campaigns_tick", "send_campaign_batch", "send_message", "start_campaign", "sweep_messages"]

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


CAMPAIGNS_QUEUE = "default"
# A batch task works this long, then hands over to a fresh task (short tasks: a killed worker
# loses little, and a paused campaign stops within one batch).
BATCH_TASK_SECONDS = 50


@shared_task(
    name="campaigns.start_campaign",
    queue=CAMPAIGNS_QUEUE,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    max_retries=8,
    soft_time_limit=300,
    time_limit=360,
)
def start_campaign(campaign_id: int) -> bool:
    """Resolve a sending campaign's audience (once) and hand its outbox to the workers."""
    from campaigns.services.campaigns import campaign_resolve

    if not campaign_resolve(campaign_id):
        return False
    dispatch_workers(campaign_id)
    return True


def dispatch_workers(campaign_id: int) -> None:
    for _worker in range(max(settings.CAMPAIGN_PARALLEL_TASKS, 1)):
        send_campaign_batch.delay(campaign_id)


@shared_task(
    name="campaigns.send_campaign_batch",
    queue=CAMPAIGNS_QUEUE,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    max_retries=8,
    soft_time_limit=BATCH_TASK_SECONDS + 60,
    time_limit=BATCH_TASK_SECONDS + 90,
)
def send_campaign_batch(campaign_id: int) -> int:
    """Send the campaign's outbox batch after batch for a while; idempotent (a row is claimed
    once). Hands over to a fresh task while rows remain; the campaign is done when none do."""
    from campaigns.services.campaigns import campaign_finish_if_sent
    from campaigns.services.outbox import outbox_send_batch

    eager = send_campaign_batch.request.is_eager
    started = time.monotonic()
    sent = 0
    while eager or time.monotonic() - started < BATCH_TASK_SECONDS:
        batch = outbox_send_batch(campaign_id)
        sent += batch.sent
        if batch.stopped or batch.wait_until is not None:
            return sent
        if not batch.claimed:
            campaign_finish_if_sent(campaign_id)
            return sent
    send_campaign_batch.delay(campaign_id)
    return sent


@shared_task(name="campaigns.campaigns_tick", queue=CAMPAIGNS_QUEUE, soft_time_limit=50, time_limit=60)
def campaigns_tick() -> int:
    """Every minute: scheduled campaigns whose time came start; a sending campaign nobody has
    worked on for a while (lost tasks, a restarted broker) gets workers again."""
    from campaigns.services.campaigns import campaigns_idle, campaigns_start_due

    started = campaigns_start_due()
    for campaign_id in started:
        start_campaign.delay(campaign_id)
    idle = campaigns_idle()
    for campaign_id in idle:
        dispatch_workers(campaign_id)
    return len(started) + len(idle)
