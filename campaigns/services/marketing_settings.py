"""Changing a campus's marketing rules (quiet hours, time zone, frequency cap): one audited write."""

from __future__ import annotations

import zoneinfo
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from campaigns.models import MarketingSettings
from crm.models import AuditAction, Campus, Role, User
from crm.roles import require_campus, require_role
from crm.services.audit import audit

SETTING_FIELDS = ("time_zone", "quiet_from", "quiet_until", "cap_days")


def marketing_settings_ensure() -> None:
    """A MarketingSettings row (the defaults) for every campus that has none."""
    missing = Campus.objects.filter(marketing_settings__isnull=True).values_list("pk", flat=True)
    MarketingSettings.objects.bulk_create([MarketingSettings(campus_id=pk) for pk in missing], ignore_conflicts=True)


@transaction.atomic
def marketing_settings_update(*, actor: User, campus: Campus, **changes: Any) -> MarketingSettings:
    """Set the campus's marketing rules; a manager of the campus or an administrator."""
    require_role(actor, Role.MANAGER)
    require_campus(actor, campus.pk)
    unknown = set(changes) - set(SETTING_FIELDS)
    if unknown:
        raise ValueError(f"not a marketing setting: {sorted(unknown)}")
    MarketingSettings.objects.get_or_create(campus=campus)
    row = MarketingSettings.objects.select_for_update().get(campus=campus)
    before = {name: getattr(row, name) for name in changes}
    for name, value in changes.items():
        setattr(row, name, value)
    row.full_clean(exclude=["campus"])
    try:
        zoneinfo.ZoneInfo(row.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError({"time_zone": _("Unknown time zone: %(zone)s") % {"zone": row.time_zone}}) from None
    changed = [name for name in changes if getattr(row, name) != before[name]]
    if changed:
        row.save(update_fields=changed)
        audit(
            actor=actor,
            action=AuditAction.MARKETING_SETTINGS_UPDATE,
            campus=campus.code,
            changes="; ".join(f"{name}: {before[name]} → {getattr(row, name)}" for name in changed),
        )
    return row
