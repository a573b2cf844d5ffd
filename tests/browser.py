"""Headless Chromium (Debian's) driven by Playwright, for the browser tests.

Set SCREENSHOT_DIR to keep a PNG of each page a test looks at.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TABLET: ViewportSize = {"width": 1024, "height": 768}  # an iPad in landscape, the front desk's usual device
# The browser's own language (dates in inputs, navigator.language). It does not choose the
# pages' language (config/locale.py): tests/conftest.py makes that English for the tests;
# tests/test_i18n_browser.py restores the Chinese default.
LOCALE = os.environ.get("BROWSER_LOCALE", "en-US")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=TABLET, locale=LOCALE, has_touch=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def chinese_tablet(browser: Browser, settings: Any) -> Iterator[Page]:
    """A tablet as staff use it: the product in its default language, Simplified Chinese."""
    settings.LANGUAGE_CODE = "zh-hans"  # the product's default, which tests/conftest.py turns off
    context = browser.new_context(viewport=TABLET, locale="zh-CN", has_touch=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def snapshot(page: Page, name: str) -> None:
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def log_in(page: Page, base_url: str, username: str, password: str = "pass-1234") -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()
