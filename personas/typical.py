"""The overview's figures in pure Python: how a campus's students spread over stages, value tiers
and RFM segments, and each group's typical profile.

`personas.services.overview` (`GROUPS_SQL`) executes the same definition set-based in PostgreSQL;
tests/personas/test_overview_agreement.py proves they agree on generated data.

The definition, per campus, dimension and group (every student is in exactly one group of each
dimension; a student with no RFM is in the group "" of the tier and segment dimensions):

- count: the group's students.
- top grade / top channel / top subject: the most frequent non-empty value among the group's
  students (a student counts once per subject of their profile). Ties go to the smallest value in
  code-point order, so the answer never depends on the order rows arrive in (PostgreSQL's
  `mode()` keeps whichever it met first).
- median lifetime value: over every student of the group, a student with no profile counting as
  0 (no contract, or not computed yet). The true median: for an even count, the mean of the two
  middle values, rounded half up to 2 places (the SQL takes both middles exactly with
  `percentile_disc`, where `percentile_cont` would go through floating point).
- median attendance rate: the same over the students who have one (a lesson in the last 90
  days), rounded half up to 4 places; None when nobody has.
- representative: the student whose lifetime value is closest to the group's median, so the card
  one click away shows a typical member rather than an outlier; among equally close students the
  newest (largest id), whose record is the most current.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

# The dimensions, in the page's order.
STAGE, TIER, SEGMENT = "stage", "tier", "segment"
DIMENSIONS = (STAGE, TIER, SEGMENT)

VALUE_PLACES = Decimal("0.01")
RATE_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class Member:
    """One student as the overview reads them: crm's row, their stage and their kept profile."""

    student_id: int
    campus_id: int
    stage: str
    value_tier: str = ""
    rfm_segment: str = ""
    grade: str = ""
    channel: str = ""
    subjects: tuple[str, ...] = ()
    monetary: Decimal | None = None  # None: no profile yet
    attendance_rate: Decimal | None = None


@dataclass(frozen=True)
class Typical:
    """One group's figures: what `OverviewGroup` keeps."""

    campus_id: int
    dimension: str
    key: str
    students: int
    top_grade: str
    top_subject: str
    top_channel: str
    median_value: Decimal
    median_attendance: Decimal | None
    representative_id: int


def group_key(member: Member, dimension: str) -> str:
    if dimension == STAGE:
        return member.stage
    if dimension == TIER:
        return member.value_tier
    return member.rfm_segment


def most_common(values: Iterable[str]) -> str:
    """The most frequent non-empty value, ties to the smallest; "" when there is none."""
    counts = Counter(v for v in values if v)
    if not counts:
        return ""
    return min(counts, key=lambda v: (-counts[v], v))


def median(values: list[Decimal], places: Decimal) -> Decimal | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    exact = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return exact.quantize(places, rounding=ROUND_HALF_UP)


def lifetime_value(member: Member) -> Decimal:
    return member.monetary if member.monetary is not None else Decimal(0)


def typical_of(campus_id: int, dimension: str, key: str, members: list[Member]) -> Typical:
    """One non-empty group's figures."""
    values = [lifetime_value(m) for m in members]
    middle = median(values, VALUE_PLACES)
    assert middle is not None  # a group has members
    representative = min(members, key=lambda m: (abs(lifetime_value(m) - middle), -m.student_id))
    return Typical(
        campus_id=campus_id,
        dimension=dimension,
        key=key,
        students=len(members),
        top_grade=most_common(m.grade for m in members),
        top_subject=most_common(s for m in members for s in dict.fromkeys(m.subjects)),
        top_channel=most_common(m.channel for m in members),
        median_value=middle,
        median_attendance=median([m.attendance_rate for m in members if m.attendance_rate is not None], RATE_PLACES),
        representative_id=representative.student_id,
    )


def typical_groups(members: Iterable[Member]) -> list[Typical]:
    """Every non-empty group of every campus and dimension, sorted by (campus, dimension, key)."""
    groups: dict[tuple[int, str, str], list[Member]] = {}
    for member in members:
        for dimension in DIMENSIONS:
            groups.setdefault((member.campus_id, dimension, group_key(member, dimension)), []).append(member)
    return [typical_of(c, d, k, rows) for (c, d, k), rows in sorted(groups.items(), key=lambda item: item[0])]
