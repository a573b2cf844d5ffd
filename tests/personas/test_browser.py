"""The persona card in a real browser, at tablet size, in Chinese: the charts draw, the suggested
next action opens its form ready, and saving it records the consultation."""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import Page, expect

from crm.models import Attendance, AttendanceStatus, Consultation, TagSource
from lifecycle.models import StudentActivity
from tests import factories
from tests.browser import log_in, snapshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def in_chinese(page: Page, base_url: str) -> None:
    page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": "zh-hans", "url": base_url}])


def test_front_desk_follows_the_next_action_from_the_card(live_server, page: Page, front_desk, teacher, course_a):
    campus = course_a.campus
    now = timezone.now()
    student = factories.StudentFactory(campus=campus, name="陈小雨", stage="active", school="实验小学")
    contract = factories.ContractFactory(
        student=student, course=course_a, signed_at=now - dt.timedelta(days=120), hours_consumed=Decimal("37")
    )
    Attendance.objects.bulk_create(
        Attendance(
            student=student,
            contract=contract,
            teacher=teacher,
            lesson_at=now - dt.timedelta(days=2 * i + 1, hours=3),
            status=[
                AttendanceStatus.PRESENT,
                AttendanceStatus.PRESENT,
                AttendanceStatus.ABSENT,
                AttendanceStatus.LEAVE,
            ][i % 4],
            hours=Decimal("0"),
        )
        for i in range(40)
    )
    student.pipeline.renewal_due = True
    student.pipeline.save()
    StudentActivity.objects.create(student=student, active_hours_remaining=Decimal("3"))
    factories.StudentProfileFactory(student=student, remaining_hours=Decimal("3"))
    student.student_tags.create(tag=factories.TagFactory(name="升学型"), source=TagSource.RULE, rule="五年级及以上")

    in_chinese(page, live_server.url)
    log_in(page, live_server.url, front_desk.username)
    page.goto(f"{live_server.url}/students/{student.pk}/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    # ECharts draws on a canvas in each chart box.
    expect(page.locator("#chart-attendance canvas")).to_have_count(1)
    expect(page.locator("#chart-rfm canvas")).to_have_count(1)
    expect(page.locator("#next-action")).to_contain_text("续费沟通")
    expect(page.locator("#next-action")).to_contain_text("仅剩 3 课时")
    # Nothing sticks out sideways at a tablet's width.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    snapshot(page, "persona_card")
    if os.environ.get("SCREENSHOT_DIR"):
        page.screenshot(path=os.path.join(os.environ["SCREENSHOT_DIR"], "persona_card_viewport.png"))

    page.click("[data-next-action-link]")
    content = page.locator("#id_c-content")
    expect(content).to_be_focused()
    expect(content).to_have_value("续费沟通：在读合同仅剩 3 课时。已介绍续费课包。")
    assert content.evaluate(
        "(e) => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; }"
    )
    snapshot(page, "persona_card_next_action")
    if os.environ.get("SCREENSHOT_DIR"):  # what the person sees, unscrolled
        page.screenshot(path=os.path.join(os.environ["SCREENSHOT_DIR"], "persona_card_form_viewport.png"))

    page.select_option("#id_c-channel", "phone")
    content.fill("续费沟通：在读合同仅剩 3 课时。家长同意续 40 课时。")
    page.click("#consultation button")
    expect(page.locator(".msg.success")).to_be_visible()
    expect(page.locator("[data-kind=consultation]").first).to_contain_text("家长同意续 40 课时")
    assert Consultation.objects.get(student=student).consultant == front_desk


def test_the_timeline_loads_older_touches_in_place(live_server, page: Page, front_desk, teacher, course_a):
    student = factories.StudentFactory(campus=course_a.campus, name="林小北")
    contract = factories.ContractFactory(student=student, course=course_a)
    now = timezone.now()
    Attendance.objects.bulk_create(
        Attendance(
            student=student,
            contract=contract,
            teacher=teacher,
            lesson_at=now - dt.timedelta(days=i + 1),
            hours=Decimal("0"),
        )
        for i in range(45)
    )
    in_chinese(page, live_server.url)
    log_in(page, live_server.url, front_desk.username)
    page.goto(f"{live_server.url}/students/{student.pk}/")
    entries = page.locator("#timeline-entries > li[data-kind]")
    expect(entries).to_have_count(20)
    page.click("[data-older]")
    expect(entries).to_have_count(40)
    page.click("[data-older]")
    expect(entries).to_have_count(47)  # 45 lessons, the contract and the creation
    expect(page.locator("[data-older]")).to_have_count(0)
    snapshot(page, "persona_card_timeline")
