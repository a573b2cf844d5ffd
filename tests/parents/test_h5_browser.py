"""The H5 parent app at /m/ in headless Chromium at a phone's size, in Chinese: a parent logs in
with the SMS code, sees both children (two campuses), opens a child's page, asks for a trial,
turns SMS offers off, logs out, and the old token is refused. Every request stays on the server.

Set SCREENSHOT_DIR (e.g. /tmp/h5shots) to keep a PNG of every screen."""

from __future__ import annotations

import datetime as dt
import importlib
import os
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from playwright.sync_api import Browser, Page, ViewportSize, expect

from campaigns.models import ConsentRecord, ConsentSource, Message, MessageChannel
from campaigns.services.consent import consent_record
from crm.models import Student
from parents.models import TrialRequest
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE: ViewportSize = {"width": 390, "height": 844}  # an iPhone 12-15, the middle of 375-414


@pytest.fixture(autouse=True)
def _codes_not_throttled(settings: Any, own_throttle_counts: None) -> None:
    """The throttles count in the shared cache: a rerun must not find the last run's codes."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth_phone": "1000/hour"},
    }


@pytest.fixture
def phone(browser: Browser, settings: Any) -> Iterator[Page]:
    """A phone as parents hold it, in the product's default language."""
    settings.LANGUAGE_CODE = "zh-hans"  # the product's default, which tests/conftest.py turns off
    context = browser.new_context(
        viewport=PHONE,
        locale="zh-CN",
        timezone_id="America/New_York",  # a parent abroad still reads and books the school's hours
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def shot(page: Page, name: str, scroll_to: str | None = None) -> None:
    """What the phone's screen shows (390x844, not the whole page: the tab bar stays at the bottom)."""
    folder = os.environ.get("SCREENSHOT_DIR")
    if not folder:
        return
    if scroll_to:
        page.locator(scroll_to).first.scroll_into_view_if_needed()
    Path(folder).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(folder) / f"{name}.png"))


def endpoint_exists(name: str, *args: Any) -> bool:
    try:
        reverse(f"parent_api:{name}", args=args)
    except NoReverseMatch:
        return False
    return True


def family_with_history(guardian: Any, course: Any, teacher: Any, front_desk: Any) -> tuple[Student, Any]:
    """The first child's lessons, a package half used, attendance with a teacher's remark."""
    child = Student.objects.get(guardians=guardian, campus=course.campus)
    contract = factories.ContractFactory(
        student=child, course=course, hours_bought=Decimal("96"), hours_consumed=Decimal("48")
    )
    now = timezone.now()
    for week in range(24):  # more than the child's page sends (20): the rest behind "more"
        factories.AttendanceFactory(
            student=child,
            contract=contract,
            teacher=teacher,
            lesson_at=now - dt.timedelta(days=7 * (week + 1)),
            hours=Decimal("2"),
            feedback="课堂专注，作业完成得很好" if week == 0 else "",
        )
    lesson = factories.LessonFactory(course=course, teacher=teacher, starts_at=now + dt.timedelta(days=2))
    lesson.students.add(child)
    # The family said yes to SMS offers at the front desk; the app is where they take it back.
    consent_record(
        guardian=guardian,
        channel=MessageChannel.SMS,
        granted=True,
        source="staff",
        wording="同意接收短信优惠",
        actor=front_desk,
    )
    return child, lesson


