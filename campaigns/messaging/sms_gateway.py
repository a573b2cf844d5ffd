"""An HTTP SMS gateway in the style of the big Chinese SMS clouds.

One signed JSON POST per message to `{SMS_GATEWAY_URL}/sms/send`:
- body: the phone, the sign name (签名), the template code and its parameters, the rendered text,
  and `out_id`, the message's idempotency key, which the gateway deduplicates on;
- headers: the access key, a timestamp, a nonce and `X-Signature`, the hex HMAC-SHA256 of
  `signing_string` under the secret; the same key in `Idempotency-Key`.
The answer is `{"code": "OK", "message_id": ...}` or an error code, mapped by `ERROR_CODES` to
transient or permanent; a timeout, a refused connection, 429 and 5xx are transient. The gateway
signs its delivery receipts and inbound replies the same way (`verify`).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import secrets
import threading
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from campaigns.messaging.base import Outgoing, PermanentError, TransientError

SEND_PATH = "/sms/send"
# How far a signed request's timestamp may be from our clock.
SIGNATURE_MAX_AGE = 300

# The gateway's error codes: the ones worth retrying; every other code is permanent.
TRANSIENT_CODES = frozenset({"Throttling", "SystemBusy", "SystemError", "ServiceUnavailable"})


def signing_string(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return "\n".join([method.upper(), path, timestamp, nonce, hashlib.sha256(body).hexdigest()]).encode()


def sign(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    return hmac.new(secret.encode(), signing_string(method, path, timestamp, nonce, body), hashlib.sha256).hexdigest()


def verify(
    *, secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes, signature: str, now: float
) -> bool:
    """A request the gateway signed: the signature matches and the timestamp is recent."""
    try:
        age = abs(now - int(timestamp))
    except ValueError:
        return False
    if age > SIGNATURE_MAX_AGE:
        return False
    return hmac.compare_digest(sign(secret, method, path, timestamp, nonce, body), signature)


class SmsGatewayProvider:
    name = "sms_gateway"
    deduplicates = True

    def __init__(self) -> None:
        url = settings.SMS_GATEWAY_URL
        if not url:
            raise ImproperlyConfigured("SMS_GATEWAY_URL is not set")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ImproperlyConfigured(f"SMS_GATEWAY_URL={url!r} is not an http(s) URL")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.path = parts.path.rstrip("/") + SEND_PATH
        self.key = settings.SMS_GATEWAY_KEY
        self.secret = settings.SMS_GATEWAY_SECRET
        self.sign_name = settings.SMS_SIGN_NAME
        self.timeout = settings.SMS_GATEWAY_TIMEOUT
        # One kept-alive connection per thread: a worker sends thousands of messages in a row.
        self.local = threading.local()

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

    def send(self, message: Outgoing) -> str:
        body = json.dumps(
            {
                "phone": message.recipient,
                "sign_name": self.sign_name,
                "template_code": message.template_code,
                "template_param": message.params,
                "content": message.text,
                "out_id": message.key,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Access-Key": self.key,
            "X-Timestamp": timestamp,
            "X-Nonce": nonce,
            "X-Signature": sign(self.secret, "POST", self.path, timestamp, nonce, body),
            "Idempotency-Key": message.key,
        }
        try:
            conn = self._connection()
            conn.request("POST", self.path, body=body, headers=headers)
            response = conn.getresponse()
            status, raw = response.status, response.read()
        except (OSError, http.client.HTTPException) as error:
            # Timed out, refused or cut: the gateway may have taken it; the same key makes a retry safe.
            self._drop_connection()
            raise TransientError("network", type(error).__name__) from None
        if response.will_close:
            self._drop_connection()
        if status == 429 or status >= 500:
            raise TransientError(f"http_{status}")
        try:
            answer = json.loads(raw)
            code = str(answer.get("code", ""))
        except (ValueError, AttributeError):
            raise TransientError(f"http_{status}", "unreadable answer") from None
        if status == 200 and code == "OK" and answer.get("message_id"):
            return str(answer["message_id"])
        detail = str(answer.get("message", ""))[:150]
        if code in TRANSIENT_CODES:
            raise TransientError(code, detail)
        raise PermanentError(code or f"http_{status}", detail)
