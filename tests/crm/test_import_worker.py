"""A large import committed by a real Celery worker, through Redis, with progress."""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker

from config.celery import app as celery_app
from crm.models import Guardian, ImportJob, Student
from crm.services.imports import import_job_confirm, import_job_create, import_job_preview
from crm.tasks import IMPORTS_QUEUE
from tests.crm.test_import_support import student_row, students_file

ROWS = 3000


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker_commits_a_large_import_and_progress_reaches_total(real_broker, settings, tmp_path, front_desk):
    settings.MEDIA_ROOT = tmp_path
    settings.IMPORT_ASYNC_ROW_THRESHOLD = 100
    rows = [student_row(f"学生{i}", f"1350013{i:04d}", 标签="意向:高") for i in range(ROWS)]
    job = import_job_create(
        actor=front_desk, kind="students", campus=front_desk.campus, content=students_file(rows), file_name="big.csv"
    )
    import_job_preview(job=job)
    assert job.total_rows == ROWS

    seen: list[tuple[str, int]] = []
    with start_worker(celery_app, pool="solo", queues=[IMPORTS_QUEUE], perform_ping_check=False, shutdown_timeout=30):
        job = import_job_confirm(actor=front_desk, job=job)  # queued after commit; the worker takes it
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job.refresh_from_db()
            seen.append((job.status, job.processed_rows))
            if job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED):
                break
            time.sleep(0.1)

    assert job.status == ImportJob.Status.DONE, job.report
    assert job.processed_rows == job.total_rows == ROWS
    assert seen[0][0] in (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING, ImportJob.Status.DONE)
    assert [n for _status, n in seen] == sorted(n for _status, n in seen)  # progress only moves forward
    assert job.report["counts"]["new"] == ROWS
    assert Student.objects.filter(campus=front_desk.campus).count() == ROWS
    assert Guardian.objects.count() == ROWS
