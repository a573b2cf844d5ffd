"""The lead pool's rules: the nightly sweep with a fixed clock, claiming under the campus
rules (daily limit, reclaim wait), giving a lead back, the task, and two claimers at once
on PostgreSQL."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from celery.exceptions import Retry
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from crm.models import AuditEntry, Campus, ContractStatus, Stage, Student, User
from crm.selectors import followups_for
from lifecycle.models import LifecycleSettings, PoolEvent
from lifecycle.services import pool as pool_services
from lifecycle.services.pool import pool_claim, pool_release, pool_students, pool_sweep
from lifecycle.tasks.pool import pool_sweep as pool_sweep_task
from tests import factories
from tests.concurrency import race

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2025, 3, 20, 10, 0, tzinfo=SHANGHAI)


def days_ago(days: float, now: dt.datetime = NOW) -> dt.datetime:
    return now - dt.timedelta(days=days)


def lead(
    campus: Campus,
    owner: User | None = None,
    *,
    created: dt.datetime | None = None,
    stage: str = Stage.CONSULTING,
    next_follow_up_at: dt.datetime | None = None,
    **fields: Any,
) -> Student:
    student = factories.StudentFactory(
        campus=campus, owner=owner, stage=stage, next_follow_up_at=next_follow_up_at, **fields
    )
    # created_at is auto_now_add: set the past through an update.
    Student.objects.filter(pk=student.pk).update(created_at=created or days_ago(60))
    student.refresh_from_db()
    return student


def consulted(student: Student, by: User, at: dt.datetime) -> None:
    factories.ConsultationFactory(student=student, consultant=by, consulted_at=at)


def error_code(exc: ValidationError) -> str | None:
    return exc.error_list[0].code


def claim_refused(**kwargs: Any) -> str | None:
    with pytest.raises(ValidationError) as caught:
        pool_claim(**kwargs)
    return error_code(caught.value)


@pytest.mark.django_db
class TestSweep:
    def test_unowned_lead_is_in_the_pool_without_a_release(self, campus_a: Campus) -> None:
        student = lead(campus_a)
        assert list(pool_students(campus_a.pk)) == [student]
        assert pool_sweep(now=NOW) == []
        assert not PoolEvent.objects.exists()

    def test_neglected_lead_is_released_with_its_former_owner(self, campus_a: Campus, front_desk: User) -> None:
        student = lead(campus_a, front_desk, next_follow_up_at=days_ago(8))
        consulted(student, front_desk, days_ago(9))

        assert pool_sweep(now=NOW) == [student.pk]

        student.refresh_from_db()
        assert student.owner is None and student.next_follow_up_at is None
        event = PoolEvent.objects.get()
        assert (event.student, event.kind, event.user, event.at) == (student, "released", front_desk, NOW)
        assert "7" in event.reason
        assert AuditEntry.objects.filter(action="pool_sweep", detail__released="1").exists()
        assert list(pool_students(campus_a.pk)) == [student]

    def test_never_consulted_owned_lead_is_released(self, campus_a: Campus, front_desk: User) -> None:
        student = lead(campus_a, front_desk, stage=Stage.LEAD, created=days_ago(8))
        assert pool_sweep(now=NOW) == [student.pk]

    @pytest.mark.parametrize(
        "kept_by",
        [
            "owner_consulted_recently",
            "follow_up_planned",
            "follow_up_overdue_less_than_window",
            "fresh_lead",
            "claimed_recently",
            "trial_coming_up",
        ],
    )
    def test_a_lead_followed_up_within_the_window_is_kept(
        self, kept_by: str, campus_a: Campus, front_desk: User, teacher: User
    ) -> None:
        student = lead(campus_a, front_desk)
        consulted(student, front_desk, days_ago(30))
        if kept_by == "owner_consulted_recently":
            consulted(student, front_desk, days_ago(6.9))
        elif kept_by == "follow_up_planned":
            Student.objects.filter(pk=student.pk).update(next_follow_up_at=NOW + dt.timedelta(days=20))
        elif kept_by == "follow_up_overdue_less_than_window":
            Student.objects.filter(pk=student.pk).update(next_follow_up_at=days_ago(6))
        elif kept_by == "fresh_lead":
            Student.objects.filter(pk=student.pk).update(created_at=days_ago(2))
        elif kept_by == "claimed_recently":
            PoolEvent.objects.create(student=student, kind="claimed", user=front_desk, at=days_ago(3))
        elif kept_by == "trial_coming_up":
            factories.TrialLessonFactory(
                student=student, teacher=teacher, course=factories.CourseFactory(campus=campus_a), scheduled_at=NOW
            )
        assert pool_sweep(now=NOW) == []
        student.refresh_from_db()
        assert student.owner == front_desk

    def test_a_colleagues_consultation_does_not_count_for_the_owner(
        self, campus_a: Campus, front_desk: User, manager: User
    ) -> None:
        student = lead(campus_a, front_desk)
        consulted(student, manager, days_ago(1))
        assert pool_sweep(now=NOW) == [student.pk]

    @pytest.mark.parametrize("stage", [Stage.ENROLLED, Stage.ACTIVE, Stage.DORMANT, Stage.CHURNED, Stage.LOST])
    def test_students_past_the_lead_stages_are_never_released(
        self, stage: str, campus_a: Campus, front_desk: User
    ) -> None:
        lead(campus_a, front_desk, stage=stage)
        assert pool_sweep(now=NOW) == []

    def test_an_active_contract_or_a_closed_lead_is_never_released(
        self, campus_a: Campus, front_desk: User, course_a: Any
    ) -> None:
        signed = lead(campus_a, front_desk, stage=Stage.TRIAL)  # the engine has not caught up yet
        factories.ContractFactory(student=signed, course=course_a, status=ContractStatus.ACTIVE)
        lead(campus_a, front_desk, lost_at=days_ago(1), lost_reason="moved away")
        assert pool_sweep(now=NOW) == []

    def test_each_campus_uses_its_own_window(
        self, campus_a: Campus, campus_b: Campus, front_desk: User, front_desk_b: User
    ) -> None:
        LifecycleSettings.objects.create(campus=campus_b, pool_follow_up_days=3)
        in_a = lead(campus_a, front_desk)
        in_b = lead(campus_b, front_desk_b)
        consulted(in_a, front_desk, days_ago(5))
        consulted(in_b, front_desk_b, days_ago(5))

        assert pool_sweep(now=NOW) == [in_b.pk]
        assert "3" in PoolEvent.objects.get().reason
        # Campus A's explicit window of 4 days releases its lead too.
        LifecycleSettings.objects.create(campus=campus_a, pool_follow_up_days=4)
        assert pool_sweep(now=NOW) == [in_a.pk]

    def test_rerun_releases_nothing_new(self, campus_a: Campus, front_desk: User) -> None:
        lead(campus_a, front_desk)
        lead(campus_a, front_desk)
        assert len(pool_sweep(now=NOW)) == 2
        assert pool_sweep(now=NOW) == []
        assert pool_sweep(now=NOW + dt.timedelta(days=30)) == []
        assert PoolEvent.objects.count() == 2

    def test_sweep_runs_a_constant_number_of_queries(self, campus_a: Campus, front_desk: User) -> None:
        def sweep(n: int, now: dt.datetime) -> int:
            for _ in range(n):
                lead(campus_a, front_desk, created=days_ago(60, now))
            with CaptureQueriesContext(connection) as ctx:
                assert len(pool_sweep(now=now)) == n
            return len(ctx.captured_queries)

        # On PostgreSQL: the windows, one UPDATE ... RETURNING, the released campuses' windows,
        # the events, the audit entry, and the savepoint pair of the atomic block.
        assert sweep(2, NOW) == sweep(12, NOW + dt.timedelta(days=1))


@pytest.mark.django_db
class TestTask:
    def test_the_nightly_task_is_registered_and_sweeps(self, campus_a: Campus, front_desk: User) -> None:
        from django.conf import settings

        from config.celery import app

        assert app.tasks["lifecycle.pool_sweep"].queue == "default"
        assert "lifecycle.pool_sweep" in {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
        lead(campus_a, front_desk)
        assert pool_sweep_task.apply().get() == 1
        assert pool_sweep_task.apply().get() == 0  # idempotent

    def test_transient_database_errors_are_retried(self) -> None:
        failure = OperationalError("server closed the connection")
        with (
            mock.patch("lifecycle.tasks.pool.pool_sweep_service", side_effect=failure),
            pytest.raises(Retry) as caught,
        ):
            pool_sweep_task.apply().get()
        assert caught.value.exc is failure and caught.value.when == 30

    def test_other_errors_are_not_retried(self) -> None:
        with (
            mock.patch("lifecycle.tasks.pool.pool_sweep_service", side_effect=ValueError("bug")) as sweep,
            pytest.raises(ValueError),
        ):
            pool_sweep_task.apply().get()
        assert sweep.call_count == 1


@pytest.mark.django_db
class TestClaim:
    def test_claim_makes_the_lead_yours_and_due_today(self, campus_a: Campus, front_desk: User) -> None:
        student = lead(campus_a)
        claimed = pool_claim(actor=front_desk, student=student, now=NOW)
        assert claimed.owner == front_desk and claimed.next_follow_up_at == NOW
        event = PoolEvent.objects.get()
        assert (event.kind, event.user, event.at) == ("claimed", front_desk, NOW)
        assert AuditEntry.objects.filter(action="pool_claim", student=student, actor=front_desk).exists()
        assert student not in pool_students(campus_a.pk)
        result = followups_for(viewer=front_desk, today=NOW.date(), now=NOW)
        assert [s.pk for s in result.today] == [student.pk]

    def test_a_later_planned_follow_up_is_kept(self, campus_a: Campus, front_desk: User) -> None:
        later = NOW + dt.timedelta(days=3)
        student = lead(campus_a, next_follow_up_at=later)
        assert pool_claim(actor=front_desk, student=student, now=NOW).next_follow_up_at == later

    def test_an_owned_lead_cannot_be_claimed(self, campus_a: Campus, front_desk: User, manager: User) -> None:
        student = lead(campus_a, manager)
        with pytest.raises(ValidationError) as caught:
            pool_claim(actor=front_desk, student=student, now=NOW)
        assert error_code(caught.value) == "not_in_pool"
        assert "张校长" in caught.value.messages[0]
        assert claim_refused(actor=manager, student=student, now=NOW) == "not_in_pool"

    def test_a_signed_or_lost_student_cannot_be_claimed(self, campus_a: Campus, front_desk: User) -> None:
        assert claim_refused(actor=front_desk, student=lead(campus_a, stage=Stage.ACTIVE), now=NOW) == "not_in_pool"
        lost = lead(campus_a, lost_at=days_ago(1), lost_reason="x")
        assert claim_refused(actor=front_desk, student=lost, now=NOW) == "not_in_pool"

    def test_only_front_office_of_the_campus_may_claim(
        self, campus_a: Campus, teacher: User, front_desk_b: User, manager_b: User
    ) -> None:
        student = lead(campus_a)
        for actor in (teacher, front_desk_b, manager_b):
            with pytest.raises(PermissionDenied):
                pool_claim(actor=actor, student=student, now=NOW)
        assert Student.objects.get(pk=student.pk).owner is None

    def test_daily_limit_counts_the_campus_day(self, campus_a: Campus, front_desk: User, manager: User) -> None:
        LifecycleSettings.objects.create(campus=campus_a, pool_daily_claim_limit=2)
        late = dt.datetime(2025, 3, 20, 23, 30, tzinfo=SHANGHAI)  # 15:30 UTC
        students = [lead(campus_a) for _ in range(4)]
        pool_claim(actor=front_desk, student=students[0], now=late - dt.timedelta(hours=23))
        pool_claim(actor=front_desk, student=students[1], now=late)
        with pytest.raises(ValidationError) as caught:
            pool_claim(actor=front_desk, student=students[2], now=late)
        assert error_code(caught.value) == "daily_limit"
        assert "2" in caught.value.messages[0]
        # A colleague's claims are their own.
        pool_claim(actor=manager, student=students[2], now=late)
        # After midnight in Shanghai (still the 20th in UTC) the count starts again.
        pool_claim(actor=front_desk, student=students[3], now=late + dt.timedelta(hours=1))

    def test_zero_limit_disables_claiming(self, campus_a: Campus, front_desk: User) -> None:
        LifecycleSettings.objects.create(campus=campus_a, pool_daily_claim_limit=0)
        assert claim_refused(actor=front_desk, student=lead(campus_a), now=NOW) == "daily_limit"

    def test_former_owner_waits_to_reclaim(self, campus_a: Campus, front_desk: User, manager: User) -> None:
        student = lead(campus_a, front_desk)
        released_at = days_ago(1)
        assert pool_sweep(now=released_at) == [student.pk]

        with pytest.raises(ValidationError) as caught:
            pool_claim(actor=front_desk, student=student, now=NOW)
        assert error_code(caught.value) == "reclaim_wait"
        assert "2025-03-26" in caught.value.messages[0]  # released 03-19 10:00, waits 7 days
        assert claim_refused(actor=front_desk, student=student, now=released_at + dt.timedelta(days=6.9)) == (
            "reclaim_wait"
        )
        assert pool_claim(actor=front_desk, student=student, now=released_at + dt.timedelta(days=7, minutes=1))

    def test_someone_else_may_claim_at_once(self, campus_a: Campus, front_desk: User, manager: User) -> None:
        student = lead(campus_a, front_desk)
        pool_sweep(now=days_ago(1))
        assert pool_claim(actor=manager, student=student, now=NOW).owner == manager

    def test_per_campus_wait(self, campus_a: Campus, front_desk: User) -> None:
        LifecycleSettings.objects.create(campus=campus_a, pool_reclaim_wait_days=0)
        student = lead(campus_a, front_desk)
        pool_sweep(now=days_ago(1))
        assert pool_claim(actor=front_desk, student=student, now=NOW).owner == front_desk


@pytest.mark.django_db
class TestRelease:
    def test_owner_gives_a_lead_back(self, campus_a: Campus, front_desk: User) -> None:
        student = lead(campus_a, front_desk, next_follow_up_at=NOW)
        released = pool_release(actor=front_desk, student=student, reason="家长说暂时不考虑", now=NOW)
        assert released.owner is None and released.next_follow_up_at is None
        event = PoolEvent.objects.get()
        assert (event.kind, event.user) == ("released", front_desk)
        assert "家长说暂时不考虑" in event.reason
        assert AuditEntry.objects.filter(action="pool_release", student=student).exists()
        # And the former owner waits like after a sweep.
        assert claim_refused(actor=front_desk, student=student, now=NOW + dt.timedelta(days=1)) == "reclaim_wait"

    def test_a_manager_may_give_back_a_consultants_lead(
        self, campus_a: Campus, front_desk: User, manager: User
    ) -> None:
        student = lead(campus_a, front_desk)
        pool_release(actor=manager, student=student, reason="重新分配", now=NOW)
        assert PoolEvent.objects.get().user == front_desk  # the former owner

    def test_refusals(self, campus_a: Campus, front_desk: User, manager: User, teacher: User) -> None:
        theirs = lead(campus_a, manager)
        with pytest.raises(ValidationError) as caught:
            pool_release(actor=front_desk, student=theirs, reason="x")
        assert error_code(caught.value) == "not_yours"
        with pytest.raises(ValidationError) as caught:
            pool_release(actor=manager, student=theirs, reason="  ")
        assert "reason" in caught.value.message_dict
        with pytest.raises(ValidationError) as caught:
            pool_release(actor=manager, student=lead(campus_a), reason="x")
        assert error_code(caught.value) == "not_owned"
        with pytest.raises(ValidationError) as caught:
            pool_release(actor=manager, student=lead(campus_a, manager, stage=Stage.ACTIVE), reason="x")
        assert error_code(caught.value) == "not_a_lead"
        with pytest.raises(PermissionDenied):
            pool_release(actor=teacher, student=theirs, reason="x")
        assert not PoolEvent.objects.exists()


# Two requests at the same instant, each on its own PostgreSQL connection.


def widen_after(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make `pool_services.name` wait, once it returns, for the other racer to get there too:
    without the lock that serialises them, both would pass their checks."""
    original = getattr(pool_services, name)
    checked = threading.Barrier(2)

    def slowed(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        with contextlib.suppress(threading.BrokenBarrierError):
            checked.wait(timeout=0.5)
        return result

    monkeypatch.setattr(pool_services, name, slowed)


@pytest.mark.django_db(transaction=True)
class TestConcurrentClaims:
    @pytest.fixture(autouse=True)
    def _postgresql(self) -> None:
        assert connection.vendor == "postgresql", "run the suite with DATABASE_URL=postgres://..."

    @pytest.mark.parametrize("attempt", range(3))
    def test_two_consultants_claiming_one_lead_one_wins(
        self, attempt: int, campus_a: Campus, front_desk: User, manager: User
    ) -> None:
        student = lead(campus_a)
        outcomes = race(
            lambda: pool_claim(actor=front_desk, student=student),
            lambda: pool_claim(actor=manager, student=student),
        )
        won = [o for o in outcomes if isinstance(o, Student)]
        lost = [o for o in outcomes if isinstance(o, ValidationError)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        assert error_code(lost[0]) == "not_in_pool"
        assert PoolEvent.objects.filter(kind="claimed").count() == 1
        assert Student.objects.get(pk=student.pk).owner == won[0].owner

    @pytest.mark.parametrize("attempt", range(3))
    def test_one_consultants_parallel_claims_respect_the_limit(
        self, attempt: int, monkeypatch: pytest.MonkeyPatch, campus_a: Campus, front_desk: User
    ) -> None:
        LifecycleSettings.objects.create(campus=campus_a, pool_daily_claim_limit=1)
        students = [lead(campus_a), lead(campus_a)]
        widen_after(monkeypatch, "claims_today")
        outcomes = race(*(lambda s=s: pool_claim(actor=front_desk, student=s) for s in students))
        won = [o for o in outcomes if isinstance(o, Student)]
        lost = [o for o in outcomes if isinstance(o, ValidationError)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        assert error_code(lost[0]) == "daily_limit"
        assert PoolEvent.objects.filter(kind="claimed", user=front_desk).count() == 1
