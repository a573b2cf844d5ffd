"""The lead pool (公海): neglected leads return to their campus's pool; consultants claim
from it under the campus rules (DESIGN.md §4, lifecycle.LifecycleSettings).

The rules, as implemented
-------------------------
*Pool-eligible* student: stage lead, consulting or trial, not closed as lost, and no
active contract (checked on the contract table too, so a contract signed before the
engine's recomputation has run still protects the student).

*In the pool*: a pool-eligible student with no owner. A lead captured or imported
without an owner is in the pool from its creation; nothing needs writing for it.

*Neglected* (released by `pool_sweep`): a pool-eligible student with an owner where,
with N = the campus's ``pool_follow_up_days`` and cutoff = now - N days, all of:

1. the owner has logged no consultation with the student since the cutoff;
2. the open follow-up is not holding the lead: ``next_follow_up_at`` is empty or was
   due before the cutoff (overdue by more than N days; a follow-up planned for next
   month keeps the lead);
3. the ownership is older than the window: the student was created before the cutoff
   and not claimed from the pool since (a fresh lead or a fresh claim gets N full days);
4. no trial lesson (booked or attended) is scheduled since the cutoff (a trial coming up
   or just taken is follow-up in progress).

A release clears the owner and the open follow-up (it was the former owner's plan),
writes a ``released`` PoolEvent naming the former owner and the reason, and is audited.

*Claiming* (`pool_claim`): a front-desk consultant or manager of the student's campus
claims a student in the pool. Refused with a ValidationError, each with its own code:
``not_in_pool`` (owned already, or no longer a lead), ``daily_limit`` (the claimer has
made ``pool_daily_claim_limit`` claims today, counted from ``claimed`` PoolEvents in the
campus day, Asia/Shanghai; 0 disables claiming), ``reclaim_wait`` (the lead was released
from this claimer less than ``pool_reclaim_wait_days`` ago). The claim sets the owner and,
when no later follow-up is planned, a follow-up due now, so the lead is on the claimer's
list today. The limit applies to managers too.

Race safety: the claimer's user row is locked before counting, so one person's parallel
claims cannot exceed the limit; the student is taken with a conditional
``UPDATE ... WHERE owner IS NULL`` whose row count decides who won.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from psycopg import sql

from crm.models import (
    AuditAction,
    Consultation,
    Contract,
    ContractStatus,
    Role,
    Stage,
    Student,
    StudentStage,
    TrialLesson,
    TrialStatus,
    User,
)
from crm.roles import require_campus, require_role
from crm.selectors import students_visible_to
from crm.services.audit import audit
from crm.services.owners import owner_check
from lifecycle.models import LifecycleSettings, PoolEvent

POOL_STAGES = (Stage.LEAD, Stage.CONSULTING, Stage.TRIAL)
# Campuses share the institution's time zone; "today" for the claim limit is a day there.
CAMPUS_TIME_ZONE = ZoneInfo(settings.TIME_ZONE)
_DEFAULTS = LifecycleSettings()


def campus_settings(campus_id: int) -> LifecycleSettings:
    """The campus's thresholds, or the defaults when none were saved."""
    found = LifecycleSettings.objects.filter(campus_id=campus_id).first()
    return found or LifecycleSettings(campus_id=campus_id)


def pool_eligible(students: QuerySet[Student]) -> QuerySet[Student]:
    """Students a pool may hold: open leads without an active contract."""
    active_contract = Contract.objects.filter(student=OuterRef("pk"), status=ContractStatus.ACTIVE)
    # The stage as a subquery, not a join: the claim's conditional UPDATE must stay an UPDATE of
    # the student row alone, so that a second claimer blocked on the row re-checks `owner IS NULL`
    # against the winner's write (with a join, Django moves every condition into a subquery
    # read from the statement's snapshot, and both claims would pass).
    open_lead = StudentStage.objects.filter(student=OuterRef("pk"), stage__in=POOL_STAGES)
    return students.filter(Exists(open_lead), lost_at__isnull=True).exclude(Exists(active_contract))


def pool_students(campus_id: int | None = None) -> QuerySet[Student]:
    """The pool: eligible students with no owner (of one campus, or of all)."""
    students = Student.objects.filter(owner__isnull=True)
    if campus_id is not None:
        students = students.filter(campus_id=campus_id)
    return pool_eligible(students)


