"""The product speaks Simplified Chinese by default and English on request.

Every other test runs in English (the autouse fixture in tests/conftest.py); here the
real default is restored."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation


@pytest.fixture
def chinese_default(settings) -> None:
    settings.LANGUAGE_CODE = "zh-hans"


def test_login_page_is_chinese_without_accept_language(chinese_default: None, client: Client) -> None:
    html = client.get(reverse("login")).content.decode()
    assert "登录" in html
    assert "Log in" not in html
    assert '<html lang="zh-hans">' in html


def test_login_page_is_english_on_request(chinese_default: None) -> None:
    html = Client(HTTP_ACCEPT_LANGUAGE="en").get(reverse("login")).content.decode()
    assert "Log in" in html
    assert "登录" not in html


def test_catalogue_is_compiled() -> None:
    """The committed django.mo carries the translations (a fuzzy or missing entry would not)."""
    with translation.override("zh-hans"):
        assert translation.gettext("Follow-ups") == "跟进"
        assert translation.gettext("Lead pool") == "公海"
        assert translation.ngettext("%(n)s error", "%(n)s errors", 2) % {"n": 2} == "2 个错误"
