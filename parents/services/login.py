"""Logging a parent in by phone and SMS code.

A code goes out only to a phone that is a family's (a stranger's phone gets the same answer
and no message, so the answer never tells who is a customer). The code is sent through the
messaging layer as a transactional message, lives `PARENT_CODE_TTL`, works once, and is
never stored in clear. Wrong codes are counted per phone: once `PARENT_CODE_MAX_FAILURES`
wrong codes were typed within `PARENT_CODE_LOCK`, the phone can log in by code no more until
the window has passed, whatever code is sent."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import LOGIN_CODE_TEMPLATE, MessageCategory, MessageChannel
from campaigns.services.messages import message_queue
from crm.models import Guardian
from crm.phones import normalize_phone
from parents.models import LoginCode
from parents.services.sessions import Tokens, session_open, token_hash


class TooManyAttempts(Exception):
    """Refused for a while: too many codes asked for, or too many wrong codes typed."""

    def __init__(self, message: str, wait_seconds: int) -> None:
        super().__init__(message)
        self.message = message
        self.wait_seconds = wait_seconds


@dataclass(frozen=True)
class CodeSent:
    phone: str
    expires_in: int
    resend_in: int


def _phone(phone: str) -> str:
    try:
        return normalize_phone(phone)
    except ValidationError as exc:
        raise ValidationError({"phone": exc.messages[0]}) from exc


def _code_text(code: str) -> str:
    minutes = int(settings.PARENT_CODE_TTL.total_seconds() // 60)
    return _("Your login code is %(code)s, valid for %(minutes)s minutes. Do not share it with anyone.") % {
        "code": code,
        "minutes": minutes,
    }


@transaction.atomic
def login_code_send(*, phone: str, ip: str | None) -> CodeSent:
    """Send a login code to a family's phone. TooManyAttempts within the resend interval."""
    e164 = _phone(phone)
    now = timezone.now()
    ttl = int(settings.PARENT_CODE_TTL.total_seconds())
    guardian = Guardian.objects.filter(phone=e164).first()
    if guardian is None:
        return CodeSent(phone=e164, expires_in=ttl, resend_in=settings.PARENT_CODE_RESEND_SECONDS)
    # The family's row queues two requests for one phone, so the interval check below holds.
    Guardian.objects.select_for_update().filter(pk=guardian.pk).first()
    last = LoginCode.objects.filter(phone=e164).order_by("-created_at").first()
    if last is not None:
        wait = settings.PARENT_CODE_RESEND_SECONDS - int((now - last.created_at).total_seconds())
        if wait > 0:
            raise TooManyAttempts(_("A code was sent just now. Ask again in %(s)s seconds.") % {"s": wait}, wait)
    code = f"{secrets.randbelow(10**6):06d}"
    LoginCode.objects.create(
        phone=e164,
        code_hash=token_hash(f"{e164}:{code}"),
        ip=ip,
        created_at=now,
        expires_at=now + settings.PARENT_CODE_TTL,
    )
    message_queue(
        category=MessageCategory.TRANSACTIONAL,
        channel=MessageChannel.SMS,
        recipient=e164,
        text_body=_code_text(code),
        template_code=LOGIN_CODE_TEMPLATE,
        params={"code": code},
        guardian=guardian,
    )
    return CodeSent(phone=e164, expires_in=ttl, resend_in=settings.PARENT_CODE_RESEND_SECONDS)


def _wrong_code() -> ValidationError:
    return ValidationError({"code": _("The code is wrong or has expired. Ask for a new one.")})


def login_code_verify(*, phone: str, code: str) -> Tokens:
    """Tokens for the family behind the phone if the code is right, live and unused.

    ValidationError for a wrong code (counted), TooManyAttempts once the phone is locked."""
    e164 = _phone(phone)
    now = timezone.now()
    with transaction.atomic():
        window = LoginCode.objects.filter(phone=e164, created_at__gt=now - settings.PARENT_CODE_LOCK)
        # The phone's newest code is the lock: attempts on one phone run one at a time, so
        # none is counted twice or slips past the limit.
        latest = window.select_for_update().order_by("-created_at").first()
        if latest is None:
            raise _wrong_code()
        failures = window.aggregate(n=Sum("failures"))["n"] or 0
        if failures >= settings.PARENT_CODE_MAX_FAILURES:
            oldest = window.filter(failures__gt=0).order_by("created_at").first()
            wait = int(((oldest or latest).created_at + settings.PARENT_CODE_LOCK - now).total_seconds()) + 1
            raise TooManyAttempts(_("Too many wrong codes. Try again in %(m)s minutes.") % {"m": wait // 60 + 1}, wait)
        right = (
            hmac.compare_digest(latest.code_hash, token_hash(f"{e164}:{code.strip()}"))
            and latest.used_at is None
            and latest.expires_at > now
        )
        if right:
            LoginCode.objects.filter(pk=latest.pk, used_at__isnull=True).update(used_at=now)
            guardian = Guardian.objects.filter(phone=e164).first()
            if guardian is not None:
                return session_open(guardian=guardian, via="sms")
        else:
            LoginCode.objects.filter(pk=latest.pk).update(failures=F("failures") + 1)
    # Outside the block, so the counted failure is committed with the refusal.
    raise _wrong_code()
