"""One rule definition, two executions: on generated data, the set-based profile recomputation in
PostgreSQL gives every student exactly the figures of `rules.figures_for`, and every campus exactly
the scores, segments, tiers and cut-points of `rules.campus_scores`.

Each example writes students with consultations, trials (rated or not, in courses of several
subjects), contracts (every status, with refunds) and attendance in two campuses with different
tier cut-offs, then: a full run at one moment; a nightly run at a later moment (which recomputes
only the students whose 90-day window moved, so the test proves skipping the others is safe);
then a new fact for some students and the event path, which scores them against the cut-points
of the last full scoring.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.models import Attendance, Campus, Consultation, Contract, Course, Student, TrialLesson, User
from personas.models import CampusScoreCuts, PersonaSettings, StudentProfile
from personas.rules import (
    ContractFact,
    Figures,
    LessonFact,
    ProfileHistory,
    TierCuts,
    TrialFact,
    campus_scores,
    cuts_of,
    figures_for,
    rfm_input,
    score_from_cuts,
    segment_of,
    tier_floors,
    tier_from_floors,
)
from personas.services.profiles import profiles_after_event, profiles_recompute
from tests import factories

pytestmark = [
    pytest.mark.django_db,
    # On SQLite the set-based path is the pure rule itself: the comparison would prove nothing.
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the SQL execution runs on PostgreSQL"),
]

TZ = ZoneInfo("Asia/Shanghai")
BASE = dt.datetime(2025, 6, 1, 12, 0, tzinfo=TZ)
SUBJECTS = ["数学", "英语", "美术", "Coding", ""]
CUTS = {0: TierCuts(), 1: TierCuts(70, 30)}


def moment(hours: int) -> dt.datetime:
    return BASE + dt.timedelta(hours=hours)


# Mostly whole days (equal days tie on R), sometimes any hour (the local day still decides).
offsets = st.one_of(st.integers(-200, 30).map(lambda d: d * 24), st.integers(-200 * 24, 30 * 24))
# Few distinct amounts, so ties on M are common.
amounts = st.sampled_from([Decimal(0), Decimal(500), Decimal("1200.50"), Decimal(3000), Decimal(9600)])


@dataclass
class GenContract:
    status: str
    signed: int
    paid: Decimal
    refund: Decimal
    bought: int
    consumed: int
    subject: int


@dataclass
class GenStudent:
    campus: int
    consultations: list[int]
    trials: list[tuple[int, str, int | None, int]]
    contracts: list[GenContract]
    attendance: list[tuple[int, str]]


contracts_st = st.builds(
    GenContract,
    status=st.sampled_from(["active", "active", "completed", "refunded", "cancelled"]),
    signed=offsets,
    paid=amounts,
    refund=st.sampled_from([Decimal(0), Decimal(0), Decimal(200)]),
    bought=st.integers(1, 40),
    consumed=st.integers(0, 40),
    subject=st.integers(0, len(SUBJECTS) - 1),
)
students_st = st.builds(
    GenStudent,
    campus=st.integers(0, 1),
    consultations=st.lists(offsets, max_size=2),
    trials=st.lists(
        st.tuples(
            offsets,
            st.sampled_from(["booked", "attended", "no_show", "cancelled"]),
            st.one_of(st.none(), st.integers(1, 5)),
            st.integers(0, len(SUBJECTS) - 1),
        ),
        max_size=2,
    ),
    contracts=st.lists(contracts_st, max_size=3),
    attendance=st.lists(st.tuples(offsets, st.sampled_from(["present", "present", "absent", "leave"])), max_size=10),
)


@pytest.fixture
def world(campus_a: Campus, campus_b: Campus, front_desk: User, teacher: User) -> dict:
    PersonaSettings.objects.create(campus=campus_b, tier_high_above_pct=70, tier_medium_above_pct=30)
    courses = {
        (c, i): Course.objects.create(campus=campus, name=f"课程{i}", subject=subject, price_per_hour=100)
        for c, campus in enumerate([campus_a, campus_b])
        for i, subject in enumerate(SUBJECTS)
    }
    return {"campuses": [campus_a, campus_b], "courses": courses, "staff": front_desk, "teacher": teacher}


def write(world: dict, generated: list[GenStudent]) -> dict[int, ProfileHistory]:
    """Insert the rows (no services: nothing recomputes behind the test); the oracle's histories."""
    histories: dict[int, ProfileHistory] = {}
    for g in generated:
        student = factories.StudentFactory(name="s", campus=world["campuses"][g.campus], guardians=[])
        Consultation.objects.bulk_create(
            Consultation(
                student=student, consultant=world["staff"], channel="phone", content="x", consulted_at=moment(c)
            )
            for c in g.consultations
        )
        trials = []
        for i, (at, status, rating, subject) in enumerate(g.trials):
            trial = TrialLesson.objects.create(
                student=student,
                course=world["courses"][(g.campus, subject)],
                teacher=world["teacher"],
                scheduled_at=moment(at) + dt.timedelta(minutes=student.pk * 3 + i),
                status=status,
                rating=rating,
            )
            trials.append(TrialFact(trial.scheduled_at, status, rating, SUBJECTS[subject]))
        contracts = [
            Contract.objects.create(
                student=student,
                course=world["courses"][(g.campus, c.subject)],
                hours_bought=Decimal(c.bought),
                hours_consumed=Decimal(min(c.consumed, c.bought)),
                amount=max(c.paid, Decimal(1)),
                paid_amount=c.paid,
                refund_amount=min(c.refund, c.paid) if c.status == "refunded" else Decimal(0),
                signed_at=moment(c.signed),
                status=c.status,
                refunded_at=moment(c.signed + 24) if c.status == "refunded" else None,
            )
            for c in g.contracts
        ]
        lessons = []
        if contracts:
            Attendance.objects.bulk_create(
                Attendance(
                    student=student,
                    contract=contracts[0],
                    lesson_at=moment(at),
                    status=status,
                    hours=Decimal(1),
                    teacher=world["teacher"],
                )
                for at, status in g.attendance
            )
            lessons = [LessonFact(moment(at), status) for at, status in g.attendance]
        histories[student.pk] = ProfileHistory(
            consultations=tuple(moment(c) for c in g.consultations),
            trials=tuple(trials),
            contracts=tuple(
                ContractFact(
                    k.status, k.signed_at, k.paid_amount, k.refund_amount, k.hours_bought, k.hours_consumed, subject
                )
                for k, subject in zip(contracts, (SUBJECTS[c.subject] for c in g.contracts), strict=True)
            ),
            attendance=tuple(lessons),
        )
    return histories


