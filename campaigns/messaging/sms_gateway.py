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
import secrets
import time

from django.conf import settings

from campaigns.messaging.base import Outgoing, PermanentError, TransientError
from campaigns.messaging.json_client import KeptAliveJsonClient, json_body

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
        self.client = KeptAliveJsonClient(
            url=settings.SMS_GATEWAY_URL, setting="SMS_GATEWAY_URL", timeout=settings.SMS_GATEWAY_TIMEOUT
        )
        self.path = self.client.path(SEND_PATH)
        self.key = settings.SMS_GATEWAY_KEY
        self.secret = settings.SMS_GATEWAY_SECRET
        self.sign_name = settings.SMS_SIGN_NAME

    def send(self, message: Outgoing) -> str:
        body = json_body(
            {
                "phone": message.recipient,
                "sign_name": self.sign_name,
                "template_code": message.template_code,
                "template_param": message.params,
                "content": message.text,
                "out_id": message.key,
            }
        )
        timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Access-Key": self.key,
            "X-Timestamp": timestamp,
            "X-Nonce": nonce,
            "X-Signature": sign(self.secret, "POST", self.path, timestamp, nonce, body),
            "Idempotency-Key": message.key,
        }
        # A timeout or a cut connection is retried with the same key: the gateway drops a second copy.
        status, answer = self.client.request("POST", self.path, body=body, headers=headers)
        code = str(answer.get("code", ""))
        if status == 200 and code == "OK" and answer.get("message_id"):
            return str(answer["message_id"])
        detail = str(answer.get("message", ""))[:150]
        if code in TRANSIENT_CODES:
            raise TransientError(code, detail)
        raise PermanentError(code or f"http_{status}", detail)
