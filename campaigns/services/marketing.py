"""The marketing rules, applied when a marketing message is about to go out (a transactional one
never asks): the guardian's consent for the channel, the campus's quiet hours, the frequency cap.

Applied at send time, not only when a campaign's audience is resolved: an opt-out recorded
between launch and send is honoured, a message that reaches the front of the queue at 21:00
waits until 09:00, and two campaigns overlapping in time share one cap.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import connection

from campaigns.models import Consent, MarketingContact, MarketingSettings, Message, SuppressionReason
from campaigns.rules import quiet_until


@dataclass(frozen=True)
class Gate:
    """What the rules say of one marketing message now: send it, wait, or hold it back."""

    send: bool
    wait_until: dt.datetime | None = None
    reason: str = ""  # a SuppressionReason when neither sent nor waiting


SEND = Gate(send=True)


def marketing_settings_for(campus_id: int | None) -> MarketingSettings:
    """The campus's settings, or the defaults (a message of no campus, a campus never configured)."""
    if campus_id is not None:
        row = MarketingSettings.objects.filter(campus_id=campus_id).first()
        if row is not None:
            return row
    return MarketingSettings(campus_id=campus_id)  # type: ignore[misc]  # unsaved: the defaults


def consent_reason(granted: bool | None) -> str | None:
    """A standing consent (None: never asked) -> None when marketing may go, else the reason."""
    if granted is None:
        return SuppressionReason.NO_CONSENT
    return None if granted else SuppressionReason.OPTED_OUT


def consent_problem(guardian_id: int | None, channel: str) -> str | None:
    """None when the guardian consents to the channel's marketing; else the suppression reason."""
    if guardian_id is None:
        return SuppressionReason.NO_CONSENT
    return consent_reason(
        Consent.objects.filter(guardian_id=guardian_id, channel=channel).values_list("granted", flat=True).first()
    )


def cap_claim(*, guardian_id: int, by: str, now: dt.datetime, days: int) -> bool:
    """Take the guardian's one marketing contact of the window for `by` (a campaign, whose channels
    count as one contact, or a single message). True when it is `by`'s: nobody reached the
    guardian within `days`, or `by` itself did. One upsert: two workers cannot both take it."""
    table = MarketingContact._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (guardian_id, last_at, last_by) VALUES (%s, %s, %s)
            ON CONFLICT (guardian_id) DO UPDATE
                SET last_at = CASE WHEN {table}.last_by = excluded.last_by THEN {table}.last_at
                                   ELSE excluded.last_at END,
                    last_by = excluded.last_by
                WHERE {table}.last_at <= %s OR {table}.last_by = excluded.last_by
            RETURNING guardian_id
            """,
            [guardian_id, at_param(now), by, at_param(now - dt.timedelta(days=days))],
        )
        return cursor.fetchone() is not None


def at_param(moment: dt.datetime) -> Any:
    """A datetime as a raw statement's parameter, in the form the database's columns keep."""
    return connection.ops.adapt_datetimefield_value(moment)


def contact_key(message: Message) -> str:
    """What a message counts as against the cap: one contact per campaign, else itself."""
    campaign_id = getattr(message, "campaign_id", None)
    return f"campaign:{campaign_id}" if campaign_id else f"message:{message.pk}"


def marketing_gate(message: Message, *, now: dt.datetime, rules: MarketingSettings | None = None) -> Gate:
    """Consent first (an opted-out family is never counted against the cap), then quiet hours
    (a waiting message takes no slot), then the cap."""
    guardian_id = message.guardian_id
    reason = consent_problem(guardian_id, message.channel)
    if reason or guardian_id is None:
        return Gate(send=False, reason=reason or SuppressionReason.NO_CONSENT)
    rules = rules or marketing_settings_for(message.campus_id)
    wait = quiet_until(now, time_zone=rules.time_zone, quiet_from=rules.quiet_from, quiet_until=rules.quiet_until)
    if wait is not None:
        return Gate(send=False, wait_until=wait)
    if not cap_claim(guardian_id=guardian_id, by=contact_key(message), now=now, days=rules.cap_days):
        return Gate(send=False, reason=SuppressionReason.FREQUENCY_CAP)
    return SEND
