"""The nightly profile run does what changed: the students whose 90-day window moved or whom the
lifecycle engine decided differently, the campuses whose distribution moved, and the tag rules for
those students (plus the rules that read beyond the profile, for everyone)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.models import Campus, StudentStage, StudentTag, Tag, User
from personas.models import StudentProfile, TagRule
from personas.services.profiles import analyze_if_stale, profiles_recompute
from personas.services.tag_rules import tag_rule_create
from tests import factories

pytestmark = pytest.mark.django_db

AT_RISK = {"all": [{"field": "at_risk", "op": "is", "value": True}]}


@pytest.fixture
def risk_rule(manager: User, campus_a: Campus) -> TagRule:
    tag = factories.TagFactory(group=factories.TagGroupFactory(name="风险"), name="积极性下降")
    return tag_rule_create(actor=manager, campus=campus_a, tag=tag, name="出勤下降", conditions=AT_RISK)


def tagged(tag: Tag) -> set[int]:
    return set(StudentTag.objects.filter(tag=tag).values_list("student_id", flat=True))


def test_a_flag_the_engine_raised_at_night_reaches_the_tags(risk_rule: TagRule, campus_a: Campus) -> None:
    students = factories.StudentFactory.create_batch(3, campus=campus_a, guardians=[])
    profiles_recompute(full=True)
    assert tagged(risk_rule.tag) == set()
    # The lifecycle engine's nightly run flags one student (it writes the stage row alone).
    StudentStage.objects.filter(student=students[1]).update(at_risk=True)
    result = profiles_recompute()
    assert result.computed == 1 and tagged(risk_rule.tag) == {students[1].pk}
    assert StudentProfile.objects.get(pk=students[1].pk).at_risk
    # And lowers it again.
    StudentStage.objects.filter(student=students[1]).update(at_risk=False)
    profiles_recompute()
    assert tagged(risk_rule.tag) == set()


def test_a_quiet_night_writes_nothing_and_reads_no_rule(risk_rule: TagRule, campus_a: Campus) -> None:
    factories.StudentFactory.create_batch(3, campus=campus_a, guardians=[])
    profiles_recompute(full=True)
    with CaptureQueriesContext(connection) as ctx:
        result = profiles_recompute()
    assert (result.computed, result.written, result.campuses_scored) == (0, 0, 0)
    assert not [q for q in ctx.captured_queries if "crm_studenttag" in q["sql"]]


def test_a_rule_on_the_owner_runs_over_everyone_each_night(manager: User, front_desk: User, campus_a: Campus) -> None:
    tag = factories.TagFactory(group=factories.TagGroupFactory(name="归属"), name="李婷的学员")
    rule = tag_rule_create(
        actor=manager,
        campus=campus_a,
        tag=tag,
        name="李婷名下",
        conditions={"all": [{"field": "owner", "op": "has", "value": front_desk.pk}]},
    )
    student = factories.StudentFactory(campus=campus_a, guardians=[])
    profiles_recompute(full=True)
    assert tagged(rule.tag) == set()
    # The lead pool gives the student an owner without any fact of theirs changing.
    type(student).objects.filter(pk=student.pk).update(owner=front_desk)
    profiles_recompute()
    assert tagged(rule.tag) == {student.pk}


def test_after_a_fact_the_rules_add_and_remove_only_what_changed(
    risk_rule: TagRule, campus_a: Campus, front_desk: User
) -> None:
    from personas.services.profiles import profiles_after_event

    student, other = factories.StudentFactory.create_batch(2, campus=campus_a, guardians=[])
    StudentStage.objects.filter(student=student).update(at_risk=True)
    profiles_after_event([student.pk])
    assert tagged(risk_rule.tag) == {student.pk}
    # A person gives the other student the same tag: a rule never takes it away.
    StudentTag.objects.create(student=other, tag=risk_rule.tag, source="manual", created_by=front_desk)
    with CaptureQueriesContext(connection) as ctx:
        profiles_after_event([other.pk])  # nothing of the rule's to change: no rule statement runs
    assert not [q for q in ctx.captured_queries if "DELETE FROM crm_studenttag" in q["sql"]]
    StudentStage.objects.filter(student=student).update(at_risk=False)
    profiles_after_event([student.pk])
    assert tagged(risk_rule.tag) == {other.pk}
    assert StudentTag.objects.get(student=other).source == "manual"


def test_many_students_take_the_one_pass_with_the_same_outcome(
    risk_rule: TagRule, campus_a: Campus, front_desk: User, monkeypatch
) -> None:
    """Past FEW_STUDENTS changed students, the rules run in one pass over those students: the same
    tags given and taken, a person's tag untouched, the other students not read."""
    from personas.services import tag_rules

    monkeypatch.setattr(tag_rules, "FEW_STUDENTS", 0)
    flagged, cleared, kept, other = factories.StudentFactory.create_batch(4, campus=campus_a, guardians=[])
    StudentStage.objects.filter(student__in=[cleared, kept]).update(at_risk=True)
    profiles_recompute(full=True)
    assert tagged(risk_rule.tag) == {cleared.pk, kept.pk}
    StudentTag.objects.create(student=other, tag=risk_rule.tag, source="manual", created_by=front_desk)
    StudentStage.objects.filter(student=flagged).update(at_risk=True)
    StudentStage.objects.filter(student=cleared).update(at_risk=False)
    result = profiles_recompute()
    assert result.computed == 2
    assert tagged(risk_rule.tag) == {flagged.pk, kept.pk, other.pk}
    assert StudentTag.objects.get(student=other).source == "manual"


def believed_rows(table: str) -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        return cursor.fetchone()[0]


def test_a_first_run_leaves_the_planner_knowing_the_profiles_it_wrote(campus_a: Campus, monkeypatch) -> None:
    """The tag rules join the profiles right after a first run wrote them all: statistics that
    still say "empty" send the planner into nested loops over a million rows (docs/benchmarks.md)."""
    if connection.vendor != "postgresql":
        pytest.skip("the planner's statistics are PostgreSQL's")
    monkeypatch.setattr("personas.services.profiles.ANALYZE_MIN_ROWS", 10)
    table = StudentProfile._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")  # empty: the planner is told so
    assert believed_rows(table) <= 0
    for _ in range(12):
        factories.StudentFactory(campus=campus_a)
    profiles_recompute(full=True)
    assert believed_rows(table) >= 12
    # Statistics close to the truth are left alone.
    assert not analyze_if_stale(table, rows=12)
