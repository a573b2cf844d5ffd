from __future__ import annotations

from typing import Any

from crm.models import AuditEntry, Student, User


def audit(*, actor: User | None, action: str, student: Student | None = None, **detail: Any) -> None:
    """Record who did what. Called by every service inside its transaction."""
    AuditEntry.objects.create(
        actor=actor, action=action, student=student, detail={k: str(v) for k, v in detail.items()}
    )
