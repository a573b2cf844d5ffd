"""The pipeline board on a tablet, in a real browser: every column can be reached by drag, with a
finger and with a mouse, in portrait (1024 x 1366), in landscape (1366 x 1024) and on the
smaller landscape tablet where the board scrolls (1024 x 768); a drop opens the form of the
column it landed on, and a card let go outside the columns changes nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.http import QueryDict
from django.utils import translation
from playwright.sync_api import Browser, Page, ViewportSize, expect

from crm.models import Consultation, Contract, Stage, Student, TrialLesson
from lifecycle.views.board import move_refusal, no_match_message
from tests import factories
from tests.browser import LOCALE, log_in, snapshot
from tests.lifecycle.board_drag import (
    Pointer,
    card_of,
    column,
    drag_to_column,
    fully_on_screen,
    hold_at_edge,
    inside,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PORTRAIT: ViewportSize = {"width": 1024, "height": 1366}
LANDSCAPE: ViewportSize = {"width": 1366, "height": 1024}
SMALL_LANDSCAPE: ViewportSize = {"width": 1024, "height": 768}

# Which form a lead's card opens on each column; None: the move is refused with its reason.
LEAD_DROPS: dict[str, str | None] = {
    Stage.CONSULTING: "consultation",
    Stage.TRIAL: "trial",
    Stage.ENROLLED: "contract",
    Stage.ACTIVE: None,
    Stage.DORMANT: None,
    Stage.CHURNED: None,
    Stage.LOST: "lost",
}


def page_language() -> str:
    return "zh-hans" if LOCALE.lower().startswith("zh") else "en"


def tablet_page(browser: Browser, viewport: ViewportSize) -> Iterator[Page]:
    context = browser.new_context(viewport=viewport, locale=LOCALE, has_touch=True)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.fixture(params=[PORTRAIT, LANDSCAPE], ids=["portrait", "landscape"])
def tablet(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    yield from tablet_page(browser, request.param)


@pytest.fixture
def small_tablet(browser: Browser) -> Iterator[Page]:
    yield from tablet_page(browser, SMALL_LANDSCAPE)


def open_board(page: Page, base_url: str, query: str = "") -> None:
    log_in(page, base_url, "alice")
    page.goto(f"{base_url}/board/{query}")
    expect(page.locator("[data-board]")).to_be_visible()
    page.wait_for_function("() => document.querySelector('[data-cards]') && window.Sortable !== undefined")


def expect_outcome(page: Page, lead: Student, stage: str, fact: str | None) -> None:
    """The dialog of `fact` is open (then cancelled), or the move was refused with its reason."""
    dialog, status = page.locator("#board-dialog"), page.locator("#board-status")
    if fact:
        expect(dialog.locator("[data-board-move-form]")).to_have_attribute("data-fact", fact)
        expect(dialog.locator("input[name=to]")).to_have_value(stage)
        dialog.locator("[data-board-cancel]").click()
        expect(dialog).to_be_hidden()
    else:
        with translation.override(page_language()):
            reason = move_refusal(Stage.LEAD, stage)
        expect(status).to_have_text(reason)
        expect(dialog).to_be_hidden()
    expect(column(page, Stage.LEAD).locator(f"[data-student='{lead.pk}']")).to_be_visible()


def missed(page: Page) -> str:
    """What the board says of a card let go outside its columns."""
    return page.locator("[data-board]").get_attribute("data-msg-missed") or "?"


def columns_on_screen(page: Page) -> list[str]:
    return [stage for stage in Stage.values if fully_on_screen(page, stage)]


@pytest.mark.parametrize("kind", ["mouse", "touch"])
def test_every_column_fits_and_takes_a_drop(live_server, tablet: Page, kind, front_desk, campus_a, request):
    lead = factories.StudentFactory(name="王小明", campus=campus_a, stage=Stage.LEAD, owner=front_desk)
    lead.student_tags.create(tag=factories.TagFactory(name="高意向"))
    for i, stage in enumerate(Stage.values):
        factories.StudentFactory(name=f"欧阳{'一二三四五六七八'[i]}", campus=campus_a, stage=stage, owner=front_desk)
    open_board(tablet, live_server.url)
    assert columns_on_screen(tablet) == Stage.values
    assert tablet.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    snapshot(tablet, f"board_{request.node.callspec.id}")

    pointer = Pointer(tablet, kind)
    for stage, fact in LEAD_DROPS.items():
        shot = f"board_dragging_{request.node.callspec.id}" if stage == Stage.ENROLLED else ""
        drag_to_column(tablet, pointer, card_of(tablet, lead), stage, shot)
        expect_outcome(tablet, lead, stage, fact)

    # Its own column: nothing is asked and nothing is said.
    tablet.locator("#board-status").evaluate("el => { el.hidden = true; }")
    drag_to_column(tablet, pointer, card_of(tablet, lead), Stage.LEAD)
    expect(tablet.locator("#board-status")).to_be_hidden()
    expect(tablet.locator("#board-dialog")).to_be_hidden()

    # The last column, all the way through: the lead is closed as lost.
    drag_to_column(tablet, pointer, card_of(tablet, lead), Stage.LOST)
    dialog = tablet.locator("#board-dialog")
    dialog.locator("#id_l-reason").fill("家长选择了别的机构")
    dialog.locator("button[type=submit]").click()
    expect(dialog).to_be_hidden()
    expect(column(tablet, Stage.LOST).locator(f"[data-student='{lead.pk}']")).to_be_visible()
    lead.refresh_from_db()
    assert (lead.stage, lead.lost_reason) == (Stage.LOST, "家长选择了别的机构")
    assert not (Consultation.objects.exists() or TrialLesson.objects.exists() or Contract.objects.exists())


@pytest.mark.parametrize("kind", ["mouse", "touch"])
def test_a_card_let_go_outside_the_columns_changes_nothing(live_server, tablet: Page, kind, front_desk, campus_a):
    lead = factories.StudentFactory(name="陈一诺", campus=campus_a, stage=Stage.LEAD)
    open_board(tablet, live_server.url)
    pointer = Pointer(tablet, kind)
    viewport = tablet.viewport_size
    assert viewport
    enrolled, active = column(tablet, Stage.ENROLLED).bounding_box(), column(tablet, Stage.ACTIVE).bounding_box()
    assert enrolled and active
    in_a_gap = (
        (enrolled["x"] + enrolled["width"] + active["x"]) / 2
        if active["x"] > enrolled["x"]  # side by side
        else enrolled["x"] + enrolled["width"] / 2,
        enrolled["y"] + enrolled["height"] + 4 if active["x"] < enrolled["x"] else enrolled["y"] + 100,
    )
    where: dict[str, tuple[float, float]] = {
        "past the right edge": (viewport["width"] - 3, enrolled["y"] + 100),
        "between two columns": in_a_gap,
        "on the filters": (viewport["width"] / 2, 120),
    }
    asked: list[str] = []
    tablet.on("request", lambda r: asked.append(r.url) if r.method == "POST" else None)
    for place, (x, y) in where.items():
        # Across the contract's column first: Sortable keeps the card in the last list it crossed.
        pointer.press(card_of(tablet, lead))
        pointer.slide(*inside(tablet, Stage.ENROLLED))
        pointer.slide(x, y)
        pointer.release()
        expect(tablet.locator("#board-status"), place).to_have_text(missed(tablet))
        expect(tablet.locator("#board-dialog"), place).to_be_hidden()
        assert asked == [], place
        expect(column(tablet, Stage.LEAD).locator(f"[data-student='{lead.pk}']"), place).to_be_visible()
        expect(tablet.locator(".board-card"), place).to_have_count(1)
        tablet.locator("#board-status").evaluate("el => { el.hidden = true; }")
    lead.refresh_from_db()
    assert lead.stage == Stage.LEAD
    assert not Contract.objects.exists()


@pytest.mark.parametrize("kind", ["mouse", "touch"])
def test_a_card_let_go_at_the_screens_edge_opens_no_form(live_server, small_tablet: Page, kind, front_desk, campus_a):
    """The defect as found: on a board wider than the screen, a card carried to the edge and let
    go there opened the form of the column cut off at the edge (the contract's)."""
    page = small_tablet
    lead = factories.StudentFactory(name="陈一诺", campus=campus_a, stage=Stage.LEAD)
    open_board(page, live_server.url)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if r.method == "POST" else None)
    pointer = Pointer(page, kind)
    pointer.press(card_of(page, lead))
    pointer.slide(*inside(page, Stage.TRIAL))
    viewport = page.viewport_size
    assert viewport
    pointer.slide(viewport["width"] - 4, pointer.y)
    pointer.release()
    expect(page.locator("#board-status")).to_have_text(missed(page))
    expect(page.locator("#board-dialog")).to_be_hidden()
    assert asked == []
    expect(column(page, Stage.LEAD).locator(f"[data-student='{lead.pk}']")).to_be_visible()


