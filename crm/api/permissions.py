"""Who may call an endpoint. Closed by default: `IsStaff` is the API's default permission, so
an endpoint that says nothing serves signed-in staff with a role and refuses everyone else
(a parent's token included: 403, strangers 401)."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from crm.models import Role, User


def staff_of(request: Request) -> User | None:
    """The signed-in staff member behind a request, or None (a parent, a stranger)."""
    user = request.user
    if isinstance(user, User) and user.is_authenticated and user.is_active and user.role in Role.values:
        return user
    return None


class IsStaff(permissions.BasePermission):
    """Any staff role."""

    roles: tuple[str, ...] = tuple(Role.values)

    def has_permission(self, request: Request, view: Any) -> bool:
        user = staff_of(request)
        return user is not None and user.role in self.roles


def staff_roles(*roles: str) -> type[IsStaff]:
    """A permission for these roles only: `permission_classes = [staff_roles(Role.MANAGER, Role.ADMIN)]`."""
    return type(f"IsStaff_{'_'.join(roles)}", (IsStaff,), {"roles": tuple(roles)})
