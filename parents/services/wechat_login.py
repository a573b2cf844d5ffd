"""Logging a parent in with WeChat: the mini program's `wx.login()` code, and the first time the
phone number WeChat vouches for (`getPhoneNumber`'s code).

1. `{WECHAT_API_BASE}/sns/jscode2session` turns the login code into the WeChat account's openid
   (and unionid, when the app is on an open platform). A guardian already linked to that openid
   is logged in.
2. Otherwise the parent must let WeChat give us their phone: without a phone code the answer is
   `phone_required` (the mini program then asks WeChat for the phone and calls again). With one,
   `/wxa/business/getuserphonenumber` (with the app's access token, shared with the messaging
   layer: `campaigns.messaging.wechat.mini_program_api`) gives the phone; the family with that
   phone is linked to the WeChat account (`crm.services.families.guardian_wechat_bind`) and
   logged in. A phone no family has is `no_family`: the campus must add it first, as for an SMS
   login, so WeChat never creates a family.

jscode2session also answers a `session_key` (the key of the user's encrypted data). We need none
of that data, so the key is dropped where it arrives: never stored, logged or handed on.

WeChat is asked outside any transaction; a WeChat that is busy or cannot be reached
(`WeChatUnavailable`) leaves nothing written. Without WECHAT_APPID and WECHAT_SECRET WeChat
login is off (`WeChatLoginOff`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from campaigns.messaging.base import SendError
from campaigns.messaging.json_client import json_body
from campaigns.messaging.wechat import MiniProgramApi, mini_program_api
from crm.models import Guardian
from crm.phones import try_normalize_phone
from crm.services.families import guardian_wechat_bind
from parents.services.login import TooManyAttempts
from parents.services.sessions import Tokens, session_open

logger = logging.getLogger(__name__)

SESSION_PATH = "/sns/jscode2session"
PHONE_PATH = "/wxa/business/getuserphonenumber"

CODE_INVALID = 40029  # the code is not one WeChat issued to this app, or has expired
CODE_USED = 40163
RATE_LIMITED = 45011  # this user asks too often (WeChat's per-user limit)
RISKY_USER = 40226  # WeChat blocks this account's logins ("high-risk user")
BUSY = -1
RATE_LIMIT_WAIT = 60


class WeChatLoginOff(Exception):
    """WECHAT_APPID or WECHAT_SECRET is not set."""


class WeChatUnavailable(Exception):
    """WeChat is busy, cannot be reached, or answers what we cannot use: try again later."""


class WeChatLoginRefused(Exception):
    """The login cannot go on; `code` says why to the mini program, `message` to the parent."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class WeChatAccount:
    openid: str
    unionid: str


def _unavailable() -> WeChatUnavailable:
    return WeChatUnavailable(
        _("WeChat is not answering just now. Try again in a moment, or log in with your phone and an SMS code.")
    )


def _api() -> MiniProgramApi:
    if not (settings.WECHAT_APPID and settings.WECHAT_SECRET):
        raise WeChatLoginOff(_("WeChat login is not enabled. Log in with your phone and an SMS code."))
    return mini_program_api()


def _errcode(answer: dict[str, Any]) -> int:
    errcode = answer.get("errcode", 0)
    return errcode if isinstance(errcode, int) else BUSY


def _refusal(errcode: int, where: str, answer: dict[str, Any]) -> Exception:
    """What an errcode WeChat answered means for the parent. The errmsg is logged (WeChat's text
    and request id), never the whole answer."""
    if errcode == RATE_LIMITED:
        return TooManyAttempts(_("WeChat asks us to slow down. Try again in a minute."), RATE_LIMIT_WAIT)
    if errcode == RISKY_USER:
        return WeChatLoginRefused(
            "wechat_refused", _("WeChat refused this login. Log in with your phone and an SMS code.")
        )
    # Busy, or what no retry by the parent mends (a wrong secret, an address missing from the
    # app's allow-list): the school must look, the parent can only wait.
    logger.warning("WeChat %s answered errcode %s: %s", where, errcode, str(answer.get("errmsg", ""))[:150])
    return _unavailable()