@pytest.mark.parametrize("kind", ["mouse", "touch"])
def test_holding_a_card_at_the_edge_scrolls_the_board_to_every_column(
    live_server, small_tablet: Page, kind, front_desk, campus_a
):
    page = small_tablet
    lead = factories.StudentFactory(name="周欣怡", campus=campus_a, stage=Stage.LEAD)
    open_board(page, live_server.url)
    hidden = [stage for stage in Stage.values if not fully_on_screen(page, stage)]
    assert Stage.LOST in hidden and Stage.LEAD not in hidden, "this screen must be too narrow for the board"

    pointer = Pointer(page, kind)
    for stage in hidden:
        pointer.press(card_of(page, lead))
        hold_at_edge(page, pointer, "right", stage, f"board_scrolling_{kind}" if stage == Stage.LOST else "")
        pointer.slide(*inside(page, stage))
        expect(column(page, stage)).to_have_class(re.compile(r"\bis-target\b"))
        pointer.release()
        expect_outcome(page, lead, stage, LEAD_DROPS[stage])
        page.evaluate("document.querySelector('[data-board]').scrollLeft = 0")

    # And back to the first column, from a card on the far right.
    churned = factories.StudentFactory(name="赵子轩", campus=campus_a, stage=Stage.CHURNED)
    page.reload()
    page.wait_for_function("() => window.Sortable !== undefined")
    page.evaluate("document.querySelector('[data-board]').scrollLeft = 1e6")
    assert not fully_on_screen(page, Stage.LEAD)
    pointer.press(card_of(page, churned))
    hold_at_edge(page, pointer, "left", Stage.LEAD)
    pointer.slide(*inside(page, Stage.LEAD))
    pointer.release()
    with translation.override(page_language()):
        reason = move_refusal(Stage.CHURNED, Stage.LEAD)
    expect(page.locator("#board-status")).to_have_text(reason)
    expect(column(page, Stage.CHURNED).locator(f"[data-student='{churned.pk}']")).to_be_attached()


def test_a_search_with_no_match_says_so(live_server, tablet: Page, front_desk, campus_a):
    factories.StudentFactory(name="王小明", campus=campus_a, stage=Stage.LEAD)
    open_board(tablet, live_server.url)
    tablet.fill("input[name=q]", "张三")
    tablet.press("input[name=q]", "Enter")
    with translation.override(page_language()):
        said = no_match_message(QueryDict("q=张三"))
    expect(tablet.locator("[data-board-no-match]")).to_contain_text(said)
    expect(tablet.locator(".board-card")).to_have_count(0)
    snapshot(tablet, "board_no_match")
    tablet.locator("[data-board-no-match] a").click()
    expect(tablet.locator(".board-card")).to_have_count(1)
    expect(tablet.locator("[data-board-no-match]")).to_have_count(0)
