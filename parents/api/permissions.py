"""Parent endpoints serve logged-in parents only; staff and strangers are refused."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from parents.auth import parent_of


class IsParent(permissions.BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return parent_of(request) is not None
