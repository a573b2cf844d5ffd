"""Personas tasks: profiles after a student's facts changed (and the lifecycle engine decided
them), the nightly run, a campus's tag rules after they changed, and the overview's snapshot
(nightly after the profiles, and on a person's request).

All take ids (or nothing), are idempotent (a rerun computes the same and writes nothing) and
retry only transient database errors, with backoff, under a time limit.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError

__all__ = [
    "nightly_overview",
    "nightly_profiles",
    "refresh_overview",
    "refresh_profiles",
    "score_campus",
    "tag_rules_apply_campus",
]

# The queue the standard worker (`celery -A config worker`) consumes.
PERSONAS_QUEUE = "default"
TRANSIENT = (OperationalError, InterfaceError)

# Short work a person or a fact is waiting on: quick retries.
PROMPT: dict[str, Any] = {
    "queue": PERSONAS_QUEUE,
    "autoretry_for": TRANSIENT,
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 5,
}
# Work over whole campuses, run at night or in the background: patient retries.
PATIENT: dict[str, Any] = {
    "queue": PERSONAS_QUEUE,
    "autoretry_for": TRANSIENT,
    "retry_backoff": 30,
    "retry_backoff_max": 600,
    "max_retries": 3,
}


@shared_task(name="personas.refresh_profiles", soft_time_limit=60, time_limit=90, **PROMPT)
def refresh_profiles(student_ids: list[int]) -> int:
    """These students' profiles (figures, scores, tags) after a fact. Returns the rows written."""
    from personas.services.profiles import profiles_after_event

    return profiles_after_event(student_ids).written


@shared_task(name="personas.nightly_profiles", soft_time_limit=15 * 60, time_limit=20 * 60, **PATIENT)
def nightly_profiles() -> int:
    """Every profile time may have moved, the campuses whose distribution moved, the tag rules."""
    from personas.services.profiles import profiles_recompute

    return profiles_recompute().written


@shared_task(name="personas.tag_rules_apply_campus", soft_time_limit=10 * 60, time_limit=11 * 60, **PROMPT)
def tag_rules_apply_campus(campus_id: int) -> tuple[int, int]:
    """After a campus's rules changed: its students' rule-assigned tags; (added, removed)."""
    from personas.services.tag_rules import tag_rules_apply

    return tag_rules_apply(campus_ids=[campus_id])


@shared_task(name="personas.refresh_overview", soft_time_limit=120, time_limit=180, **PROMPT)
def refresh_overview(campus_ids: list[int]) -> int:
    """These campuses' overview snapshots ("refresh now"). Returns the groups written."""
    from personas.services.overview import overview_refresh

    return overview_refresh(campus_ids)


@shared_task(name="personas.nightly_overview", soft_time_limit=10 * 60, time_limit=15 * 60, **PATIENT)
def nightly_overview() -> int:
    """Every campus's overview snapshot, from the profiles the nightly run just kept."""
    from personas.services.overview import overview_refresh

    return overview_refresh()


@shared_task(name="personas.score_campus", soft_time_limit=10 * 60, time_limit=15 * 60, **PATIENT)
def score_campus(campus_id: int) -> int:
    """A campus scored again (its cut-offs changed) and its tag rules applied. The rows written."""
    from personas.services.profiles import profiles_rescore_campus

    return profiles_rescore_campus(campus_id=campus_id)
