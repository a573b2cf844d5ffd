"""API tokens for integrations (DRF's `authtoken`), in the admin for administrators only.

A token acts as its staff member with their role and campus (`crm.api.auth`); so only an
administrator, who may act for anyone, hands one out, and only to an active member of staff with a
role. DRF registers its own TokenAdmin; it is replaced here by one that says so.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import ForeignKey
from django.http import HttpRequest
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from crm.models import Role, User
from crm.roles import sees_all_campuses


class StaffTokenAdmin(TokenAdmin):
    def is_administrator(self, request: HttpRequest) -> bool:
        user = request.user
        return isinstance(user, User) and user.is_active and user.is_staff and sees_all_campuses(user)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.is_administrator(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.is_administrator(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.is_administrator(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.is_administrator(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.is_administrator(request)

    def formfield_for_foreignkey(self, db_field: ForeignKey, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "user":
            # A token of someone with no role, or deactivated, would be refused at every call.
            kwargs["queryset"] = (
                User.objects.filter(is_active=True, groups__name__in=Role.values).distinct().order_by("username")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


if admin.site.is_registered(TokenProxy):
    admin.site.unregister(TokenProxy)
admin.site.register(TokenProxy, StaffTokenAdmin)
