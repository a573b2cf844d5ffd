"""Sending a campaign's outbox: workers claim batches of due rows and send them, effectively once.

- `outbox_claim` moves up to a batch of the campaign's due rows queued -> sending in one
  statement (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so several workers share a campaign and
  never take the same row.
- `outbox_send_batch` claims a batch, asks the marketing rules again for each row (an opt-out
  since launch, the frequency cap against other campaigns), fills in the texts for each family,
  sends through the channel's provider from a pool of threads within the provider's rate limit
  (`campaigns.messaging.ratelimit`, shared by every worker through the cache), and records every
  outcome with the same conditional update as a single message (only rows still `sending`).
  When the limiter's cache cannot be reached (Redis restarting), the rows it did not admit go back
  to the queue unsent and the batch stops; the beat's tick gives the campaign workers again.
- A row a killed worker left `sending` is reconciled by `messages_sweep` (re-sent with its key
  where the provider deduplicates, else `unknown`), never blindly re-sent.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone
from django.utils.html import escape, linebreaks
from django.utils.translation import gettext as _

from campaigns.messaging.ratelimit import LimiterUnavailable, rate_acquire
from campaigns.models import (
    Campaign,
    CampaignStatus,
    CampaignTemplate,
    Consent,
    Message,
    MessageStatus,
    SuppressionReason,
)
from campaigns.rules import quiet_until, render, wechat_fields
from campaigns.selectors import recipient_values
from campaigns.services.marketing import at_param, cap_claim, consent_reason, marketing_settings_for
from campaigns.services.messages import Outcome, deliver, with_unsubscribe
from personas.models import StudentProfile

CLAIM_SQL = """
UPDATE campaigns_message SET status = 'sending', attempts = attempts + 1, updated_at = %s
WHERE id IN (
    SELECT id FROM campaigns_message
    WHERE campaign_id = %s AND status = 'queued' AND (not_before IS NULL OR not_before <= %s)
    ORDER BY id
    LIMIT %s
    {lock}
)
RETURNING id
"""

RECORD_FIELDS = (
    "status",
    "not_before",
    "provider",
    "provider_message_id",
    "sent_at",
    "error_code",
    "error",
    "suppressed_reason",
    "subject",
    "text",
    "html",
    "template_code",
)
RECORD_SQL = (
    "UPDATE campaigns_message SET "
    + ", ".join(f"{name} = %s" for name in RECORD_FIELDS)
    + ", attempts = %s, updated_at = %s WHERE id = %s AND status = 'sending'"
)


def outbox_claim(campaign_id: int, *, now: dt.datetime, limit: int) -> list[int]:
    """Take up to `limit` of the campaign's due rows for this worker (queued -> sending)."""
    lock = "FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL.format(lock=lock), [at_param(now), campaign_id, at_param(now), limit])
        return sorted(row[0] for row in cursor.fetchall())


@dataclass(frozen=True)
class Batch:
    claimed: int = 0
    sent: int = 0
    retry: int = 0
    # The campaign is not sending (paused, cancelled, done): the worker stops.
    stopped: bool = False
    # Quiet hours at the campus (nothing was claimed), or the rate limiter unreachable: come back then.
    wait_until: dt.datetime | None = None


def retry_delay(attempts: int) -> dt.timedelta:
    """5 s, 10 s, 20 s ... up to 10 minutes: a busy provider is not hammered by the whole fleet."""
    return dt.timedelta(seconds=min(5 * 2 ** max(attempts - 1, 0), 600))


@cache
def _pool(size: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=size, thread_name_prefix="campaign-send")


def family_values(message: Message, hours_left: Decimal | None) -> dict[str, str]:
    guardian = message.guardian.name if message.guardian else ""
    if message.student is None:  # the student was deleted since the launch
        return {"student": "", "guardian": guardian, "hours_left": "0", "consultant": ""}
    return recipient_values(message.student, guardian, hours_left)


def fill_in(message: Message, template: CampaignTemplate, values: dict[str, str]) -> None:
    """The message's texts for this family, with the way to stop marketing."""
    body = render(template.text, values)
    html = linebreaks(escape(body)) if message.channel == "email" else ""
    message.text, message.html = with_unsubscribe(message.channel, message.guardian_id or 0, body, html)
    message.subject = render(template.subject, values)
    message.template_code = template.template_code
    # The SMS cloud's template parameters; WeChat's are the template's fields, filled in.
    message.params = (wechat_fields(body) or {}) if message.channel == "wechat" else values


# How long a message the rate limiter could not admit waits before it is claimed again.
LIMITER_PAUSE = dt.timedelta(seconds=5)


def _send(message: Message, now: dt.datetime) -> Outcome | None:
    """The provider's outcome, or None when the rate limiter could not be asked: not sent."""
    limits: dict[str, int] = settings.MESSAGING_RATE_LIMITS
    try:
        try:
            rate_acquire(message.channel, limits.get(message.channel, 0))
        except LimiterUnavailable:
            return None
        return deliver(message, now=now)
    finally:
        close_old_connections()


