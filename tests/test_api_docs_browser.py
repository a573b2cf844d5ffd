"""The API's docs at /api/docs/ in a real browser: Swagger UI (drf-spectacular-sidecar, served
from our own static files) lists every operation of the schema, and no request leaves the
machine: a school's network may have no way out, and the docs must not tell a CDN who reads them."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.test import Client
from playwright.sync_api import Page, Route, expect

from tests.browser import snapshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
METHODS = {"get", "post", "put", "patch", "delete"}


def test_the_docs_list_every_operation_from_this_machine_only(live_server, page: Page) -> None:
    schema = Client().get("/api/schema/", {"format": "json"}).json()
    operations = [(method, path) for path, item in schema["paths"].items() for method in item if method in METHODS]
    assert len(operations) > 10
    local: list[str] = []
    foreign: list[str] = []

    def guard(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).hostname in LOCAL_HOSTS:
            local.append(url)
            route.continue_()
        else:
            foreign.append(url)
            route.abort()

    page.route("**/*", guard)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server.url}/api/docs/")
    blocks = page.locator(".opblock")
    expect(blocks).to_have_count(len(operations), timeout=15_000)
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/campaigns/{id}/launch/")).to_be_visible()
    # The security schemes the schema declares are offered to log in with.
    page.get_by_role("button", name="Authorize").click()
    for scheme in ("Token", "Bearer", "Session"):
        expect(page.locator(".auth-container h4", has_text=scheme).first).to_be_visible()
    snapshot(page, "api-docs")
    page.wait_for_load_state("networkidle")
    assert not foreign, f"requests left the machine: {foreign}"
    assert any("swagger-ui-bundle.js" in url for url in local), local  # the sidecar's copy, served here
    assert not errors, errors
