"""Changing a campus's lifecycle thresholds: one audited write, whatever the door.

New thresholds apply to every student of the campus, so every one of them is decided again:
their stage rows are marked for the next run at once, and the campus's recomputation runs as
a task after commit (`lifecycle.recompute_campus`), never inside the request that saved them.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from crm.models import AuditAction, Campus, Role, User
from crm.roles import require_campus, require_role
from crm.services.audit import audit
from lifecycle.models import LifecycleSettings
from lifecycle.services.recompute import settings_changed

THRESHOLD_FIELDS = (
    "active_days",
    "churn_days",
    "ended_grace_days",
    "stale_lead_days",
    "risk_window_days",
    "risk_drop_pct",
    "risk_consecutive_absences",
    "renewal_hours",
    "renewal_days",
    "pool_follow_up_days",
    "pool_daily_claim_limit",
    "pool_reclaim_wait_days",
)


@transaction.atomic
def thresholds_update(*, actor: User, campus: Campus, **changes: Any) -> LifecycleSettings:
    """Set some of the campus's thresholds; a manager of the campus or an administrator."""
    require_role(actor, Role.MANAGER)
    require_campus(actor, campus.pk)
    unknown = set(changes) - set(THRESHOLD_FIELDS)
    if unknown:
        raise ValueError(f"not a threshold: {sorted(unknown)}")
    LifecycleSettings.objects.get_or_create(campus=campus)
    row = LifecycleSettings.objects.select_for_update().get(campus=campus)
    before = {name: getattr(row, name) for name in changes}
    for name, value in changes.items():
        setattr(row, name, value)
    row.full_clean(exclude=["campus"], validate_constraints=False)
    # The database's constraint, said in words on the field a person can fix.
    if row.churn_days <= row.active_days:
        raise ValidationError({"churn_days": _("Churned must be longer than active (days).")})
    row.validate_constraints()
    changed = [name for name in changes if getattr(row, name) != before[name]]
    if not changed:
        return row
    row.save(update_fields=changed)
    settings_changed(campus_id=campus.pk)
    audit(
        actor=actor,
        action=AuditAction.THRESHOLDS_UPDATE,
        campus=campus.code,
        changes="; ".join(f"{name}: {before[name]} → {getattr(row, name)}" for name in changed),
    )
    campus_id, actor_id = campus.pk, actor.pk
    transaction.on_commit(lambda: _recompute_campus_task().delay(campus_id, actor_id))
    return row


def _recompute_campus_task() -> Any:
    # The task module imports this app's services; read it at call time, not import time.
    from lifecycle.tasks.recompute import recompute_campus

    return recompute_campus
