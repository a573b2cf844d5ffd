"""Throttles on the parent API's doors that need no login (codes, login, invitations).

Counted in the cache (Redis in production), so every web worker shares one count."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from crm.phones import normalize_phone


class ScopedThrottle(SimpleRateThrottle):
    def get_rate(self) -> str | None:
        # Read when asked, not when the class was imported: settings can change the rates.
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope or "")
        return str(rate) if rate is not None else None


class IpThrottle(ScopedThrottle):
    """Per client address; `scope` names the rate in REST_FRAMEWORK's DEFAULT_THROTTLE_RATES."""

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class AuthIpThrottle(IpThrottle):
    scope = "auth_ip"


class InviteIpThrottle(IpThrottle):
    scope = "invite_ip"


class AuthPhoneThrottle(ScopedThrottle):
    """Codes asked for one phone, from anywhere: a phone is not flooded with messages."""

    scope = "auth_phone"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        phone = request.data.get("phone") if hasattr(request.data, "get") else None
        if not isinstance(phone, str):
            return None
        try:
            ident = normalize_phone(phone)
        except ValidationError:
            return None  # the view answers a bad phone with a 400
        return self.cache_format % {"scope": self.scope, "ident": ident}
