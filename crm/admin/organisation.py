"""The institution: campuses, staff, courses; and the records nobody edits (audit log, imports)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group, Permission
from django.db.models import QuerySet
from django.forms import ModelMultipleChoiceField
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy

from crm.admin.base import CrmModelAdmin, ScopedRelatedFieldListFilter, ServiceModelForm, StudentSearchMixin, actor_of
from crm.admin.paginators import EstimatedCountPaginator
from crm.models import AuditAction, AuditEntry, Campus, Course, ImportJob, Role, User
from crm.roles import OWNER_ROLES
from crm.services.campuses import campus_create


class CampusAddForm(ServiceModelForm):
    """A new campus through `campus_create`, which gives it what every campus starts with."""

    class Meta:
        model = Campus
        fields = ("name", "code", "address")

    def run_service(self) -> Campus:
        return campus_create(actor=self.actor, **{name: self.cleaned_data[name] for name in self.Meta.fields})


@admin.register(Campus)
class CampusAdmin(CrmModelAdmin):
    list_display = ("name", "code", "address")
    search_fields = ("name", "code")
    add_form = CampusAddForm


# The four roles are groups whose permissions live in code (crm/roles.py, applied by a
# migration); edited here they would drift from it, and their names are keys, not words.
admin.site.unregister(Group)

PERMISSION_ACTIONS = {
    "add": gettext_lazy("Can add"),
    "change": gettext_lazy("Can change"),
    "delete": gettext_lazy("Can delete"),
    "view": gettext_lazy("Can view"),
}


def role_label(group: Group) -> str:
    return str(Role(group.name).label) if group.name in Role.values else group.name


def permission_label(permission: Permission) -> str:
    """A permission in the reader's language: its stored name is English, written by migrate."""
    model = permission.content_type.model_class()
    action = permission.codename.partition("_")[0]
    if model is None or action not in PERMISSION_ACTIONS:
        return str(permission)
    opts = model._meta
    return f"{opts.app_config.verbose_name} | {opts.verbose_name} | {PERMISSION_ACTIONS[action]}"


class RoleFilter(admin.SimpleListFilter):
    title = gettext_lazy("role")
    parameter_name = "role"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(role.value, str(role.label)) for role in Role]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        return queryset.filter(groups__name=self.value()) if self.value() else queryset


@admin.register(User)
class UserAdmin(CrmModelAdmin, DjangoUserAdmin):
    """Staff: the role is the group; managers see their campus's staff, administrators edit."""

    add_form = DjangoUserAdmin.add_form  # not CrmModelAdmin's None, which comes first in the MRO
    list_display = ("username", "display_name", "role_names", "campus", "is_active", "is_staff", "last_login")
    list_select_related = ("campus",)
    list_prefetch_related = ("groups",)
    list_filter = (RoleFilter, "is_active", "is_staff")
    admin_only_list_filter = (("campus", ScopedRelatedFieldListFilter),)
    search_fields = ("username", "display_name", "first_name", "last_name", "email")
    ordering = ("username",)
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (gettext_lazy("Who"), {"fields": ("display_name", "first_name", "last_name", "email", "campus")}),
        (
            gettext_lazy("Role and permissions"),
            {
                "fields": ("is_active", "is_staff", "groups"),
                "description": gettext_lazy(
                    "The role is the group (front desk, teacher, manager, administrator). Front desk, "
                    "managers and administrators use this admin site (staff status); teachers do not."
                ),
            },
        ),
        (
            gettext_lazy("Special permissions"),
            {"classes": ("collapse",), "fields": ("is_superuser", "user_permissions")},
        ),
        (gettext_lazy("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("username", "display_name", "campus", "usable_password", "password1", "password2"),
            },
        ),
    )

    @admin.display(description=gettext_lazy("role"))
    def role_names(self, obj: User) -> str:
        return ", ".join(role_label(g) for g in obj.groups.all())

    @admin.display(description=gettext_lazy("user permissions"))
    def permission_names(self, obj: User) -> str:
        return ", ".join(permission_label(p) for p in obj.user_permissions.select_related("content_type"))

    # A read-only page shows related rows by their str(): the roles' keys and the permissions'
    # stored English. Their labels in words instead.
    READ_ONLY_LABELS = {"groups": "role_names", "user_permissions": "permission_names"}

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets
        return [
            (name, {**options, "fields": [self.READ_ONLY_LABELS.get(f, f) for f in options["fields"]]})
            for name, options in fieldsets
        ]

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        formfield = super().formfield_for_manytomany(db_field, request, **kwargs)
        if isinstance(formfield, ModelMultipleChoiceField):
            if db_field.name == "groups":
                formfield.label_from_instance = role_label  # type: ignore[method-assign,assignment]
            elif db_field.name == "user_permissions":
                formfield.queryset = formfield.queryset.select_related("content_type")  # type: ignore[union-attr]
                formfield.label_from_instance = permission_label  # type: ignore[method-assign,assignment]
        return formfield

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Picking a colleague (owner, teacher) in an autocomplete needs no right to the staff
        # list; the results are the viewer's own campus (get_queryset) and show only names.
        if obj is None and is_autocomplete(request):
            return self.uses_admin(request)
        return super().has_view_permission(request, obj)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if is_autocomplete(request):
            queryset = queryset.filter(is_active=True)
            if request.GET.get("field_name") == "teacher":
                queryset = queryset.filter(groups__name=Role.TEACHER)
            elif request.GET.get("field_name") == "owner":
                queryset = queryset.filter(groups__name__in=OWNER_ROLES).distinct()
            else:
                queryset = queryset.filter(is_staff=True)
        return queryset, may_have_duplicates


