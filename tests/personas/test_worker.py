"""A fact reaches the profile through real Celery workers: the lifecycle engine's task decides the
student, then hands the profile to the personas task, each queued after commit on the broker."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from celery.contrib.testing.worker import start_worker

from config.celery import app as celery_app
from crm import services
from crm.models import Campus, Course, User
from lifecycle.tasks.recompute import LIFECYCLE_QUEUE
from personas.models import StudentProfile
from personas.tasks import PERSONAS_QUEUE
from tests import factories


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_computes_the_profile_after_the_engine_decided(
    real_broker: None, campus_a: Campus, course_a: Course, front_desk: User
) -> None:
    student = factories.StudentFactory(campus=campus_a, guardians=[])
    queues = sorted({LIFECYCLE_QUEUE, PERSONAS_QUEUE})
    with start_worker(celery_app, pool="solo", queues=queues, perform_ping_check=False, shutdown_timeout=30):
        services.contract_sign(
            actor=front_desk,
            student=student,
            course=course_a,
            hours_bought=Decimal(20),
            amount=Decimal(3000),
            paid_amount=Decimal(3000),
        )
        deadline = time.monotonic() + 60
        while not StudentProfile.objects.filter(pk=student.pk, frequency=1).exists() and time.monotonic() < deadline:
            time.sleep(0.1)  # polling the worker's result: it runs in its own thread
    profile = StudentProfile.objects.get(pk=student.pk)
    assert (profile.frequency, profile.monetary, profile.stage) == (1, Decimal(3000), "enrolled")
    assert profile.rfm_segment and profile.value_tier == "high"
