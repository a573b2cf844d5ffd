"""Tag rules: the services that write them and the set-based run that applies them (issue 10,
acceptance 2): idempotent, removed when the rule stops holding, manual tags untouched, exclusive
groups decided the same way every time, and a campus's rules out of another campus's reach."""

from __future__ import annotations

import datetime as dt
import importlib
from typing import Any

import pytest
import time_machine
from django.apps import apps as django_apps
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from crm.models import AuditAction, AuditEntry, Campus, Course, Student, StudentStage, StudentTag, Tag, TagSource, User
from crm.services.campuses import campus_create
from crm.services.tags import student_tag_add
from personas.conditions import ConditionError, campus_viewer, compile_tree
from personas.default_tag_rules import DEFAULT_RULES
from personas.models import StudentProfile, TagRule, ValueTier
from personas.services.tag_rules import (
    tag_rule_create,
    tag_rule_delete,
    tag_rule_update,
    tag_rules_apply,
    tag_rules_ship_defaults,
)
from tests import factories

pytestmark = pytest.mark.django_db

AT_RISK = {"all": [{"field": "at_risk", "op": "is", "value": True}]}
RENEWAL = {"all": [{"field": "renewal_due", "op": "is", "value": True}]}


def flag(student: Student, **flags: bool) -> None:
    StudentStage.objects.filter(student=student).update(**flags)


def rule_tags(student: Student) -> dict[str, tuple[str, str]]:
    return {
        st.tag.name: (st.source, st.rule) for st in StudentTag.objects.filter(student=student).select_related("tag")
    }


def row_versions() -> list[tuple[int, str]]:
    """Each tag row with its version (PostgreSQL's xmin): a row written again gets a new one."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, xmin::text FROM crm_studenttag ORDER BY id")
        return list(cursor.fetchall())


@pytest.fixture
def risk_tag() -> Tag:
    return factories.TagFactory(group=factories.TagGroupFactory(name="风险"), name="积极性下降")


@pytest.fixture
def goal_tags() -> tuple[Tag, Tag]:
    group = factories.TagGroupFactory(name="目标", exclusive=True)
    return factories.TagFactory(group=group, name="升学型"), factories.TagFactory(group=group, name="兴趣拓展型")


@pytest.fixture
def risk_rule(manager: User, campus_a: Campus, risk_tag: Tag) -> TagRule:
    return tag_rule_create(actor=manager, campus=campus_a, tag=risk_tag, name="出勤下降", conditions=AT_RISK)


@pytest.fixture(params=["sql", "orm"])
def both_ways(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each run as PostgreSQL's one statement per rule, and as the ORM steps SQLite (the embedded
    default) takes: the two must agree."""
    if request.param == "orm":
        monkeypatch.setattr(connection, "vendor", "sqlite")
    return str(request.param)


