"""crm's Celery tasks: they take ids, call one service, retry only transient errors."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from crm.services.imports import import_job_commit, import_job_requeue

# Imports are long and heavy: their own queue keeps them from delaying short tasks.
# A worker consumes it with `celery -A config worker -Q default,imports`.
IMPORTS_QUEUE = "imports"


@shared_task(bind=True, queue=IMPORTS_QUEUE, acks_late=True, max_retries=3, ignore_result=True)
def import_commit(self, job_id: int) -> str:  # type: ignore[no-untyped-def]
    """Commit a previewed ImportJob. Idempotent: a job already running or done is skipped."""
    try:
        job = import_job_commit(job_id=job_id)
    except OperationalError as exc:
        import_job_requeue(job_id=job_id)
        raise self.retry(exc=exc, countdown=min(300, 10 * 2**self.request.retries)) from exc
    return job.status if job is not None else "skipped"


@shared_task(name="crm.idempotency_sweep", ignore_result=True)
def idempotency_sweep() -> int:
    from crm.api.idempotency import idempotency_sweep as sweep

    return sweep()
