"""Loading students' raw facts and thresholds with the ORM, for the pure rules.

Used where the rules run in Python: the SQLite fallback of the recomputation, the
per-student loop the benchmark compares against, and the tests' oracle.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings
from django.db.models import Max, Q

from crm.models import Attendance, Campus, Consultation, Contract, Student, TrialLesson
from lifecycle.models import LifecycleSettings
from lifecycle.rules import HELD_LESSON_STATUSES, ContractRow, StudentHistory, Thresholds


def thresholds_of(row: LifecycleSettings) -> Thresholds:
    return Thresholds(
        active_days=row.active_days,
        churn_days=row.churn_days,
        ended_grace_days=row.ended_grace_days,
        stale_lead_days=row.stale_lead_days,
        risk_window_days=row.risk_window_days,
        risk_drop_pct=row.risk_drop_pct,
        risk_consecutive_absences=row.risk_consecutive_absences,
        renewal_hours=row.renewal_hours,
        renewal_days=row.renewal_days,
        time_zone=settings.TIME_ZONE,
    )


def settings_ensure() -> None:
    """A LifecycleSettings row (DESIGN.md's defaults) for every campus that has none."""
    missing = Campus.objects.filter(lifecycle_settings__isnull=True).values_list("pk", flat=True)
    LifecycleSettings.objects.bulk_create([LifecycleSettings(campus_id=pk) for pk in missing], ignore_conflicts=True)


def thresholds_by_campus() -> dict[int, Thresholds]:
    settings_ensure()
    return {row.campus_id: thresholds_of(row) for row in LifecycleSettings.objects.all()}


def histories_of(student_ids: Iterable[int]) -> dict[int, StudentHistory]:
    """Every raw fact the rules read, for these students: five queries whatever their number."""
    ids = list(student_ids)
    consultations: dict[int, list] = defaultdict(list)
    for sid, at in Consultation.objects.filter(student_id__in=ids).values_list("student_id", "consulted_at"):
        consultations[sid].append(at)
    trials: dict[int, list] = defaultdict(list)
    for sid, at, status in TrialLesson.objects.filter(student_id__in=ids).values_list(
        "student_id", "scheduled_at", "status"
    ):
        trials[sid].append((at, status))
    contracts: dict[int, list[ContractRow]] = defaultdict(list)
    last_held = Max("attendances__lesson_at", filter=Q(attendances__status__in=HELD_LESSON_STATUSES))
    rows = Contract.objects.filter(student_id__in=ids).annotate(last_lesson_at=last_held)
    for c in rows:
        contracts[c.student_id].append(
            ContractRow(
                status=c.status,
                signed_at=c.signed_at,
                hours_bought=c.hours_bought,
                hours_consumed=c.hours_consumed,
                valid_until=c.valid_until,
                refunded_at=c.refunded_at,
                last_lesson_at=c.last_lesson_at,  # type: ignore[attr-defined]
            )
        )
    attendance: dict[int, list] = defaultdict(list)
    for sid, at, status in Attendance.objects.filter(student_id__in=ids).values_list(
        "student_id", "lesson_at", "status"
    ):
        attendance[sid].append((at, status))
    return {
        sid: StudentHistory(
            created_at=created_at,
            lost_at=lost_at,
            consultations=tuple(consultations[sid]),
            trials=tuple(trials[sid]),
            contracts=tuple(contracts[sid]),
            attendance=tuple(attendance[sid]),
        )
        for sid, created_at, lost_at in Student.objects.filter(pk__in=ids).values_list("pk", "created_at", "lost_at")
    }