@pytest.mark.usefixtures("both_ways")
class TestApply:
    def test_a_rule_tags_the_students_it_selects_and_names_itself(
        self, risk_rule: TagRule, campus_a: Campus, campus_b: Campus
    ) -> None:
        falling, steady = factories.StudentFactory.create_batch(2, campus=campus_a)
        elsewhere = factories.StudentFactory(campus=campus_b)
        flag(falling, at_risk=True)
        flag(elsewhere, at_risk=True)

        assert tag_rules_apply() == (1, 0)

        assert rule_tags(falling) == {"积极性下降": (TagSource.RULE, f"#{risk_rule.pk} 出勤下降")}
        assert rule_tags(steady) == {} and rule_tags(elsewhere) == {}  # another campus's student too

    def test_a_second_run_changes_and_writes_nothing(self, risk_rule: TagRule, campus_a: Campus) -> None:
        for student in factories.StudentFactory.create_batch(3, campus=campus_a):
            flag(student, at_risk=True)
        assert tag_rules_apply() == (3, 0)
        before = row_versions()

        assert tag_rules_apply() == (0, 0)
        assert tag_rules_apply(campus_ids=[risk_rule.campus_id]) == (0, 0)

        assert row_versions() == before

    def test_a_tag_whose_rule_stops_holding_is_removed(self, risk_rule: TagRule, campus_a: Campus) -> None:
        student = factories.StudentFactory(campus=campus_a)
        flag(student, at_risk=True)
        tag_rules_apply()
        flag(student, at_risk=False)

        assert tag_rules_apply() == (0, 1)
        assert rule_tags(student) == {}

    def test_manual_tags_are_never_touched(
        self, risk_rule: TagRule, risk_tag: Tag, campus_a: Campus, front_desk: User
    ) -> None:
        by_hand = factories.StudentFactory(campus=campus_a)
        student_tag_add(actor=front_desk, student=by_hand, tag=risk_tag)
        flag(by_hand, at_risk=True)

        assert tag_rules_apply() == (0, 0)
        assert rule_tags(by_hand) == {"积极性下降": (TagSource.MANUAL, "")}  # not converted

        flag(by_hand, at_risk=False)
        assert tag_rules_apply() == (0, 0)
        assert rule_tags(by_hand) == {"积极性下降": (TagSource.MANUAL, "")}  # not removed

    def test_only_the_students_asked_for(self, risk_rule: TagRule, campus_a: Campus) -> None:
        one, other = factories.StudentFactory.create_batch(2, campus=campus_a)
        flag(one, at_risk=True)
        flag(other, at_risk=True)

        assert tag_rules_apply(student_ids=[one.pk]) == (1, 0)
        assert rule_tags(other) == {}
        assert tag_rules_apply(student_ids=[]) == (0, 0)

    def test_only_the_campuses_asked_for(self, risk_rule: TagRule, manager_b: User, campus_b: Campus) -> None:
        tag_rule_create(actor=manager_b, campus=campus_b, tag=risk_rule.tag, name="出勤下降", conditions=AT_RISK)
        student_b = factories.StudentFactory(campus=campus_b)
        flag(student_b, at_risk=True)

        assert tag_rules_apply(campus_ids=[risk_rule.campus_id]) == (0, 0)
        assert tag_rules_apply(campus_ids=[campus_b.pk]) == (1, 0)

    def test_a_rule_switched_off_or_deleted_removes_its_tags(
        self, risk_rule: TagRule, manager: User, campus_a: Campus, django_capture_on_commit_callbacks: Any
    ) -> None:
        student = factories.StudentFactory(campus=campus_a)
        flag(student, at_risk=True)
        tag_rules_apply()

        with django_capture_on_commit_callbacks(execute=True):  # the campus is applied after commit
            tag_rule_update(actor=manager, rule=risk_rule, active=False)
        assert rule_tags(student) == {}

        with django_capture_on_commit_callbacks(execute=True):
            tag_rule_update(actor=manager, rule=risk_rule, active=True)
        assert set(rule_tags(student)) == {"积极性下降"}

        assert tag_rule_delete(actor=manager, rule=risk_rule) == 1
        assert rule_tags(student) == {}
        assert not TagRule.objects.exists()

    def test_a_renamed_rule_relabels_its_tags_and_a_new_tag_replaces_the_old(
        self, risk_rule: TagRule, manager: User, campus_a: Campus, django_capture_on_commit_callbacks: Any
    ) -> None:
        student = factories.StudentFactory(campus=campus_a)
        flag(student, at_risk=True)
        tag_rules_apply()
        other_tag = factories.TagFactory(group=risk_rule.tag.group, name="需关怀")

        with django_capture_on_commit_callbacks(execute=True):
            tag_rule_update(actor=manager, rule=risk_rule, name="需要关怀")
        assert rule_tags(student) == {"积极性下降": (TagSource.RULE, f"#{risk_rule.pk} 需要关怀")}

        with django_capture_on_commit_callbacks(execute=True):
            tag_rule_update(actor=manager, rule=risk_rule, tag=other_tag)
        assert rule_tags(student) == {"需关怀": (TagSource.RULE, f"#{risk_rule.pk} 需要关怀")}

    def test_a_rule_counting_days_follows_the_clock(self, manager: User, campus_a: Campus, risk_tag: Tag) -> None:
        start = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
        with time_machine.travel(start, tick=False):
            new = {"all": [{"field": "created_at", "op": "within_days", "value": 7}]}
            tag_rule_create(actor=manager, campus=campus_a, tag=risk_tag, name="新学员", conditions=new)
            student = factories.StudentFactory(campus=campus_a)
            assert tag_rules_apply(student_ids=[student.pk]) == (1, 0)
        with time_machine.travel(start + dt.timedelta(days=8), tick=False):
            assert tag_rules_apply(student_ids=[student.pk]) == (0, 1)

    def test_a_rule_broken_since_it_was_written_holds_for_no_one(self, risk_rule: TagRule, campus_a: Campus) -> None:
        student = factories.StudentFactory(campus=campus_a)
        flag(student, at_risk=True)
        tag_rules_apply()
        TagRule.objects.filter(pk=risk_rule.pk).update(conditions={"all": [{"field": "gone", "op": "is"}]})

        assert tag_rules_apply() == (0, 1)
        assert rule_tags(student) == {}


