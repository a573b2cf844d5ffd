"""Staff authentication for integrations: DRF's token ("Authorization: Token <key>"), for
active staff with a role only. Keys are created in the admin (`authtoken.TokenProxy`)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from crm.models import Role


class StaffTokenAuthentication(TokenAuthentication):
    keyword = "Token"

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        user, token = super().authenticate_credentials(key)
        if user.role not in Role.values:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        return user, token
