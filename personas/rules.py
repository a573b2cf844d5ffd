"""The persona rules in pure Python: one student's profile figures from their raw facts, and a
campus's RFM scores, segments and value tiers from its students' figures.

`personas.services.profiles` executes the same rules set-based in SQL (`PROFILE_SQL` mirrors
`figures_for`, `SCORE_SQL` mirrors `campus_scores`); tests/personas/test_agreement.py proves they
agree on generated data. docs/personas.md says the rules in words.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TypeVar
from zoneinfo import ZoneInfo

# The 90-day window of the attendance rate.
RATE_WINDOW = dt.timedelta(days=90)
# recheck_at when no passing of time can change the figures (only a new fact can).
NEVER = dt.datetime(3000, 1, 1, tzinfo=dt.UTC)
# Time slots by the lesson's local starting hour: before 12, before 18, later.
AFTERNOON_FROM, EVENING_FROM = 12, 18

# The segment grid: SEGMENT_GRID[R][FM] for R and FM in 1..5 (issue 10's table).
_GRID_ROWS = {
    5: ("new", "potential_loyalist", "potential_loyalist", "champions", "champions"),
    4: ("promising", "potential_loyalist", "potential_loyalist", "loyal", "loyal"),
    3: ("about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"),
    2: ("hibernating", "hibernating", "at_risk", "at_risk", "cannot_lose_them"),
    1: ("lost", "lost", "at_risk", "at_risk", "cannot_lose_them"),
}
SEGMENT_GRID: dict[int, dict[int, str]] = {
    r: {fm: name for fm, name in enumerate(row, start=1)} for r, row in _GRID_ROWS.items()
}


@dataclass(frozen=True)
class ContractFact:
    status: str  # active / completed / refunded / cancelled
    signed_at: dt.datetime
    paid_amount: Decimal
    refund_amount: Decimal = Decimal("0")
    hours_bought: Decimal = Decimal("0")
    hours_consumed: Decimal = Decimal("0")
    subject: str = ""


@dataclass(frozen=True)
class LessonFact:
    lesson_at: dt.datetime
    status: str  # present / absent / leave


@dataclass(frozen=True)
class TrialFact:
    scheduled_at: dt.datetime
    status: str  # booked / attended / no_show / cancelled
    rating: int | None = None
    subject: str = ""


@dataclass(frozen=True)
class ProfileHistory:
    """One student's raw facts as the persona rules read them."""

    consultations: tuple[dt.datetime, ...] = ()
    trials: tuple[TrialFact, ...] = ()
    contracts: tuple[ContractFact, ...] = ()
    attendance: tuple[LessonFact, ...] = ()


@dataclass(frozen=True)
class Figures:
    """A student's profile figures that depend on their own facts only (not on the campus)."""

    recency_at: dt.datetime | None  # latest of the last present lesson and the last signing
    frequency: int  # contracts not cancelled
    monetary: Decimal  # paid minus refunds over them (the lifetime value)
    lessons_scheduled_90: int
    lessons_present_90: int
    attendance_rate: Decimal | None  # present / scheduled, 4 places, None with nothing scheduled
    # Over the present lessons of the 90-day window: the ISO weekday and the slot (morning /
    # afternoon / evening) of most of them, the earliest on a tie; None / "" with none.
    preferred_weekday: int | None
    preferred_slot: str
    subjects: tuple[str, ...]  # of contracts and trials not cancelled, sorted
    avg_rating: Decimal | None  # teachers' trial ratings, 2 places
    ratings: int
    first_signed_at: dt.datetime | None
    remaining_hours: Decimal  # over active contracts
    last_touch_at: dt.datetime | None  # consultation, trial (not cancelled), signing or lesson
    recheck_at: dt.datetime  # when a lesson next enters or leaves the 90-day window

    @property
    def has_rfm(self) -> bool:
        return self.frequency > 0


def slot_of(hour: int) -> str:
    if hour < AFTERNOON_FROM:
        return "morning"
    return "afternoon" if hour < EVENING_FROM else "evening"


SLOT_ORDER = ("morning", "afternoon", "evening")


