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
