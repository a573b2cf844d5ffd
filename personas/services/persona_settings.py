"""Changing a campus's persona settings (value-tier cut-offs, when parents are asked about their
satisfaction): one audited write, whatever the door.

New cut-offs move every tier of the campus, so the campus is scored again (and its tag rules
applied) as a task after commit (`personas.score_campus`), never inside the request that saved them.
The satisfaction schedule is read when a parent opens the app, so it needs no run.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from crm.models import AuditAction, Campus, Role, User
from crm.roles import require_campus, require_role
from crm.services.audit import audit
from personas.models import PersonaSettings

TIER_FIELDS = ("tier_high_above_pct", "tier_medium_above_pct")
# When parents are asked how likely they are to recommend us (personas.rules.satisfaction_due).
SATISFACTION_FIELDS = ("satisfaction_after_lessons", "satisfaction_every_days")
SETTING_FIELDS = TIER_FIELDS + SATISFACTION_FIELDS


def persona_settings_ensure() -> None:
    """A PersonaSettings row (the defaults) for every campus that has none."""
    missing = Campus.objects.filter(persona_settings__isnull=True).values_list("pk", flat=True)
    PersonaSettings.objects.bulk_create([PersonaSettings(campus_id=pk) for pk in missing], ignore_conflicts=True)


@transaction.atomic
def persona_settings_update(*, actor: User, campus: Campus, **changes: Any) -> PersonaSettings:
    """Set the campus's tier cut-offs or satisfaction schedule; a manager of the campus or an administrator."""
    require_role(actor, Role.MANAGER)
    require_campus(actor, campus.pk)
    unknown = set(changes) - set(SETTING_FIELDS)
    if unknown:
        raise ValueError(f"not a persona setting: {sorted(unknown)}")
    PersonaSettings.objects.get_or_create(campus=campus)
    row = PersonaSettings.objects.select_for_update().get(campus=campus)
    before = {name: getattr(row, name) for name in changes}
    for name, value in changes.items():
        setattr(row, name, value)
    row.full_clean(exclude=["campus"], validate_constraints=False)
    # The database's constraint, said in words on the fields a person can fix.
    if row.tier_high_above_pct >= 100:
        raise ValidationError({"tier_high_above_pct": _("The high tier's share must be below 100%.")})
    if row.tier_medium_above_pct >= row.tier_high_above_pct:
        raise ValidationError({"tier_medium_above_pct": _("The medium tier's share must be below the high tier's.")})
    for name in SATISFACTION_FIELDS:
        if getattr(row, name) < 1:
            raise ValidationError({name: _("At least 1.")})
    row.validate_constraints()
    changed = [name for name in changes if getattr(row, name) != before[name]]
    if not changed:
        return row
    row.save(update_fields=changed)
    audit(
        actor=actor,
        action=AuditAction.PERSONA_SETTINGS_UPDATE,
        campus=campus.code,
        changes="; ".join(f"{name}: {before[name]} → {getattr(row, name)}" for name in changed),
    )
    if set(changed) & set(TIER_FIELDS):
        campus_id = campus.pk
        transaction.on_commit(lambda: _score_campus_task().delay(campus_id))
    return row


def _score_campus_task() -> Any:
    from personas.tasks import score_campus

    return score_campus
