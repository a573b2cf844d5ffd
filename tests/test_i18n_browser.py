"""A browser whose language is English, on a tablet: the pages are Chinese until the switch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests import factories
from tests.browser import log_in, snapshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TABLET_PORTRAIT = {"width": 1024, "height": 1366}


@pytest.fixture
def english_tablet(browser: Browser, settings) -> Iterator[Page]:
    settings.LANGUAGE_CODE = "zh-hans"  # the product's default, which tests/conftest.py turns off
    context = browser.new_context(viewport=TABLET_PORTRAIT, locale="en-US", has_touch=True)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def test_an_english_browser_reads_chinese_until_it_switches(live_server, english_tablet: Page, front_desk, campus_a):
    page = english_tablet
    student = factories.StudentFactory(name="王小明", campus=campus_a, owner=front_desk)
    assert page.evaluate("navigator.language") == "en-US"

    page.goto(f"{live_server.url}/accounts/login/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    log_in(page, live_server.url, "alice")
    expect(page).to_have_url(f"{live_server.url}/followups/")
    expect(page.locator("nav.nav")).to_contain_text("跟进")
    snapshot(page, "followups_zh")

    page.click("button[name=language][value=en]")
    expect(page).to_have_url(f"{live_server.url}/followups/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("nav.nav")).to_contain_text("Follow-ups")

    # Remembered from page to page, through the menu and a typed address alike.
    page.click("nav.nav >> text=Students")
    expect(page).to_have_url(f"{live_server.url}/students/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.goto(f"{live_server.url}/students/{student.pk}/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("main")).to_contain_text("王小明")

    page.click("button[name=language][value=zh-hans]")
    expect(page).to_have_url(f"{live_server.url}/students/{student.pk}/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.locator("nav.nav")).to_contain_text("学员")
    page.goto(f"{live_server.url}/board/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    snapshot(page, "board_zh")


def test_chinese_pages_on_a_tablet(live_server, english_tablet: Page, manager, teacher, campus_a, course_a):
    """The pages a school sees first, in Chinese at 1024 x 1366 (SCREENSHOT_DIR keeps them)."""
    page = english_tablet
    guardian = factories.GuardianFactory(name="李妈妈")
    student = factories.StudentFactory(name="李小龙", campus=campus_a, owner=manager, guardians=[guardian])
    contract = factories.ContractFactory(student=student, course=course_a)
    factories.AttendanceFactory(student=student, contract=contract, teacher=teacher)
    log_in(page, live_server.url, "mary")

    for name, path, words in (
        ("student_zh", f"/students/{student.pk}/", "李小龙"),
        ("not_found_zh", "/students/999999/", "页面不存在"),
        ("teacher_day_zh", f"/teacher/today/?teacher={teacher.pk}", "王老师"),
        ("admin_students_zh", "/admin/crm/student/", "学员"),
        ("admin_student_zh", f"/admin/crm/student/{student.pk}/change/", "家长"),
    ):
        page.goto(f"{live_server.url}{path}")
        expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
        expect(page.locator("body")).to_contain_text(words)
        assert "object (" not in page.content()
        snapshot(page, name)
