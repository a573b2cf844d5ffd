from __future__ import annotations

from django.http import HttpRequest

from crm.roles import sees_full_phones


def viewer(request: HttpRequest) -> dict[str, object]:
    user = request.user
    if not user.is_authenticated:
        return {}
    return {"viewer_role": user.role, "viewer_sees_full_phones": sees_full_phones(user)}  # type: ignore[union-attr]
