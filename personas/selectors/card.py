"""The persona card of one student.

`persona_card` runs a constant number of queries whatever the student's history: the student
row with their stage, flags' inputs, profile, campus thresholds and journey dates (subqueries on
the (student, time) indexes); their family, tags and contracts; one page of the timeline (one
UNION ALL of every kind of touch, each branch cut to the page's depth before the merge, then one
query per kind for that page's rows); the weekly attendance of the chart; the parents'
satisfaction figures (one query). A student with 5,000 lessons opens as fast as one with 5.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import CharField, Count, F, OuterRef, Prefetch, QuerySet, Subquery, Value
from django.db.models.functions import TruncWeek
from django.http import Http404
from django.utils import timezone
from django.utils.dates import WEEKDAYS
from django.utils.translation import gettext_lazy as _

from crm.models import (
    Attendance,
    AttendanceStatus,
    Consultation,
    Contract,
    ContractStatus,
    Guardian,
    Student,
    StudentTag,
    TrialLesson,
    TrialStatus,
    User,
)
from crm.selectors import student_get, students_visible_to
from lifecycle.filters import Flag
from lifecycle.models import LifecycleSettings, StageChange
from lifecycle.reasons import flag_reasons, stage_reason_label
from lifecycle.rules import Thresholds
from lifecycle.services.facts import thresholds_of
from personas.models import (
    StudentProfile,
)
from personas.next_action import ActionFacts, NextAction, next_action_for
from personas.selectors.satisfaction import SatisfactionFigures, satisfaction_figures

TIMELINE_PAGE_SIZE = 20
# The attendance chart: this many weeks, the current one last.
CHART_WEEKS = 12
# An offset this deep is refused (a person pages back 20 at a time; 250 pages are 5,000 touches):
# each branch of the timeline's union reads up to the page's depth.
MAX_TIMELINE_PAGE = 250


class TouchKind:
    CONSULTATION = "consultation"
    TRIAL = "trial"
    CONTRACT = "contract"
    REFUND = "refund"
    ATTENDANCE = "attendance"
    STAGE = "stage"
    CREATED = "created"
    LOST = "lost"


@dataclass
class TimelineEntry:
    at: dt.datetime
    kind: str
    obj: Any


@dataclass
class TimelinePage:
    entries: list[TimelineEntry]
    number: int
    has_older: bool

    @property
    def older(self) -> int | None:
        return self.number + 1 if self.has_older else None


@dataclass
class CardFlag:
    code: str
    label: str


@dataclass
class JourneyStep:
    code: str
    label: str
    at: dt.datetime | None
    days_after_previous: int | None = None  # days since the previous step reached


@dataclass
class AttendanceWeek:
    week: dt.date  # its Monday
    present: int = 0
    absent: int = 0
    leave: int = 0


JOURNEY_LABELS = {
    "first_touch": _("First touch"),
    "consultation": _("First consultation"),
    "trial": _("First trial lesson"),
    "contract": _("First contract"),
    "lesson": _("First lesson"),
    "feedback": _("First feedback"),
    "renewal": _("Renewal"),
    "referral": _("Referral made"),
}


@dataclass
class PersonaCard:
    student: Student
    guardians: list[Guardian]
    siblings: list[Student]
    tags: list[StudentTag]
    contracts: list[Contract]
    hours_left: Decimal
    days_in_stage: int
    stage_reason: str
    flags: list[CardFlag]
    flag_reasons: list[str]
    profile: StudentProfile | None
    journey: list[JourneyStep]
    attendance_weeks: list[AttendanceWeek]
    timeline: TimelinePage
    next_action: NextAction | None
    thresholds: Thresholds = field(default_factory=Thresholds)
    # The feedback dimension's parents' side, beside the teachers' ratings on the profile.
    satisfaction: SatisfactionFigures = field(default_factory=lambda: SatisfactionFigures(latest=None))

    @property
    def preferred_weekday_label(self) -> str:
        p = self.profile
        return str(WEEKDAYS[p.preferred_weekday - 1]) if p and p.preferred_weekday else ""

    @property
    def tenure_days(self) -> int | None:
        p = self.profile
        return (timezone.now() - p.first_signed_at).days if p and p.first_signed_at else None

    @property
    def journey_now(self) -> JourneyStep | None:
        """The last step reached: where the student stands on the journey."""
        reached = [s for s in self.journey if s.at is not None]
        return reached[-1] if reached else None

    @property
    def chart(self) -> dict[str, Any]:
        """The charts' data, for json_script."""
        p = self.profile
        return {
            "weeks": [w.week.strftime("%m-%d") for w in self.attendance_weeks],
            "present": [w.present for w in self.attendance_weeks],
            "absent": [w.absent for w in self.attendance_weeks],
            "leave": [w.leave for w in self.attendance_weeks],
            "labels": {
                "present": str(AttendanceStatus.PRESENT.label),
                "absent": str(AttendanceStatus.ABSENT.label),
                "leave": str(AttendanceStatus.LEAVE.label),
            },
            "rfm": [p.r_score, p.f_score, p.m_score] if p and p.r_score else [],
        }


