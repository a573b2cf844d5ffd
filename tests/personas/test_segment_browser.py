"""The segment builder in a real browser, on a tablet in Chinese (issue 10, acceptance 4): build
a segment with two conditions and a nested group, watch the count follow, save it, and open a
member's card from the preview."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from crm.models import Grade, Stage, StudentStage
from personas.models import Segment
from tests import factories
from tests.browser import log_in, snapshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def count_of(page: Page) -> str:
    return page.locator("[data-condition-status]").get_attribute("data-count") or ""


def test_a_manager_builds_a_segment_and_opens_a_members_card(live_server, chinese_tablet: Page, manager, campus_a):
    page = chinese_tablet
    wanted = factories.StudentFactory(name="王小明", campus=campus_a, grade=Grade.PRIMARY_5, stage=Stage.DORMANT)
    StudentStage.objects.filter(student=wanted).update(at_risk=True)
    factories.StudentFactory(name="李小红", campus=campus_a, grade=Grade.PRIMARY_5, stage=Stage.ACTIVE)
    factories.StudentFactory(name="张小刚", campus=campus_a, grade=Grade.PRIMARY_3, stage=Stage.DORMANT)
    factories.StudentFactory(name="赵小丽", campus=campus_a, grade=Grade.PRIMARY_5, stage=Stage.TRIAL)

    log_in(page, live_server.url, "mary")
    page.goto(f"{live_server.url}/segments/")
    expect(page.locator("h1")).to_contain_text("分群")
    page.click("[data-new-segment]")
    status = page.locator("[data-condition-status]")
    expect(status).to_have_attribute("data-count", "4")
    expect(status).to_contain_text("符合条件的学员：4 名")

    # First condition: grade is fifth grade.
    page.click("[data-condition-root] > .cond-group > .cond-actions [data-add-condition]")
    page.locator("[data-leaf] [data-field-picker]").last.select_option("grade")
    expect(status).to_contain_text("请为“年级”至少选择一个值")
    page.locator(".cond-chip", has_text="五年级").click()
    expect(status).to_have_attribute("data-count", "3")

    # A nested group: dormant, or on trial, ...
    page.click("[data-condition-root] > .cond-group > .cond-actions [data-add-group]")
    inner = page.locator(".cond-group .cond-group")
    inner.locator("[data-field-picker]").select_option("stage")
    inner.locator(".cond-chip", has_text="沉睡").click()
    expect(status).to_have_attribute("data-count", "1")
    inner.locator(".cond-actions [data-add-condition]").click()
    inner.locator("[data-field-picker]").last.select_option("stage")
    inner.locator("[data-leaf]").last.locator(".cond-chip", has_text="试听").click()
    expect(status).to_have_attribute("data-count", "2")
    # ... and all of the group's conditions instead: no one is both.
    inner.locator("[data-mode-picker]").select_option("all")
    expect(status).to_have_attribute("data-count", "0")
    inner.locator("[data-mode-picker]").select_option("any")
    expect(status).to_have_attribute("data-count", "2")
    expect(page.locator("[data-member]")).to_have_count(2)
    snapshot(page, "segment_builder")

    page.fill("input[name=name]", "五年级待挽回")
    page.click("[data-save]")
    expect(page.locator(".msg.success")).to_contain_text("已保存")
    segment = Segment.objects.get()
    assert segment.conditions == {
        "all": [
            {"field": "grade", "op": "in", "value": ["五年级"]},
            {
                "any": [
                    {"field": "stage", "op": "in", "value": ["dormant"]},
                    {"field": "stage", "op": "in", "value": ["trial"]},
                ]
            },
        ]
    }
    expect(status).to_have_attribute("data-count", "2")
    snapshot(page, "segment_saved")

    page.locator("[data-member-link]", has_text="王小明").click()
    expect(page).to_have_url(f"{live_server.url}/students/{wanted.pk}/")
    expect(page.locator("body")).to_contain_text("王小明")

    page.goto(f"{live_server.url}/segments/")
    expect(page.locator(f'[data-count="{segment.pk}"]')).to_have_text("2")
    snapshot(page, "segment_list")


def test_every_kind_of_value_is_picked_without_typing_json(
    live_server, chinese_tablet: Page, manager, campus_a, front_desk
) -> None:
    page = chinese_tablet
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    tag = factories.TagFactory(name="高意向")
    course = factories.CourseFactory(campus=campus_a, name="少儿编程 L1")
    log_in(page, live_server.url, "mary")
    page.goto(f"{live_server.url}/segments/new/")
    root_actions = "[data-condition-root] > .cond-group > .cond-actions"
    status = page.locator("[data-condition-status]")

    def add(field: str) -> Any:
        page.click(f"{root_actions} [data-add-condition]")
        row = page.locator("[data-condition-root] > .cond-group > .cond-children > [data-leaf]").last
        row.locator("[data-field-picker]").select_option(field)
        return row

    row = add("lifetime_value")  # a number
    row.locator("[data-op-picker]").select_option("between")
    row.locator("input[type=number]").first.fill("1000")
    row.locator("input[type=number]").last.fill("20000")
    row = add("last_touch")  # a date, and a number of days
    row.locator("[data-op-picker]").select_option("over_days_ago")
    row.locator("input[type=number]").fill("30")
    row = add("first_signed")
    row.locator("[data-op-picker]").select_option("after")
    row.locator("input[type=date]").fill("2026-01-01")
    row = add("renewal_due")  # yes or no
    row.locator("select").last.select_option("false")
    row = add("tag")  # pickers of rows
    row.locator("select").last.select_option(str(tag.pk))
    row = add("course")
    row.locator("[data-op-picker]").select_option("has_not")
    row.locator("select").last.select_option(str(course.pk))
    row = add("owner")
    row.locator("select").last.select_option(str(front_desk.pk))
    row = add("school")  # text
    row.locator("input[type=text]").fill("实验")
    expect(status).to_have_attribute("data-count", "0")
    snapshot(page, "segment_every_kind")

    # A wrong value is named on its own row, in Chinese.
    row.locator("input[type=text]").fill("")
    expect(status).to_contain_text("“学校”需要 1 到 50 个字的文字")
    expect(row).to_have_class("cond-leaf has-error")
    snapshot(page, "segment_error")
    row.locator(".cond-remove").click()
    expect(status).to_have_attribute("data-count", "0")

    page.fill("input[name=name]", "每种条件")
    page.click("[data-save]")
    expect(page.locator(".msg.success")).to_be_visible()
    assert Segment.objects.get().conditions == {
        "all": [
            {"field": "lifetime_value", "op": "between", "value": [1000, 20000]},
            {"field": "last_touch", "op": "over_days_ago", "value": 30},
            {"field": "first_signed", "op": "after", "value": "2026-01-01"},
            {"field": "renewal_due", "op": "is", "value": False},
            {"field": "tag", "op": "has", "value": str(tag.pk)},
            {"field": "course", "op": "has_not", "value": str(course.pk)},
            {"field": "owner", "op": "has", "value": str(front_desk.pk)},
        ]
    }
    assert errors == []