def neglected_condition(cutoff: dt.datetime) -> Q:
    """Owned and not followed up since `cutoff` (rules 1-4 of the module docstring)."""
    owner_consulted = Consultation.objects.filter(
        student=OuterRef("pk"), consultant=OuterRef("owner"), consulted_at__gte=cutoff
    )
    recent_trial = TrialLesson.objects.filter(
        student=OuterRef("pk"), status__in=[TrialStatus.BOOKED, TrialStatus.ATTENDED], scheduled_at__gte=cutoff
    )
    recent_claim = PoolEvent.objects.filter(student=OuterRef("pk"), kind=PoolEvent.Kind.CLAIMED, at__gte=cutoff)
    return Q(
        Q(next_follow_up_at__isnull=True) | Q(next_follow_up_at__lt=cutoff),
        ~Exists(owner_consulted),
        ~Exists(recent_trial),
        ~Exists(recent_claim),
        owner__isnull=False,
        created_at__lt=cutoff,
    )


def neglected_leads(now: dt.datetime) -> QuerySet[Student]:
    """Every campus's neglected leads, each campus with its own follow-up window: one query,
    campuses grouped by their window (there are few distinct windows)."""
    windows: dict[int, list[int]] = defaultdict(list)
    for campus_id, days in LifecycleSettings.objects.values_list("campus_id", "pool_follow_up_days"):
        windows[days].append(campus_id)
    configured = [campus_id for ids in windows.values() for campus_id in ids]
    default_days = _DEFAULTS.pool_follow_up_days
    condition = ~Q(campus_id__in=configured) & neglected_condition(now - dt.timedelta(days=default_days))
    for days, campus_ids in windows.items():
        condition |= Q(campus_id__in=campus_ids) & neglected_condition(now - dt.timedelta(days=days))
    return pool_eligible(Student.objects.filter(condition))


# The sweep's release, set-based: {candidates} is the ORM's query of `neglected_leads` (rules 1-4
# and pool_eligible), so the rules are said once, in Python.
SWEEP_SQL = sql.SQL("""
WITH
-- neglected_leads(now): the owned, pool-eligible students nobody followed up, with the owner and
-- updated_at they were read with.
candidates AS ({candidates})
-- The release: owner and open follow-up cleared, only where the row still holds what the
-- candidate was read with (a consultation logged or a claim meanwhile keeps the lead).
UPDATE {students} AS s SET owner_id = NULL, next_follow_up_at = NULL, updated_at = %s
FROM candidates AS c
WHERE s.id = c.id AND s.owner_id = c.owner_id AND s.updated_at = c.updated_at
RETURNING s.id, c.owner_id, s.campus_id
""")


def _release_reason(days: int) -> str:
    return _("No follow-up by the owner for %(days)s days") % {"days": days}


@transaction.atomic
def pool_sweep(*, now: dt.datetime | None = None) -> list[int]:
    """Return every campus's neglected leads to its pool; the ids released, sorted.

    Set-based: on PostgreSQL one ``UPDATE ... FROM (candidates) ... RETURNING`` clears the
    owners and hands back each student's former owner, then the PoolEvents and one audit
    entry are written in bulk. A rerun releases nothing new (a released lead has no owner).

    A student written to while the sweep runs (a consultation logged, a claim) is skipped:
    the update only touches rows whose owner and ``updated_at`` are still those the
    candidates were read with; if still neglected, the next run takes it.
    """
    now = now or timezone.now()
    candidates = neglected_leads(now).values("id", "owner_id", "updated_at", "campus_id")
    released: list[tuple[int, int, int]]  # (student, former owner, campus)
    if connection.vendor == "postgresql":
        compiled, params = candidates.query.sql_with_params()
        statement = SWEEP_SQL.format(
            candidates=sql.SQL(compiled),  # compiled by the ORM from neglected_leads, with its parameters
            students=sql.Identifier(Student._meta.db_table),
        )
        with connection.cursor() as cursor:
            cursor.execute(statement, [*params, now])
            released = [(row[0], row[1], row[2]) for row in cursor.fetchall()]
    else:
        # SQLite (the embedded default) has one writer at a time: a write after this read in
        # the same transaction fails rather than overwriting a concurrent change.
        rows = list(candidates)
        for start in range(0, len(rows), 500):
            ids = [row["id"] for row in rows[start : start + 500]]
            Student.objects.filter(pk__in=ids).update(owner=None, next_follow_up_at=None, updated_at=now)
        released = [(row["id"], row["owner_id"], row["campus_id"]) for row in rows]
    if not released:
        return []
    days_by_campus = dict(LifecycleSettings.objects.values_list("campus_id", "pool_follow_up_days"))
    PoolEvent.objects.bulk_create(
        [
            PoolEvent(
                student_id=student_id,
                kind=PoolEvent.Kind.RELEASED,
                user_id=owner_id,
                reason=_release_reason(days_by_campus.get(campus_id, _DEFAULTS.pool_follow_up_days)),
                at=now,
            )
            for student_id, owner_id, campus_id in released
        ]
    )
    audit(actor=None, action=AuditAction.POOL_SWEEP, released=len(released))
    return sorted(student_id for student_id, _owner, _campus in released)


