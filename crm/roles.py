"""Who may do what: the role groups, their model permissions and campus checks.

A role is a Django group named after `Role`; the groups and their permissions are
created by migration (crm/migrations/0002_roles.py) from ROLE_PERMISSIONS below.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _

from crm.models import Role, User

VIEW = "view"
ADD = "add"
CHANGE = "change"
DELETE = "delete"

# model name -> actions, per role. Admins are superusers-in-effect for crm models.
ROLE_PERMISSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    Role.FRONT_DESK: {
        "student": (VIEW, ADD, CHANGE),
        "guardian": (VIEW, ADD, CHANGE),
        "studenttag": (VIEW, ADD, CHANGE, DELETE),
        "tag": (VIEW,),
        "taggroup": (VIEW,),
        "course": (VIEW,),
        "consultation": (VIEW, ADD),
        "triallesson": (VIEW, ADD, CHANGE),
        "contract": (VIEW, ADD),
        "lesson": (VIEW,),
        "attendance": (VIEW,),
        "importjob": (VIEW, ADD),
    },
    Role.TEACHER: {
        "student": (VIEW,),
        "course": (VIEW,),
        "triallesson": (VIEW, CHANGE),
        "lesson": (VIEW,),
        "attendance": (VIEW, ADD),
    },
    Role.MANAGER: {
        "campus": (VIEW,),
        "user": (VIEW,),
        "student": (VIEW, ADD, CHANGE),
        "guardian": (VIEW, ADD, CHANGE),
        "studenttag": (VIEW, ADD, CHANGE, DELETE),
        "tag": (VIEW, ADD, CHANGE),
        "taggroup": (VIEW, ADD, CHANGE),
        "course": (VIEW, ADD, CHANGE),
        "consultation": (VIEW, ADD),
        "triallesson": (VIEW, ADD, CHANGE),
        "contract": (VIEW, ADD, CHANGE),
        "lesson": (VIEW, ADD, CHANGE, DELETE),
        "attendance": (VIEW, ADD),
        "auditentry": (VIEW,),
        "importjob": (VIEW, ADD),
    },
    Role.ADMIN: {
        model: (VIEW, ADD, CHANGE, DELETE)
        for model in (
            "campus",
            "user",
            "student",
            "guardian",
            "studenttag",
            "tag",
            "taggroup",
            "course",
            "consultation",
            "triallesson",
            "contract",
            "lesson",
            "attendance",
            "auditentry",
            "importjob",
        )
    },
}

# Roles whose members may own (follow up) a student of their campus; see crm.services.owners.
OWNER_ROLES = (Role.FRONT_DESK, Role.MANAGER)

# Roles that may import spreadsheets, from the page, the admin or the command.
IMPORTING_ROLES = (Role.FRONT_DESK, Role.MANAGER, Role.ADMIN)

# Roles that log in to the admin site (is_staff); teachers work only in their pages.
ADMIN_SITE_ROLES = {Role.FRONT_DESK, Role.MANAGER, Role.ADMIN}


def sees_all_campuses(user: User) -> bool:
    return user.is_superuser or user.role == Role.ADMIN


def require_role(user: User, *roles: str) -> None:
    if user.is_superuser or user.role == Role.ADMIN:
        return
    if user.role not in roles:
        raise PermissionDenied(_("Your role may not do this."))


def require_campus(user: User, campus_id: int | None) -> None:
    if sees_all_campuses(user):
        return
    if user.campus_id is None or user.campus_id != campus_id:
        raise PermissionDenied(_("This belongs to another campus."))


def sees_full_phones(user: User) -> bool:
    return user.role in (Role.FRONT_DESK, Role.MANAGER, Role.ADMIN) or user.is_superuser


def role_group(role: str) -> Group:
    """The group for a role, created with its permissions if missing (the migration
    creates them; a flushed test database or a fresh admin-created site may not have them)."""
    group, created = Group.objects.get_or_create(name=str(role))
    if created:
        codenames = [f"{action}_{model}" for model, actions in ROLE_PERMISSIONS[role].items() for action in actions]
        group.permissions.set(Permission.objects.filter(content_type__app_label="crm", codename__in=codenames))
    return group
