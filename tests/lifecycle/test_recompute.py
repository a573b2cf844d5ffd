"""The recomputation in the database: history, time, events, people, thresholds, the admin."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from decimal import Decimal
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from psycopg import sql

from crm import services
from crm.models import Attendance, Campus, Contract, Course, Student, StudentStage, User
from lifecycle.models import LifecycleSettings, StageChange, StudentActivity
from lifecycle.rules import facts_from_history, local_midnight, stage_for
from lifecycle.services.activity import activity_rebuild_all, activity_refresh
from lifecycle.services.facts import histories_of, settings_ensure, thresholds_by_campus
from lifecycle.services.recompute import (
    HALF_BLOCKS,
    Half,
    _local_midnight,
    _recompute_in_python,
    fixed_offset_span,
    recompute_after_event,
    recompute_campus_now,
    recompute_stages,
)
from lifecycle.tasks.recompute import nightly_recompute
from tests import factories

pytestmark = pytest.mark.django_db

TZ = ZoneInfo("Asia/Shanghai")
T0 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=TZ)


def day(n: float) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


def attending_student(campus: Campus, course: Course, teacher: User, *, last_lesson_day: float) -> Student:
    student = factories.StudentFactory(campus=campus)
    signed = min(-50, int(last_lesson_day) - 10)
    Student.objects.filter(pk=student.pk).update(created_at=day(signed - 10))
    contract = factories.ContractFactory(student=student, course=course, signed_at=day(signed))
    for d in range(signed + 1, int(last_lesson_day) + 1, 7):
        factories.AttendanceFactory(student=student, contract=contract, lesson_at=day(d), teacher=teacher)
    Attendance.objects.filter(student=student).update(lesson_at=day(last_lesson_day))
    return student


def stage_of(student: Student) -> str:
    return StudentStage.objects.values_list("stage", flat=True).get(pk=student.pk)


# --- history ----------------------------------------------------------------------------------


def test_one_history_row_per_real_change_none_on_a_rerun(campus_a: Campus, course_a: Course, teacher: User) -> None:
    student = attending_student(campus_a, course_a, teacher, last_lesson_day=0)
    activity_refresh([student.pk])
    first = recompute_stages([student.pk], now=day(1), source="event")
    assert (first.changed, stage_of(student)) == (1, "active")
    again = recompute_stages([student.pk], now=day(1), source="event")
    nightly = recompute_stages(now=day(1), source="nightly", full=True)
    assert (again.changed, again.rows_written, nightly.changed, nightly.rows_written) == (0, 0, 0, 0)
    change = StageChange.objects.get(student=student)
    assert (change.from_stage, change.to_stage, change.reason, change.source, change.changed_at) == (
        "lead",
        "active",
        "attending",
        "event",
        day(0),  # the lesson that made them active, not the moment the run noticed
    )
    assert Student.objects.get(pk=student.pk).stage_changed_at == day(0)


def test_time_moves_an_attending_student_to_dormant_then_churned_on_the_right_night(
    campus_a: Campus, course_a: Course, teacher: User
) -> None:
    student = attending_student(campus_a, course_a, teacher, last_lesson_day=0)
    activity_refresh([student.pk])
    recompute_stages(now=day(0.5), source="nightly")
    assert stage_of(student) == "active"
    # Nightly runs at 02:00 local, no new facts: active through day 21, dormant from day 22, churned after 60.
    seen = {}
    for night in range(1, 70):
        now = dt.datetime.combine((T0 + dt.timedelta(days=night)).date(), dt.time(2, 0), tzinfo=TZ)
        recompute_stages(now=now, source="nightly")
        seen[night] = stage_of(student)
    assert seen[21] == "active" and seen[22] == "dormant"
    assert seen[60] == "dormant" and seen[61] == "churned"
    history = list(StageChange.objects.filter(student=student).order_by("pk").values_list("to_stage", "source"))
    assert history == [("active", "nightly"), ("dormant", "nightly"), ("churned", "nightly")]
    # Each stage starts when the facts put the student there (the last lesson + 21 / + 60 days),
    # not at the 02:00 run that noticed it.
    starts = list(StageChange.objects.filter(student=student).order_by("pk").values_list("changed_at", flat=True))
    assert starts == [day(0), day(21), day(60)]
    assert Student.objects.get(pk=student.pk).stage_changed_at == day(60)


def test_a_churned_student_who_signs_again_is_won_back(
    campus_a: Campus, course_a: Course, teacher: User, front_desk: User, django_capture_on_commit_callbacks
) -> None:
    student = attending_student(campus_a, course_a, teacher, last_lesson_day=-100)
    activity_refresh([student.pk])
    recompute_stages([student.pk], source="nightly")
    assert stage_of(student) == "churned"
    with django_capture_on_commit_callbacks(execute=True):
        services.contract_sign(
            actor=front_desk,
            student=student,
            course=course_a,
            hours_bought=Decimal(24),
            amount=Decimal(4800),
            paid_amount=Decimal(4800),
        )
    assert stage_of(student) == "enrolled"
    change = StageChange.objects.filter(student=student).latest("changed_at")
    assert (change.from_stage, change.to_stage, change.won_back, change.source) == (
        "churned",
        "enrolled",
        True,
        "event",
    )
    assert StageChange.objects.filter(won_back=True).count() == 1


def test_deleting_a_student_deletes_their_history(campus_a: Campus) -> None:
    """The history has no database foreign key (see StageChange.student): Django's collector
    must still take it with the student, and nothing else's."""
    # Stored as trial with no fact behind it: the engine moves both back to lead.
    student, other = (factories.StudentFactory(campus=campus_a, stage="trial") for _ in range(2))
    activity_refresh([student.pk, other.pk])
    recompute_stages([student.pk, other.pk], now=day(1), source="event")
    assert StageChange.objects.count() == 2
    Student.objects.filter(pk=student.pk).delete()
    assert list(StageChange.objects.values_list("student_id", flat=True)) == [other.pk]


