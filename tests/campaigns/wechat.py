"""A real local HTTP server playing WeChat's token, subscription-message and mini-program login
endpoints.

It issues access tokens to the right app id and secret (counting every token request), accepts
a send only with a token it issued that has not expired (an expired one answers 42001, one it
never issued or revoked 40001), checks the message's body, records every request and every
message it took, and can be told what to answer next: an errcode, a delay, an HTTP status.

For the parents' WeChat login it plays `jscode2session` (a login code the test registers with
`login_code` answers its openid, unionid and a session_key once; an unknown code 40029, a code
used again 40163) and `getuserphonenumber` (a phone code registered with `phone_code` answers its
phone once, only with an access token it issued; an unknown or used code 40029).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.cache import cache

from campaigns.messaging.base import providers_reset
from campaigns.messaging.wechat import TOKEN_CACHE_KEY, TOKEN_LOCK_KEY
from tests.campaigns.local_server import JsonHandler, serving

# One app id per test process: the access token is cached in the Redis both xdist workers share,
# and one worker's token must not be offered to the other's server.
APPID = f"wx-test-app-{os.getpid()}"
SECRET = "test-app-secret"
PAGE = "pages/lesson/detail"
MINIPROGRAM_STATES = {"formal", "trial", "developer"}
SESSION_PATH = "/sns/jscode2session"
PHONE_PATH = "/wxa/business/getuserphonenumber"


@dataclass
class WeChatServer:
    url: str = ""
    expires_in: int = 7200  # what the next tokens are issued for, in seconds
    token_requests: list[dict[str, str]] = field(default_factory=list)  # every token request's query
    sends: list[dict[str, Any]] = field(default_factory=list)  # every send: token, body, errcode answered
    delivered: list[dict[str, Any]] = field(default_factory=list)  # the messages taken, with their msgid
    connections: set[tuple[str, int]] = field(default_factory=set)  # the clients' (host, port) seen
    tokens: dict[str, float] = field(default_factory=dict)  # token -> when it expires (monotonic)
    # What the next sends with a valid token (or the next token requests) get: ("errcode", X),
    # ("delay", seconds) before answering as usual, ("status", HTTP status).
    script: list[tuple[str, Any]] = field(default_factory=list)
    token_script: list[tuple[str, Any]] = field(default_factory=list)
    # The mini-program login: login code -> (openid, unionid or None); phone code -> (pure
    # number, country code); the codes used up; every session key handed out; every request.
    login_codes: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    phone_codes: dict[str, tuple[str, str]] = field(default_factory=dict)
    used_codes: set[str] = field(default_factory=set)
    session_keys: list[str] = field(default_factory=list)
    login_requests: list[dict[str, str]] = field(default_factory=list)
    phone_requests: list[dict[str, Any]] = field(default_factory=list)
    login_script: list[tuple[str, Any]] = field(default_factory=list)
    phone_script: list[tuple[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def login_code(self, code: str, openid: str, unionid: str | None = None) -> str:
        """`code` (a wx.login() code) will answer this WeChat account, once."""
        with self.lock:
            self.login_codes[code] = (openid, unionid)
        return code

    def phone_code(self, code: str, phone: str, country: str = "86") -> str:
        """`code` (a getPhoneNumber code) will answer this phone, once."""
        with self.lock:
            self.phone_codes[code] = (phone, country)
        return code

    def answer_login_next(self, *answers: tuple[str, Any]) -> None:
        with self.lock:
            self.login_script.extend(answers)

    def answer_phone_next(self, *answers: tuple[str, Any]) -> None:
        with self.lock:
            self.phone_script.extend(answers)

    def answer_next(self, *answers: tuple[str, Any]) -> None:
        with self.lock:
            self.script.extend(answers)

    def answer_token_next(self, *answers: tuple[str, Any]) -> None:
        with self.lock:
            self.token_script.extend(answers)

    def expire_tokens(self) -> None:
        """Every token issued so far expires now (WeChat answers 42001)."""
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, time.monotonic() - 1)

    def revoke_tokens(self) -> None:
        """Every token issued so far becomes unknown (WeChat answers 40001)."""
        with self.lock:
            self.tokens.clear()

    @property
    def token_count(self) -> int:
        return len(self.token_requests)


def _body_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body is not a JSON object"
    if not body.get("touser") or not body.get("template_id"):
        return "touser and template_id are required"
    if body.get("miniprogram_state", "formal") not in MINIPROGRAM_STATES:
        return "invalid miniprogram_state"
    data = body.get("data")
    if not isinstance(data, dict) or not all(
        isinstance(item, dict) and set(item) == {"value"} and isinstance(item["value"], str) for item in data.values()
    ):
        return "data must be {key: {value: string}}"
    return None


def _handler(wechat: WeChatServer) -> type[JsonHandler]:
    class Handler(JsonHandler):
        def _scripted(self, answer: tuple[str, Any] | None) -> bool:
            """Answer as scripted (after a scripted delay, answer as usual: False)."""
            if answer and answer[0] == "delay":
                time.sleep(answer[1])
                return False
            if answer and answer[0] == "status":
                self.reply_json(answer[1], {"errcode": -1, "errmsg": "system error"})
                return True
            if answer and answer[0] == "errcode":
                self.reply_json(200, {"errcode": answer[1], "errmsg": "scripted"})
                return True
            return False

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == SESSION_PATH:
                return self._jscode2session({key: values[0] for key, values in parse_qs(url.query).items()})
            if url.path != "/cgi-bin/token":
                return self.reply_json(404, {"errcode": 404, "errmsg": "not found"})
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            if self._scripted(self._record(wechat.token_requests, query, wechat.token_script)):
                return None
            if query.get("grant_type") != "client_credential":
                return self.reply_json(200, {"errcode": 40002, "errmsg": "invalid grant_type"})
            if query.get("appid") != APPID:
                return self.reply_json(200, {"errcode": 40013, "errmsg": "invalid appid"})
            if query.get("secret") != SECRET:
                return self.reply_json(200, {"errcode": 40125, "errmsg": "invalid appsecret"})
            with wechat.lock:
                token = f"token-{len(wechat.tokens) + 1}-{time.monotonic_ns()}"
                wechat.tokens[token] = time.monotonic() + wechat.expires_in
                expires_in = wechat.expires_in
            self.reply_json(200, {"access_token": token, "expires_in": expires_in})

        def _record(self, log: list[Any], request: dict[str, Any], script: list[tuple[str, Any]]) -> Any:
            """Log the request; the scripted answer due, if any."""
            with wechat.lock:
                wechat.connections.add(self.client_address)
                log.append(request)
                return script.pop(0) if script else None

        def _token_refused(
            self, log: list[Any], request: dict[str, Any], script: list[tuple[str, Any]]
        ) -> tuple[bool, Any]:
            """Log a request made with an access token: (True, None) once answered 40001 (a token
            never issued or revoked) or 42001 (expired), else (False, the scripted answer due)."""
            with wechat.lock:
                wechat.connections.add(self.client_address)
                log.append(request)
                expires = wechat.tokens.get(request["token"])
                valid = expires is not None and expires > time.monotonic()
                scripted = script.pop(0) if script and valid else None
            if expires is None:
                request["errcode"] = 40001
                self.reply_json(200, {"errcode": 40001, "errmsg": "invalid credential"})
                return True, None
            if not valid:
                request["errcode"] = 42001
                self.reply_json(200, {"errcode": 42001, "errmsg": "access_token expired"})
                return True, None
            return False, scripted

        def _jscode2session(self, query: dict[str, str]) -> None:
            if self._scripted(self._record(wechat.login_requests, query, wechat.login_script)):
                return None
            if query.get("grant_type") != "authorization_code":
                return self.reply_json(200, {"errcode": 40002, "errmsg": "invalid grant_type"})
            if query.get("appid") != APPID or query.get("secret") != SECRET:
                return self.reply_json(200, {"errcode": 40125, "errmsg": "invalid appsecret"})
            code = query.get("js_code", "")
            with wechat.lock:
                account = wechat.login_codes.get(code)
                used = code in wechat.used_codes
                wechat.used_codes.add(code)
                session_key = f"SESSION-KEY-{len(wechat.session_keys) + 1}-{time.monotonic_ns()}"
                if account and not used:
                    wechat.session_keys.append(session_key)
            if account is None:
                return self.reply_json(200, {"errcode": 40029, "errmsg": "invalid code"})
            if used:
                return self.reply_json(200, {"errcode": 40163, "errmsg": "code been used"})
            openid, unionid = account
            answer = {"openid": openid, "session_key": session_key}
            if unionid:
                answer["unionid"] = unionid
            self.reply_json(200, answer)

        def _phone_number(self, token: str, body: Any) -> None:
            request: dict[str, Any] = {"token": token, "body": body}
            refused, scripted = self._token_refused(wechat.phone_requests, request, wechat.phone_script)
            if refused:
                return None
            if scripted and scripted[0] in ("errcode", "status"):
                request["errcode"] = scripted[1] if scripted[0] == "errcode" else f"http_{scripted[1]}"
            if self._scripted(scripted):
                return None
            code = body.get("code") if isinstance(body, dict) else None
            with wechat.lock:
                phone = wechat.phone_codes.get(code) if isinstance(code, str) else None
                used = code in wechat.used_codes
                wechat.used_codes.add(str(code))
            if phone is None or used:
                request["errcode"] = 40029
                return self.reply_json(200, {"errcode": 40029, "errmsg": "invalid code"})
            request["errcode"] = 0
            pure, country = phone
            info = {
                "phoneNumber": f"+{country} {pure}" if country != "86" else pure,
                "purePhoneNumber": pure,
                "countryCode": country,
                "watermark": {"timestamp": int(time.time()), "appid": APPID},
            }
            self.reply_json(200, {"errcode": 0, "errmsg": "ok", "phone_info": info})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            url = urlsplit(self.path)
            token = parse_qs(url.query).get("access_token", [""])[0]
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            if url.path == PHONE_PATH:
                return self._phone_number(token, body)
            send: dict[str, Any] = {"path": url.path, "token": token, "body": body}
            if url.path != "/cgi-bin/message/subscribe/send":
                self._record(wechat.sends, {**send, "errcode": 404}, [])
                return self.reply_json(404, {"errcode": 404, "errmsg": "not found"})
            refused, scripted = self._token_refused(wechat.sends, send, wechat.script)
            if refused:
                return None
            if scripted and scripted[0] in ("errcode", "status"):
                send["errcode"] = scripted[1] if scripted[0] == "errcode" else f"http_{scripted[1]}"
            if self._scripted(scripted):
                return None
            problem = _body_problem(body)
            if problem:
                send["errcode"] = 47001
                return self.reply_json(200, {"errcode": 47001, "errmsg": f"data format error: {problem}"})
            with wechat.lock:
                msgid = 7_000_000 + len(wechat.delivered) + 1
                wechat.delivered.append({**body, "msgid": msgid})
            send["errcode"] = 0
            self.reply_json(200, {"errcode": 0, "errmsg": "ok", "msgid": msgid})

    return Handler


def forget_token() -> None:
    cache.delete_many([TOKEN_CACHE_KEY.format(appid=APPID), TOKEN_LOCK_KEY.format(appid=APPID)])


@pytest.fixture
def wechat_server(settings) -> Iterator[WeChatServer]:
    """WeChat running on a free local port; the wechat channel sends to it, with no token cached."""
    wechat = WeChatServer()
    with serving(_handler(wechat)) as url:
        wechat.url = url
        settings.WECHAT_API_BASE = url
        settings.WECHAT_APPID = APPID
        settings.WECHAT_SECRET = SECRET
        settings.WECHAT_MINIPROGRAM_STATE = "trial"
        settings.WECHAT_MINIPROGRAM_PAGE = PAGE
        settings.WECHAT_TIMEOUT = 2
        settings.MESSAGING_PROVIDERS = {
            **settings.MESSAGING_PROVIDERS,
            "wechat": "campaigns.messaging.wechat.WeChatSubscriptionProvider",
        }
        forget_token()
        providers_reset()
        try:
            yield wechat
        finally:
            providers_reset()
            forget_token()
