"""Parent sessions: opened at login, refreshed, revoked at logout. Tokens are random; only
their SHA-256 is stored, so a leaked table holds no usable token."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Least
from django.utils import timezone

from crm.models import AuditAction, Guardian
from crm.services.audit import audit
from parents.models import ParentSession


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Tokens:
    session: ParentSession
    access: str
    refresh: str

    @property
    def access_expires_at(self) -> datetime:
        return self.session.access_expires_at

    @property
    def refresh_expires_at(self) -> datetime:
        return self.session.refresh_expires_at


def _new_tokens() -> tuple[str, str]:
    return secrets.token_urlsafe(32), secrets.token_urlsafe(48)


@transaction.atomic
def session_open(*, guardian: Guardian, via: str) -> Tokens:
    """A new session for a guardian who has just proved their phone (or WeChat)."""
    access, refresh = _new_tokens()
    now = timezone.now()
    session = ParentSession.objects.create(
        guardian=guardian,
        access_hash=token_hash(access),
        refresh_hash=token_hash(refresh),
        access_expires_at=now + settings.PARENT_ACCESS_TTL,
        refresh_expires_at=now + settings.PARENT_REFRESH_TTL,
        via=via,
    )
    audit(actor=None, guardian=guardian, action=AuditAction.PARENT_LOGIN, via=via, session=session.pk)
    return Tokens(session=session, access=access, refresh=refresh)


def session_for_access(access: str) -> ParentSession | None:
    """The live session behind an access token, with its guardian, or None."""
    return (
        ParentSession.objects.select_related("guardian")
        .filter(access_hash=token_hash(access), revoked_at__isnull=True, access_expires_at__gt=timezone.now())
        .first()
    )


@transaction.atomic
def session_refresh(*, refresh: str) -> Tokens | None:
    """New tokens for a live refresh token, which is used up (rotated); None if it is not live.

    The row is changed by one conditional UPDATE, so a refresh token replayed concurrently
    yields new tokens once."""
    now = timezone.now()
    access, new_refresh = _new_tokens()
    changed = ParentSession.objects.filter(
        refresh_hash=token_hash(refresh), revoked_at__isnull=True, refresh_expires_at__gt=now
    ).update(
        access_hash=token_hash(access),
        refresh_hash=token_hash(new_refresh),
        # The access token never outlives the session's refresh window.
        access_expires_at=Least(Value(now + settings.PARENT_ACCESS_TTL), F("refresh_expires_at")),
    )
    if not changed:
        return None
    session = ParentSession.objects.select_related("guardian").get(access_hash=token_hash(access))
    return Tokens(session=session, access=access, refresh=new_refresh)


@transaction.atomic
def session_revoke(*, session: ParentSession) -> None:
    """Logout: both tokens of this session stop working now."""
    if ParentSession.objects.filter(pk=session.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()):
        audit(actor=None, guardian=session.guardian, action=AuditAction.PARENT_LOGOUT, session=session.pk)