def stored_figures(row: StudentProfile) -> tuple:
    return (
        row.recency_at,
        row.frequency,
        row.monetary,
        row.lessons_scheduled_90,
        row.lessons_present_90,
        row.attendance_rate,
        row.preferred_weekday,
        row.preferred_slot,
        tuple(row.subjects),
        row.subject_list,
        row.avg_rating,
        row.ratings,
        row.first_signed_at,
        row.remaining_hours,
        row.last_touch_at,
        row.recheck_at,
    )


def expected_figures(f: Figures) -> tuple:
    return (
        f.recency_at,
        f.frequency,
        f.monetary,
        f.lessons_scheduled_90,
        f.lessons_present_90,
        f.attendance_rate,
        f.preferred_weekday,
        f.preferred_slot,
        f.subjects,
        "\n".join(f.subjects),
        f.avg_rating,
        f.ratings,
        f.first_signed_at,
        f.remaining_hours,
        f.last_touch_at,
        f.recheck_at,
    )


def check_figures(histories: dict[int, ProfileHistory], now: dt.datetime) -> dict[int, StudentProfile]:
    rows = StudentProfile.objects.in_bulk(list(histories))
    for sid, history in histories.items():
        assert stored_figures(rows[sid]) == expected_figures(figures_for(history, now, "Asia/Shanghai")), (sid, now)
    return rows


