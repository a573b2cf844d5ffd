"""The pipeline board in a real browser (headless Chromium, tablet viewport): dragging a
card records the fact behind the move, and a move no fact explains is refused."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from crm.models import Consultation, Stage, StudentStage, TrialLesson, TrialStatus
from lifecycle.models import StudentActivity
from tests import factories
from tests.browser import log_in, snapshot
from tests.lifecycle.board_drag import Pointer, drag_to_column

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def drag(page: Page, card: Locator, target: Locator) -> None:
    """Drag with the mouse onto a column's list, scrolling the board by its edge if need be."""
    drag_to_column(page, Pointer(page, "mouse"), card, target.get_attribute("data-cards") or "")


def column(page: Page, stage: str) -> Locator:
    return page.locator(f"[data-cards='{stage}']")


def card_of(page: Page, student) -> Locator:
    return page.locator(f".board-card[data-student='{student.pk}']")


def open_board(page: Page, base_url: str, username: str) -> None:
    log_in(page, base_url, username)
    page.goto(f"{base_url}/board/")
    expect(page.locator("[data-board]")).to_be_visible()
    page.wait_for_function("() => document.querySelector('[data-cards]') && window.Sortable !== undefined")


def test_dragging_a_lead_onto_trial_books_a_trial_and_the_card_lands_there(
    live_server, page: Page, front_desk, teacher, course_a, campus_a
):
    lead = factories.StudentFactory(name="王小明", campus=campus_a, stage=Stage.LEAD, owner=front_desk)
    other = factories.StudentFactory(
        name="李小龙",
        campus=campus_a,
        stage=Stage.LEAD,
        stage_changed_at=timezone.now() - dt.timedelta(days=9),
        next_follow_up_at=timezone.now() - dt.timedelta(days=1),
    )
    other.student_tags.create(tag=factories.TagFactory(name="编程"))
    other.student_tags.create(tag=factories.TagFactory(name="高意向"))
    active = factories.StudentFactory(name="赵子轩", campus=campus_a, stage=Stage.ACTIVE, owner=front_desk)
    StudentStage.objects.filter(student=active).update(at_risk=True, renewal_due=True)
    StudentActivity.objects.get_or_create(student=active)
    open_board(page, live_server.url, "alice")
    expect(page.locator("[data-count='lead']")).to_have_text("2")
    expect(card_of(page, other)).to_contain_text("9 days")
    expect(card_of(page, other)).to_contain_text("高意向")
    expect(card_of(page, other).locator(".badge.overdue")).to_be_visible()
    snapshot(page, "board")
    card_of(page, active).scroll_into_view_if_needed()
    expect(card_of(page, active).locator("[data-flag=at_risk]")).to_be_visible()
    expect(card_of(page, active).locator("[data-flag=renewal_due]")).to_be_visible()
    snapshot(page, "board_flags")
    page.locator("[data-column='lead']").scroll_into_view_if_needed()

    drag(page, card_of(page, lead), column(page, "trial"))
    dialog = page.locator("#board-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Book a trial lesson")
    when = (timezone.localtime() + dt.timedelta(days=2)).replace(hour=16, minute=0)
    dialog.locator("#id_t-course").select_option(str(course_a.pk))
    dialog.locator("#id_t-teacher").select_option(str(teacher.pk))
    dialog.locator("#id_t-scheduled_at").fill(when.strftime("%Y-%m-%dT%H:%M"))
    snapshot(page, "board_trial_dialog")
    dialog.locator("button[type=submit]").click()

    expect(dialog).to_be_hidden()
    expect(column(page, "trial").locator(f"[data-student='{lead.pk}']")).to_be_visible()
    expect(column(page, "lead").locator(f"[data-student='{lead.pk}']")).to_have_count(0)
    expect(page.locator("[data-count='trial']")).to_have_text("1")
    expect(page.locator("[data-count='lead']")).to_have_text("1")
    expect(page.locator("#board-status")).to_contain_text("Trial booked")
    snapshot(page, "board_after_trial")

    trial = TrialLesson.objects.get(student=lead)
    assert (trial.teacher, trial.status, trial.booked_by) == (teacher, TrialStatus.BOOKED, front_desk)
    lead.refresh_from_db()
    assert lead.stage == Stage.TRIAL
    # A reload shows the same: the engine put the student there, not the browser.
    page.reload()
    expect(column(page, "trial").locator(f"[data-student='{lead.pk}']")).to_be_visible()


def test_an_impossible_drag_is_refused_with_a_message_and_the_card_returns(
    live_server, page: Page, front_desk, campus_a
):
    signed = factories.StudentFactory(name="张小花", campus=campus_a, stage=Stage.ENROLLED)
    open_board(page, live_server.url, "alice")
    page.locator("[data-column='active']").scroll_into_view_if_needed()

    drag(page, card_of(page, signed), column(page, "active"))
    status = page.locator("#board-status")
    expect(status).to_be_visible()
    expect(status).to_contain_text("attending lessons")
    expect(page.locator("#board-dialog")).to_be_hidden()
    expect(column(page, "enrolled").locator(f"[data-student='{signed.pk}']")).to_be_visible()
    expect(column(page, "active").locator(".board-card")).to_have_count(0)
    snapshot(page, "board_refused")
    signed.refresh_from_db()
    assert signed.stage == Stage.ENROLLED


