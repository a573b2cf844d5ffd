"""WeChat subscription messages (订阅消息) to a guardian who subscribed in the mini program.

`Outgoing.recipient` is the guardian's openid, `template_code` the subscription template's id and
`params` its data, `{key: value}`, sent as `{key: {"value": value}}`; the mini-program page the
message opens comes from settings (`WECHAT_MINIPROGRAM_PAGE`).

Every call carries an access token, fetched with the app's id and secret from
`{WECHAT_API_BASE}/cgi-bin/token`. WeChat limits how often a token may be fetched and outdates the
previous token with each fetch, so all workers share one token in Django's cache (Redis in
production), kept until `REFRESH_MARGIN` before it expires; a short cache lock lets one worker
fetch it while the others wait for it. A send that WeChat answers with "token invalid or expired"
fetches a new token and is tried once more. The token and the connection live in
`MiniProgramApi`, which the parents' WeChat login uses too (`mini_program_api()`), so the app
never has two token fetchers outdating each other's tokens.

WeChat takes no idempotency key (`deduplicates = False`): a send that timed out may have gone
out, and its retry may send it again.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

from campaigns.messaging.base import Outgoing, PermanentError, SendError, TransientError
from campaigns.messaging.json_client import KeptAliveJsonClient, json_body

TOKEN_PATH = "/cgi-bin/token"
SEND_PATH = "/cgi-bin/message/subscribe/send"

# One token per app, shared by every worker process through the cache.
TOKEN_CACHE_KEY = "campaigns:wechat:access-token:{appid}"
TOKEN_LOCK_KEY = "campaigns:wechat:access-token-lock:{appid}"
# A token is refreshed this long before WeChat says it expires (clocks and queues are not exact);
# a token that lives less than twice this is refreshed halfway.
REFRESH_MARGIN = 300
# How often a worker waiting for another's token fetch looks in the cache again.
LOCK_POLL = 0.05

# The token we sent is invalid (40001: outdated by a newer fetch, or revoked), malformed (40014) or
# expired (42001): a new one is fetched and the send tried once more.
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})
# WeChat is busy (-1) or we sent too much (45009): worth retrying later. Every other errcode is
# permanent: 43101 the guardian refused or used up their subscription, 40003 an invalid openid,
# 40037 an invalid template id, 47003 data the template refuses...
TRANSIENT_ERRCODES = frozenset({-1, 45009})


def _refusal(answer: dict[str, Any], transient: frozenset[int]) -> SendError:
    """The error of an answer that is not a success, by its errcode."""
    errcode = answer.get("errcode")
    detail = str(answer.get("errmsg", ""))[:150]
    if not isinstance(errcode, int):
        return TransientError("wechat-unreadable", detail)
    if errcode in transient:
        return TransientError(f"wechat-{errcode}", detail)
    return PermanentError(f"wechat-{errcode}", detail)


class MiniProgramApi:
    """The mini program's server API for one app: one kept-alive client and the app's access token.

    The subscription-message provider and the parents' WeChat login (jscode2session, the
    phone-number exchange) both go through it, so the app has one token, shared through the
    cache, whoever asks for it."""

    def __init__(self, *, url: str, appid: str, secret: str, timeout: float) -> None:
        if not (appid and secret):
            raise ImproperlyConfigured("the WeChat mini program API needs WECHAT_APPID and WECHAT_SECRET")
        self.appid = appid
        self.secret = secret
        self.client = KeptAliveJsonClient(url=url, setting="WECHAT_API_BASE", timeout=timeout)
        self.token_path = self.client.path(TOKEN_PATH)
        self.token_key = TOKEN_CACHE_KEY.format(appid=appid)
        self.lock_key = TOKEN_LOCK_KEY.format(appid=appid)
        # A worker waits for another's fetch as long as one fetch may take; the lock outlives a
        # fetch (connect and read may each take the timeout), so it is only left to expire by a
        # worker that died holding it.
        self.lock_wait = float(self.client.timeout)
        self.lock_seconds = math.ceil(self.client.timeout) * 2 + 1

    @classmethod
    def from_settings(cls) -> MiniProgramApi:
        return cls(
            url=settings.WECHAT_API_BASE,
            appid=settings.WECHAT_APPID,
            secret=settings.WECHAT_SECRET,
            timeout=settings.WECHAT_TIMEOUT,
        )

    def get(self, suffix: str, query: dict[str, str]) -> dict[str, Any]:
        """The JSON object WeChat answers to a GET of `suffix` (a path under the base URL)."""
        _, answer = self.client.request("GET", f"{self.client.path(suffix)}?{urlencode(query)}")
        return answer

    def post_with_token(self, suffix: str, body: bytes) -> dict[str, Any]:
        """POST `body` (JSON) to `suffix` with the app's access token; WeChat's answer.

        A token WeChat refuses is replaced and the request tried once more: WeChat refused it
        before acting, so the retry cannot act twice."""
        path = self.client.path(suffix)
        token = self.access_token()
        answer = self._post(path, token, body)
        if answer.get("errcode") in TOKEN_ERRCODES:
            answer = self._post(path, self.access_token(refused=token), body)
        return answer

    def _post(self, path: str, token: str, body: bytes) -> dict[str, Any]:
        _, answer = self.client.request(
            "POST",
            f"{path}?access_token={quote(token, safe='')}",
            body=body,
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        return answer

    def access_token(self, *, refused: str | None = None) -> str:
        """The app's access token from the cache, else fetched by one worker while the others wait.
        `refused` is a token WeChat just refused: it is dropped unless another worker has
        already replaced it."""
        token = cache.get(self.token_key)
        if token and token != refused:
            return str(token)
        deadline = time.monotonic() + self.lock_wait
        while True:
            if cache.add(self.lock_key, 1, timeout=self.lock_seconds):
                try:
                    # Another worker may have stored one between our read and our lock.
                    token = cache.get(self.token_key)
                    if token and token != refused:
                        return str(token)
                    if token:
                        cache.delete(self.token_key)
                    return self._fetch_token()
                finally:
                    cache.delete(self.lock_key)
            if time.monotonic() >= deadline:
                # The fetching worker is slow or died holding the lock: fetch rather than fail.
                return self._fetch_token()
            time.sleep(LOCK_POLL)
            token = cache.get(self.token_key)
            if token and token != refused:
                return str(token)

    def _fetch_token(self) -> str:
        query = urlencode({"grant_type": "client_credential", "appid": self.appid, "secret": self.secret})
        _, answer = self.client.request("GET", f"{self.token_path}?{query}")
        token, expires_in = answer.get("access_token"), answer.get("expires_in")
        if not (isinstance(token, str) and token and isinstance(expires_in, int)):
            # -1 busy, 45009 too many fetches: later. A wrong secret (40125, or 40001 here) or a
            # server address missing from the app's allow-list (40164) will not mend by itself.
            raise _refusal(answer, TRANSIENT_ERRCODES)
        cache.set(self.token_key, token, max(expires_in - REFRESH_MARGIN, expires_in // 2))
        return token


@lru_cache(maxsize=4)
def _api(url: str, appid: str, secret: str, timeout: float) -> MiniProgramApi:
    return MiniProgramApi(url=url, appid=appid, secret=secret, timeout=timeout)


def mini_program_api() -> MiniProgramApi:
    """The configured app's API, one per process (its connections kept alive across requests);
    ImproperlyConfigured without WECHAT_APPID and WECHAT_SECRET."""
    return _api(settings.WECHAT_API_BASE, settings.WECHAT_APPID, settings.WECHAT_SECRET, settings.WECHAT_TIMEOUT)


class WeChatSubscriptionProvider:
    name = "wechat"
    deduplicates = False

    def __init__(self) -> None:
        if not (settings.WECHAT_APPID and settings.WECHAT_SECRET):
            raise ImproperlyConfigured("the WeChat provider needs WECHAT_APPID and WECHAT_SECRET")
        self.api = MiniProgramApi.from_settings()
        self.state = settings.WECHAT_MINIPROGRAM_STATE
        self.page = settings.WECHAT_MINIPROGRAM_PAGE

    def send(self, message: Outgoing) -> str:
        if not message.template_code:
            raise PermanentError("wechat-no-template", "a subscription message needs its template id")
        payload: dict[str, Any] = {
            "touser": message.recipient,
            "template_id": message.template_code,
            "miniprogram_state": self.state,
            "lang": "zh_CN",
            "data": {key: {"value": str(value)} for key, value in message.params.items()},
        }
        if self.page:
            payload["page"] = self.page
        answer = self.api.post_with_token(SEND_PATH, json_body(payload))
        if answer.get("errcode") == 0:
            return str(answer.get("msgid", ""))
        # A token refused again (a new one outdated by another fetch at once): the next attempt.
        raise _refusal(answer, TRANSIENT_ERRCODES | TOKEN_ERRCODES)