@pytest.mark.usefixtures("both_ways")
class TestExclusiveGroups:
    """The goal group is exclusive: a person's tag is never replaced, and the first rule wins."""

    @pytest.fixture
    def rules(self, manager: User, campus_a: Campus, goal_tags: tuple[Tag, Tag]) -> tuple[TagRule, TagRule]:
        exam, interest = goal_tags
        first = tag_rule_create(actor=manager, campus=campus_a, tag=exam, name="升学", conditions=AT_RISK)
        second = tag_rule_create(actor=manager, campus=campus_a, tag=interest, name="兴趣", conditions=RENEWAL)
        return first, second

    def test_a_persons_tag_of_the_group_keeps_the_rules_out(
        self, rules: tuple[TagRule, TagRule], goal_tags: tuple[Tag, Tag], campus_a: Campus, front_desk: User
    ) -> None:
        student = factories.StudentFactory(campus=campus_a)
        student_tag_add(actor=front_desk, student=student, tag=goal_tags[1])
        flag(student, at_risk=True)

        assert tag_rules_apply() == (0, 0)
        assert rule_tags(student) == {"兴趣拓展型": (TagSource.MANUAL, "")}

    def test_a_rule_tag_gives_way_to_a_persons_later_tag(
        self, rules: tuple[TagRule, TagRule], goal_tags: tuple[Tag, Tag], campus_a: Campus, front_desk: User
    ) -> None:
        student = factories.StudentFactory(campus=campus_a)
        flag(student, at_risk=True)
        tag_rules_apply()
        # crm's rule: the later write's tag replaces the group's tag.
        student_tag_add(actor=front_desk, student=student, tag=goal_tags[1])

        assert tag_rules_apply() == (0, 0)
        assert rule_tags(student) == {"兴趣拓展型": (TagSource.MANUAL, "")}

    def test_the_first_rule_written_wins_whatever_the_history(
        self, rules: tuple[TagRule, TagRule], campus_a: Campus
    ) -> None:
        first, second = rules
        student = factories.StudentFactory(campus=campus_a)
        flag(student, renewal_due=True)
        assert tag_rules_apply() == (1, 0)
        assert set(rule_tags(student)) == {"兴趣拓展型"}

        flag(student, at_risk=True)  # now both select them: the first rule's tag replaces the second's
        assert tag_rules_apply() == (1, 1)
        assert rule_tags(student) == {"升学型": (TagSource.RULE, first.ref)}
        assert tag_rules_apply() == (0, 0)

        flag(student, at_risk=False)
        assert tag_rules_apply() == (1, 1)
        assert rule_tags(student) == {"兴趣拓展型": (TagSource.RULE, second.ref)}

    def test_a_non_exclusive_group_gives_every_tag(self, manager: User, campus_a: Campus, risk_tag: Tag) -> None:
        other = factories.TagFactory(group=risk_tag.group, name="续费关键期")
        tag_rule_create(actor=manager, campus=campus_a, tag=risk_tag, name="风险", conditions=AT_RISK)
        tag_rule_create(actor=manager, campus=campus_a, tag=other, name="续费", conditions=RENEWAL)
        student = factories.StudentFactory(campus=campus_a)
        flag(student, at_risk=True, renewal_due=True)

        assert tag_rules_apply() == (2, 0)
        assert set(rule_tags(student)) == {"积极性下降", "续费关键期"}