def test_cancel_puts_the_card_back_and_records_nothing(live_server, page: Page, front_desk, campus_a):
    lead = factories.StudentFactory(name="陈一诺", campus=campus_a, stage=Stage.LEAD)
    open_board(page, live_server.url, "alice")

    drag(page, card_of(page, lead), column(page, "consulting"))
    dialog = page.locator("#board-dialog")
    expect(dialog).to_contain_text("Log a consultation")
    dialog.locator("[data-board-cancel]").click()
    expect(dialog).to_be_hidden()
    expect(column(page, "lead").locator(f"[data-student='{lead.pk}']")).to_be_visible()
    expect(page.locator("#board-status")).to_contain_text("nothing was recorded")
    assert not Consultation.objects.exists()


def test_a_form_error_keeps_the_dialog_open_until_fixed(live_server, page: Page, front_desk, campus_a):
    lead = factories.StudentFactory(name="刘子涵", campus=campus_a, stage=Stage.LEAD)
    open_board(page, live_server.url, "alice")

    drag(page, card_of(page, lead), column(page, "lost"))
    dialog = page.locator("#board-dialog")
    expect(dialog).to_contain_text("Close as lost")
    dialog.locator("#id_l-reason").fill("   ")
    dialog.locator("#id_l-reason").evaluate("el => el.removeAttribute('required')")
    dialog.locator("button[type=submit]").click()
    expect(dialog.locator(".errorlist")).to_be_visible()
    dialog.locator("#id_l-reason").fill("家长选择了别的机构")
    dialog.locator("button[type=submit]").click()
    expect(dialog).to_be_hidden()
    expect(column(page, "lost").locator(f"[data-student='{lead.pk}']")).to_be_visible()
    lead.refresh_from_db()
    assert (lead.stage, lead.lost_reason) == (Stage.LOST, "家长选择了别的机构")


def test_load_more_pages_a_column(live_server, page: Page, front_desk, campus_a):
    now = timezone.now()
    for i in range(25):
        factories.StudentFactory(
            name=f"线索{i:02d}", campus=campus_a, stage=Stage.LEAD, stage_changed_at=now - dt.timedelta(hours=i)
        )
    open_board(page, live_server.url, "alice")
    lead_cards = column(page, "lead").locator(".board-card")
    expect(lead_cards).to_have_count(20)
    note = page.locator("[data-loaded='lead']")
    expect(note).to_be_hidden()
    page.locator("#more-lead button").click()
    expect(lead_cards).to_have_count(25)
    expect(page.locator("#more-lead button")).to_have_count(0)
    # It says what it added, and the added cards (only they) light up.
    expect(note).to_have_text("Loaded 5 more: 25 of 25 shown.")
    expect(column(page, "lead").locator(".board-card.just-loaded")).to_have_count(5)
    added = column(page, "lead").locator(".board-card.just-loaded").evaluate_all("cs => cs.map(c => c.textContent)")
    assert all(f"线索{i:02d}" in text for i, text in zip(range(20, 25), added, strict=True))
    snapshot(page, "board_loaded_more")


def touch_drag(page: Page, card: Locator, target: Locator) -> None:
    """A finger on a tablet: press, hold past Sortable's touch delay, slide, lift (through CDP)."""
    drag_to_column(page, Pointer(page, "touch"), card, target.get_attribute("data-cards") or "")


def test_a_finger_drags_a_card_on_a_tablet(live_server, page: Page, front_desk, campus_a):
    lead = factories.StudentFactory(name="周欣怡", campus=campus_a, stage=Stage.LEAD)
    open_board(page, live_server.url, "alice")
    touch_drag(page, card_of(page, lead), column(page, "consulting"))
    dialog = page.locator("#board-dialog")
    expect(dialog).to_contain_text("Log a consultation")
    dialog.locator("#id_c-channel").select_option("visit")
    dialog.locator("#id_c-content").fill("妈妈带孩子来参观")
    dialog.locator("button[type=submit]").click()
    expect(dialog).to_be_hidden()
    expect(column(page, "consulting").locator(f"[data-student='{lead.pk}']")).to_be_visible()
    assert Consultation.objects.filter(student=lead).count() == 1


def test_load_more_after_a_move_shows_every_card_once(live_server, page: Page, front_desk, campus_a):
    leads = [factories.StudentFactory(name=f"线索{i:02d}", campus=campus_a, stage=Stage.LEAD) for i in range(22)]
    open_board(page, live_server.url, "alice")
    lead_column = column(page, "lead")
    expect(lead_column.locator(".board-card")).to_have_count(20)

    moved = lead_column.locator(".board-card").first
    moved_id = int(moved.get_attribute("data-student") or 0)
    drag(page, moved, column(page, "lost"))
    dialog = page.locator("#board-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("#id_l-reason").fill("家长选择了别家")
    dialog.locator("button[type=submit]").click()
    expect(dialog).to_be_hidden()
    expect(column(page, "lost").locator(f"[data-student='{moved_id}']")).to_be_visible()
    expect(lead_column.locator(".board-card")).to_have_count(19)

    page.locator("#more-lead button").click()
    expect(lead_column.locator(".board-card")).to_have_count(21)
    shown = [
        int(pk or 0) for pk in lead_column.locator(".board-card").evaluate_all("cs => cs.map(c => c.dataset.student)")
    ]
    assert sorted(shown) == sorted(s.pk for s in leads if s.pk != moved_id)