def outbox_send_batch(campaign_id: int, *, now: dt.datetime | None = None, size: int | None = None) -> Batch:
    """One batch of the campaign's outbox: claimed, checked, filled in, sent, recorded."""
    now = now or timezone.now()
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or campaign.status != CampaignStatus.SENDING:
        return Batch(stopped=True)
    rules = marketing_settings_for(campaign.campus_id)
    wait = quiet_until(now, time_zone=rules.time_zone, quiet_from=rules.quiet_from, quiet_until=rules.quiet_until)
    if wait is not None:
        return Batch(wait_until=wait)
    ids = outbox_claim(campaign_id, now=now, limit=size or settings.CAMPAIGN_BATCH_SIZE)
    if not ids:
        return Batch()
    Campaign.objects.filter(pk=campaign_id).update(last_batch_at=now)
    messages = list(Message.objects.filter(pk__in=ids).select_related("guardian", "student__owner").order_by("pk"))
    templates = {(t.variant, t.channel): t for t in campaign.templates.all()}
    student_ids = {m.student_id for m in messages if m.student_id}
    hours: dict[int | None, Decimal] = dict(
        StudentProfile.objects.filter(student_id__in=student_ids).values_list("student_id", "remaining_hours")
    )
    consents: dict[tuple[int | None, str], bool] = {
        (guardian_id, channel): granted
        for guardian_id, channel, granted in Consent.objects.filter(
            guardian_id__in={m.guardian_id for m in messages}
        ).values_list("guardian_id", "channel", "granted")
    }
    outcomes: dict[int, dict[str, Any]] = {}
    to_send: list[Message] = []
    capped: dict[int, bool] = {}
    for message in messages:
        reason = consent_reason(consents.get((message.guardian_id, message.channel)))
        if reason:
            outcomes[message.pk] = {"status": MessageStatus.SUPPRESSED, "suppressed_reason": reason}
            continue
        guardian_id = message.guardian_id or 0
        if guardian_id not in capped:
            capped[guardian_id] = not cap_claim(
                guardian_id=guardian_id, by=f"campaign:{campaign_id}", now=now, days=rules.cap_days
            )
        if capped[guardian_id]:
            outcomes[message.pk] = {
                "status": MessageStatus.SUPPRESSED,
                "suppressed_reason": SuppressionReason.FREQUENCY_CAP,
            }
            continue
        fill_in(
            message,
            templates[(message.variant or "A", message.channel)],
            family_values(message, hours.get(message.student_id)),
        )
        to_send.append(message)
    pool = _pool(settings.CAMPAIGN_SEND_THREADS)
    held = 0
    for message, outcome in zip(to_send, pool.map(lambda m: _send(m, now), to_send), strict=True):
        if outcome is None:
            # Never handed to the provider, so certainly unsent: back in the queue now, not left
            # `sending` for the sweep to guess about (a provider that does not deduplicate would
            # make it `unknown`), and not an attempt.
            held += 1
            message.attempts -= 1
            fields: dict[str, Any] = {
                "status": MessageStatus.QUEUED,
                "not_before": now + LIMITER_PAUSE,
                "error_code": "rate_limiter",
                "error": _("The rate limit's counters could not be reached; sent later."),
            }
        else:
            fields = outcome.fields
            if outcome.retry:  # back in the queue, after a pause that grows with each attempt
                fields["not_before"] = now + retry_delay(message.attempts)
        outcomes[message.pk] = {
            **fields,
            "subject": message.subject,
            "text": message.text,
            "html": message.html,
            "template_code": message.template_code,
        }
    _record_all(messages, outcomes, now=now)
    sent = sum(1 for fields in outcomes.values() if fields["status"] == MessageStatus.SENT)
    retry = sum(1 for fields in outcomes.values() if fields["status"] == MessageStatus.QUEUED)
    # The limiter is down: this worker stops rather than claim batch after batch it cannot send.
    wait_until = now + LIMITER_PAUSE if held else None
    return Batch(claimed=len(ids), sent=sent, retry=retry, wait_until=wait_until)


def _record_all(messages: list[Message], outcomes: dict[int, dict[str, Any]], *, now: dt.datetime) -> None:
    rows = []
    for message in messages:
        fields = outcomes[message.pk]
        values = [fields.get(name, getattr(message, name)) for name in RECORD_FIELDS]
        for name in ("sent_at", "not_before"):
            moment = values[RECORD_FIELDS.index(name)]
            values[RECORD_FIELDS.index(name)] = at_param(moment) if moment else None
        # Suppression is not an attempt: the claim's count is given back.
        attempts = message.attempts - 1 if fields["status"] == MessageStatus.SUPPRESSED else message.attempts
        rows.append([*values, attempts, at_param(now), message.pk])
    with connection.cursor() as cursor:
        cursor.executemany(RECORD_SQL, rows)