def test_a_parent_uses_the_h5_app_on_a_phone(
    live_server, phone: Page, parent_two_campuses, course_a, course_b, teacher, front_desk
) -> None:
    guardian = parent_two_campuses
    child, lesson = family_with_history(guardian, course_a, teacher, front_desk)
    server = urlsplit(live_server.url).netloc
    elsewhere: list[str] = []
    phone.on(
        "request",
        lambda request: (
            elsewhere.append(request.url)
            if urlsplit(request.url).scheme in ("http", "https", "ws", "wss") and urlsplit(request.url).netloc != server
            else None
        ),
    )

    # Login: not logged in, the app opens on the login screen, in Chinese.
    phone.goto(f"{live_server.url}/m/")
    expect(phone).to_have_url(f"{live_server.url}/m/#/login")
    expect(phone.locator("h1")).to_have_text("家长登录")
    shot(phone, "h5_login")
    phone.fill("#f-phone", "12")
    phone.click(".code-button")
    expect(phone.locator('.field-error[data-for="phone"]')).not_to_be_empty()  # the API's message, beside the field
    shot(phone, "h5_login_error")
    phone.fill("#f-phone", "138 0013 8003")
    phone.click(".code-button")
    expect(phone.locator(".code-button")).to_contain_text("秒后重发")  # counting down to the next code
    expect(phone.locator(".hint[role=status]")).to_contain_text("138 0013 8003")
    message = Message.objects.get(recipient=guardian.phone, template_code="login_code")
    assert "验证码" in message.text
    phone.fill("#f-code", message.params["code"])
    shot(phone, "h5_login_code")
    phone.click("button[type=submit]")

    # Both children, one per campus.
    expect(phone).to_have_url(f"{live_server.url}/m/#/children")
    cards = phone.locator("a.child")
    expect(cards).to_have_count(2)
    expect(cards.nth(0)).to_contain_text("张一")
    expect(cards.nth(1)).to_contain_text("张二")
    expect(phone.locator("#tabs")).to_contain_text("我的孩子")
    if not endpoint_exists("referral"):
        expect(phone.locator("#tabs a[href='#/referral']")).to_have_count(0)  # not on this server: hidden
    shot(phone, "h5_children")

    # The child's page: lessons, hours per package, attendance, the teacher's remark.
    phone.click(f"a[href='#/child/{child.pk}']")
    expect(phone.locator("h1")).to_have_text("张一")
    expect(phone.locator("body")).to_contain_text("课堂专注，作业完成得很好")
    expect(phone.locator(".contract")).to_contain_text(course_a.name)
    expect(phone.locator(".contract")).to_contain_text("剩余")
    # The lesson at the school's hour (and the teacher by the name staff know, not a login).
    upcoming = phone.locator(".card", has_text="近期课程")
    expect(upcoming).to_contain_text(timezone.localtime(lesson.starts_at).strftime("%H:%M"))
    expect(upcoming).to_contain_text(teacher.display_name)
    shot(phone, "h5_child")
    shot(phone, "h5_child_feedback", scroll_to=".feedback")
    attended = phone.locator("li[data-id]")
    expect(attended).to_have_count(20)
    phone.get_by_text("查看更多").click()
    expect(attended).to_have_count(24)
    expect(phone.get_by_text("查看更多")).to_have_count(0)
    shot(phone, "h5_child_trial_form", scroll_to="#trial-form button[type=submit]")

    # Ask for a trial: the course picker offers the child's campus's courses.
    form = phone.locator("#trial-form")
    form.locator("button[type=submit]").click()
    expect(form.locator('.field-error[data-for="wished_at"]')).not_to_be_empty()  # no time chosen yet
    wished = timezone.localtime() + dt.timedelta(days=3)
    form.locator("select[name=course]").select_option(str(course_a.pk))
    form.locator("input[name=wished_at]").fill(wished.strftime("%Y-%m-%dT10:00"))
    form.locator("textarea[name=note]").fill("周末上午方便")
    shot(phone, "h5_trial_form")
    form.locator("button[type=submit]").click()
    expect(phone.locator("#trial-requests")).to_contain_text(course_a.name)
    request = TrialRequest.objects.get(student=child)
    assert (request.course, request.note, request.guardian) == (course_a, "周末上午方便", guardian)
    assert timezone.localtime(request.wished_at).strftime("%Y-%m-%d %H:%M") == wished.strftime("%Y-%m-%d 10:00")
    shot(phone, "h5_child_after_request", scroll_to="#trial-requests")

    # Settings: SMS offers off, recorded as the parent's own decision in the app.
    phone.click("#tabs a[href='#/settings']")
    sms = phone.locator("#pref-sms")
    expect(sms).to_be_checked()
    expect(phone.locator("body")).to_contain_text("短信")
    shot(phone, "h5_settings")
    with phone.expect_response(lambda r: r.url.endswith("/preferences/") and r.request.method == "PATCH") as saved:
        sms.uncheck()
    assert saved.value.status == 200
    expect(phone.locator(".toast")).to_have_text("已保存")
    expect(phone.locator("#pref-sms")).not_to_be_checked()
    record = ConsentRecord.objects.filter(guardian=guardian, channel=MessageChannel.SMS).latest("pk")
    assert (record.granted, record.source) == (False, ConsentSource.PARENT_APP)
    shot(phone, "h5_settings_sms_off")

    # Their family's data, as a JSON file.
    with phone.expect_download() as download:
        phone.get_by_text("下载我家的数据").click()
    assert download.value.suggested_filename.startswith("family-data-")

    # Logout: back to the login screen, and the token this phone held is refused by the API.
    access = phone.evaluate("localStorage.getItem('scrm.parent.access')")
    assert access
    phone.click("#logout")
    expect(phone).to_have_url(f"{live_server.url}/m/#/login")
    assert phone.evaluate("localStorage.getItem('scrm.parent.access')") is None
    refused = phone.request.get(
        f"{live_server.url}{reverse('parent_api:me')}", headers={"Authorization": f"Bearer {access}"}
    )
    assert refused.status == 401

    assert elsewhere == [], "the app asked another server"


