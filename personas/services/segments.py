"""Saving segments: one audited write path for the page, the admin and the API.

Who may build: managers (for their own campus) and administrators (for any campus, or for
every campus with no campus set). Front-desk staff use the segments of their campus on the
board but do not write them; teachers never see them. A segment's conditions are checked by
`personas.conditions.compile_tree` for the person saving it, so what is saved is what the
builder accepted, with the same message at every door.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from crm import text
from crm.models import AuditAction, Campus, Role, User
from crm.roles import require_campus, require_role, sees_all_campuses
from crm.services.audit import audit
from personas.conditions import ConditionError, campus_viewer, compile_tree
from personas.models import Segment

BUILDER_ROLES = (Role.MANAGER, Role.ADMIN)


def may_build_segments(user: User) -> bool:
    return user.is_active and (sees_all_campuses(user) or user.role == Role.MANAGER)


def may_change_segment(user: User, segment: Segment) -> bool:
    """A manager changes their campus's segments; a shared one (no campus) only an administrator."""
    if not may_build_segments(user):
        return False
    return sees_all_campuses(user) or (segment.campus_id is not None and segment.campus_id == user.campus_id)


def _require_change(actor: User, segment: Segment) -> None:
    if not may_change_segment(actor, segment):
        raise PermissionDenied(_("You may not change this segment."))


def _checked(
    *, actor: User, name: str, description: str, conditions: Any, campus: Campus | None = None
) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    fields = {
        "name": text.clean(errors, "name", name or "", Segment),
        "description": text.clean(errors, "description", description or "", Segment),
    }
    if not fields["name"] and "name" not in errors:
        errors["name"] = _("Give the segment a name.")
    try:
        compile_tree(conditions, viewer=actor)
        if campus is not None and sees_all_campuses(actor):
            # An administrator's segment of a campus is checked as the campus's managers will use
            # it: a course or owner of another campus would match none of its students.
            compile_tree(conditions, viewer=campus_viewer(campus.pk))
    except ConditionError as exc:
        errors["conditions"] = ValidationError(exc.message, code="conditions", params={"path": exc.path})
    if errors:
        raise ValidationError(errors)
    fields["conditions"] = conditions
    return fields


def _save(segment: Segment) -> None:
    try:
        with transaction.atomic():
            segment.save()
    except IntegrityError:
        raise ValidationError({"name": _("A segment of this name exists already.")}) from None


@transaction.atomic
def segment_create(
    *, actor: User, name: str, conditions: Any, description: str = "", campus: Campus | None = None
) -> Segment:
    """A new segment of `campus` (a manager's own campus whatever is passed; an administrator's
    choice, None meaning every campus)."""
    require_role(actor, Role.MANAGER)
    if not sees_all_campuses(actor):
        if campus is not None:
            require_campus(actor, campus.pk)
        campus = actor.campus
    fields = _checked(actor=actor, name=name, description=description, conditions=conditions, campus=campus)
    segment = Segment(campus=campus, created_by=actor, **fields)
    _save(segment)
    audit(actor=actor, action=AuditAction.SEGMENT_CREATE, segment=segment.pk, name=segment.name)
    return segment


@transaction.atomic
def segment_update(*, actor: User, segment: Segment, name: str, conditions: Any, description: str = "") -> Segment:
    """New name, description and conditions; the campus stays."""
    _require_change(actor, segment)
    segment = Segment.objects.select_for_update(of=("self",)).select_related("campus").get(pk=segment.pk)
    fields = _checked(actor=actor, name=name, description=description, conditions=conditions, campus=segment.campus)
    changed = [key for key, value in fields.items() if getattr(segment, key) != value]
    if not changed:
        return segment
    for key in changed:
        setattr(segment, key, fields[key])
    _save(segment)
    audit(actor=actor, action=AuditAction.SEGMENT_UPDATE, segment=segment.pk, name=segment.name,
          changed=", ".join(changed))  # fmt: skip
    return segment


@transaction.atomic
def segment_delete(*, actor: User, segment: Segment) -> None:
    _require_change(actor, segment)
    pk, name = segment.pk, segment.name
    Segment.objects.filter(pk=pk).delete()
    audit(actor=actor, action=AuditAction.SEGMENT_DELETE, segment=pk, name=name)
