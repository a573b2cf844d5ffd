"""Who may own a student: one rule, asked by every door that sets an owner (lead capture,
student edits, the admin's forms, imports, the lead pool's claim)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from crm.models import User
from crm.roles import OWNER_ROLES


def owner_problem(owner: User | None, campus_id: int | None) -> str | None:
    """Why `owner` cannot own a student of the campus, or None: owners are the campus's active
    consultants and managers. No owner at all is fine (the lead is in the pool)."""
    if owner is None:
        return None
    if not owner.is_active or owner.campus_id is None or owner.campus_id != campus_id or owner.role not in OWNER_ROLES:
        return _("Choose a consultant or manager of this campus as the owner.")
    return None


def owner_check(owner: User | None, campus_id: int | None) -> None:
    """`owner_problem` as a ValidationError on the owner field."""
    problem = owner_problem(owner, campus_id)
    if problem:
        raise ValidationError({"owner": ValidationError(problem, code="owner_not_allowed")})