def campus_day_start(now: dt.datetime) -> dt.datetime:
    """Midnight of `now`'s day in the campus time zone."""
    local = now.astimezone(CAMPUS_TIME_ZONE)
    return dt.datetime.combine(local.date(), dt.time.min, tzinfo=CAMPUS_TIME_ZONE)


def claims_today(*, user: User, now: dt.datetime | None = None) -> int:
    now = now or timezone.now()
    return PoolEvent.objects.filter(user=user, kind=PoolEvent.Kind.CLAIMED, at__gte=campus_day_start(now)).count()


def _refuse(code: str, message: str) -> ValidationError:
    return ValidationError(message, code=code)


@transaction.atomic
def pool_claim(*, actor: User, student: Student, now: dt.datetime | None = None) -> Student:
    """Claim a lead from the campus pool for `actor` (rules in the module docstring).

    Two claimers of one lead at the same instant: the conditional update lets exactly one
    through; the other gets ``not_in_pool`` naming who took it. One claimer's parallel
    claims queue on their own user row, so the daily limit holds.
    """
    require_role(actor, Role.FRONT_DESK, Role.MANAGER)
    require_campus(actor, student.campus_id)
    owner_check(actor, student.campus_id)
    now = now or timezone.now()
    rules = campus_settings(student.campus_id)
    # Serialise this claimer's claims: count, then claim, with no parallel claim in between.
    User.objects.select_for_update().filter(pk=actor.pk).values_list("pk").get()

    current = pool_eligible(Student.objects.filter(pk=student.pk)).select_related("owner").first()
    if current is None:
        raise _refuse("not_in_pool", _("%(name)s is no longer an open lead.") % {"name": student.name})
    if current.owner_id is not None:
        raise _not_in_pool_owned(current, actor)

    wait = dt.timedelta(days=rules.pool_reclaim_wait_days)
    released_from_actor = (
        PoolEvent.objects.filter(student=student, kind=PoolEvent.Kind.RELEASED, user=actor, at__gt=now - wait)
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )
    if released_from_actor is not None:
        local = timezone.localtime(released_from_actor)
        raise _refuse(
            "reclaim_wait",
            _(
                "%(name)s returned to the pool from you on %(released)s; "
                "a former owner may claim them again from %(again)s."
            )
            % {
                "name": student.name,
                "released": local.strftime("%Y-%m-%d"),
                "again": (local + wait).strftime("%Y-%m-%d %H:%M"),
            },
        )

    claimed = claims_today(user=actor, now=now)
    if claimed >= rules.pool_daily_claim_limit:
        raise _refuse(
            "daily_limit",
            _("You have claimed %(count)s leads today; this campus allows %(limit)s a day. Try again tomorrow.")
            % {"count": claimed, "limit": rules.pool_daily_claim_limit},
        )

    # The claim itself: one conditional update; its row count says whether we won. The lead is
    # due today unless a later follow-up is already planned.
    due_now = Q(next_follow_up_at__isnull=True) | Q(next_follow_up_at__lt=now)
    taken = (
        pool_students()
        .filter(pk=student.pk)
        .update(
            owner=actor,
            updated_at=now,
            next_follow_up_at=Case(When(due_now, then=Value(now)), default=F("next_follow_up_at")),
        )
    )
    if not taken:
        winner = Student.objects.select_related("owner").get(pk=student.pk)
        if winner.owner_id is not None:
            raise _not_in_pool_owned(winner, actor)
        raise _refuse("not_in_pool", _("%(name)s is no longer an open lead.") % {"name": student.name})
    PoolEvent.objects.create(student_id=student.pk, kind=PoolEvent.Kind.CLAIMED, user=actor, at=now)
    audit(actor=actor, action=AuditAction.POOL_CLAIM, student=student)
    return Student.objects.select_related("owner").get(pk=student.pk)


