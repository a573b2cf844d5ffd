"""The one writer of the audit log: nothing else creates `AuditEntry` rows."""

from __future__ import annotations

from typing import Any

from crm.models import AuditAction, AuditEntry, Guardian, Student, User


def audit(
    *,
    actor: User | None,
    action: AuditAction,
    student: Student | None = None,
    guardian: Guardian | None = None,
    **detail: Any,
) -> None:
    """Record who did what. Called by every service inside its transaction.

    An action missing from `AuditAction` fails here, at the writer, rather than appearing in
    the log under a name the admin's filter and the API do not know."""
    AuditEntry.objects.create(
        actor=actor,
        guardian=guardian,
        action=AuditAction(action),
        student=student,
        detail={k: str(v) for k, v in detail.items()},
    )
