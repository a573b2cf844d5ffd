"""JSON over HTTP for the providers, on one kept-alive connection per thread.

A worker sends thousands of messages in a row: a new connection (and TLS handshake) per message
would cost more than the message. `http.client` connections are not thread-safe, hence one per
thread. What a later retry can cure (a timeout, a refused or cut connection, 429, a 5xx, an
answer that is not a JSON object) raises `TransientError`; every other answer is handed back, for
the provider to read its own error codes.
"""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from campaigns.messaging.base import TransientError


def json_body(payload: object) -> bytes:
    """A request body: compact UTF-8 JSON (Chinese text stays readable, not \\u-escaped)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class KeptAliveJsonClient:
    def __init__(self, *, url: str, setting: str, timeout: float) -> None:
        """`url` is the service's base URL, read from the setting named `setting` (named in the
        error when the URL is missing or not http(s), so a bad deployment stops at once)."""
        if not url:
            raise ImproperlyConfigured(f"{setting} is not set")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ImproperlyConfigured(f"{setting}={url!r} is not an http(s) URL")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.base_path = parts.path.rstrip("/")
        self.timeout = timeout
        self.local = threading.local()

    def path(self, suffix: str) -> str:
        """The request path of an endpoint under the base URL."""
        return self.base_path + suffix

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            conn = cls(self.host, self.port, timeout=self.timeout)
            self.local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            conn.close()
            self.local.conn = None

    def request(
        self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """(HTTP status, the JSON object answered) of one request to `path` (from `path()`)."""
        try:
            conn = self._connection()
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            status, raw = response.status, response.read()
        except (OSError, http.client.HTTPException) as error:
            # Timed out, refused or cut: the connection is in an unknown state, the next request opens
            # a new one. The service may have acted on the request; the provider says whether a
            # retry is safe (an idempotency key) or not.
            self._drop_connection()
            raise TransientError("network", type(error).__name__) from None
        if response.will_close:
            self._drop_connection()
        if status == 429 or status >= 500:
            raise TransientError(f"http_{status}")
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise TransientError(f"http_{status}", "unreadable answer")
        return status, answer