def test_an_expired_access_token_is_refreshed_once_then_the_login_shows(
    live_server, phone: Page, parent_two_campuses
) -> None:
    from parents.services.sessions import session_open

    tokens = session_open(guardian=parent_two_campuses, via="sms")
    phone.goto(f"{live_server.url}/m/#/login")
    # A stale access token beside a live refresh token: the app refreshes and carries on.
    phone.evaluate(
        "([refresh]) => { localStorage.setItem('scrm.parent.access', 'stale');"
        " localStorage.setItem('scrm.parent.refresh', refresh); }",
        [tokens.refresh],
    )
    phone.goto(f"{live_server.url}/m/#/children")
    expect(phone.locator("a.child")).to_have_count(2)
    assert phone.evaluate("localStorage.getItem('scrm.parent.access')") != "stale"
    # Both refused (the refresh token was used up by the refresh above): the login screen.
    phone.evaluate(
        "([refresh]) => { localStorage.setItem('scrm.parent.access', 'stale');"
        " localStorage.setItem('scrm.parent.refresh', refresh); }",
        [tokens.refresh],
    )
    # A fresh load (not a hash change), so nothing the last screen still had in flight interferes.
    phone.goto(f"{live_server.url}/m/?again#/settings")
    expect(phone).to_have_url(f"{live_server.url}/m/?again#/login")
    expect(phone.locator("h1")).to_have_text("家长登录")


def test_an_unknown_invite_link_says_so(live_server, phone: Page) -> None:
    phone.goto(f"{live_server.url}/m/#/invite/NOPE42")
    expect(phone.locator(".card")).to_contain_text("邀请链接")
    shot(phone, "h5_invite_unknown")


# --- the sections built on endpoints that may land later: each test runs once they are here ---

needs_satisfaction = pytest.mark.skipif(
    not endpoint_exists("satisfaction"), reason="the satisfaction endpoints are not on this server yet"
)
needs_referral = pytest.mark.skipif(
    not endpoint_exists("referral"), reason="the referral endpoints are not on this server yet"
)


def logged_in(page: Page, base_url: str, guardian: Any) -> None:
    """The app holding a session's tokens, as after the code login the first test drives."""
    from parents.services.sessions import session_open

    tokens = session_open(guardian=guardian, via="sms")
    page.goto(f"{base_url}/m/#/login")
    page.evaluate(
        "([access, refresh]) => { localStorage.setItem('scrm.parent.access', access);"
        " localStorage.setItem('scrm.parent.refresh', refresh); }",
        [tokens.access, tokens.refresh],
    )