def _most_common_earliest(values: Iterable[int]) -> int | None:
    counts = Counter(values)
    if not counts:
        return None
    top = max(counts.values())
    return min(v for v, n in counts.items() if n == top)


def _ratio(part: Decimal, whole: int, places: str) -> Decimal:
    # Rounded half up, as PostgreSQL's round(numeric) does for these positive figures.
    return (part / Decimal(whole)).quantize(Decimal(places), rounding=ROUND_HALF_UP)


def figures_for(history: ProfileHistory, now: dt.datetime, time_zone: str) -> Figures:
    """One student's own figures at `now` (aware)."""
    zone = ZoneInfo(time_zone)
    h = history
    contracts = [c for c in h.contracts if c.status != "cancelled"]
    trials = [t for t in h.trials if t.status != "cancelled"]
    present = [a.lesson_at for a in h.attendance if a.status == "present"]
    last_signed = max((c.signed_at for c in contracts), default=None)
    last_present = max(present, default=None)
    in_window = [a for a in h.attendance if now - RATE_WINDOW < a.lesson_at <= now]
    scheduled = len(in_window)
    attended = sum(1 for a in in_window if a.status == "present")
    # A lesson changes the window when it enters it (a future lesson) or leaves it (90 days on).
    crossings = [a.lesson_at if a.lesson_at > now else a.lesson_at + RATE_WINDOW for a in h.attendance]
    # Habits are the recent ones: the present lessons of the same 90-day window.
    local = [a.lesson_at.astimezone(zone) for a in in_window if a.status == "present"]
    slot = _most_common_earliest(SLOT_ORDER.index(slot_of(at.hour)) for at in local)
    rated = [t.rating for t in h.trials if t.rating is not None]
    touches = [
        *h.consultations,
        *(t.scheduled_at for t in trials),
        *(c.signed_at for c in contracts),
        *(a.lesson_at for a in h.attendance),
    ]
    return Figures(
        recency_at=max((m for m in (last_present, last_signed) if m is not None), default=None) if contracts else None,
        frequency=len(contracts),
        monetary=sum((c.paid_amount - c.refund_amount for c in contracts), Decimal("0")),
        lessons_scheduled_90=scheduled,
        lessons_present_90=attended,
        attendance_rate=_ratio(Decimal(attended), scheduled, "0.0001") if scheduled else None,
        preferred_weekday=_most_common_earliest(at.isoweekday() for at in local),
        preferred_slot=SLOT_ORDER[slot] if slot is not None else "",
        subjects=tuple(sorted(({c.subject for c in contracts} | {t.subject for t in trials}) - {""})),
        avg_rating=_ratio(Decimal(sum(rated)), len(rated), "0.01") if rated else None,
        ratings=len(rated),
        first_signed_at=min((c.signed_at for c in contracts), default=None),
        remaining_hours=sum(
            (c.hours_bought - c.hours_consumed for c in contracts if c.status == "active"), Decimal("0")
        ),
        last_touch_at=max(touches, default=None),
        recheck_at=min((c for c in crossings if c > now), default=NEVER),
    )


# --- a campus's scores ---------------------------------------------------------------------

V = TypeVar("V", int, Decimal, dt.date)


def score(at_or_below: int, population: int) -> int:
    """ceil(5 x cume_dist), in integers: cume_dist = the share of the campus at or below the value
    (ties included), so students with equal values share a score."""
    return (5 * at_or_below + population - 1) // population


def at_or_below_counts(values: Sequence[V]) -> dict[V, int]:
    """For each distinct value, how many values are at or below it."""
    counts = Counter(values)
    running = 0
    result: dict[V, int] = {}
    for value in sorted(counts):
        running += counts[value]
        result[value] = running
    return result


def fm_of(f_score: int, m_score: int) -> int:
    """round-half-up((F + M) / 2)."""
    return (f_score + m_score + 1) // 2


def segment_of(r_score: int, f_score: int, m_score: int) -> str:
    return SEGMENT_GRID[r_score][fm_of(f_score, m_score)]