def _not_in_pool_owned(student: Student, actor: User) -> ValidationError:
    if student.owner_id == actor.pk:
        return _refuse("not_in_pool", _("%(name)s is already yours.") % {"name": student.name})
    return _refuse(
        "not_in_pool", _("%(name)s was claimed by %(owner)s first.") % {"name": student.name, "owner": student.owner}
    )


@transaction.atomic
def pool_release(*, actor: User, student: Student, reason: str, now: dt.datetime | None = None) -> Student:
    """Give a lead back to the campus pool. A consultant gives back their own leads; a
    manager any lead of the campus. The former owner then waits to reclaim it."""
    require_role(actor, Role.FRONT_DESK, Role.MANAGER)
    require_campus(actor, student.campus_id)
    now = now or timezone.now()
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": _("Say why the lead goes back to the pool.")}, code="required")
    locked = Student.objects.select_for_update().filter(pk=student.pk).first()
    if locked is None or not pool_eligible(Student.objects.filter(pk=student.pk)).exists():
        raise _refuse("not_a_lead", _("Only open leads (lead, consulting, trial) go to the pool."))
    if locked.owner_id is None:
        raise _refuse("not_owned", _("%(name)s is already in the pool.") % {"name": locked.name})
    if actor.role == Role.FRONT_DESK and locked.owner_id != actor.pk:
        raise _refuse("not_yours", _("Only the owner or a manager can give %(name)s back.") % {"name": locked.name})
    former_owner_id = locked.owner_id
    Student.objects.filter(pk=locked.pk).update(owner=None, next_follow_up_at=None, updated_at=now)
    PoolEvent.objects.create(
        student_id=locked.pk,
        kind=PoolEvent.Kind.RELEASED,
        user_id=former_owner_id,
        reason=(_("Given back by %(actor)s: %(reason)s") % {"actor": actor, "reason": reason})[:200],
        at=now,
    )
    audit(actor=actor, action=AuditAction.POOL_RELEASE, student=locked, former_owner=former_owner_id, reason=reason)
    locked.refresh_from_db()
    return locked


# Reads. The pool page's query sits beside the pool's definition (`pool_students`) so the
# page and the rules cannot drift apart; it moves to lifecycle's selectors when they exist.


def pool_list_for(*, viewer: User) -> QuerySet[Student]:
    """The pool as the viewer may see it (their campus; an administrator every campus),
    newest arrivals first, each row with when it entered the pool, who held it last and the
    last consultation. Former owners are fetched for a page at once by `former_owners`."""
    students = pool_eligible(students_visible_to(viewer).filter(owner__isnull=True))
    last_release = PoolEvent.objects.filter(student=OuterRef("pk"), kind=PoolEvent.Kind.RELEASED).order_by("-at", "-pk")
    last_consultation = Consultation.objects.filter(student=OuterRef("pk")).order_by("-consulted_at", "-pk")
    return (
        students.select_related("campus", "pipeline")
        .annotate(
            released_at=Subquery(last_release.values("at")[:1]),
            former_owner_id=Subquery(last_release.values("user_id")[:1]),
            release_reason=Subquery(last_release.values("reason")[:1]),
            last_content=Subquery(last_consultation.values("content")[:1]),
            last_consulted_at=Subquery(last_consultation.values("consulted_at")[:1]),
        )
        .annotate(entered_at=Coalesce("released_at", "created_at"))
        .order_by("-entered_at", "-pk")
    )


def former_owners(students: list[Student]) -> dict[int, User]:
    """The former owners named on a page of `pool_list_for`, in one query."""
    ids = {s.former_owner_id for s in students if getattr(s, "former_owner_id", None)}  # type: ignore[attr-defined]
    return User.objects.in_bulk(ids) if ids else {}