def _first(rows: QuerySet[Any], order: str) -> Subquery:
    """The earliest `order` of the rows (OuterRef to the student): one index probe."""
    return Subquery(rows.order_by(order).values(order)[:1])


def _student_row(viewer: User, student_id: int, now: dt.datetime) -> Student:
    visible = students_visible_to(viewer)
    not_cancelled_trials = TrialLesson.objects.filter(student=OuterRef("pk")).exclude(status=TrialStatus.CANCELLED)
    student = (
        visible.select_related(
            "campus__lifecycle_settings", "owner", "referrer", "pipeline", "activity", "profile", "created_by"
        )
        .prefetch_related(
            Prefetch(
                "guardians",
                queryset=Guardian.objects.order_by("pk").prefetch_related(
                    Prefetch(
                        "students",
                        queryset=visible.select_related("pipeline").only("id", "name", "pipeline__stage"),
                        to_attr="visible_children",
                    )
                ),
            ),
            Prefetch("student_tags", queryset=StudentTag.objects.select_related("tag__group").order_by("tag_id")),
            Prefetch("contracts", queryset=Contract.objects.select_related("course").order_by("signed_at", "pk")),
        )
        .annotate(
            first_consultation_at=_first(Consultation.objects.filter(student=OuterRef("pk")), "consulted_at"),
            # The journey's trial step is a trial held (attended), not one booked for next week.
            first_trial_at=_first(not_cancelled_trials.filter(status=TrialStatus.ATTENDED), "scheduled_at"),
            last_consulted_at=Subquery(
                Consultation.objects.filter(student=OuterRef("pk")).order_by("-consulted_at").values("consulted_at")[:1]
            ),
            last_trial_at=Subquery(
                not_cancelled_trials.filter(scheduled_at__lte=now).order_by("-scheduled_at").values("scheduled_at")[:1]
            ),
            first_lesson_at=_first(
                Attendance.objects.filter(student=OuterRef("pk"), status=AttendanceStatus.PRESENT), "lesson_at"
            ),
            first_trial_feedback_at=_first(
                TrialLesson.objects.filter(student=OuterRef("pk"), rating__isnull=False, feedback_at__isnull=False),
                "feedback_at",
            ),
            first_lesson_feedback_at=_first(
                Attendance.objects.filter(student=OuterRef("pk")).exclude(feedback=""), "lesson_at"
            ),
            first_referral_at=_first(Student.objects.filter(referrer=OuterRef("pk")), "created_at"),
            stage_reason_code=Subquery(
                StageChange.objects.filter(student=OuterRef("pk")).order_by("-changed_at", "-pk").values("reason")[:1]
            ),
        )
        .filter(pk=student_id)
        .first()
    )
    if student is None:
        raise Http404  # another campus's student does not exist for the viewer
    return student


def _journey(student: Any, contracts: list[Contract]) -> list[JourneyStep]:
    signed = [c.signed_at for c in contracts if c.status != ContractStatus.CANCELLED]
    feedback = [d for d in (student.first_trial_feedback_at, student.first_lesson_feedback_at) if d]
    dates = {
        "first_touch": student.created_at,
        "consultation": student.first_consultation_at,
        "trial": student.first_trial_at,
        "contract": signed[0] if signed else None,
        "lesson": student.first_lesson_at,
        "feedback": min(feedback) if feedback else None,
        "renewal": signed[1] if len(signed) > 1 else None,
        "referral": student.first_referral_at,
    }
    steps: list[JourneyStep] = []
    previous: dt.datetime | None = None
    for code, at in dates.items():
        step = JourneyStep(code, str(JOURNEY_LABELS[code]), at)
        if at is not None:
            if previous is not None:
                step.days_after_previous = max((at - previous).days, 0)
            previous = at
        steps.append(step)
    return steps


