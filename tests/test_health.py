"""GET /healthz: 200 when the database, cache and broker answer; 503 naming what failed."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.db.utils import OperationalError
from django.test import Client, override_settings

from config import health

pytestmark = pytest.mark.django_db


def unused_local_port() -> int:
    """A port on localhost where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_all_ok_on_the_configured_services(client: Client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200, response.json()
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["database"] == "ok"
    assert body["cache"] == "ok"
    assert body["broker"] in ("ok", "in-process")


def test_needs_no_login_and_is_never_cached(client: Client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]


@override_settings(CELERY_BROKER_URL="memory://")
def test_the_embedded_broker_is_in_process(client: Client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["broker"] == "in-process"


def test_redis_broker_is_pinged(client: Client, settings: Any) -> None:
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("the broker is not Redis here (make test sets REDIS_URL)")
    assert client.get("/healthz").json()["broker"] == "ok"


def test_unreachable_cache_is_503(client: Client) -> None:
    port = unused_local_port()
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0"}
    }
    with override_settings(CACHES=caches, CELERY_BROKER_URL="memory://"):
        response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok"
    assert body["broker"] == "in-process"
    assert body["cache"].startswith("ConnectionError"), body


def test_unreachable_broker_is_503(client: Client) -> None:
    port = unused_local_port()
    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{port}/0"):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["broker"].startswith("ConnectionError")


def test_database_failure_is_503(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    class BrokenConnection:
        def cursor(self) -> None:
            raise OperationalError("connection refused")

    monkeypatch.setattr(health, "connection", BrokenConnection())

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["database"] == "OperationalError: connection refused"


def test_only_get(client: Client) -> None:
    assert client.post("/healthz").status_code == 405
