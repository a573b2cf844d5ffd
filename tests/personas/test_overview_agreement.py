"""One definition, two executions: on generated campuses, the overview's set-based statement in
PostgreSQL (`personas.services.overview.GROUPS_SQL`, kept by `overview_refresh` and run live by
`groups_live`) gives exactly the groups of `personas.typical.typical_groups`.

The data is drawn to make ties common: few grades, channels, subjects and amounts, so the most
common value and the representative are often decided by their tie rules; grades and subjects mix
Latin and Chinese and letter case, so the code-point order is tested against the database's
collation; amounts include negatives and odd cents, so rounding half up is tested on both sides;
some students have no profile (lifetime value 0, no RFM) and some no stage row (a lead).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.models import Campus, Channel, Stage, StudentStage
from personas.models import CampusOverview, OverviewGroup, RfmSegment, ValueTier
from personas.services.overview import groups_live, overview_refresh
from personas.typical import STAGE, Member, Typical, typical_groups
from tests import factories

pytestmark = [
    pytest.mark.django_db,
    # On SQLite the set-based path is the pure rule itself: the comparison would prove nothing.
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the SQL execution runs on PostgreSQL"),
]

GRADES = ["", "三年级", "五年级", "初一", "Grade 3", "grade 3"]
SUBJECTS = ["数学", "英语", "美术", "Coding", "coding", ""]
AMOUNTS = [Decimal(0), Decimal("0.01"), Decimal("1200.50"), Decimal("1200.55"), Decimal(3000), Decimal("-100.05")]
RATES = [None, Decimal("0"), Decimal("0.3333"), Decimal("0.5"), Decimal("0.6667"), Decimal("0.1235"), Decimal("1")]


@dataclass
class GenProfile:
    tier: str
    segment: str
    subjects: list[str]
    monetary: Decimal
    rate: Decimal | None


@dataclass
class GenStudent:
    campus: int
    stage: str | None  # None: no stage row
    grade: str
    channel: str
    profile: GenProfile | None


profiles_st = st.builds(
    GenProfile,
    tier=st.sampled_from(["", *ValueTier.values]),
    segment=st.sampled_from(["", RfmSegment.CHAMPIONS, RfmSegment.LOST, RfmSegment.NEW]),
    subjects=st.lists(st.sampled_from(SUBJECTS), max_size=3, unique=True),
    monetary=st.sampled_from(AMOUNTS),
    rate=st.sampled_from(RATES),
)
students_st = st.builds(
    GenStudent,
    campus=st.integers(0, 1),
    stage=st.one_of(st.none(), st.sampled_from([Stage.LEAD, Stage.ACTIVE, Stage.DORMANT, Stage.CHURNED])),
    grade=st.sampled_from(GRADES),
    channel=st.sampled_from([Channel.DOUYIN, Channel.REFERRAL, Channel.WALK_IN]),
    profile=st.one_of(st.none(), profiles_st),
)


def write(campuses: list[Campus], generated: list[GenStudent]) -> list[Member]:
    """Insert the rows (no services: nothing recomputes behind the test); the oracle's members."""
    members = []
    for g in generated:
        campus = campuses[g.campus]
        student = factories.StudentFactory(
            campus=campus, stage=g.stage or Stage.LEAD, grade=g.grade, channel=g.channel, guardians=[]
        )
        if g.stage is None:
            StudentStage.objects.filter(student=student).delete()
        p = g.profile
        if p is not None:
            factories.StudentProfileFactory(
                student=student,
                value_tier=p.tier,
                rfm_segment=p.segment,
                subjects=p.subjects,
                monetary=p.monetary,
                attendance_rate=p.rate,
            )
        members.append(
            Member(
                student_id=student.pk,
                campus_id=campus.pk,
                stage=g.stage or Stage.LEAD,
                value_tier=p.tier if p else "",
                rfm_segment=p.segment if p else "",
                grade=g.grade,
                channel=g.channel,
                subjects=tuple(p.subjects) if p else (),
                monetary=p.monetary if p else None,
                attendance_rate=p.rate if p else None,
            )
        )
    return members


def kept() -> list[Typical]:
    rows = OverviewGroup.objects.order_by("campus_id", "dimension", "key")
    return [Typical(**asdict_row(r)) for r in rows]


def asdict_row(r: OverviewGroup) -> dict:
    return {
        "campus_id": r.campus_id,
        "dimension": r.dimension,
        "key": r.key,
        "students": r.students,
        "top_grade": r.top_grade,
        "top_subject": r.top_subject,
        "top_channel": r.top_channel,
        "median_value": r.median_value,
        "median_attendance": r.median_attendance,
        "representative_id": r.representative_id,
    }


def by_key(groups: list[Typical]) -> list[tuple]:
    return sorted(tuple(asdict(g).values()) for g in groups)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(generated=st.lists(students_st, min_size=1, max_size=30))
def test_the_snapshot_agrees_with_the_pure_definition(campus_a: Campus, campus_b: Campus, generated: list[GenStudent]):
    with transaction.atomic():
        campuses = [campus_a, campus_b]
        members = write(campuses, generated)
        expected = typical_groups(members)

        overview_refresh()
        assert by_key(kept()) == by_key(expected)
        for campus in campuses:
            mine = [g for g in expected if g.campus_id == campus.pk]
            assert by_key(groups_live(campus.pk)) == by_key(mine)
            assert CampusOverview.objects.get(campus=campus).students == sum(
                g.students for g in mine if g.dimension == STAGE
            )
        transaction.set_rollback(True)
