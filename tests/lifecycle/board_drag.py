"""Dragging a board card in a real browser, as a tablet's user does: with a mouse or a finger
(SortableJS's fallback mode follows both), holding the card at the board's edge to scroll to a
column that is off screen."""

from __future__ import annotations

from playwright.sync_api import Locator, Page

from crm.models import Student
from tests.browser import snapshot


class Pointer:
    """A mouse, or a finger through Chrome's DevTools protocol (SortableJS's fallback mode
    follows both): press on a card, slide in small steps, hold, let go."""

    def __init__(self, page: Page, kind: str) -> None:
        self.page, self.kind = page, kind
        self.cdp = page.context.new_cdp_session(page) if kind == "touch" else None
        self.x = self.y = 0.0

    def _touch(self, kind: str, x: float, y: float) -> None:
        assert self.cdp is not None
        points = [] if kind == "touchEnd" else [{"x": x, "y": y}]
        self.cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    def press(self, card: Locator) -> None:
        card.scroll_into_view_if_needed()
        box = card.bounding_box()
        assert box, "the card must be on screen"
        self.x, self.y = box["x"] + box["width"] / 2, box["y"] + min(box["height"] / 2, 30)
        if self.cdp:
            self._touch("touchStart", self.x, self.y)
            self.page.wait_for_timeout(300)  # a long press: a quick swipe scrolls the board instead
        else:
            self.page.mouse.move(self.x, self.y)
            self.page.mouse.down()
        self.slide(self.x + 8, self.y + 8, steps=4)  # past Sortable's tolerance: a drag, not a tap

    def slide(self, x: float, y: float, steps: int = 20) -> None:
        x0, y0 = self.x, self.y
        for i in range(1, steps + 1):
            self.x, self.y = x0 + (x - x0) * i / steps, y0 + (y - y0) * i / steps
            if self.cdp:
                self._touch("touchMove", self.x, self.y)
            else:
                self.page.mouse.move(self.x, self.y)
            self.page.wait_for_timeout(10)

    def release(self) -> None:
        self.page.wait_for_timeout(50)
        if self.cdp:
            self._touch("touchEnd", self.x, self.y)
        else:
            self.page.mouse.up()


def column(page: Page, stage: str) -> Locator:
    return page.locator(f"[data-column='{stage}']")


def card_of(page: Page, student: Student) -> Locator:
    return page.locator(f".board-card[data-student='{student.pk}']")


def inside(page: Page, stage: str) -> tuple[float, float]:
    """A point well inside a column's list of cards."""
    box = column(page, stage).bounding_box()
    assert box
    return box["x"] + box["width"] / 2, box["y"] + min(box["height"] / 2, 160)


def drag_to_column(page: Page, pointer: Pointer, card: Locator, stage: str, shot: str = "") -> None:
    """Drags `card` onto the column of `stage`, scrolling the board by its edge if need be;
    `shot` names a screenshot taken just before the card is let go."""
    pointer.press(card)
    if not fully_on_screen(page, stage):
        box = column(page, stage).bounding_box()
        assert box
        hold_at_edge(page, pointer, "right" if box["x"] > pointer.x else "left", stage)
    pointer.slide(*inside(page, stage))
    if shot:
        snapshot(page, shot)
    pointer.release()


# Whether a column is wholly inside the part of the board on screen.
ON_SCREEN = """stage => {
    const board = document.querySelector('[data-board]').getBoundingClientRect();
    const col = document.querySelector(`[data-column='${stage}']`).getBoundingClientRect();
    return col.left >= Math.max(board.left, 0) && col.right <= Math.min(board.right, window.innerWidth);
}"""


def fully_on_screen(page: Page, stage: str) -> bool:
    return bool(page.evaluate(ON_SCREEN, stage))


def hold_at_edge(page: Page, pointer: Pointer, side: str, stage: str, shot: str = "") -> None:
    """Holds the dragged card at the screen's `side` edge until `stage`'s column has scrolled in."""
    viewport = page.viewport_size
    assert viewport
    pointer.slide(viewport["width"] - 6 if side == "right" else 6, pointer.y)
    page.wait_for_function(ON_SCREEN, arg=stage)
    if shot:
        snapshot(page, shot)
    pointer.slide(viewport["width"] / 2, pointer.y, steps=1)  # away from the edge: the board stops
