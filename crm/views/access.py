"""Role checks for the staff pages."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from crm.models import Role, User

FRONT_OFFICE = (Role.FRONT_DESK, Role.MANAGER, Role.ADMIN)
TEACHING = (Role.TEACHER, Role.MANAGER, Role.ADMIN)
ANY_STAFF = (Role.FRONT_DESK, Role.TEACHER, Role.MANAGER, Role.ADMIN)

View = Callable[..., HttpResponse]


def role_required(*roles: str) -> Callable[[View], View]:
    def decorator(view: View) -> View:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            user: User = request.user  # type: ignore[assignment]
            if user.role not in roles:
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
