"""A parent's message preferences: the campaigns' consent per channel, decided in the app.

Each change goes through `campaigns.services.consent.consent_record` with the words the app
showed, so the proof is the same kind as a paper form's or an SMS reply's."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from campaigns.models import Consent, ConsentSource, MessageChannel
from campaigns.services.consent import consent_record
from crm.models import AuditAction, Guardian
from crm.services.audit import audit


def preference_wording(channel: str, granted: bool) -> str:
    """What the app shows beside each switch: the proof records these words."""
    label = MessageChannel(channel).label
    if granted:
        return _("I agree to receive offers and activity news from the school by %(channel)s.") % {"channel": label}
    return _("I do not want offers and activity news from the school by %(channel)s.") % {"channel": label}


def preferences_of(guardian: Guardian) -> dict[str, bool]:
    """Each channel's standing decision; no decision is no marketing."""
    standing = dict(Consent.objects.filter(guardian=guardian).values_list("channel", "granted"))
    return {channel: bool(standing.get(channel, False)) for channel in MessageChannel.values}


@transaction.atomic
def preferences_set(*, guardian: Guardian, choices: dict[str, bool], evidence: str = "") -> dict[str, bool]:
    """Record the channels whose decision changed; an unchanged switch records nothing."""
    current = preferences_of(guardian)
    changed = {channel: granted for channel, granted in choices.items() if current.get(channel) != granted}
    for channel, granted in changed.items():
        consent_record(
            guardian=guardian,
            channel=channel,
            granted=granted,
            source=ConsentSource.PARENT_APP,
            wording=preference_wording(channel, granted),
            evidence=evidence,
        )
    if changed:
        audit(
            actor=None,
            guardian=guardian,
            action=AuditAction.PARENT_CONSENT,
            channels={channel: "yes" if granted else "no" for channel, granted in changed.items()},
        )
    return {**current, **changed}


def unsubscribe_all(*, guardian: Guardian, evidence: str = "") -> dict[str, bool]:
    return preferences_set(
        guardian=guardian, choices={channel: False for channel in MessageChannel.values}, evidence=evidence
    )
