"""A real local HTTP server playing the SMS gateway, for the tests (and the fault test).

It checks every request's signature, records what it received, deduplicates by the idempotency
key (a second request with a key it has seen answers the first message id and sends nothing),
counts the requests per key, and can be told to answer slowly (every request, like a real
gateway's latency, or the next ones), with 429, with a 5xx or with an error code. Thread-safe:
several worker processes send to it at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from campaigns.messaging import sms_gateway
from campaigns.messaging.base import providers_reset
from tests.campaigns.local_server import JsonHandler, serving

KEY = "test-key"
SECRET = "test-secret"


@dataclass
class Gateway:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)  # every request, signed or not
    delivered: dict[str, dict[str, Any]] = field(default_factory=dict)  # out_id -> the message sent
    # What the next requests get: a list of ("status", code) or ("delay", seconds) or ("error", code).
    script: list[tuple[str, Any]] = field(default_factory=list)
    # Seconds every signed request waits before it is answered: the gateway's own latency.
    latency: float = 0.0
    # Requests per idempotency key answered OK: above 1, retries the gateway deduplicated.
    hits: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer_next(self, *answers: tuple[str, Any]) -> None:
        with self.lock:
            self.script.extend(answers)

    @property
    def sent_count(self) -> int:
        return len(self.delivered)


def _handler(gateway: Gateway) -> type[JsonHandler]:
    class Handler(JsonHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            signed = self.headers.get("X-Access-Key") == KEY and sms_gateway.verify(
                secret=SECRET,
                method="POST",
                path=self.path,
                timestamp=self.headers.get("X-Timestamp", ""),
                nonce=self.headers.get("X-Nonce", ""),
                body=body,
                signature=self.headers.get("X-Signature", ""),
                now=time.time(),
            )
            payload = json.loads(body) if body else {}
            with gateway.lock:
                gateway.requests.append(
                    {"path": self.path, "signed": signed, "body": payload, "headers": dict(self.headers)}
                )
                answer = gateway.script.pop(0) if gateway.script else None
            if not signed:
                return self.reply_json(403, {"code": "SignatureDoesNotMatch", "message": "bad signature"})
            if gateway.latency:
                time.sleep(gateway.latency)
            if answer and answer[0] == "delay":
                time.sleep(answer[1])
            elif answer and answer[0] == "status":
                return self.reply_json(answer[1], {"code": "ServiceUnavailable", "message": "try later"})
            elif answer and answer[0] == "error":
                return self.reply_json(200, {"code": answer[1], "message": "refused"})
            key = str(self.headers.get("Idempotency-Key") or payload.get("out_id"))
            with gateway.lock:
                gateway.hits[key] += 1
                if key not in gateway.delivered:
                    gateway.delivered[key] = {**payload, "message_id": f"gw-{len(gateway.delivered) + 1}"}
                message_id = gateway.delivered[key]["message_id"]
            self.reply_json(200, {"code": "OK", "message_id": message_id})

    return Handler


def signed_post(client: Any, path: str, payload: object, *, secret: str = SECRET, age: int = 0) -> Any:
    """POST to one of our webhooks as the gateway does: the JSON body signed with the shared secret
    (`age` seconds old)."""
    body = json.dumps(payload).encode()
    timestamp, nonce = str(int(time.time()) - age), "n1"
    return client.post(
        path,
        data=body,
        content_type="application/json",
        HTTP_X_TIMESTAMP=timestamp,
        HTTP_X_NONCE=nonce,
        HTTP_X_SIGNATURE=sms_gateway.sign(secret, "POST", path, timestamp, nonce, body),
    )


@pytest.fixture
def sms_gateway_server(settings) -> Iterator[Gateway]:
    """The gateway running on a free local port; the SMS channel sends to it."""
    gateway = Gateway()
    with serving(_handler(gateway)) as url:
        gateway.url = f"{url}/v1"
        settings.SMS_GATEWAY_URL = gateway.url
        settings.SMS_GATEWAY_KEY = KEY
        settings.SMS_GATEWAY_SECRET = SECRET
        settings.SMS_GATEWAY_TIMEOUT = 2
        settings.MESSAGING_PROVIDERS = {
            **settings.MESSAGING_PROVIDERS,
            "sms": "campaigns.messaging.sms_gateway.SmsGatewayProvider",
        }
        providers_reset()
        try:
            yield gateway
        finally:
            providers_reset()
