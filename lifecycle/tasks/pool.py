"""Lead pool tasks: returning neglected leads to the campus pool.

`lifecycle.pool_sweep` runs nightly (config.settings.CELERY_BEAT_SCHEDULE, 02:30, after the
stage recomputation so stages are fresh). It is idempotent: a released lead has no owner,
so a rerun, a retry or a duplicate delivery releases nothing new.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from lifecycle.services.pool import pool_sweep as pool_sweep_service

# A short nightly job: every worker consumes the default queue.
POOL_QUEUE = "default"
# Transient database trouble (a restart, a dropped connection, a serialization failure or
# deadlock reported as OperationalError) is retried; anything else is a bug and fails loudly.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


@shared_task(
    bind=True,
    name="lifecycle.pool_sweep",
    queue=POOL_QUEUE,
    acks_late=True,
    max_retries=3,
    ignore_result=True,
    time_limit=15 * 60,
    soft_time_limit=14 * 60,
)
def pool_sweep(self) -> int:  # type: ignore[no-untyped-def]
    """Release every campus's neglected leads to its pool; the number released."""
    try:
        return len(pool_sweep_service())
    except TRANSIENT_ERRORS as exc:
        raise self.retry(exc=exc, countdown=min(600, 30 * 2**self.request.retries)) from exc


__all__ = ["pool_sweep"]
