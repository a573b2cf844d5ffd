"""The tag rules' pages (/personas/tag-rules/) and admin: who may enter, what each campus sees,
bad conditions said in words at every door (never a 500), a constant number of queries."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm.models import Campus, StudentStage, StudentTag, Tag, TagSource, User
from personas.default_tag_rules import DEFAULT_RULES
from personas.models import TagRule
from personas.services.tag_rules import tag_rule_create, tag_rules_apply
from tests import factories
from tests.browser import log_in, snapshot

pytestmark = pytest.mark.django_db

AT_RISK = {"all": [{"field": "at_risk", "op": "is", "value": True}]}


def as_user(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def risk_tag() -> Tag:
    return factories.TagFactory(group=factories.TagGroupFactory(name="风险"), name="积极性下降")


@pytest.fixture
def rule_a(manager: User, campus_a: Campus, risk_tag: Tag) -> TagRule:
    return tag_rule_create(actor=manager, campus=campus_a, tag=risk_tag, name="出勤下降", conditions=AT_RISK)


@pytest.fixture
def rule_b(manager_b: User, campus_b: Campus, risk_tag: Tag) -> TagRule:
    return tag_rule_create(actor=manager_b, campus=campus_b, tag=risk_tag, name="中关村出勤下降", conditions=AT_RISK)


def form_data(tag: Tag, conditions: Any = AT_RISK, **extra: Any) -> dict[str, Any]:
    text = conditions if isinstance(conditions, str) else json.dumps(conditions)
    return {"name": "新规则", "tag": tag.pk, "conditions": text, "active": "on", **extra}


class TestAccess:
    @pytest.mark.parametrize("role", ["front_desk", "teacher"])
    def test_front_desk_and_teachers_are_refused(
        self, request: pytest.FixtureRequest, role: str, rule_a: TagRule, risk_tag: Tag
    ) -> None:
        client = as_user(request.getfixturevalue(role))
        for url in (
            reverse("tag_rule_list"),
            reverse("tag_rule_create"),
            reverse("tag_rule_edit", args=[rule_a.pk]),
            reverse("tag_rule_delete", args=[rule_a.pk]),
        ):
            assert client.get(url).status_code == 403, url
            assert client.post(url, form_data(risk_tag)).status_code == 403, url
        assert TagRule.objects.get().name == "出勤下降"

    def test_login_required(self, client: Client) -> None:
        response = client.get(reverse("tag_rule_list"))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]

    def test_another_campus_rule_does_not_exist(self, rule_a: TagRule, manager_b: User, risk_tag: Tag) -> None:
        client = as_user(manager_b)
        for url in (reverse("tag_rule_edit", args=[rule_a.pk]), reverse("tag_rule_delete", args=[rule_a.pk])):
            assert client.get(url).status_code == 404
            assert client.post(url, form_data(risk_tag)).status_code == 404
        assert TagRule.objects.get().name == "出勤下降"

    def test_each_manager_lists_their_campus_rules_and_an_administrator_all(
        self, rule_a: TagRule, rule_b: TagRule, manager: User, admin_user: User
    ) -> None:
        mine = as_user(manager).get(reverse("tag_rule_list")).content.decode()
        assert "出勤下降" in mine and "中关村出勤下降" not in mine
        every = as_user(admin_user).get(reverse("tag_rule_list")).content.decode()
        assert "中关村出勤下降" in every and "望京校区" in every

    def test_the_menu_shows_the_page_to_managers_only(self, manager: User, front_desk: User) -> None:
        url = reverse("tag_rule_list")
        assert url in as_user(manager).get(reverse("followups")).content.decode()
        assert url not in as_user(front_desk).get(reverse("followups")).content.decode()


class TestList:
    def test_a_rule_in_words_with_its_students(self, rule_a: TagRule, manager: User, campus_a: Campus) -> None:
        for student in factories.StudentFactory.create_batch(3, campus=campus_a):
            StudentStage.objects.filter(student=student).update(at_risk=True)
        tag_rules_apply()
        client = as_user(manager)
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
        html = client.get(reverse("tag_rule_list")).content.decode()
        assert "标签规则" in html and "积极性下降" in html
        assert 'data-carriers="3"' in html
        assert "流失预警" in html  # the conditions in words, in Chinese

    def test_query_count_is_constant(self, manager: User, campus_a: Campus) -> None:
        client = as_user(manager)

        def grow(n: int) -> None:
            start = TagRule.objects.count()
            for i in range(start, start + n):
                tag = factories.TagFactory(name=f"规则标签{i}")
                rule = tag_rule_create(actor=manager, campus=campus_a, tag=tag, name=f"规则{i}", conditions=AT_RISK)
                for student in factories.StudentFactory.create_batch(2, campus=campus_a):
                    StudentTag.objects.create(student=student, tag=tag, source=TagSource.RULE, rule=rule.ref)

        def count() -> int:
            with CaptureQueriesContext(connection) as queries:
                assert client.get(reverse("tag_rule_list")).status_code == 200
            return len(queries)

        grow(2)
        small = count()
        grow(10)
        assert count() == small


class TestWriting:
    def test_a_manager_writes_a_rule_of_their_campus(
        self, manager: User, campus_a: Campus, risk_tag: Tag, django_capture_on_commit_callbacks: Any
    ) -> None:
        student = factories.StudentFactory(campus=campus_a)
        StudentStage.objects.filter(student=student).update(at_risk=True)
        with django_capture_on_commit_callbacks(execute=True):
            response = as_user(manager).post(reverse("tag_rule_create"), form_data(risk_tag))
        assert response.status_code == 302
        rule = TagRule.objects.get()
        assert (rule.campus, rule.name, rule.conditions, rule.created_by) == (campus_a, "新规则", AT_RISK, manager)
        assert StudentTag.objects.get(student=student).rule == rule.ref  # tagged after commit

    def test_a_campus_field_is_for_administrators(
        self, manager: User, admin_user: User, campus_b: Campus, risk_tag: Tag
    ) -> None:
        as_user(manager).post(reverse("tag_rule_create"), form_data(risk_tag, campus=campus_b.pk))
        assert TagRule.objects.get().campus == manager.campus  # the field is not there for a manager

        client = as_user(admin_user)
        response = client.post(reverse("tag_rule_create"), form_data(risk_tag))
        assert response.status_code == 200 and "This field is required." in response.content.decode()
        assert client.post(reverse("tag_rule_create"), form_data(risk_tag, campus=campus_b.pk)).status_code == 302
        assert TagRule.objects.filter(campus=campus_b).exists()

    def test_edit_and_delete(self, rule_a: TagRule, manager: User, campus_a: Campus) -> None:
        client = as_user(manager)
        page = client.get(reverse("tag_rule_edit", args=[rule_a.pk])).content.decode()
        assert "出勤下降" in page and "At risk is yes" in page  # the conditions in words
        data = form_data(rule_a.tag, name="改名")
        del data["active"]
        assert client.post(reverse("tag_rule_edit", args=[rule_a.pk]), data).status_code == 302
        rule_a.refresh_from_db()
        assert (rule_a.name, rule_a.active) == ("改名", False)

        assert "改名" in client.get(reverse("tag_rule_delete", args=[rule_a.pk])).content.decode()
        assert client.post(reverse("tag_rule_delete", args=[rule_a.pk])).status_code == 302
        assert not TagRule.objects.exists()

    @pytest.mark.parametrize(
        ("conditions", "message"),
        [
            ("{not json", "The conditions could not be read."),
            ({"all": [{"field": "shoe_size", "op": "eq", "value": 3}]}, "Unknown field “shoe_size”."),
            ([1, 2], "A condition must be a group or a field comparison."),
            ({"all": []}, "Add at least one condition: a rule without one would tag every student."),
            ({"all": [{"field": "campus", "op": "has", "value": 1}]}, "You may not filter on “Campus”."),
            ({"all": [{"field": "r_score", "op": "gte", "value": "1e400"}]}, "“R score” needs a number."),
        ],
    )
    def test_bad_conditions_say_why_and_write_nothing(
        self, manager: User, risk_tag: Tag, conditions: Any, message: str
    ) -> None:
        response = as_user(manager).post(reverse("tag_rule_create"), form_data(risk_tag, conditions))
        assert response.status_code == 200
        assert message in response.content.decode().replace("&ldquo;", "“").replace("&rdquo;", "”")
        assert not TagRule.objects.exists()

    def test_a_second_rule_for_a_tag_is_refused_on_the_tag(self, rule_a: TagRule, manager: User) -> None:
        response = as_user(manager).post(reverse("tag_rule_create"), form_data(rule_a.tag))
        assert "This campus already has a rule for this tag." in response.content.decode()


class TestAdmin:
    def test_a_manager_sees_their_campus_rules_only(self, rule_a: TagRule, rule_b: TagRule, manager: User) -> None:
        client = as_user(manager)
        html = client.get(reverse("admin:personas_tagrule_changelist")).content.decode()
        assert "出勤下降" in html and "中关村出勤下降" not in html
        assert client.get(reverse("admin:personas_tagrule_change", args=[rule_b.pk])).status_code == 404
        assert client.get(reverse("admin:personas_tagrule_delete", args=[rule_b.pk])).status_code == 404
        assert (
            client.post(reverse("admin:personas_tagrule_delete", args=[rule_b.pk]), {"post": "yes"}).status_code == 404
        )
        assert TagRule.objects.filter(pk=rule_b.pk).exists()

    def test_front_desk_does_not_see_it(self, rule_a: TagRule, front_desk: User) -> None:
        client = as_user(front_desk)
        assert client.get(reverse("admin:personas_tagrule_changelist")).status_code == 403
        assert client.get(reverse("admin:personas_tagrule_change", args=[rule_a.pk])).status_code == 403

    def test_writes_go_through_the_service(self, manager: User, campus_a: Campus, risk_tag: Tag) -> None:
        client = as_user(manager)
        bad = client.post(reverse("admin:personas_tagrule_add"), form_data(risk_tag, {"all": [{"field": "x"}]}))
        assert bad.status_code == 200 and "Unknown field" in bad.content.decode()
        assert not TagRule.objects.exists()

        assert client.post(reverse("admin:personas_tagrule_add"), form_data(risk_tag)).status_code == 302
        rule = TagRule.objects.get()
        assert (rule.campus, rule.created_by) == (campus_a, manager)

        student = factories.StudentFactory(campus=campus_a)
        StudentStage.objects.filter(student=student).update(at_risk=True)
        tag_rules_apply()
        assert client.post(reverse("admin:personas_tagrule_delete", args=[rule.pk]), {"post": "yes"}).status_code == 302
        assert not TagRule.objects.exists() and not StudentTag.objects.exists()

    @pytest.mark.parametrize(
        ("conditions", "message"),
        [
            ("{not json", "The conditions could not be read."),
            ({"all": []}, "Add at least one condition: a rule without one would tag every student."),
            ({"all": [{"field": "campus", "op": "has", "value": 1}]}, "You may not filter on “Campus”."),
            ({"any": [{"field": "grade", "op": "in", "value": "初三"}]}, "Choose at least one value for “Grade”."),
        ],
    )
    def test_bad_conditions_say_why_and_write_nothing(
        self, manager: User, risk_tag: Tag, conditions: Any, message: str
    ) -> None:
        response = as_user(manager).post(reverse("admin:personas_tagrule_add"), form_data(risk_tag, conditions))
        assert response.status_code == 200
        assert message in response.content.decode().replace("&ldquo;", "“").replace("&rdquo;", "”")
        assert not TagRule.objects.exists()

    def test_the_list_runs_a_constant_number_of_queries(self, admin_user: User, campus_a: Campus) -> None:
        client = as_user(admin_user)

        def grow(n: int) -> None:
            for _ in range(n):
                campus = factories.CampusFactory()
                tag = factories.TagFactory()
                tag_rule_create(actor=admin_user, campus=campus, tag=tag, name="规则", conditions=AT_RISK)

        def count() -> int:
            with CaptureQueriesContext(connection) as queries:
                assert client.get(reverse("admin:personas_tagrule_changelist")).status_code == 200
            return len(queries)

        grow(2)
        small = count()
        grow(8)
        assert count() == small

    def test_an_administrator_chooses_the_campus(self, admin_user: User, campus_b: Campus, risk_tag: Tag) -> None:
        client = as_user(admin_user)
        response = client.post(reverse("admin:personas_tagrule_add"), form_data(risk_tag, campus=campus_b.pk))
        assert response.status_code == 302
        assert TagRule.objects.get().campus == campus_b


def test_a_campus_added_in_the_admin_starts_with_the_default_rules(
    admin_user: User, django_capture_on_commit_callbacks: Any
) -> None:
    client = as_user(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:crm_campus_add"), {"name": "国贸校区", "code": "guomao", "address": ""})
    assert response.status_code == 302
    assert TagRule.objects.filter(campus__code="guomao").count() == len(DEFAULT_RULES)
    taken = client.post(reverse("admin:crm_campus_add"), {"name": "国贸校区", "code": "guomao2", "address": ""})
    assert taken.status_code == 200 and Campus.objects.filter(name="国贸校区").count() == 1


def test_write_a_rule_in_the_browser_on_a_tablet(
    live_server: Any, page: Any, manager: User, campus_a: Campus, risk_tag: Tag
) -> None:
    page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": "zh-hans", "url": live_server.url}])
    log_in(page, live_server.url, "mary")
    page.goto(f"{live_server.url}/personas/tag-rules/")
    page.click("[data-action=new-rule]")
    page.fill("input[name=name]", "出勤下降提醒")
    page.select_option("select[name=tag]", str(risk_tag.pk))
    # Saved with no condition: the service says a rule needs one.
    page.click("[data-action=save-rule]")
    assert page.locator(".errorlist").count() >= 1
    snapshot(page, "tag_rule_error")
    # The builder the segments use: a condition on the flag, with the campus's count live.
    page.click("[data-condition-root] > .cond-group > .cond-actions [data-add-condition]")
    row = page.locator("[data-condition-root] > .cond-group > .cond-children > [data-leaf]").last
    row.locator("[data-field-picker]").select_option("at_risk")
    row.locator("select").last.select_option("true")
    page.wait_for_selector("[data-condition-status][data-count]")
    page.click("[data-action=save-rule]")
    page.wait_for_selector("[data-section=tag-rules] [data-rule]")
    assert "出勤下降提醒" in page.inner_text("[data-section=tag-rules]")
    assert TagRule.objects.get(name="出勤下降提醒").conditions == AT_RISK
    snapshot(page, "tag_rules")
    page.click("[data-section=tag-rules] [data-rule] a")
    page.wait_for_selector("[data-words]")
    snapshot(page, "tag_rule_edit")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
