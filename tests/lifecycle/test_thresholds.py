"""A campus's thresholds: one audited service; the recomputation they start is a task after commit."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_prerun
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from config.celery import app as celery_app
from crm.models import Attendance, AuditAction, AuditEntry, Campus, Course, StudentStage, User
from lifecycle.models import LifecycleSettings, StageChange
from lifecycle.services.recompute import recompute_after_event
from lifecycle.services.thresholds import THRESHOLD_FIELDS, thresholds_update
from lifecycle.tasks.recompute import LIFECYCLE_QUEUE
from tests.lifecycle.test_recompute import attending_student, stage_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def active_student(campus_a: Campus, course_a: Course, teacher: User) -> Any:
    """Attended ten days ago: active with the default 21 days, dormant with 7."""
    student = attending_student(campus_a, course_a, teacher, last_lesson_day=0)
    Attendance.objects.filter(student=student).update(lesson_at=timezone.now() - dt.timedelta(days=10))
    recompute_after_event([student.pk])
    assert stage_of(student) == "active"
    return student


@pytest.fixture
def tasks_run() -> Any:
    """The names of the Celery tasks that ran (eagerly, in the tests) while the fixture is active."""
    names: list[str] = []

    def record(sender: Any = None, **kwargs: Any) -> None:
        names.append(sender.name)

    task_prerun.connect(record, weak=False)
    yield names
    task_prerun.disconnect(record)


def admin_form(row: LifecycleSettings, **changes: Any) -> dict[str, Any]:
    return {**{name: getattr(row, name) for name in THRESHOLD_FIELDS}, **changes}


def test_the_admin_saves_through_the_service_and_recomputes_after_commit(
    campus_a: Campus, manager: User, active_student: Any, tasks_run: list[str], django_capture_on_commit_callbacks
) -> None:
    row = LifecycleSettings.objects.get(campus=campus_a)
    client = Client()
    client.force_login(manager)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            reverse("admin:lifecycle_lifecyclesettings_change", args=[row.pk]), admin_form(row, active_days=7)
        )
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.active_days == 7
    entry = AuditEntry.objects.get(action=AuditAction.THRESHOLDS_UPDATE)
    assert (entry.actor, entry.detail["campus"], entry.detail["changes"]) == (
        manager,
        "wangjing",
        "active_days: 21 → 7",
    )
    # Nothing was decided inside the request: the students wait for the task, marked for it.
    assert stage_of(active_student) == "active"
    assert not StageChange.objects.filter(student_id=active_student.pk, to_stage="dormant").exists()
    assert StudentStage.objects.get(pk=active_student.pk).recheck_at is None
    assert len(callbacks) == 1 and tasks_run == []

    callbacks[0]()

    assert tasks_run == ["lifecycle.recompute_campus"]
    assert stage_of(active_student) == "dormant"
    assert StageChange.objects.filter(student_id=active_student.pk).latest("pk").actor == manager


def test_no_change_writes_nothing_and_starts_nothing(
    campus_a: Campus, manager: User, django_capture_on_commit_callbacks
) -> None:
    LifecycleSettings.objects.get_or_create(campus=campus_a)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        thresholds_update(actor=manager, campus=campus_a, active_days=21)
    assert callbacks == []
    assert not AuditEntry.objects.exists()


def test_bad_thresholds_are_refused_in_words_and_nothing_is_written(
    campus_a: Campus, manager: User, django_capture_on_commit_callbacks
) -> None:
    row, _ = LifecycleSettings.objects.get_or_create(campus=campus_a)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with pytest.raises(ValidationError) as caught:
            thresholds_update(actor=manager, campus=campus_a, churn_days=10)
        assert "churn_days" in caught.value.message_dict
        client = Client()
        client.force_login(manager)
        url = reverse("admin:lifecycle_lifecyclesettings_change", args=[row.pk])
        response = client.post(url, admin_form(row, active_days=30, churn_days=30))
    assert response.status_code == 200
    assert "churn_days" in response.context["adminform"].form.errors
    assert callbacks == []
    row.refresh_from_db()
    assert (row.active_days, row.churn_days) == (21, 60)
    assert not AuditEntry.objects.exists()


def test_only_a_manager_of_the_campus_or_an_administrator(
    campus_a: Campus, front_desk: User, manager_b: User, admin_user: User
) -> None:
    for actor in (front_desk, manager_b):
        with pytest.raises(PermissionDenied):
            thresholds_update(actor=actor, campus=campus_a, active_days=7)
    assert not LifecycleSettings.objects.filter(campus=campus_a, active_days=7).exists()
    thresholds_update(actor=admin_user, campus=campus_a, active_days=7)
    assert LifecycleSettings.objects.get(campus=campus_a).active_days == 7


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_decides_the_campus_once_the_new_thresholds_are_committed(
    real_broker: None, campus_a: Campus, manager: User, active_student: Any
) -> None:
    with start_worker(celery_app, pool="solo", queues=[LIFECYCLE_QUEUE], perform_ping_check=False, shutdown_timeout=30):
        thresholds_update(actor=manager, campus=campus_a, active_days=7)  # queued after commit; the worker takes it
        deadline = time.monotonic() + 60
        while stage_of(active_student) != "dormant" and time.monotonic() < deadline:
            time.sleep(0.1)  # polling the worker's result: it runs in its own thread
    assert stage_of(active_student) == "dormant"
    assert StageChange.objects.filter(student_id=active_student.pk).latest("pk").actor == manager
