"""A big run's two halves (two connections, the student keys shared out by blocks) compute exactly
what one statement computes: every student's figures, once."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection

from crm.models import Student
from personas.models import StudentProfile
from personas.rules import figures_for
from personas.services import profiles
from tests.personas.test_agreement import (
    BASE,
    GenContract,
    GenStudent,
    expected_figures,
    stored_figures,
    world,  # noqa: F401  (the fixture)
    write,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the halves run on PostgreSQL"),
]


def students(n: int) -> list[GenStudent]:
    """Students of both campuses with lessons on every weekday and slot, some with none."""
    return [
        GenStudent(
            campus=i % 2,
            consultations=[-24 * i],
            trials=[(-24 * (i + 3), "attended", 1 + i % 5, i % 5)],
            contracts=[GenContract("active", -24 * (40 + i), Decimal(100 * (i % 7)), Decimal(0), 30, i % 30, i % 5)]
            if i % 4
            else [],
            attendance=[(-24 * d - i, "present" if d % 3 else "absent") for d in range(i % 9)],
        )
        for i in range(n)
    ]


def test_two_halves_compute_every_student_once_and_alike(world, monkeypatch) -> None:  # noqa: F811
    histories = write(world, students(40))
    now = BASE + dt.timedelta(days=1)
    # Any table counts as big here, and the key blocks are small, so both halves hold students.
    monkeypatch.setattr(profiles, "IN_HALVES_FROM", 0)
    monkeypatch.setattr(profiles, "HALF_BLOCKS", 8)
    halves = []
    real = profiles._compute_figures

    def spy(*args, **kwargs):
        if kwargs.get("half") is not None:
            halves.append(kwargs["half"].parity)
        return real(*args, **kwargs)

    monkeypatch.setattr(profiles, "_compute_figures", spy)
    profiles.profiles_recompute(now=now, full=True)
    assert sorted(halves) == [0, 1]
    rows = StudentProfile.objects.in_bulk(list(histories))
    assert len(rows) == len(histories) == Student.objects.count()
    for sid, history in histories.items():
        assert stored_figures(rows[sid]) == expected_figures(figures_for(history, now, "Asia/Shanghai")), sid
