"""Import jobs: an uploaded file previewed, then committed (by a task when it is large).

The states: previewed -> (queued ->) running -> done | failed. A job is claimed with a
conditional UPDATE, so a double click, a redelivered task or a second worker never
commits it twice; the commit itself is idempotent anyway (re-importing changes nothing).

Progress: while rows are checked (outside any transaction) processed_rows is updated
in short autocommit statements, visible at once; while the one write transaction is
open, progress goes to the cache, which other processes read without waiting for it.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.db import OperationalError, transaction
from django.utils import timezone
from django.utils.text import get_valid_filename
from django.utils.translation import gettext as _

from crm.models import Campus, ImportJob, Role, User
from crm.roles import require_campus, require_role, sees_all_campuses
from crm.services.imports.core import CHECKING, KINDS, WRITING, import_rows
from crm.services.imports.report import ImportReport
from crm.services.imports.tables import ImportFileError, Table, read_table

logger = logging.getLogger(__name__)
PROGRESS_TTL = 6 * 3600


def progress_key(job_id: int) -> str:
    return f"crm:import-progress:{job_id}"


class JobProgress:
    """The progress callback of one job (see the module docstring)."""

    def __init__(self, job_id: int):
        self.job_id = job_id

    def __call__(self, phase: str, done: int, total: int) -> None:
        cache.set(progress_key(self.job_id), {"phase": phase, "done": done, "total": total}, PROGRESS_TTL)
        if phase == CHECKING:
            ImportJob.objects.filter(pk=self.job_id).update(processed_rows=done)


def import_job_create(*, actor: User, kind: str, campus: Campus, content: bytes, file_name: str) -> ImportJob:
    """Keep an uploaded file as a job; preview it with import_job_preview."""
    require_role(actor, Role.FRONT_DESK, Role.MANAGER)
    require_campus(actor, campus.pk)
    if kind not in KINDS:
        raise ValidationError({"kind": _("Choose what the file holds.")})
    job = ImportJob(kind=kind, campus=campus, original_name=file_name[:200], created_by=actor)
    job.file.save(get_valid_filename(file_name) or "import", ContentFile(content), save=False)
    job.save()
    return job


def _read(job: ImportJob) -> Table:
    with job.file.open("rb") as handle:
        content = handle.read()
    return read_table(content, job.original_name)


def _file_failure(job: ImportJob, exc: ImportFileError, *, dry_run: bool) -> ImportReport:
    report = ImportReport(
        kind=job.kind, campus=str(job.campus or ""), file_name=job.original_name, dry_run=dry_run, failure=exc.message
    )
    return report


def import_job_preview(*, job: ImportJob) -> ImportReport:
    """Classify every row of the job's file; nothing is written but the job's report."""
    if job.created_by is None or job.campus is None:
        raise PermissionDenied(_("This import has no owner or campus any more."))
    try:
        table = _read(job)
    except ImportFileError as exc:
        report = _file_failure(job, exc, dry_run=True)
    else:
        report = import_rows(
            kind=job.kind,
            table=table,
            campus=job.campus,
            actor=job.created_by,
            dry_run=True,
            file_name=job.original_name,
        )
    job.total_rows = report.total_rows
    job.processed_rows = 0
    job.report = report.as_dict()
    job.status = ImportJob.Status.PREVIEWED
    job.save(update_fields=["total_rows", "processed_rows", "report", "status"])
    return report


def import_job_confirmable(job: ImportJob) -> bool:
    report = job.report or {}
    return (
        job.status == ImportJob.Status.PREVIEWED
        and job.total_rows > 0
        and not report.get("errors_total")
        and not report.get("failure")
    )


def runs_in_background(job: ImportJob) -> bool:
    return job.total_rows > settings.IMPORT_ASYNC_ROW_THRESHOLD


def import_job_confirm(*, actor: User, job: ImportJob) -> ImportJob:
    """Commit a previewed job: now when it is small, by the import_commit task when large."""
    require_role(actor, Role.FRONT_DESK, Role.MANAGER)
    require_campus(actor, job.campus_id)
    if job.created_by_id != actor.pk and not sees_all_campuses(actor):
        raise PermissionDenied(_("Only the person who uploaded this file can confirm it."))
    if not import_job_confirmable(job):
        raise ValidationError(_("This import cannot be confirmed: it has errors, or it already ran."))
    if runs_in_background(job):
        from crm.tasks import import_commit

        with transaction.atomic():
            claimed = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.PREVIEWED).update(
                status=ImportJob.Status.QUEUED, processed_rows=0
            )
            if claimed:
                transaction.on_commit(lambda: import_commit.delay(job.pk))
    else:
        import_job_commit(job_id=job.pk)
    job.refresh_from_db()
    return job


def import_job_commit(*, job_id: int) -> ImportJob | None:
    """The commit of one job, run by the import_commit task or inline for small files.

    Returns None when the job is not waiting to be committed (already running or done).
    """
    claimed = ImportJob.objects.filter(
        pk=job_id, status__in=[ImportJob.Status.QUEUED, ImportJob.Status.PREVIEWED]
    ).update(status=ImportJob.Status.RUNNING, processed_rows=0)
    if not claimed:
        return None
    job = ImportJob.objects.select_related("campus", "created_by").get(pk=job_id)
    if job.created_by is None or job.campus is None:
        return _finish(job, None, failure=_("This import has no owner or campus any more."))
    try:
        table = _read(job)
    except ImportFileError as exc:
        return _finish(job, _file_failure(job, exc, dry_run=False))
    try:
        report = import_rows(
            kind=job.kind,
            table=table,
            campus=job.campus,
            actor=job.created_by,
            dry_run=False,
            file_name=job.original_name,
            progress=JobProgress(job.pk),
        )
    except OperationalError:
        raise  # transient: the task puts the job back in the queue and retries
    except Exception:
        logger.exception("import job %s failed", job_id)
        _finish(job, None, failure=_("The import failed unexpectedly; nothing was written."))
        raise
    return _finish(job, report)


def _finish(job: ImportJob, report: ImportReport | None, *, failure: str = "") -> ImportJob:
    if report is None:
        report = ImportReport(
            kind=job.kind, campus=str(job.campus or ""), file_name=job.original_name, dry_run=False, failure=failure
        )
    status = ImportJob.Status.DONE if report.committed else ImportJob.Status.FAILED
    finished = timezone.now()
    processed = report.total_rows if report.committed else job.processed_rows
    ImportJob.objects.filter(pk=job.pk).update(
        status=status, processed_rows=processed, report=report.as_dict(), finished_at=finished
    )
    cache.delete(progress_key(job.pk))
    job.refresh_from_db()
    return job


def import_job_requeue(*, job_id: int) -> None:
    """A transient failure (the database went away): the task will try again."""
    ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.RUNNING).update(status=ImportJob.Status.QUEUED)


def import_job_progress(job: ImportJob) -> dict[str, Any]:
    """What the progress bar shows: the phase, rows done of total, and a percentage."""
    total = job.total_rows or 0
    if job.status == ImportJob.Status.QUEUED:
        phase, done = "queued", 0
    elif job.status == ImportJob.Status.RUNNING:
        cached = cache.get(progress_key(job.pk)) or {}
        if cached.get("phase") == WRITING:
            phase, done, total = WRITING, int(cached.get("done", 0)), int(cached.get("total") or total)
        else:
            phase, done = CHECKING, max(job.processed_rows, int(cached.get("done", 0)))
    else:
        phase, done = job.status, job.processed_rows
    percent = int(100 * done / total) if total else 0
    return {"phase": phase, "done": done, "total": total, "percent": min(percent, 100)}
