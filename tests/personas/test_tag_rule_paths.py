"""One rule definition, four executions: the tag rules applied to whole campuses in one statement
(APPLY_CAMPUS), to a list of students rule by rule (APPLY_RULE), to a few students after one read
of which rules are out of line, and through the ORM (SQLite) give every student the same tags, on
generated campuses with exclusive groups, people's tags and students a rule stops selecting."""

from __future__ import annotations

import random

import pytest
from django.db import connection

from crm.models import Campus, Student, StudentStage, StudentTag, Tag, User
from personas.models import TagRule
from personas.services import tag_rules
from personas.services.tag_rules import tag_rule_create
from tests import factories

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="three of the executions run on PostgreSQL"),
]

AT_RISK = {"all": [{"field": "at_risk", "op": "is", "value": True}]}
RENEWAL = {"all": [{"field": "renewal_due", "op": "is", "value": True}]}
EITHER = {"any": [AT_RISK, RENEWAL]}


@pytest.fixture
def rules(manager: User, manager_b: User, campus_a: Campus, campus_b: Campus) -> list[Tag]:
    goal = factories.TagGroupFactory(name="目标", exclusive=True)
    exam, interest = factories.TagFactory(group=goal, name="升学型"), factories.TagFactory(group=goal, name="兴趣型")
    risk = factories.TagFactory(group=factories.TagGroupFactory(name="风险"), name="积极性下降")
    for actor, campus in ((manager, campus_a), (manager_b, campus_b)):
        tag_rule_create(actor=actor, campus=campus, tag=exam, name="升学", conditions=AT_RISK)
        tag_rule_create(actor=actor, campus=campus, tag=interest, name="兴趣", conditions=EITHER)
        tag_rule_create(actor=actor, campus=campus, tag=risk, name="风险", conditions=RENEWAL)
    return [exam, interest, risk]


def tag_state() -> set[tuple[int, int, str, str]]:
    return set(StudentTag.objects.values_list("student_id", "tag_id", "source", "rule"))


@pytest.mark.parametrize("seed", range(6))
def test_every_execution_gives_the_same_tags(
    seed: int, rules: list[Tag], campus_a: Campus, campus_b: Campus, front_desk: User, monkeypatch
) -> None:
    rng = random.Random(seed)
    students = [factories.StudentFactory(campus=rng.choice([campus_a, campus_b]), guardians=[]) for _ in range(24)]
    for student in students:
        StudentStage.objects.filter(student=student).update(at_risk=rng.random() < 0.5, renewal_due=rng.random() < 0.5)
        if rng.random() < 0.2:  # a person's tag: of the exclusive group, or the rule's own tag
            StudentTag.objects.create(student=student, tag=rng.choice(rules), source="manual", created_by=front_desk)
    ids = sorted(s.pk for s in students)

    def run(path: str) -> set[tuple[int, int, str, str]]:
        StudentTag.objects.filter(source="rule").delete()
        # What the rules gave before the facts moved: some of it now wrong, to be taken away.
        tag_rules.tag_rules_apply()
        StudentStage.objects.filter(pk__in=ids[::3]).update(at_risk=False, renewal_due=True)
        with monkeypatch.context() as m:
            if path == "one pass, whole campuses":
                tag_rules.tag_rules_apply()
            elif path == "one pass, many students":
                m.setattr(tag_rules, "FEW_STUDENTS", 0)
                tag_rules.tag_rules_apply(student_ids=ids)
            elif path == "rule by rule":
                m.setattr(tag_rules, "FEW_STUDENTS", 0)
                m.setattr(tag_rules, "_apply_campus_in_one_pass", None)  # must not be reached
                tag_rules._tag_rules_apply(student_ids=ids, rule_ids=TagRule.objects.values_list("pk", flat=True))
            elif path == "a few, out of line first":
                for sid in ids:
                    tag_rules.tag_rules_apply(student_ids=[sid])
            else:
                m.setattr(connection, "vendor", "sqlite")
                tag_rules.tag_rules_apply()
        state = tag_state()
        StudentStage.objects.filter(pk__in=ids[::3]).update(at_risk=False, renewal_due=False)
        return state

    paths = ["one pass, whole campuses", "one pass, many students", "rule by rule", "a few, out of line first", "orm"]
    results = {path: run(path) for path in paths}
    expected = results["one pass, whole campuses"]
    assert any(source == "rule" for _s, _t, source, _r in expected)
    for path, state in results.items():
        assert state == expected, path
    assert Student.objects.count() == len(students)
