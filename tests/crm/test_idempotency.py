"""The API's Idempotency-Key: stored answers are forgotten a day after (the nightly sweep)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from crm.models import IdempotencyRecord
from crm.tasks import idempotency_sweep

pytestmark = pytest.mark.django_db


def test_the_sweep_forgets_answers_older_than_a_day() -> None:
    t0 = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)
    with time_machine.travel(t0, tick=False):
        IdempotencyRecord.objects.create(caller="user:1", key="old", fingerprint="x", status_code=201, body={})
    with time_machine.travel(t0 + dt.timedelta(hours=20), tick=False):
        IdempotencyRecord.objects.create(caller="user:1", key="new", fingerprint="x", status_code=201, body={})
    with time_machine.travel(t0 + dt.timedelta(hours=24, seconds=1), tick=False):
        assert idempotency_sweep() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


def test_a_claim_left_unanswered_is_in_progress_then_abandoned(client, parent_a) -> None:
    """A retry while the first request runs is a 409; a claim its killed worker never answered
    is taken over after five minutes, and the retry then does the work once."""
    from django.urls import reverse

    from parents.models import TrialRequest
    from tests.conftest import bearer

    child = parent_a.students.get()
    url = reverse("parent_api:trial_requests", args=[child.pk])
    body = {"wished_at": "2026-06-06T10:00:00+08:00"}
    t0 = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)
    headers = {**bearer(parent_a), "HTTP_IDEMPOTENCY_KEY": "k-1"}
    with time_machine.travel(t0, tick=False):
        # What a request killed mid-way leaves: the claim, with no answer.
        import hashlib
        import json

        fingerprint = hashlib.sha256(f"POST {url}\n{json.dumps(body, sort_keys=True)}".encode()).hexdigest()
        IdempotencyRecord.objects.create(caller=f"guardian:{parent_a.pk}", key="k-1", fingerprint=fingerprint)
        running = client.post(url, body, content_type="application/json", **headers)
        assert running.status_code == 409 and running.json()["code"] == "request_in_progress"
    with time_machine.travel(t0 + dt.timedelta(minutes=5, seconds=1), tick=False):
        taken = client.post(url, body, content_type="application/json", **headers)
        again = client.post(url, body, content_type="application/json", **headers)
    assert taken.status_code == again.status_code == 201 and again.json() == taken.json()
    assert TrialRequest.objects.count() == 1