@dataclass(frozen=True)
class TierCuts:
    """A campus's value-tier cut-offs: above these shares of M's cumulative distribution (percent)."""

    high_above_pct: int = 80
    medium_above_pct: int = 40


def tier_of(at_or_below: int, population: int, cuts: TierCuts) -> str:
    # cume_dist > pct / 100, in integers.
    if at_or_below * 100 > cuts.high_above_pct * population:
        return "high"
    if at_or_below * 100 > cuts.medium_above_pct * population:
        return "medium"
    return "low"


@dataclass(frozen=True)
class Scores:
    r_score: int
    f_score: int
    m_score: int
    segment: str
    tier: str


@dataclass(frozen=True)
class RfmInput:
    recency_day: dt.date  # the campus-local date of recency_at: a later day is better
    frequency: int
    monetary: Decimal


def campus_scores(students: Mapping[int, RfmInput], cuts: TierCuts = TierCuts()) -> dict[int, Scores]:
    """The scores of every student of one campus who has RFM (their inputs, by id)."""
    n = len(students)
    if not n:
        return {}
    r = at_or_below_counts([s.recency_day for s in students.values()])
    f = at_or_below_counts([s.frequency for s in students.values()])
    m = at_or_below_counts([s.monetary for s in students.values()])
    result = {}
    for sid, s in students.items():
        rs, fs, ms = score(r[s.recency_day], n), score(f[s.frequency], n), score(m[s.monetary], n)
        result[sid] = Scores(rs, fs, ms, segment_of(rs, fs, ms), tier_of(m[s.monetary], n, cuts))
    return result


def rfm_input(figures: Figures, time_zone: str) -> RfmInput | None:
    if not figures.has_rfm or figures.recency_at is None:
        return None
    return RfmInput(figures.recency_at.astimezone(ZoneInfo(time_zone)).date(), figures.frequency, figures.monetary)


# --- scoring one student against the campus's last full run ---------------------------------


def cuts_of(values: Sequence[V]) -> list[V | None]:
    """For scores 1..4, the largest value whose score is at most that score (None if none is):
    with them, `score_from_cuts` gives every value of the campus its exact score, and a value
    the campus does not hold the score of the campus's values below it, one step up."""
    n = len(values)
    cuts: list[V | None] = [None] * 4
    for value, below in at_or_below_counts(values).items():
        s = score(below, n)
        for k in range(s, 5):
            cuts[k - 1] = value
    return cuts


def score_from_cuts(value: V, cuts: Sequence[V | None]) -> int:
    # A score no value of the campus has (None) is passed by every value.
    return 1 + sum(1 for cut in cuts if cut is None or value > cut)


def tier_floors(values: Sequence[Decimal], cuts: TierCuts) -> tuple[Decimal | None, Decimal | None]:
    """The smallest M of the high and of the medium tier (None where the tier is empty)."""
    n = len(values)
    high = medium = None
    for value, below in sorted(at_or_below_counts(values).items(), reverse=True):
        tier = tier_of(below, n, cuts)
        if tier == "high":
            high = value
        elif tier == "medium":
            medium = value
    return high, medium


def tier_from_floors(monetary: Decimal, high_from: Decimal | None, medium_from: Decimal | None) -> str:
    if high_from is not None and monetary >= high_from:
        return "high"
    if medium_from is not None and monetary >= medium_from:
        return "medium"
    return "low"


# --- satisfaction: when a parent is asked how likely they are to recommend us ---------------------


@dataclass(frozen=True)
class SatisfactionSchedule:
    """A campus's rule (PersonaSettings): first after this many lessons attended, then at most
    once every this many days."""

    after_lessons: int = 8
    every_days: int = 90


def satisfaction_due(
    lessons_attended: int,
    last_answered_at: dt.datetime | None,
    now: dt.datetime,
    settings: SatisfactionSchedule,
) -> bool:
    """Whether a child's parents are asked now: once the child has attended the campus's number of
    lessons, and then again only when the last answer about the child is `every_days` old."""
    if lessons_attended < settings.after_lessons:
        return False
    return last_answered_at is None or now - last_answered_at >= dt.timedelta(days=settings.every_days)
