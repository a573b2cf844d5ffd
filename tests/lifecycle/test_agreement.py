"""One rule definition, two executions: on generated histories, the set-based recomputation
in PostgreSQL gives every student exactly the stage and flags of the pure function.

Each example writes a few dozen students with consultations, trials, contracts (active,
completed, refunded, cancelled, expiring) and attendance (present, absent, leave) in two
campuses with different thresholds, then walks several "now" moments forward: the first
decided by ids (the event path), the later ones by the nightly run, which decides only the
students whose recheck moment has come. So the test also proves that skipping the others
is safe. The oracle computes the facts from the generated rows in Python, independently of
the SQL that keeps the aggregates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.models import Attendance, Campus, Consultation, Contract, Course, Student, StudentStage, TrialLesson, User
from lifecycle.models import LifecycleSettings, StageChange, StudentActivity
from lifecycle.rules import (
    HELD_LESSON_STATUSES,
    NEVER,
    ContractRow,
    Decision,
    StudentHistory,
    Thresholds,
    aggregates_from_history,
    facts_from_history,
    stage_for,
)
from lifecycle.services.activity import AGGREGATE_COLUMNS, activity_refresh
from lifecycle.services.facts import thresholds_by_campus
from lifecycle.services.recompute import recompute_stages
from tests import factories

pytestmark = pytest.mark.django_db

TZ = ZoneInfo("Asia/Shanghai")
BASE = dt.datetime(2025, 6, 1, 12, 0, tzinfo=TZ)


def moment(hours: int) -> dt.datetime:
    return BASE + dt.timedelta(hours=hours)


# Offsets in hours from BASE, mostly whole days (so boundaries are hit exactly), sometimes not.
offsets = st.one_of(
    st.integers(-150, 30).map(lambda d: d * 24),
    st.integers(-150 * 24, 30 * 24),
)


@dataclass
class GenContract:
    status: str
    signed: int
    valid_days: int | None
    bought: int
    consumed: int
    refund_after: int


@dataclass
class GenStudent:
    campus: int
    created: int
    lost: int | None
    consultations: list[int]
    trials: list[tuple[int, str]]
    contracts: list[GenContract]
    attendance: list[tuple[int, str, int]]


contracts_st = st.builds(
    GenContract,
    status=st.sampled_from(["active", "active", "completed", "refunded", "cancelled"]),
    signed=offsets,
    valid_days=st.one_of(st.none(), st.integers(0, 200)),
    bought=st.integers(1, 40),
    consumed=st.integers(0, 40),
    refund_after=st.integers(0, 100 * 24),
)

students_st = st.builds(
    GenStudent,
    campus=st.integers(0, 1),
    created=offsets,
    lost=st.one_of(st.none(), offsets),
    consultations=st.lists(offsets, max_size=3),
    trials=st.lists(st.tuples(offsets, st.sampled_from(["booked", "attended", "no_show", "cancelled"])), max_size=2),
    contracts=st.lists(contracts_st, max_size=3),
    attendance=st.lists(
        st.tuples(offsets, st.sampled_from(["present", "present", "absent", "leave"]), st.integers(0, 2)),
        max_size=12,
    ),
)


# Campus B's at-risk window: another length than campus A's 28 days (the SQL joins the lengths
# in use), or the same (the SQL takes the one length as constants).
@pytest.fixture(params=[14, 28], ids=["two window lengths", "one window length"])
def world(
    request: pytest.FixtureRequest,
    campus_a: Campus,
    campus_b: Campus,
    front_desk: User,
    teacher: User,
    course_a: Course,
    course_b: Course,
):
    LifecycleSettings.objects.create(campus=campus_a)
    LifecycleSettings.objects.create(
        campus=campus_b,
        active_days=14,
        churn_days=45,
        ended_grace_days=10,
        stale_lead_days=30,
        risk_window_days=request.param,
        risk_drop_pct=50,
        risk_consecutive_absences=3,
        renewal_hours=Decimal("8.5"),
        renewal_days=20,
    )
    return {"campuses": [campus_a, campus_b], "courses": [course_a, course_b], "staff": front_desk, "teacher": teacher}


def write(world: dict, generated: list[GenStudent]) -> dict[int, StudentHistory]:
    """Insert the generated rows; return each student's history as the oracle sees it."""
    histories: dict[int, StudentHistory] = {}
    for g in generated:
        campus = world["campuses"][g.campus]
        student = factories.StudentFactory(name="s", campus=campus, guardians=[])
        created_at = moment(g.created)
        lost_at = moment(g.lost) if g.lost is not None else None
        Student.objects.filter(pk=student.pk).update(created_at=created_at, lost_at=lost_at)
        Consultation.objects.bulk_create(
            Consultation(
                student=student, consultant=world["staff"], channel="phone", content="x", consulted_at=moment(c)
            )
            for c in g.consultations
        )
        for i, (at, status) in enumerate(g.trials):
            TrialLesson.objects.create(
                student=student,
                course=world["courses"][g.campus],
                teacher=world["teacher"],
                # The teacher-slot constraint: a distinct minute per trial.
                scheduled_at=moment(at) + dt.timedelta(minutes=student.pk * 3 + i),
                status=status,
            )
        contracts = []
        for c in g.contracts:
            signed_at = moment(c.signed)
            contracts.append(
                Contract.objects.create(
                    student=student,
                    course=world["courses"][g.campus],
                    hours_bought=Decimal(c.bought),
                    hours_consumed=Decimal(min(c.consumed, c.bought)),
                    amount=Decimal(100),
                    paid_amount=Decimal(100),
                    signed_at=signed_at,
                    valid_until=(signed_at.date() + dt.timedelta(days=c.valid_days))
                    if c.valid_days is not None
                    else None,
                    status=c.status,
                    refunded_at=signed_at + dt.timedelta(hours=c.refund_after) if c.status == "refunded" else None,
                )
            )
        attendance = []
        if contracts:
            for at, status, index in g.attendance:
                contract = contracts[index % len(contracts)]
                attendance.append(
                    Attendance(
                        student=student,
                        contract=contract,
                        lesson_at=moment(at),
                        status=status,
                        hours=Decimal(1),
                        teacher=world["teacher"],
                    )
                )
            Attendance.objects.bulk_create(attendance)
        trials = tuple(
            (moment(at) + dt.timedelta(minutes=student.pk * 3 + i), status) for i, (at, status) in enumerate(g.trials)
        )
        histories[student.pk] = StudentHistory(
            created_at=created_at,
            lost_at=lost_at,
            consultations=tuple(moment(c) for c in g.consultations),
            trials=trials,
            contracts=tuple(
                ContractRow(
                    status=k.status,
                    signed_at=k.signed_at,
                    hours_bought=k.hours_bought,
                    hours_consumed=k.hours_consumed,
                    valid_until=k.valid_until,
                    refunded_at=k.refunded_at,
                    last_lesson_at=max(
                        (a.lesson_at for a in attendance if a.contract is k and a.status in HELD_LESSON_STATUSES),
                        default=None,
                    ),
                )
                for k in contracts
            ),
            attendance=tuple((a.lesson_at, a.status) for a in attendance),
        )
    return histories


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(generated=st.lists(students_st, min_size=1, max_size=25), data=st.data())
def test_set_based_recomputation_agrees_with_the_pure_function(
    world: dict, generated: list[GenStudent], data: st.DataObject
) -> None:
    with transaction.atomic():
        histories = write(world, generated)
        ids = list(histories)
        campus_of = dict(Student.objects.filter(pk__in=ids).values_list("pk", "campus_id"))
        thresholds: dict[int, Thresholds] = thresholds_by_campus()

        def decide(sid: int, now: dt.datetime) -> Decision:
            t = thresholds[campus_of[sid]]
            return stage_for(facts_from_history(histories[sid], now, t), now, t)

        # The first moment anywhere; each next one often exactly on (or just after) a boundary:
        # the moment some student's decision can next change, as the pure function says.
        nows = [moment(data.draw(st.integers(-20, 60), label="first day") * 24)]
        for _ in range(data.draw(st.integers(1, 3), label="moments")):
            boundaries = sorted({d.recheck_at for sid in ids if (d := decide(sid, nows[-1])).recheck_at != NEVER})
            on_boundary: bool = data.draw(st.booleans(), label="on a boundary")
            if boundaries and on_boundary:
                at = data.draw(st.sampled_from(boundaries), label="boundary")
                at += data.draw(st.sampled_from([dt.timedelta(0), dt.timedelta(microseconds=1)]), label="after")
            else:
                at = nows[-1] + dt.timedelta(hours=data.draw(st.integers(1, 120 * 24), label="hours later"))
            if at > nows[-1]:
                nows.append(at)

        activity_refresh(ids)
        kept = {a.pk: a for a in StudentActivity.objects.filter(pk__in=ids)}
        for sid, history in histories.items():
            expected = aggregates_from_history(history)
            for name in AGGREGATE_COLUMNS:
                assert getattr(kept[sid], name) == getattr(expected, name), (sid, name)

        changes = dict.fromkeys(ids, 0)
        stages = dict.fromkeys(ids, "lead")
        # The start a student's stage row should hold: none before the first decision; then the
        # pure function's `since` whenever the stage changes, kept while it does not.
        starts: dict[int, dt.datetime | None] = dict.fromkeys(ids)
        history_starts: dict[int, list[dt.datetime]] = {sid: [] for sid in ids}
        for i, now in enumerate(nows):
            if i == 0:
                recompute_stages(ids, now=now, source="event")
            else:
                recompute_stages(now=now, source="nightly")
            rows = {row.pk: row for row in StudentStage.objects.filter(pk__in=ids)}
            for sid, history in histories.items():
                decision = decide(sid, now)
                row = rows[sid]
                got = (
                    row.stage,
                    row.at_risk,
                    row.risk_recent,
                    row.risk_before,
                    row.renewal_due,
                    row.recheck_at,
                )
                want = (
                    decision.stage,
                    decision.at_risk,
                    decision.risk_recent,
                    decision.risk_before,
                    decision.renewal_due,
                    decision.recheck_at,
                )
                assert got == want, (sid, now, decision.reason, history)
                restarts = decision.stage != stages[sid] or starts[sid] is None
                if decision.stage != stages[sid]:
                    changes[sid] += 1
                    stages[sid] = decision.stage
                    history_starts[sid].append(decision.since)
                if restarts:
                    starts[sid] = decision.since
                assert decision.since <= now
                assert row.changed_at == starts[sid], (sid, now, decision.reason, history)
        # One history row per real change, dated at the start of its stage; a full rerun at the
        # last moment writes nothing.
        for sid in ids:
            written = StageChange.objects.filter(student_id=sid).order_by("pk").values_list("changed_at", flat=True)
            assert list(written) == history_starts[sid]
        rerun = recompute_stages(now=nows[-1], source="nightly", full=True)
        assert (rerun.changed, rerun.rows_written) == (0, 0)
        transaction.set_rollback(True)