def test_columns_every_decision_rewrites_stay_unindexed() -> None:
    """A decision rewrites a stage row's flags and recheck moment; an index on any column it
    changes would turn every such in-place (HOT) update into a new entry in every index of the
    table. The flags have partial indexes, which only the far rarer flag changes touch; the
    stage has the board's index and nothing else, and never sits on the student row."""
    from django.db import connection

    def indexes(table: str) -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [table])
            return [row[0] for row in cursor.fetchall()]

    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'crm_studentstage'")
        options = cursor.fetchone()[0]
    stage = indexes("crm_studentstage")
    assert not [d for d in stage if any(c in d for c in ("recheck_at", "risk_recent", "risk_before"))], stage
    assert all("WHERE" in d for d in stage if "at_risk" in d or "renewal_due" in d), stage
    assert len([d for d in stage if "(stage" in d or ", stage" in d]) == 1, stage
    assert "fillfactor=80" in (options or []), options
    assert indexes("lifecycle_studentactivity") == [
        "CREATE UNIQUE INDEX lifecycle_studentactivity_pkey ON public.lifecycle_studentactivity USING btree "
        "(student_id)"
    ]
    assert not [d for d in indexes("crm_student") if "stage" in d]


# --- events and people ------------------------------------------------------------------------


def test_a_consultation_logged_moves_a_lead_to_consulting_at_once(
    campus_a: Campus, front_desk: User, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        student = services.lead_capture(
            actor=front_desk, campus=campus_a, phone="13800138000", student_name="小明"
        ).student
    assert stage_of(student) == "lead"
    with django_capture_on_commit_callbacks(execute=True):
        services.consultation_log(actor=front_desk, student=student, channel="phone", content="问了编程课")
    assert stage_of(student) == "consulting"
    change = StageChange.objects.get(student=student)
    assert (change.from_stage, change.to_stage, change.source, change.reason) == (
        "lead",
        "consulting",
        "event",
        "consulted",
    )


def test_closing_as_lost_is_the_persons_change(
    campus_a: Campus, front_desk: User, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        student = services.lead_capture(
            actor=front_desk, campus=campus_a, phone="13800138001", student_name="小红"
        ).student
    with django_capture_on_commit_callbacks(execute=True):
        services.lead_close_lost(actor=front_desk, student=student, reason="选了别家")
    assert stage_of(student) == "lost"
    change = StageChange.objects.get(student=student)
    assert (change.to_stage, change.source, change.actor, change.reason) == (
        "lost",
        "person",
        front_desk,
        "closed_lost",
    )


def test_facts_written_without_events_are_picked_up_by_the_nightly_run(campus_a: Campus) -> None:
    student = factories.StudentFactory(campus=campus_a)
    factories.ConsultationFactory(student=student)
    assert not StudentActivity.objects.filter(student=student).exists()
    nightly_recompute.delay()
    assert stage_of(student) == "consulting"
    # A rebuild of every aggregate finds nothing to change.
    assert activity_rebuild_all() == 0


def test_a_run_gives_students_written_by_hand_their_rows(campus_a: Campus) -> None:
    """A student inserted outside the services has neither a stage row nor an activity row: the
    next run finds them (the counts of the three tables differ) and decides them."""
    bare = Student.objects.create(name="手工录入", campus=campus_a)
    Student.objects.filter(pk=bare.pk).update(created_at=timezone.now() - dt.timedelta(days=30))
    factories.ConsultationFactory(student=bare)
    decided = factories.StudentFactory(campus=campus_a)
    factories.ConsultationFactory(student=decided)
    recompute_after_event([decided.pk])
    assert bare.stage == "lead"  # until the engine has decided them
    recompute_stages(source="nightly")
    assert stage_of(bare) == "consulting"
    assert StudentActivity.objects.filter(student=bare).exists()
    assert recompute_stages(source="nightly", full=True).decided == 2


# --- thresholds per campus ----------------------------------------------------------------------


def test_each_campus_uses_its_own_thresholds(
    campus_a: Campus, campus_b: Campus, course_a: Course, course_b: Course, teacher: User
) -> None:
    LifecycleSettings.objects.create(campus=campus_b, active_days=7, churn_days=30)
    a = attending_student(campus_a, course_a, teacher, last_lesson_day=0)
    b = attending_student(campus_b, course_b, teacher, last_lesson_day=0)
    activity_refresh([a.pk, b.pk])
    recompute_stages(now=day(10), source="nightly")
    assert (stage_of(a), stage_of(b)) == ("active", "dormant")
    assert LifecycleSettings.objects.get(campus=campus_a).active_days == 21  # created with the defaults


def test_flags_are_stored_with_their_numbers(campus_a: Campus, course_a: Course, teacher: User) -> None:
    student = factories.StudentFactory(campus=campus_a)
    contract = factories.ContractFactory(
        student=student, course=course_a, signed_at=day(-90), hours_bought=Decimal(40), hours_consumed=Decimal(37)
    )
    for d in (-50, -45, -40, -35, -10):
        factories.AttendanceFactory(student=student, contract=contract, lesson_at=day(d), teacher=teacher)
    for d in (-3, -2):
        factories.AttendanceFactory(
            student=student, contract=contract, lesson_at=day(d), teacher=teacher, status="absent"
        )
    recompute_after_event([student.pk], now=day(0))
    activity = StudentActivity.objects.get(student=student)
    flags = StudentStage.objects.get(student=student)
    assert (flags.at_risk, flags.risk_recent, flags.risk_before, activity.consecutive_absences) == (True, 1, 4, 2)
    assert flags.renewal_due and activity.active_hours_remaining == Decimal(3)


# --- a big run in two halves ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_big_run_decides_in_two_halves_at_once_like_one_statement(
    campus_a: Campus, course_a: Course, teacher: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside a transaction and from IN_HALVES_FROM students, a run with no ids is split by key
    over two connections; every student is decided once, as the single statement decides."""
    from lifecycle.services import recompute

    students = [attending_student(campus_a, course_a, teacher, last_lesson_day=d) for d in (0, -30, -80, -5, -40)]
    leads = [factories.StudentFactory(campus=campus_a) for _ in range(3)]
    factories.ConsultationFactory(student=leads[0])
    ids = [s.pk for s in students + leads]
    activity_refresh(ids)
    halves: list[recompute.RecomputeResult] = []
    decide_and_write = recompute._decide_and_write

    def spy(target, params, *, big, half=None):  # type: ignore[no-untyped-def]
        halves.append(decide_and_write(target, params, big=big, half=half))
        return halves[-1]

    monkeypatch.setattr(recompute, "_decide_and_write", spy)
    monkeypatch.setattr(recompute, "IN_HALVES_FROM", 0)
    result = recompute_stages(now=day(1), source="nightly", full=True)
    assert len(halves) == 2
    assert halves[0].decided and halves[1].decided, "both halves hold students"
    assert halves[0].decided + halves[1].decided == 8
    assert (result.decided, result.changed) == (8, 6)
    assert [stage_of(s) for s in students] == ["active", "dormant", "churned", "active", "dormant"]
    assert [stage_of(s) for s in leads] == ["consulting", "lead", "lead"]
    assert StageChange.objects.count() == 6
    rerun = recompute_stages(now=day(1), source="nightly", full=True)
    assert (rerun.changed, rerun.rows_written) == (0, 0)


@pytest.mark.django_db(transaction=True)
def test_a_run_leaves_alone_a_decision_written_while_it_ran(campus_a: Campus) -> None:
    """A run decides from the snapshot its statement started with. A stage row another
    transaction rewrites meanwhile (an event's newer decision; new thresholds clearing
    recheck_at) keeps that write: the run neither overwrites it nor writes history for it."""
    import threading

    from django.db import connection, transaction

    student = factories.StudentFactory(campus=campus_a)
    factories.ConsultationFactory(student=student)
    activity_refresh([student.pk])  # the facts say consulting; the stored stage is still lead
    settings_ensure()
    results: list[object] = []

    def nightly() -> None:
        try:
            results.append(recompute_stages(source="nightly", full=True))
        except Exception as error:  # reported by the assertion below
            results.append(error)
        finally:
            connection.close()

    with transaction.atomic():
        # The "event": holds the row until it commits, as a concurrent recomputation would.
        StudentStage.objects.filter(pk=student.pk).update(stage="trial", recheck_at=None)
        run = threading.Thread(target=nightly)
        run.start()
        with connection.cursor() as cursor:
            for _ in range(200):  # until the run waits for the row
                cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                if cursor.fetchone()[0]:  # type: ignore[index]
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the run never waited for the row")
    run.join(timeout=30)
    assert len(results) == 1 and not isinstance(results[0], Exception), results
    assert stage_of(student) == "trial"
    assert not StageChange.objects.filter(student=student).exists()
    # The next run decides from what is stored now, and writes its history.
    recompute_stages(source="nightly")
    assert stage_of(student) == "consulting"
    assert StageChange.objects.get(student=student).from_stage == "trial"


# --- the Python path (SQLite) decides like the SQL -------------------------------------------


def test_the_python_fallback_decides_like_the_sql(campus_a: Campus, course_a: Course, teacher: User) -> None:
    students = [attending_student(campus_a, course_a, teacher, last_lesson_day=d) for d in (0, -30, -80)]
    lead = factories.StudentFactory(campus=campus_a)
    ids = [s.pk for s in students] + [lead.pk]
    activity_refresh(ids)
    result = _recompute_in_python(ids, now=day(1), source="nightly", actor=None, campus_id=None, full=False)
    assert result.changed == 3
    python_stages = dict(StudentStage.objects.filter(pk__in=ids).values_list("pk", "stage"))
    sql = recompute_stages(ids, now=day(1), source="nightly")
    assert (sql.changed, sql.rows_written) == (0, 0)
    assert python_stages == {
        students[0].pk: "active",
        students[1].pk: "dormant",
        students[2].pk: "churned",
        lead.pk: "lead",
    }
    thresholds = thresholds_by_campus()[campus_a.pk]
    for sid, history in histories_of(ids).items():
        assert (
            python_stages[sid] == stage_for(facts_from_history(history, day(1), thresholds), day(1), thresholds).stage
        )


# --- by hand: the admin action and the command -----------------------------------------------


def test_a_manager_runs_it_from_the_admin(
    campus_a: Campus, manager: User, course_a: Course, teacher: User, client: Client
) -> None:
    student = attending_student(campus_a, course_a, teacher, last_lesson_day=0)
    Attendance.objects.filter(student=student).update(lesson_at=timezone.now() - dt.timedelta(days=1))
    activity_refresh([student.pk])
    row, _ = LifecycleSettings.objects.get_or_create(campus=campus_a)
    client.force_login(manager)
    url = reverse("admin:lifecycle_lifecyclesettings_changelist")
    assert client.get(url).status_code == 200
    response = client.post(url, {"action": "recompute_now", "_selected_action": [row.pk]}, follow=True)
    assert response.status_code == 200
    assert stage_of(student) == "active"
    change = StageChange.objects.get(student=student)
    assert (change.source, change.actor) == ("person", manager)


def test_deleting_a_person_keeps_their_changes_without_them(
    campus_a: Campus, manager: User, course_a: Course, teacher: User
) -> None:
    """The history has no database foreign key to its actor; Django clears it when the person is deleted."""
    student = attending_student(campus_a, course_a, teacher, last_lesson_day=0)
    Attendance.objects.filter(student=student).update(lesson_at=timezone.now() - dt.timedelta(days=1))
    activity_refresh([student.pk])
    recompute_campus_now(campus=campus_a, actor=manager)
    change = StageChange.objects.get(student=student)
    assert change.actor_id == manager.pk
    manager.delete()
    change.refresh_from_db()
    assert change.actor_id is None and change.to_stage == "active"


def test_a_manager_of_another_campus_cannot(
    campus_a: Campus, manager_b: User, course_a: Course, teacher: User, client: Client
) -> None:
    student = attending_student(campus_a, course_a, teacher, last_lesson_day=0)
    activity_refresh([student.pk])
    row, _ = LifecycleSettings.objects.get_or_create(campus=campus_a)
    with pytest.raises(PermissionDenied):
        recompute_campus_now(campus=campus_a, actor=manager_b)
    client.force_login(manager_b)
    url = reverse("admin:lifecycle_lifecyclesettings_changelist")
    client.post(url, {"action": "recompute_now", "_selected_action": [row.pk]})
    assert client.get(reverse("admin:lifecycle_lifecyclesettings_change", args=[row.pk])).status_code in (302, 403, 404)
    assert stage_of(student) == "lead"
    assert not StageChange.objects.exists()


def test_a_front_desk_cannot_edit_thresholds(campus_a: Campus, front_desk: User, client: Client) -> None:
    LifecycleSettings.objects.get_or_create(campus=campus_a)
    client.force_login(front_desk)
    assert client.get(reverse("admin:lifecycle_lifecyclesettings_changelist")).status_code == 403
    assert client.get(reverse("admin:lifecycle_stagechange_changelist")).status_code == 200


def test_the_command(campus_a: Campus, campus_b: Campus, course_a: Course, teacher: User) -> None:
    student = attending_student(campus_a, course_a, teacher, last_lesson_day=0)
    out = StringIO()
    call_command("recompute_stages", "--campus", "zhongguancun", "--now", day(1).isoformat(), stdout=out)
    assert stage_of(student) == "lead"
    call_command("recompute_stages", "--campus", "wangjing", "--now", "2026-01-06T12:00", stdout=out)
    assert stage_of(student) == "active"
    assert "1 stage changes" in out.getvalue()


def test_the_nightly_task_is_registered_under_its_scheduled_name() -> None:
    from django.conf import settings

    from config.celery import app

    assert settings.CELERY_BEAT_SCHEDULE["lifecycle-nightly-recompute"]["task"] == "lifecycle.nightly_recompute"
    assert "lifecycle.nightly_recompute" in app.tasks
    assert "lifecycle.recompute_students" in app.tasks


def test_contracts_are_scoped_like_the_rules_say(campus_a: Campus, course_a: Course) -> None:
    """A cancelled contract is ignored: the student stays where the rest of their facts put them."""
    student = factories.StudentFactory(campus=campus_a)
    factories.ConsultationFactory(student=student, consulted_at=timezone.now())
    Contract.objects.create(
        student=student,
        course=course_a,
        hours_bought=10,
        amount=1,
        paid_amount=1,
        signed_at=timezone.now(),
        status="cancelled",
    )
    recompute_after_event([student.pk])
    assert stage_of(student) == "consulting"


def completed_contract_then(
    campus: Campus, course: Course, teacher: User, *, after_last_present: str, gap_days: int
) -> Student:
    """A used-up contract whose last present lesson was 40 days before T0, then one more
    attendance row of the given status `gap_days` later."""
    student = factories.StudentFactory(campus=campus)
    Student.objects.filter(pk=student.pk).update(created_at=day(-120))
    contract = factories.ContractFactory(student=student, course=course, signed_at=day(-100), status="completed")
    for d in (-61, -54, -47, -40):
        factories.AttendanceFactory(student=student, contract=contract, lesson_at=day(d), teacher=teacher)
    factories.AttendanceFactory(
        student=student, contract=contract, lesson_at=day(-40 + gap_days), teacher=teacher, status=after_last_present
    )
    return student


@pytest.mark.parametrize(
    ("status", "ended_on", "stage"),
    [
        # A leave is no lesson: the contract ended at day -40, more than 30 days (ended_grace_days) before T0.
        ("leave", -40, "churned"),
        # A no-show's lesson was held and consumed hours: the contract ended at day -15, within the grace.
        ("absent", -15, "dormant"),
    ],
)
def test_a_completed_contract_ends_at_its_last_held_lesson_in_both_executions(
    campus_a: Campus, course_a: Course, teacher: User, status: str, ended_on: int, stage: str
) -> None:
    student = completed_contract_then(campus_a, course_a, teacher, after_last_present=status, gap_days=25)
    # The set-based execution.
    activity_refresh([student.pk])
    assert StudentActivity.objects.get(pk=student.pk).last_ended_at == day(ended_on)
    recompute_stages([student.pk], now=T0, source="nightly")
    assert stage_of(student) == stage
    # The pure one, from the raw rows.
    t = thresholds_by_campus()[campus_a.pk]
    history = histories_of([student.pk])[student.pk]
    facts = facts_from_history(history, T0, t)
    assert facts.last_ended_at == day(ended_on)
    assert stage_for(facts, T0, t).stage == stage


# --- the demo ---------------------------------------------------------------------------------


# The day main was red (no dormant student in the demo); tests/lifecycle/test_date_spread.py
# builds the demo's core on a spread of dates across a year.
@time_machine.travel(dt.datetime(2026, 12, 2, 10, 0, tzinfo=TZ), tick=False)
def test_seed_demo_ends_with_every_stage_decided_by_the_engine() -> None:
    from crm.management.demo import MIN_STUDENTS

    seeded = timezone.now()
    call_command("seed_demo", students=MIN_STUDENTS, stdout=StringIO())
    stages = set(StudentStage.objects.values_list("stage", flat=True))
    assert stages == {"lead", "consulting", "trial", "enrolled", "active", "dormant", "churned", "lost"}
    assert StudentStage.objects.filter(at_risk=True).exists()
    assert StudentStage.objects.filter(renewal_due=True).exists()
    # Every stage is the pure function's decision from the demo's facts, and nothing is left to change.
    now = timezone.now()
    thresholds = thresholds_by_campus()
    students = dict(Student.objects.values_list("pk", "campus_id"))
    stage_by_id = dict(StudentStage.objects.values_list("pk", "stage"))
    start_by_id = dict(StudentStage.objects.values_list("pk", "changed_at"))
    for sid, history in histories_of(list(students)).items():
        t = thresholds[students[sid]]
        decision = stage_for(facts_from_history(history, now, t), now, t)
        assert stage_by_id[sid] == decision.stage
        # Each stage started when the demo's facts put the student there, not at the seeding
        # (facts dated later today start it at the seeding).
        if decision.since < seeded:
            assert start_by_id[sid] == decision.since, (sid, decision.reason)
    days = [s.days_in_stage(now) for s in Student.objects.select_related("pipeline")]
    # Some came in or booked a trial today; most have been in their stage for a while.
    assert sum(1 for d in days if d == 0) < len(days) / 4 and len(set(days)) > len(days) / 4
    moved = StageChange.objects.exclude(to_stage="lead").values_list("student_id", flat=True)
    assert set(moved) == {sid for sid, stage in stage_by_id.items() if stage != "lead"}


def test_new_thresholds_saved_in_the_admin_apply_at_once(
    campus_a: Campus, manager: User, course_a: Course, teacher: User, client: Client, django_capture_on_commit_callbacks
) -> None:
    student = attending_student(campus_a, course_a, teacher, last_lesson_day=0)
    Attendance.objects.filter(student=student).update(lesson_at=timezone.now() - dt.timedelta(days=10))
    recompute_after_event([student.pk])
    assert stage_of(student) == "active"
    row = LifecycleSettings.objects.get(campus=campus_a)
    client.force_login(manager)
    url = reverse("admin:lifecycle_lifecyclesettings_change", args=[row.pk])
    form = {
        field: getattr(row, field)
        for field in (
            "churn_days",
            "ended_grace_days",
            "stale_lead_days",
            "risk_window_days",
            "risk_drop_pct",
            "risk_consecutive_absences",
            "renewal_hours",
            "renewal_days",
            "pool_follow_up_days",
            "pool_daily_claim_limit",
            "pool_reclaim_wait_days",
        )
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {**form, "active_days": 7})
    assert response.status_code == 302, response.content[:2000]
    assert stage_of(student) == "dormant"
    assert StageChange.objects.filter(student=student).latest("pk").actor == manager


# --- the set-based statement's building blocks ------------------------------------------------


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/London", "America/Sao_Paulo", "UTC"])
def test_local_midnights_in_sql_follow_the_zone_inside_and_outside_its_fixed_offset(zone: str) -> None:
    """The statement shifts dates by the zone's UTC offset within the span where the zone keeps one,
    and asks the zone's rules elsewhere; either way a contract's end is the local midnight the
    rules say (rules.local_midnight), across daylight-saving changes and decades away."""
    anchor = dt.date(2026, 6, 1)
    start, end, offset = fixed_offset_span(zone, anchor)
    assert start <= anchor < end
    days = [anchor, start, end - dt.timedelta(days=1), end, start - dt.timedelta(days=1), dt.date(1950, 7, 1)]
    days += [dt.date(2026, 1, 1) + dt.timedelta(days=n) for n in range(0, 730, 3)]
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("SELECT d, {} FROM unnest(%(days)s::date[]) AS d").format(_local_midnight(sql.Identifier("d"))),
            {
                "days": days,
                "tz": zone,
                "tz_fixed_from": start,
                "tz_fixed_to": end,
                "tz_fixed_offset": int(offset.total_seconds()),
            },
        )
        rows = cursor.fetchall()
    assert len(rows) == len(days)
    for d, midnight in rows:
        assert midnight == local_midnight(d, zone), d


def test_a_zone_with_daylight_saving_keeps_its_offset_only_between_changes() -> None:
    start, end, offset = fixed_offset_span("Europe/London", dt.date(2026, 7, 1))
    assert (start, end, offset) == (dt.date(2026, 3, 30), dt.date(2026, 10, 26), dt.timedelta(hours=1))
    start, end, offset = fixed_offset_span("Asia/Shanghai", dt.date(2026, 7, 1))
    assert offset == dt.timedelta(hours=8) and end - start > dt.timedelta(days=50 * 365)


@given(low=st.integers(min_value=1, max_value=10**7), span=st.integers(min_value=1, max_value=10**5))
@hypothesis_settings(max_examples=200, deadline=None)
def test_the_two_halves_of_a_big_run_share_out_every_key_once(low: int, span: int) -> None:
    """Each key of [low, high) is in exactly one half's ranges, and its ranges are whole blocks of the
    half's parity (so the halves alternate and hold as many keys each, give or take a block)."""
    high = low + span
    size = -(-(high - low) // HALF_BLOCKS)
    halves = [Half(size=size, parity=parity, low=low, high=high) for parity in (0, 1)]
    ranges = sorted((a, b, half.parity) for half in halves for a, b in half.ranges)
    assert ranges[0][0] == low and ranges[-1][1] == high
    for (_, b, _), (a, _, _) in itertools.pairwise(ranges):
        assert a == b  # contiguous, no overlap
    for a, b, parity in ranges:
        assert a < b
        assert {key // size % 2 for key in (a, b - 1)} == {parity}
    assert all(len(half.ranges) <= HALF_BLOCKS // 2 + 1 for half in halves)
    keys = [sum(b - a for a, b in half.ranges) for half in halves]
    assert abs(keys[0] - keys[1]) <= size
