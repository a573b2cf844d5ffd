"""The H5 parent app's shell at /m/: open to anyone (the API decides what a caller sees), in
Chinese by default with every word of the app translated, and nothing fetched from elsewhere."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from parents.h5 import STRINGS

pytestmark = pytest.mark.django_db


def config_of(html: str) -> dict:
    found = re.search(r'<script id="h5-config" type="application/json">(.*?)</script>', html, re.S)
    assert found, html
    return json.loads(found.group(1))


def test_the_shell_is_public_chinese_and_hands_every_word_to_the_script(client: Client, settings) -> None:
    settings.LANGUAGE_CODE = "zh-hans"  # the product's default, which tests/conftest.py turns off
    response = client.get(reverse("parent_app"))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="zh-hans">' in html and 'name="viewport"' in html
    config = config_of(html)
    assert config["api"] == "/api/v1/parent/" and config["lang"] == "zh-CN"
    assert set(config["strings"]) == set(STRINGS)
    untranslated = [key for key, text in config["strings"].items() if not re.search(r"[\u4e00-\u9fff]", text)]
    assert untranslated == []
    assert config["strings"]["login_title"] == "家长登录"


def test_nothing_is_fetched_from_another_server(client: Client) -> None:
    html = client.get(reverse("parent_app")).content.decode()
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_english_is_the_language_switchs_choice_only(client: Client, settings) -> None:
    settings.LANGUAGE_CODE = "zh-hans"
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    config = config_of(client.get(reverse("parent_app")).content.decode())
    assert config["lang"] == "en" and config["strings"]["login_title"] == "Parent login"