class TestWriting:
    def test_audited(self, risk_rule: TagRule, manager: User) -> None:
        tag_rule_update(actor=manager, rule=risk_rule, name="新名字")
        tag_rule_delete(actor=manager, rule=risk_rule)
        actions = list(AuditEntry.objects.order_by("pk").values_list("action", flat=True))
        assert actions == [AuditAction.TAG_RULE_CREATE, AuditAction.TAG_RULE_UPDATE, AuditAction.TAG_RULE_DELETE]
        assert AuditEntry.objects.filter(detail__rule=f"#{risk_rule.pk} 新名字").count() == 2

    def test_an_unchanged_rule_writes_nothing(self, risk_rule: TagRule, manager: User) -> None:
        tag_rule_update(actor=manager, rule=risk_rule, name=risk_rule.name, conditions=AT_RISK)
        assert AuditEntry.objects.count() == 1

    @pytest.mark.parametrize("role", ["front_desk", "teacher"])
    def test_only_managers_and_administrators(
        self, request: pytest.FixtureRequest, role: str, risk_rule: TagRule, campus_a: Campus, risk_tag: Tag
    ) -> None:
        actor: User = request.getfixturevalue(role)
        other = factories.TagFactory(group=risk_tag.group, name="别的")
        with pytest.raises(PermissionDenied):
            tag_rule_create(actor=actor, campus=campus_a, tag=other, name="x", conditions=AT_RISK)
        with pytest.raises(PermissionDenied):
            tag_rule_update(actor=actor, rule=risk_rule, name="x")
        with pytest.raises(PermissionDenied):
            tag_rule_delete(actor=actor, rule=risk_rule)

    def test_another_campus_manager_cannot_write_its_rules(
        self, risk_rule: TagRule, manager_b: User, campus_a: Campus, risk_tag: Tag
    ) -> None:
        other = factories.TagFactory(group=risk_tag.group, name="别的")
        with pytest.raises(PermissionDenied):
            tag_rule_create(actor=manager_b, campus=campus_a, tag=other, name="x", conditions=AT_RISK)
        with pytest.raises(PermissionDenied):
            tag_rule_update(actor=manager_b, rule=risk_rule, active=False)
        with pytest.raises(PermissionDenied):
            tag_rule_delete(actor=manager_b, rule=risk_rule)
        assert TagRule.objects.get().active

    def test_an_administrator_writes_any_campus_rules(
        self, admin_user: User, campus_b: Campus, risk_tag: Tag, risk_rule: TagRule
    ) -> None:
        rule = tag_rule_create(actor=admin_user, campus=campus_b, tag=risk_tag, name="B", conditions=AT_RISK)
        tag_rule_update(actor=admin_user, rule=risk_rule, active=False)
        tag_rule_delete(actor=admin_user, rule=rule)

    def test_one_rule_per_tag_and_campus(self, risk_rule: TagRule, manager: User, campus_a: Campus) -> None:
        with pytest.raises(ValidationError) as caught:
            tag_rule_create(actor=manager, campus=campus_a, tag=risk_rule.tag, name="again", conditions=AT_RISK)
        assert caught.value.message_dict == {"tag": ["This campus already has a rule for this tag."]}

    @pytest.mark.parametrize(
        ("conditions", "message"),
        [
            ({"all": [{"field": "shoe_size", "op": "eq", "value": 3}]}, "Unknown field “shoe_size”."),
            ({"all": []}, "Add at least one condition: a rule without one would tag every student."),
            ("not a tree", "A condition must be a group or a field comparison."),
            ({"all": [{"field": "at_risk", "op": "is", "value": "yes"}]}, "“At risk” needs yes or no."),
            ({"all": [{"field": "campus", "op": "has", "value": 1}]}, "You may not filter on “Campus”."),
            ({"all": [{"all": [{"all": [{"all": [AT_RISK]}]}]}]}, "Groups may be nested at most 4 deep."),
        ],
    )
    def test_bad_conditions_say_why(
        self, manager: User, campus_a: Campus, risk_tag: Tag, conditions: Any, message: str
    ) -> None:
        with pytest.raises(ValidationError) as caught:
            tag_rule_create(actor=manager, campus=campus_a, tag=risk_tag, name="x", conditions=conditions)
        assert caught.value.message_dict == {"conditions": [message]}

    def test_an_administrator_cannot_give_a_campus_a_rule_about_another_campus(
        self, admin_user: User, campus_a: Campus, course_b: Course, risk_tag: Tag
    ) -> None:
        about_b = {"all": [{"field": "course", "op": "has", "value": course_b.pk}]}
        compile_tree(about_b, viewer=admin_user)  # fine for the administrator's own segments
        with pytest.raises(ValidationError) as caught:
            tag_rule_create(actor=admin_user, campus=campus_a, tag=risk_tag, name="x", conditions=about_b)
        assert caught.value.message_dict == {"conditions": ["“Course signed”: no such value."]}

    def test_a_name_is_needed(self, manager: User, campus_a: Campus, risk_tag: Tag) -> None:
        with pytest.raises(ValidationError) as caught:
            tag_rule_create(actor=manager, campus=campus_a, tag=risk_tag, name="  ", conditions=AT_RISK)
        assert caught.value.message_dict == {"name": ["Give the rule a name."]}


class TestCampusViewer:
    def test_it_sees_exactly_its_campus(self, campus_a: Campus, course_a: Course, course_b: Course) -> None:
        viewer = campus_viewer(campus_a.pk)
        compile_tree({"all": [{"field": "course", "op": "has", "value": course_a.pk}]}, viewer=viewer)
        for tree in (
            {"all": [{"field": "course", "op": "has", "value": course_b.pk}]},
            {"all": [{"field": "campus", "op": "has", "value": campus_a.pk}]},
        ):
            with pytest.raises(ConditionError, match=r"no such value|may not filter"):
                compile_tree(tree, viewer=viewer)
        assert viewer.pk is None and not viewer.is_active


