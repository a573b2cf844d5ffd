"""The parent API's authentication: "Authorization: Bearer <access token>".

A valid token makes `request.user` a `Parent` (the guardian behind the phone the parent logged
in with) and `request.auth` their `ParentSession`. Staff permissions refuse a Parent (it is not
a `crm.User`); parent endpoints ask for one with `parents.api.permissions.IsParent`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from crm.models import Guardian
from parents.models import ParentSession
from parents.services.sessions import session_for_access


@dataclass(frozen=True)
class Parent:
    """The caller of a parent endpoint. Shaped like a user where DRF and Django look."""

    guardian: Guardian
    session: ParentSession
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False
    is_staff: bool = False
    is_superuser: bool = False
    role: str = "parent"

    @property
    def pk(self) -> str:
        # Throttles key on it; a guardian's id must not collide with a staff member's.
        return f"guardian-{self.guardian.pk}"

    id = pk


class ParentTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Parent, ParentSession] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(_("Invalid token header."))
        try:
            token = parts[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed(_("Invalid token header.")) from exc
        session = session_for_access(token)
        if session is None:
            raise exceptions.AuthenticationFailed(_("The login has expired or was ended. Log in again."))
        return Parent(guardian=session.guardian, session=session), session

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


def parent_of(request: Any) -> Parent | None:
    user = getattr(request, "user", None)
    return user if isinstance(user, Parent) else None
