"""Creating a campus: the one door through which a new campus arrives, so the higher apps can
give it what every campus starts with (crm.events.campus_created, after commit)."""

from __future__ import annotations

from django.db import transaction

from crm import events
from crm.models import AuditAction, Campus, Role, User
from crm.roles import require_role
from crm.services.audit import audit


@transaction.atomic
def campus_create(*, actor: User, name: str, code: str, address: str = "") -> Campus:
    """A new campus; administrators only (a manager belongs to one campus)."""
    require_role(actor, Role.ADMIN)
    campus = Campus(name=name, code=code, address=address)
    campus.full_clean()
    campus.save()
    audit(actor=actor, action=AuditAction.CAMPUS_CREATE, campus=campus.code, name=campus.name)
    events.campus_created(campus.pk)
    return campus
