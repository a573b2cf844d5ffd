"""Helpers for the staff API's record endpoints' tests (tests/crm/test_api_records.py and
test_api_lessons.py): acting as someone, posting JSON, the one error shape, query counts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from crm.models import AuditEntry, User
from parents.services.sessions import session_open
from tests import factories


def as_(client: Client, user: User | None) -> Client:
    if user is not None:
        client.force_login(user)
    return client


def post(client: Client, url: str, body: dict[str, Any], **headers: Any) -> Any:
    return client.post(url, json.dumps(body), content_type="application/json", **headers)


def assert_error(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """The one error shape of config/api_errors.py, naming `field` when given."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "fields"} and body["message"], body
    if field is not None:
        assert field in body["fields"], body
    return body


def list_queries(client: Client, url: str) -> tuple[int, list[Any]]:
    """How many queries a list ran, and its rows."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(queries), response.json()["results"]


def assert_constant_queries(client: Client, url: str, make: Callable[[int], object]) -> None:
    """The list runs as many queries for 20 rows as for 2 (`make(n)` adds n rows it lists)."""
    make(2)
    few, rows = list_queries(client, url)
    assert len(rows) == 2
    make(18)
    many, rows = list_queries(client, url)
    assert len(rows) == 20 and many == few


def audit_count(action: str) -> int:
    return AuditEntry.objects.filter(action=action).count()


def token_client(user: User) -> Client:
    """An integration's client: DRF's "Token" scheme, no session."""
    return Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")


def parent_client() -> Client:
    """A parent signed in to the mini-program: staff endpoints are not theirs."""
    tokens = session_open(guardian=factories.GuardianFactory(), via="sms")
    return Client(HTTP_AUTHORIZATION=f"Bearer {tokens.access}")
