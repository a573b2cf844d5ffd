"""Recomputation tasks: after an event, and the nightly run.

Both take ids (or nothing), are idempotent (a rerun decides the same and writes nothing)
and retry only transient database errors, with backoff, under a time limit.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from lifecycle.models import StageSource

__all__ = ["nightly_recompute", "recompute_campus", "recompute_students"]

# The queue the standard worker (`celery -A config worker`) consumes.
LIFECYCLE_QUEUE = "default"
TRANSIENT = (OperationalError, InterfaceError)


@shared_task(
    name="lifecycle.recompute_students",
    queue=LIFECYCLE_QUEUE,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=5,
    soft_time_limit=60,
    time_limit=90,
)
def recompute_students(student_ids: list[int]) -> int:
    """Refresh these students' aggregates and decide them (source: event). Returns the changes."""
    from lifecycle.services.recompute import recompute_after_event

    return recompute_after_event(student_ids).changed


@shared_task(
    name="lifecycle.nightly_recompute",
    queue=LIFECYCLE_QUEUE,
    autoretry_for=TRANSIENT,
    retry_backoff=30,
    retry_backoff_max=600,
    max_retries=3,
    soft_time_limit=15 * 60,
    time_limit=20 * 60,
)
def nightly_recompute() -> int:
    """Decide every student time may have moved (source: nightly). Returns the changes."""
    from lifecycle.services.recompute import recompute_stages

    return recompute_stages(source=StageSource.NIGHTLY).changed


@shared_task(
    name="lifecycle.recompute_campus",
    queue=LIFECYCLE_QUEUE,
    autoretry_for=TRANSIENT,
    retry_backoff=30,
    retry_backoff_max=600,
    max_retries=3,
    soft_time_limit=10 * 60,
    time_limit=15 * 60,
)
def recompute_campus(campus_id: int, actor_id: int) -> int:
    """Decide every student of a campus again, for the person who changed its thresholds
    (source: person). Returns the changes; a campus or person gone since decides nothing."""
    from lifecycle.services.recompute import recompute_campus_for

    return recompute_campus_for(campus_id=campus_id, actor_id=actor_id)