def _account(api: MiniProgramApi, js_code: str) -> WeChatAccount:
    query = {
        "appid": api.appid,
        "secret": api.secret,
        "js_code": js_code,
        "grant_type": "authorization_code",
    }
    try:
        answer = api.get(SESSION_PATH, query)
    except SendError as error:
        logger.warning("WeChat jscode2session failed: %s", error)
        raise _unavailable() from None
    errcode = _errcode(answer)
    if errcode == CODE_INVALID:
        raise WeChatLoginRefused("invalid_code", _("The WeChat login code is invalid or has expired. Log in again."))
    if errcode == CODE_USED:
        raise WeChatLoginRefused("code_used", _("This WeChat login code was used already. Log in again."))
    if errcode:
        raise _refusal(errcode, "jscode2session", answer)
    openid, unionid = answer.get("openid"), answer.get("unionid") or ""
    # The answer's session_key goes no further than this function's frame.
    if not (isinstance(openid, str) and 0 < len(openid) <= 64 and isinstance(unionid, str) and len(unionid) <= 64):
        logger.warning("WeChat jscode2session answered no usable openid")
        raise _unavailable()
    return WeChatAccount(openid=openid, unionid=unionid)


def _phone(api: MiniProgramApi, phone_code: str) -> str | None:
    """The phone WeChat vouches for, in E.164 (None: not a number we can use)."""
    try:
        answer = api.post_with_token(PHONE_PATH, json_body({"code": phone_code}))
    except SendError as error:
        # The access token could not be fetched, or WeChat could not be reached.
        logger.warning("WeChat getuserphonenumber failed: %s", error)
        raise _unavailable() from None
    errcode = _errcode(answer)
    if errcode in (CODE_INVALID, CODE_USED):
        raise WeChatLoginRefused(
            "phone_code_invalid",
            _("WeChat could not confirm the phone number: the permission is invalid or has expired. Allow it again."),
        )
    if errcode:
        raise _refusal(errcode, "getuserphonenumber", answer)
    info = answer.get("phone_info")
    if not isinstance(info, dict):
        logger.warning("WeChat getuserphonenumber answered no phone_info")
        raise _unavailable()
    number, country = str(info.get("purePhoneNumber") or ""), str(info.get("countryCode") or "86")
    return try_normalize_phone(f"+{country}{number}") if number else None


def _no_family() -> WeChatLoginRefused:
    return WeChatLoginRefused(
        "no_family",
        _(
            "No family at the school has this phone number. Ask the campus to add your phone, "
            "or log in with the phone the campus has."
        ),
    )


def wechat_login(*, js_code: str, phone_code: str = "") -> Tokens:
    """Tokens for the guardian behind a WeChat login code (see the module's docstring).

    WeChatLoginOff, WeChatUnavailable, WeChatLoginRefused (code `invalid_code`, `code_used`,
    `phone_required`, `phone_code_invalid`, `no_family`, `wechat_bound_elsewhere`,
    `wechat_refused`) or TooManyAttempts (WeChat's per-user limit)."""
    api = _api()
    account = _account(api, js_code.strip())
    guardian = Guardian.objects.filter(wechat_openid=account.openid).first()
    if guardian is not None:
        return session_open(guardian=guardian, via="wechat")
    if not phone_code.strip():
        raise WeChatLoginRefused(
            "phone_required", _("Allow the mini program to use your phone number, so the school finds your family.")
        )
    phone = _phone(api, phone_code.strip())
    guardian = Guardian.objects.filter(phone=phone).first() if phone else None
    if guardian is None:
        raise _no_family()
    with transaction.atomic():
        try:
            guardian = guardian_wechat_bind(guardian=guardian, openid=account.openid, unionid=account.unionid)
        except ValidationError as error:
            raise WeChatLoginRefused("wechat_bound_elsewhere", error.messages[0]) from None
        return session_open(guardian=guardian, via="wechat")