def is_autocomplete(request: HttpRequest) -> bool:
    match = request.resolver_match
    return match is not None and match.url_name == "autocomplete"


@admin.register(Course)
class CourseAdmin(CrmModelAdmin):
    list_display = ("name", "campus", "subject", "level", "price_per_hour", "active")
    list_select_related = ("campus",)
    list_filter = ("active", "subject")
    admin_only_list_filter = (("campus", ScopedRelatedFieldListFilter),)
    search_fields = ("name", "subject", "level")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if is_autocomplete(request):
            queryset = queryset.filter(active=True)
        return queryset, may_have_duplicates

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        actor = actor_of(request)
        if actor.campus_id is not None:
            initial.setdefault("campus", str(actor.campus_id))
        return initial


class ReadOnlyAdmin(CrmModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AuditActionFilter(admin.SimpleListFilter):
    """The actions the services write (`AuditAction`), listed without a DISTINCT over the whole audit log."""

    title = gettext_lazy("action")
    parameter_name = "action"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, str(label)) for value, label in AuditAction.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        return queryset.filter(action=self.value()) if self.value() else queryset


@admin.register(AuditEntry)
class AuditEntryAdmin(StudentSearchMixin, ReadOnlyAdmin):
    """Who did what. Nobody edits or deletes it."""

    paginator = EstimatedCountPaginator
    list_display = ("at", "actor", "guardian", "action", "student", "detail_code")
    list_select_related = ("actor", "guardian", "student")
    list_filter = (AuditActionFilter, ("at", admin.DateFieldListFilter))
    ordering = ("-id",)
    sortable_by = ()
    search_fields = ("student__name",)
    fields = ("at", "actor", "guardian", "action", "student", "detail_code")

    @admin.display(description=gettext_lazy("detail"))
    def detail_code(self, entry: AuditEntry) -> str:
        # The services' own keys and values, as written: code, not words to translate.
        return format_html('<code translate="no">{}</code>', json.dumps(entry.detail, ensure_ascii=False))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ImportJob)
class ImportJobAdmin(ReadOnlyAdmin):
    """Imports are started from the import pages; here they are only listed."""

    list_display = ("created_at", "kind", "original_name", "campus", "status", "processed_rows", "total_rows")
    list_select_related = ("campus", "created_by")
    list_filter = ("kind", "status")
    admin_only_list_filter = (("campus", ScopedRelatedFieldListFilter),)
    date_hierarchy = "created_at"
    search_fields = ("original_name",)
    ordering = ("-id",)
    fields = (
        "kind",
        "campus",
        "file",
        "original_name",
        "status",
        "total_rows",
        "processed_rows",
        "report",
        "created_by",
        "created_at",
        "finished_at",
    )