def check_campus_scores(
    world: dict, histories: dict[int, ProfileHistory], campus_of: dict[int, int], now: dt.datetime
) -> None:
    rows = StudentProfile.objects.in_bulk(list(histories))
    for c, campus in enumerate(world["campuses"]):
        inputs = {
            sid: value
            for sid in histories
            if campus_of[sid] == campus.pk
            and (value := rfm_input(figures_for(histories[sid], now, "Asia/Shanghai"), "Asia/Shanghai")) is not None
        }
        expected = campus_scores(inputs, CUTS[c])
        for sid in histories:
            if campus_of[sid] != campus.pk:
                continue
            row = rows[sid]
            got = (row.r_score, row.f_score, row.m_score, row.rfm_segment, row.value_tier)
            s = expected.get(sid)
            assert got == ((s.r_score, s.f_score, s.m_score, s.segment, s.tier) if s else (None, None, None, "", ""))
        kept = CampusScoreCuts.objects.get(campus=campus)
        values = list(inputs.values())
        assert kept.population == len(values)
        high, medium = tier_floors([v.monetary for v in values], CUTS[c])
        assert (kept.tier_high_from, kept.tier_medium_from) == (high, medium)
        assert kept.recency_cuts == [d.isoformat() if d else None for d in cuts_of([v.recency_day for v in values])]
        assert kept.frequency_cuts == cuts_of([v.frequency for v in values])
        assert [Decimal(m) if m is not None else None for m in kept.monetary_cuts] == cuts_of(
            [v.monetary for v in values]
        )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(generated=st.lists(students_st, min_size=1, max_size=25), data=st.data())
def test_set_based_profiles_agree_with_the_pure_rules(world: dict, generated: list[GenStudent], data: st.DataObject):
    with transaction.atomic():
        histories = write(world, generated)
        campus_of = dict(Student.objects.filter(pk__in=list(histories)).values_list("pk", "campus_id"))

        first = moment(data.draw(st.integers(-30, 40), label="first day") * 24)
        profiles_recompute(now=first, full=True)
        rows = check_figures(histories, first)
        check_campus_scores(world, histories, campus_of, first)

        # The nightly run later: exactly on a student's recheck moment, or any time after.
        rechecks = sorted({r.recheck_at for r in rows.values() if r.recheck_at and r.recheck_at.year < 3000})
        on_recheck: bool = data.draw(st.booleans(), label="on a recheck moment")
        if rechecks and on_recheck:
            later = data.draw(st.sampled_from(rechecks), label="recheck")
        else:
            later = first + dt.timedelta(hours=data.draw(st.integers(1, 200 * 24), label="hours later"))
        profiles_recompute(now=later)
        check_figures(histories, later)
        check_campus_scores(world, histories, campus_of, later)

        # A new contract for some students, then the event path: figures at once, scores against
        # the campus's cut-points from the last full scoring.
        cuts = {c.campus_id: c for c in CampusScoreCuts.objects.all()}
        chosen = data.draw(st.lists(st.sampled_from(sorted(histories)), min_size=1, max_size=3, unique=True))
        paid = data.draw(amounts, label="paid")
        index = {campus.pk: c for c, campus in enumerate(world["campuses"])}
        for sid in chosen:
            contract = Contract.objects.create(
                student_id=sid,
                course=world["courses"][(index[campus_of[sid]], 0)],
                hours_bought=Decimal(10),
                amount=max(paid, Decimal(1)),
                paid_amount=paid,
                signed_at=later,
            )
            h = histories[sid]
            histories[sid] = ProfileHistory(
                h.consultations,
                h.trials,
                (
                    *h.contracts,
                    ContractFact("active", contract.signed_at, paid, Decimal(0), Decimal(10), Decimal(0), "数学"),
                ),
                h.attendance,
            )
        profiles_after_event(chosen, now=later)
        rows = check_figures(histories, later)
        for sid in chosen:
            value = rfm_input(figures_for(histories[sid], later, "Asia/Shanghai"), "Asia/Shanghai")
            assert value is not None
            kept = cuts[campus_of[sid]]
            if kept.population == 0:
                continue  # the campus had no RFM student: it was scored whole (checked above's way)
            r = score_from_cuts(value.recency_day, [dt.date.fromisoformat(d) if d else None for d in kept.recency_cuts])
            f = score_from_cuts(value.frequency, kept.frequency_cuts)
            m = score_from_cuts(value.monetary, [Decimal(x) if x else None for x in kept.monetary_cuts])
            tier = tier_from_floors(value.monetary, kept.tier_high_from, kept.tier_medium_from)
            row = rows[sid]
            assert (row.r_score, row.f_score, row.m_score, row.rfm_segment, row.value_tier) == (
                r,
                f,
                m,
                segment_of(r, f, m),
                tier,
            )
        transaction.set_rollback(True)
