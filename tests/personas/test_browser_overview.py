"""The overview at /personas/ in a real browser, at tablet size, in Chinese: three charts drawn,
the tables tidy within the screen's width, and a representative's card one click away."""

from __future__ import annotations

import os
from decimal import Decimal

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from personas.services.overview import overview_refresh
from tests import factories
from tests.browser import log_in, snapshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STUDENTS = [
    # name, stage, grade, channel, (tier, segment, lifetime value, attendance, subjects) or None
    ("陈小雨", "active", "五年级", "douyin", ("high", "champions", "16000", "0.9", ["数学", "编程"])),
    ("李明", "active", "五年级", "referral", ("medium", "loyal", "6800", "0.75", ["数学"])),
    ("王芳", "active", "三年级", "referral", ("medium", "potential_loyalist", "5200", "0.8", ["英语"])),
    ("赵强", "dormant", "初一", "xiaohongshu", ("low", "about_to_sleep", "1800", "0.4", ["美术"])),
    ("孙丽", "churned", "初二", "website", ("low", "lost", "900", None, ["英语"])),
    ("周杰", "trial", "四年级", "douyin", None),
    ("吴静", "lead", "三年级", "wechat", None),
    ("郑浩", "consulting", "二年级", "flyer", None),
]


def test_a_manager_reads_the_overview_and_opens_a_representative(live_server, page: Page, manager, campus_a):
    for name, stage, grade, channel, profile in STUDENTS:
        student = factories.StudentFactory(
            campus=campus_a, name=name, stage=stage, grade=grade, channel=channel, guardians=[]
        )
        if profile:
            tier, segment, value, rate, subjects = profile
            factories.StudentProfileFactory(
                student=student,
                value_tier=tier,
                rfm_segment=segment,
                monetary=Decimal(value),
                attendance_rate=Decimal(rate) if rate else None,
                subjects=subjects,
            )
    overview_refresh()

    page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": "zh-hans", "url": live_server.url}])
    log_in(page, live_server.url, manager.username)
    page.goto(f"{live_server.url}/personas/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.locator("h1")).to_contain_text("学员概览")
    for dimension in ("stage", "tier", "segment"):
        expect(page.locator(f"#chart-{dimension} canvas")).to_have_count(1)
    expect(page.locator("#overview-tier")).to_contain_text("高价值")
    expect(page.locator("#overview-segment")).to_contain_text("重要价值")
    expect(page.locator("[data-as-of]")).to_contain_text("数据截至")
    # Nothing sticks out sideways at a tablet's width.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    snapshot(page, "overview")
    if os.environ.get("SCREENSHOT_DIR"):
        page.screenshot(path=os.path.join(os.environ["SCREENSHOT_DIR"], "overview_viewport.png"))

    # The active students' representative: lifetime value closest to their median (6,800).
    link = page.locator('#overview-stage tr[data-group="active"] [data-representative]')
    expect(link).to_have_text("李明")
    link.click()
    page.wait_for_load_state()
    expect(page.locator(".persona-head h1")).to_contain_text("李明")
