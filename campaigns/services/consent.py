"""Consent to marketing messages, per guardian and channel, with its proof.

`consent_record` is the only writer: it appends a `ConsentRecord` (when, how, by whom, the words
shown or received) and moves the guardian's standing `Consent` for the channel to it, in one
transaction. The record is the audit: it is never changed or deleted but with its guardian.
Every door calls it: staff recording a paper form (the admin), an inbound SMS reply with an
unsubscribe keyword (`consent_opt_out_by_reply`), the signed link in marketing emails
(`consent_opt_out_by_token`), and, next, the parent app.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import Consent, ConsentRecord, ConsentSource, MessageChannel
from campaigns.rules import is_opt_out_reply
from crm.models import Guardian, Role, StudentGuardian, User
from crm.phones import normalize_phone
from crm.roles import require_role, sees_all_campuses

_UNSUBSCRIBE_SALT = "campaigns.unsubscribe"


def _require_staff_of_family(actor: User, guardian: Guardian) -> None:
    """Front desk and managers of a campus where the family has a child; administrators anywhere."""
    require_role(actor, Role.FRONT_DESK, Role.MANAGER)
    if sees_all_campuses(actor):
        return
    links = StudentGuardian.objects.filter(guardian_id=guardian.pk, student__campus_id=actor.campus_id or 0)
    if not links.exists():
        raise PermissionDenied(_("This family has no child at your campus."))


@transaction.atomic
def consent_record(
    *,
    guardian: Guardian,
    channel: str,
    granted: bool,
    source: str,
    wording: str,
    actor: User | None = None,
    evidence: str = "",
    at: dt.datetime | None = None,
) -> ConsentRecord:
    """Record a guardian's decision about one channel's marketing messages, with its proof."""
    if channel not in MessageChannel.values:
        raise ValidationError({"channel": _("Unknown channel: %(channel)s") % {"channel": channel}})
    if source not in ConsentSource.values:
        raise ValidationError({"source": _("Unknown consent source: %(source)s") % {"source": source}})
    if actor is not None:
        _require_staff_of_family(actor, guardian)
    elif source in (ConsentSource.STAFF, ConsentSource.IMPORT):
        raise ValidationError(_("Staff and imports record consent under a person's name."))
    wording = wording.strip()
    if not wording:
        raise ValidationError({"wording": _("Record the words the guardian was shown or sent.")})
    record = ConsentRecord.objects.create(
        guardian=guardian,
        channel=channel,
        granted=granted,
        source=source,
        wording=wording,
        evidence=evidence.strip()[:200],
        recorded_by=actor,
        recorded_at=at or timezone.now(),
    )
    # One row per (guardian, channel), standing on the latest decision by its time: a reply the
    # gateway delivers late does not undo a consent given after it.
    current = (
        Consent.objects.select_for_update().select_related("record").filter(guardian=guardian, channel=channel).first()
    )
    if current is None:
        # An upsert: two first decisions recorded at once cannot both insert.
        Consent.objects.bulk_create(
            [Consent(guardian=guardian, channel=channel, granted=granted, record=record)],
            update_conflicts=True,
            unique_fields=["guardian", "channel"],
            update_fields=["granted", "record", "updated_at"],
        )
    elif current.record.recorded_at <= record.recorded_at:
        current.granted, current.record = granted, record
        current.save(update_fields=["granted", "record", "updated_at"])
    return record


def consent_opt_out_by_reply(*, phone: str, reply: str, at: dt.datetime) -> bool:
    """An inbound SMS: a reply that is an unsubscribe keyword (TD, T, 退订, N) withdraws the
    family's SMS consent. False when the reply is not a keyword or the phone is not a guardian's."""
    if not is_opt_out_reply(reply):
        return False
    try:
        phone = normalize_phone(phone)
    except ValidationError:
        return False
    guardian = Guardian.objects.filter(phone=phone).first()
    if guardian is None:
        return False
    consent_record(
        guardian=guardian,
        channel=MessageChannel.SMS,
        granted=False,
        source=ConsentSource.SMS_REPLY,
        wording=reply,
        evidence=_("SMS reply from %(phone)s") % {"phone": phone},
        at=at,
    )
    return True


def unsubscribe_token(guardian_id: int, channel: str) -> str:
    """The signed part of an unsubscribe link: whoever holds it may opt this guardian out of this
    channel, and nothing else. It does not expire: an old email's link must still work."""
    return signing.Signer(salt=_UNSUBSCRIBE_SALT).sign_object({"g": guardian_id, "c": channel})


def unsubscribe_url(guardian_id: int, channel: str = MessageChannel.EMAIL) -> str:
    path = reverse("unsubscribe", args=[unsubscribe_token(guardian_id, channel)])
    return f"{settings.SITE_URL.rstrip('/')}{path}"


def unsubscribe_target(token: str) -> tuple[Guardian, str] | None:
    """The guardian and channel a token names, or None for a forged or damaged token."""
    try:
        payload = signing.Signer(salt=_UNSUBSCRIBE_SALT).unsign_object(token)
    except (signing.BadSignature, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("c") not in MessageChannel.values:
        return None
    if not isinstance(payload.get("g"), int):
        return None
    guardian = Guardian.objects.filter(pk=payload["g"]).first()
    return (guardian, payload["c"]) if guardian else None


def consent_opt_out_by_token(*, token: str, wording: str, evidence: str = "") -> Guardian | None:
    """The unsubscribe link (or RFC 8058's one-click POST): withdraw the channel's consent, with
    the words the page showed as proof. None for a bad token; opting out twice records it once."""
    target = unsubscribe_target(token)
    if target is None:
        return None
    guardian, channel = target
    already = Consent.objects.filter(guardian=guardian, channel=channel, granted=False).exists()
    if not already:
        consent_record(
            guardian=guardian,
            channel=channel,
            granted=False,
            source=ConsentSource.EMAIL_LINK,
            wording=wording,
            evidence=evidence,
        )
    return guardian
