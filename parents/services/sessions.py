"""Parent sessions: opened at login, refreshed, revoked at logout. Tokens are random; only
their SHA-256 is stored, so a leaked table holds no usable token."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Model, Value
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


def _columns(model: type[Model], alias: str) -> tuple[list[str], str]:
    fields = model._meta.concrete_fields
    return [f.attname for f in fields], ", ".join(f"{alias}.{f.column}" for f in fields)


_SESSION_FIELDS, _SESSION_COLUMNS = _columns(ParentSession, "s")
_GUARDIAN_FIELDS, _GUARDIAN_COLUMNS = _columns(Guardian, "g")
# Every parent request asks this first: a plain statement, not a compiled ORM query.
SESSION_SQL = f"""
SELECT {_SESSION_COLUMNS}, {_GUARDIAN_COLUMNS}
FROM parents_parentsession s JOIN crm_guardian g ON g.id = s.guardian_id
WHERE s.access_hash = %s AND s.revoked_at IS NULL AND s.access_expires_at > %s
"""


def session_for_access(access: str) -> ParentSession | None:
    """The live session behind an access token, with its guardian, or None."""
    with connection.cursor() as cursor:
        cursor.execute(SESSION_SQL, [token_hash(access), timezone.now()])
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(_SESSION_FIELDS)
    session = ParentSession.from_db(connection.alias, _SESSION_FIELDS, row[:split])
    session.guardian = Guardian.from_db(connection.alias, _GUARDIAN_FIELDS, row[split:])
    return session


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