def _branch(rows: QuerySet[Any], kind: str, at: str, depth: int) -> QuerySet[Any]:
    """The newest `depth` rows of one kind, as (at, kind, id). The cut is an IN over a LIMIT
    subquery, a probe of the (student, time) index: SQLite refuses a LIMIT on a branch of a
    compound statement itself, and the embedded default runs on SQLite."""
    newest = rows.order_by(f"-{at}", "-pk").values("pk")[:depth]
    return (
        rows.model._default_manager.filter(pk__in=newest)
        .annotate(t_at=F(at), t_kind=Value(kind, output_field=CharField()), t_id=F("pk"))
        .values_list("t_at", "t_kind", "t_id")
        .order_by()
    )


def timeline_page(student: Student, number: int, contracts: list[Contract] | None = None) -> TimelinePage:
    """One page of every touch, newest first. Each branch of the union reads at most the page's
    depth from its (student, time) index, so page 1 costs the same for 5 touches or 5,000."""
    number = min(max(number, 1), MAX_TIMELINE_PAGE)
    start = (number - 1) * TIMELINE_PAGE_SIZE
    depth = start + TIMELINE_PAGE_SIZE + 1
    sid = student.pk
    me = Student.objects.filter(pk=sid)
    branches = [
        _branch(Consultation.objects.filter(student_id=sid), TouchKind.CONSULTATION, "consulted_at", depth),
        _branch(TrialLesson.objects.filter(student_id=sid), TouchKind.TRIAL, "scheduled_at", depth),
        _branch(Contract.objects.filter(student_id=sid), TouchKind.CONTRACT, "signed_at", depth),
        _branch(
            Contract.objects.filter(student_id=sid, refunded_at__isnull=False), TouchKind.REFUND, "refunded_at", depth
        ),
        _branch(Attendance.objects.filter(student_id=sid), TouchKind.ATTENDANCE, "lesson_at", depth),
        _branch(StageChange.objects.filter(student_id=sid), TouchKind.STAGE, "changed_at", depth),
        _branch(me, TouchKind.CREATED, "created_at", 1),
        _branch(me.filter(lost_at__isnull=False), TouchKind.LOST, "lost_at", 1),
    ]
    # On a tie the stage change sorts above the fact that caused it ("stage" > "contract").
    merged = branches[0].union(*branches[1:], all=True).order_by("-t_at", "-t_kind", "-t_id")
    rows = list(merged[start:depth])
    # The last page offered says so: a page past it would show this one again.
    has_older = len(rows) > TIMELINE_PAGE_SIZE and number < MAX_TIMELINE_PAGE
    rows = rows[:TIMELINE_PAGE_SIZE]
    ids: dict[str, list[int]] = defaultdict(list)
    for _at, kind, pk in rows:
        ids[kind].append(pk)
    # One query per kind, run even when the page holds none of it (pk 0 never exists), so the
    # card's query count does not depend on what the page happens to hold.
    objects: dict[str, dict[int, Any]] = {
        TouchKind.CONSULTATION: Consultation.objects.select_related("consultant").in_bulk(
            ids[TouchKind.CONSULTATION] or [0]
        ),
        TouchKind.TRIAL: TrialLesson.objects.select_related("course", "teacher").in_bulk(ids[TouchKind.TRIAL] or [0]),
        TouchKind.ATTENDANCE: Attendance.objects.select_related("teacher", "contract__course").in_bulk(
            ids[TouchKind.ATTENDANCE] or [0]
        ),
        TouchKind.STAGE: StageChange.objects.select_related("actor").in_bulk(ids[TouchKind.STAGE] or [0]),
        TouchKind.CREATED: {sid: student},
        TouchKind.LOST: {sid: student},
    }
    if contracts is None:
        contracts = list(Contract.objects.select_related("course").filter(student_id=sid))
    objects[TouchKind.CONTRACT] = objects[TouchKind.REFUND] = {c.pk: c for c in contracts}
    entries = [TimelineEntry(at, kind, objects[kind][pk]) for at, kind, pk in rows if pk in objects[kind]]
    for entry in entries:
        if entry.kind == TouchKind.STAGE:
            entry.obj.reason_label = stage_reason_label(entry.obj.reason)
    return TimelinePage(entries, number, has_older)