class TestDefaults:
    def test_every_campus_gets_the_defaults_once(self, campus_a: Campus, campus_b: Campus) -> None:
        created = tag_rules_ship_defaults()
        assert len(created) == 2 * len(DEFAULT_RULES)
        assert tag_rules_ship_defaults() == []
        names = list(TagRule.objects.filter(campus=campus_a).values_list("tag__name", flat=True))
        assert names == ["升学型", "兴趣拓展型", "积极性下降", "高价值", "续费关键期"]
        assert Tag.objects.get(name="升学型").group.exclusive
        for rule in TagRule.objects.all():  # each one is a rule its campus's manager could write
            compile_tree(rule.conditions, viewer=campus_viewer(rule.campus_id))

    def test_a_deleted_default_does_not_come_back(self, campus_a: Campus, manager: User) -> None:
        tag_rules_ship_defaults()
        tag_rule_delete(actor=manager, rule=TagRule.objects.get(tag__name="高价值"))
        tag_rules_apply()
        assert not TagRule.objects.filter(tag__name="高价值").exists()

    def test_a_new_campus_starts_with_them(self, admin_user: User, django_capture_on_commit_callbacks: Any) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            campus = campus_create(actor=admin_user, name="国贸校区", code="guomao")
        assert TagRule.objects.filter(campus=campus).count() == len(DEFAULT_RULES)
        assert AuditEntry.objects.filter(action=AuditAction.CAMPUS_CREATE).exists()

    def test_only_administrators_create_campuses(self, manager: User) -> None:
        with pytest.raises(PermissionDenied):
            campus_create(actor=manager, name="国贸校区", code="guomao")

    def test_the_migration_gives_existing_campuses_theirs(self, campus_a: Campus) -> None:
        migration = importlib.import_module("personas.migrations.0003_default_tag_rules")
        migration.ship_defaults(django_apps, None)
        migration.ship_defaults(django_apps, None)
        assert TagRule.objects.filter(campus=campus_a).count() == len(DEFAULT_RULES)

    def test_the_defaults_tag_whom_they_say(self, campus_a: Campus, front_desk: User, teacher: User) -> None:
        tag_rules_ship_defaults()
        maths = factories.CourseFactory(campus=campus_a, name="竞赛数学", subject="数学")
        coding = factories.CourseFactory(campus=campus_a, name="Scratch", subject="编程")
        art = factories.CourseFactory(campus=campus_a, name="创意美术", subject="美术")
        exam = factories.StudentFactory(campus=campus_a, grade="初三")
        factories.ContractFactory(student=exam, course=maths)
        factories.ContractFactory(student=exam, course=coding)
        young_maths = factories.StudentFactory(campus=campus_a, grade="二年级")
        factories.ContractFactory(student=young_maths, course=maths)
        artist = factories.StudentFactory(campus=campus_a, grade="三年级")
        factories.TrialLessonFactory(student=artist, course=art, teacher=teacher)
        worried = factories.StudentFactory(campus=campus_a)
        flag(worried, at_risk=True, renewal_due=True)
        # The subjects a student signed or tried are their profile's.
        from personas.services.profiles import profiles_after_event

        profiles_after_event([exam.pk, young_maths.pk, artist.pk])
        StudentProfile.objects.create(student=worried, campus=campus_a, value_tier=ValueTier.HIGH)

        tag_rules_apply()

        goals = {"升学型", "兴趣拓展型"}
        assert set(rule_tags(exam)) & goals == {"升学型"}  # maths and coding in 初三: exam-driven wins
        assert set(rule_tags(young_maths)) & goals == set()
        assert set(rule_tags(artist)) & goals == {"兴趣拓展型"}
        assert set(rule_tags(worried)) == {"积极性下降", "高价值", "续费关键期"}


def test_the_profile_engine_applies_the_rules_after_a_fact(risk_rule: TagRule, campus_a: Campus) -> None:
    from personas.services.profiles import profiles_after_event, profiles_recompute

    student, other = factories.StudentFactory.create_batch(2, campus=campus_a)
    flag(student, at_risk=True)
    flag(other, at_risk=True)
    profiles_after_event([student.pk])
    assert set(rule_tags(student)) == {"积极性下降"} and rule_tags(other) == {}
    profiles_recompute(full=True)
    assert set(rule_tags(other)) == {"积极性下降"}