@needs_satisfaction
def test_a_parent_answers_the_satisfaction_question(
    live_server, phone: Page, parent_two_campuses, course_a, teacher
) -> None:
    # Imported by name: the models land with the endpoints (mypy checks this file on main too).
    answers = importlib.import_module("personas.models").SatisfactionAnswer
    attended = importlib.import_module("tests.personas.test_satisfaction").attended

    child = Student.objects.get(guardians=parent_two_campuses, campus=course_a.campus)
    attended(child, course_a, teacher, 8)  # the campus's default: asked after eight lessons
    logged_in(phone, live_server.url, parent_two_campuses)
    phone.goto(f"{live_server.url}/m/#/children")
    banner = phone.locator("a.banner")
    expect(banner).to_be_visible()
    shot(phone, "h5_children_satisfaction_due")
    banner.click()
    expect(phone).to_have_url(f"{live_server.url}/m/#/satisfaction")
    form = phone.locator("form", has_text=child.name)
    form.locator("button[type=submit]").click()
    expect(form.locator('.field-error[data-for="score"]')).to_have_text("请选择一个分数。")
    form.locator(f"label[for='score-{child.pk}-9']").click()
    expect(form.locator('.field-error[data-for="score"]')).to_be_empty()
    form.locator("textarea[name=reason]").fill("老师很耐心")
    shot(phone, "h5_satisfaction")
    form.locator("button[type=submit]").click()
    expect(phone.locator("#app")).to_contain_text("目前没有需要回答的问题")
    answer = answers.objects.get(student=child)
    assert (answer.score, answer.reason, answer.guardian) == (9, "老师很耐心", parent_two_campuses)


@needs_referral
def test_a_parent_invites_a_friend_whose_child_then_signs(
    live_server, phone: Page, browser: Browser, parent_two_campuses, course_a, front_desk
) -> None:
    from crm.services.contracts import contract_sign

    guardian = parent_two_campuses
    own = Student.objects.get(guardians=guardian, campus=course_a.campus)
    factories.ContractFactory(student=own, course=course_a, hours_bought=Decimal("40"))  # where the bonus goes
    logged_in(phone, live_server.url, guardian)
    phone.goto(f"{live_server.url}/m/#/referral")
    code = phone.locator(".code-big")
    expect(code).not_to_be_empty()
    guardian.refresh_from_db()
    expect(code).to_have_text(guardian.invite_code)
    expect(phone.locator("input.link")).to_have_value(re.compile(rf"/m/#/invite/{guardian.invite_code}$"))
    phone.get_by_text("复制链接").click()
    expect(phone.locator(".toast")).to_have_text(re.compile("已复制|请长按链接复制"))
    shot(phone, "h5_referral")

    # The friend opens the link on their own phone: no login, a lead form.
    context = browser.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True, has_touch=True)
    friend = context.new_page()
    friend.goto(f"{live_server.url}/m/#/invite/{guardian.invite_code}")
    expect(friend.locator(".hero")).to_contain_text(course_a.campus.name)
    friend.fill("#f-student_name", "赵小龙")
    friend.fill("#f-guardian_name", "赵妈妈")
    friend.fill("#f-phone", "139 0013 9000")
    friend.fill("#f-note", "想试听编程")
    shot(friend, "h5_invite")
    friend.locator("button[type=submit]").click()
    expect(friend.locator(".done")).to_contain_text(course_a.campus.name)
    shot(friend, "h5_invite_thanks")
    context.close()
    referred = Student.objects.get(name="赵小龙")
    assert referred.referred_by == guardian  # type: ignore[attr-defined]  # the field lands with the endpoints

    # The front desk signs the friend's child: the inviter sees it and the bonus hours.
    contract_sign(
        actor=front_desk,
        student=referred,
        course=course_a,
        hours_bought=Decimal("20"),
        amount=Decimal(0),
        paid_amount=Decimal(0),
    )
    phone.reload()
    invitations = phone.locator("section.card").filter(has=phone.get_by_role("heading", name="我的邀请", exact=True))
    expect(invitations).to_contain_text("小龙")
    expect(invitations.locator(".pill")).to_be_visible()
    shot(phone, "h5_referral_signed")