def timeline_for(*, viewer: User, student_id: int, page: int) -> tuple[Student, TimelinePage]:
    """A further page of the timeline alone (the card's "older" button)."""
    student = student_get(viewer=viewer, student_id=student_id)
    return student, timeline_page(student, page)


def _attendance_weeks(student_id: int, now: dt.datetime) -> list[AttendanceWeek]:
    today = timezone.localdate(now)
    first_monday = today - dt.timedelta(days=today.weekday(), weeks=CHART_WEEKS - 1)
    mondays = [first_monday + dt.timedelta(weeks=i) for i in range(CHART_WEEKS)]
    weeks = {monday: AttendanceWeek(monday) for monday in mondays}
    since = timezone.make_aware(dt.datetime.combine(first_monday, dt.time.min))
    counts = (
        Attendance.objects.filter(student_id=student_id, lesson_at__gte=since, lesson_at__lte=now)
        .annotate(week=TruncWeek("lesson_at"))
        .values_list("week", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for week, status, n in counts:
        day = week.date() if isinstance(week, dt.datetime) else week
        row = weeks.get(day)
        if row is not None and status in (AttendanceStatus.PRESENT, AttendanceStatus.ABSENT, AttendanceStatus.LEAVE):
            setattr(row, status, n)
    return list(weeks.values())


def _thresholds(student: Student) -> Thresholds:
    try:
        return thresholds_of(student.campus.lifecycle_settings)
    except LifecycleSettings.DoesNotExist:
        return Thresholds()


def persona_card(*, viewer: User, student_id: int, page: int = 1, now: dt.datetime | None = None) -> PersonaCard:
    """The persona card of a student the viewer may see (another campus's student is a 404)."""
    now = now or timezone.now()
    student: Any = _student_row(viewer, student_id, now)
    guardians = list(student.guardians.all())
    siblings = {c.pk: c for g in guardians for c in g.visible_children if c.pk != student.pk}
    contracts = list(student.contracts.all())
    active = [c for c in contracts if c.status == ContractStatus.ACTIVE]
    hours_left = sum((c.hours_remaining for c in active), start=Decimal("0"))
    thresholds = _thresholds(student)
    stage_row = student.stage_row()
    profile: StudentProfile | None = getattr(student, "profile", None)
    activity = getattr(student, "activity", None)
    labels = dict(Flag.choices)
    flags = [
        CardFlag(code, str(labels[code]))
        for code, on in ((Flag.AT_RISK, stage_row.at_risk), (Flag.RENEWAL_DUE, stage_row.renewal_due))
        if on
    ]
    signed = [c.signed_at for c in contracts if c.status != ContractStatus.CANCELLED]
    action = next_action_for(
        ActionFacts(
            now=now,
            stage=stage_row.stage,
            at_risk=stage_row.at_risk,
            renewal_due=stage_row.renewal_due,
            hours_left=hours_left if active else None,
            renewal_hours=thresholds.renewal_hours,
            value_tier=profile.value_tier if profile else "",
            last_trial_at=student.last_trial_at,
            last_signed_at=max(signed, default=None),
            last_consulted_at=student.last_consulted_at,
        )
    )
    return PersonaCard(
        student=student,
        guardians=guardians,
        siblings=list(siblings.values()),
        tags=list(student.student_tags.all()),
        contracts=contracts,
        hours_left=hours_left,
        days_in_stage=student.days_in_stage(now),
        stage_reason=stage_reason_label(student.stage_reason_code) if student.stage_reason_code else "",
        flags=flags,
        flag_reasons=flag_reasons(stage_row, activity, thresholds),
        profile=profile,
        journey=_journey(student, contracts),
        attendance_weeks=_attendance_weeks(student.pk, now),
        timeline=timeline_page(student, page, contracts),
        next_action=action,
        thresholds=thresholds,
        satisfaction=satisfaction_figures(student.pk),
    )
