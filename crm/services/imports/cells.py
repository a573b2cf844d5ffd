"""Turning one cell into a value, or into the reason it cannot be one.

Each parser takes the raw cell (text from a csv, typed values from xlsx) and returns
the value, or raises CellError with a message a front-desk person understands.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Model
from django.utils import timezone
from django.utils.translation import gettext as _
from phonenumbers import PhoneMetadata

from crm.models import Channel, ConsultationChannel, ContractStatus, Gender, Intent, Tag, TagGroup
from crm.phones import normalize_phone
from crm.services.families import guardian_email_clean
from crm.services.imports.tables import as_text
from crm.text import limit_of


class CellError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def choice_key(text: str) -> str:
    """How a choice or header is compared: case, spaces, - and _ do not matter."""
    return re.sub(r"[\s_\-]+", "", text).lower()


# Words institutions use for each choice, mapped to the stored value. The first word
# for a value is what exports write, so an export imports back unchanged.
GENDER_WORDS: dict[str, tuple[str, ...]] = {
    Gender.MALE: ("男", "male", "m", "boy", "男孩", "男生"),
    Gender.FEMALE: ("女", "female", "f", "girl", "女孩", "女生"),
    Gender.UNKNOWN: ("未知", "unknown"),
}
CHANNEL_WORDS: dict[str, tuple[str, ...]] = {
    Channel.DOUYIN: ("抖音", "douyin", "tiktok"),
    Channel.XIAOHONGSHU: ("小红书", "xiaohongshu", "xhs", "red"),
    Channel.FLYER: ("地推", "传单", "flyer", "street promotion"),
    Channel.REFERRAL: ("转介绍", "推荐", "老带新", "referral"),
    Channel.WEBSITE: ("官网", "网站", "website"),
    Channel.WALK_IN: ("到店", "自然到访", "上门", "walk-in", "walk_in"),
    Channel.WECHAT: ("微信", "公众号", "wechat"),
    Channel.OTHER: ("其他", "其它", "other"),
}
CONSULTATION_CHANNEL_WORDS: dict[str, tuple[str, ...]] = {
    ConsultationChannel.PHONE: ("电话", "phone", "call"),
    ConsultationChannel.VISIT: ("到访", "来访", "到店", "面谈", "visit"),
    ConsultationChannel.WECHAT: ("微信", "wechat"),
    ConsultationChannel.ONLINE: ("线上", "网络", "在线", "online"),
}
INTENT_WORDS: dict[str, tuple[str, ...]] = {
    Intent.HIGH: ("高", "high", "a", "强"),
    Intent.MEDIUM: ("中", "medium", "b", "一般"),
    Intent.LOW: ("低", "low", "c", "弱"),
}
CONTRACT_STATUS_WORDS: dict[str, tuple[str, ...]] = {
    ContractStatus.ACTIVE: ("执行中", "有效", "正常", "在读", "active"),
    ContractStatus.COMPLETED: ("已完成", "完成", "结课", "completed"),
    ContractStatus.REFUNDED: ("已退费", "退费", "refunded"),
    ContractStatus.CANCELLED: ("已作废", "作废", "取消", "已取消", "cancelled", "canceled"),
}


def choice_lookup(words: dict[str, tuple[str, ...]]) -> dict[str, str]:
    lookup = {}
    for value, names in words.items():
        for name in (*names, value):
            if name:
                lookup[choice_key(name)] = str(value)  # the plain value, not the enum member
    return lookup


def choice_word(words: dict[str, tuple[str, ...]], value: str) -> str:
    """The word an export writes for a stored value."""
    names = words.get(value)
    return names[0] if names else value


def parse_choice(raw: Any, words: dict[str, tuple[str, ...]], lookup: dict[str, str]) -> str:
    text = as_text(raw)
    value = lookup.get(choice_key(text))
    if value is None:
        allowed = " / ".join(names[0] for names in words.values() if names[0])
        raise CellError(_("“%(value)s” is not one of: %(allowed)s.") % {"value": text, "allowed": allowed})
    return value


GENDER_LOOKUP = choice_lookup(GENDER_WORDS)
CHANNEL_LOOKUP = choice_lookup(CHANNEL_WORDS)
CONSULTATION_CHANNEL_LOOKUP = choice_lookup(CONSULTATION_CHANNEL_WORDS)
INTENT_LOOKUP = choice_lookup(INTENT_WORDS)
CONTRACT_STATUS_LOOKUP = choice_lookup(CONTRACT_STATUS_WORDS)


def parse_text(raw: Any, model: type[Model], field: str) -> str:
    """Text for `model.field`, held to the field's one length limit (crm/text.py)."""
    text = as_text(raw)
    limit = limit_of(model, field)
    if len(text) > limit:
        raise CellError(_("Too long: %(length)s characters, at most %(max)s.") % {"length": len(text), "max": limit})
    return text


# Chinese mobile numbers are nearly every phone in these files, and phonenumbers takes
# ~100 µs to parse one: the fast path matches them against phonenumbers' own metadata
# for CN mobiles, which is exactly when normalize_phone returns +86 and the 11 digits
# (tests/crm/test_import_cells.py holds the two to the same answers). Anything else
# goes to normalize_phone.
_CN_MOBILE = re.compile(str(PhoneMetadata.metadata_for_region("CN").mobile.national_number_pattern))  # type: ignore[union-attr]
_FAST_PHONE = re.compile(r"(?:\+86|0086)?(1[0-9]{10})", re.ASCII)


def fast_cn_mobile(text: str) -> str | None:
    """+86 and the 11 digits for a CN mobile typed with spaces or dashes, else None."""
    match = _FAST_PHONE.fullmatch(text.replace(" ", "").replace("-", ""))
    if match is not None and _CN_MOBILE.fullmatch(match.group(1)):
        return "+86" + match.group(1)
    return None


@lru_cache(maxsize=100_000)
def _phone(text: str) -> str:
    return fast_cn_mobile(text) or normalize_phone(text)


def parse_phone(raw: Any) -> str:
    """E.164, whatever the format typed (+86 138 0013 8000, 13800138000, 138-0013-8000)."""
    text = as_text(raw)
    try:
        return _phone(text)
    except ValidationError as exc:
        raise CellError(exc.messages[0]) from None


def parse_email(raw: Any) -> str:
    """A guardian's email, checked and normalised by the rule every door uses."""
    problems: dict[str, str] = {}
    email = guardian_email_clean(problems, "email", as_text(raw))
    if problems:
        raise CellError(problems["email"])
    return email


_DATE_RE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")
_DATETIME_RE = re.compile(
    r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:[\sT]+(\d{1,2})\s*[:：时]\s*(\d{1,2})(?:\s*[:：分]\s*(\d{1,2}))?\s*秒?)?$"
)
_COMPACT_DATE_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
EXCEL_EPOCH = dt.datetime(1899, 12, 30)


def _excel_serial(value: float) -> dt.datetime | None:
    # 1 = 1900-01-01; a sane range keeps a stray number from becoming a date.
    if 1 <= value < 2958466:
        return EXCEL_EPOCH + dt.timedelta(seconds=round(value * 86400))
    return None


def parse_date(raw: Any) -> dt.date:
    if isinstance(raw, dt.datetime):
        return raw.date()
    if isinstance(raw, dt.date):
        return raw
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        serial = _excel_serial(float(raw))
        if serial is not None:
            return serial.date()
    text = as_text(raw)
    match = _DATE_RE.match(text) or _COMPACT_DATE_RE.match(text)
    if match is None:
        found = _DATETIME_RE.match(text)
        if found is None:
            raise CellError(_("“%(value)s” is not a date (write it as 2024-03-05).") % {"value": text})
        match = found
    try:
        return dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        raise CellError(_("“%(value)s” is not a date (write it as 2024-03-05).") % {"value": text}) from None


def parse_datetime(raw: Any) -> dt.datetime:
    """A moment in the campus's time zone; a date alone means 00:00 that day."""
    if isinstance(raw, dt.datetime):
        naive = raw
    elif isinstance(raw, dt.date):
        naive = dt.datetime.combine(raw, dt.time(0, 0))
    elif isinstance(raw, int | float) and not isinstance(raw, bool) and _excel_serial(float(raw)) is not None:
        naive = _excel_serial(float(raw))  # type: ignore[assignment]
    else:
        text = as_text(raw)
        match = _DATETIME_RE.match(text) or _COMPACT_DATE_RE.match(text)
        if match is None:
            raise CellError(_("“%(value)s” is not a date and time (write it as 2024-03-05 14:30).") % {"value": text})
        year, month, day, hour, minute, second = ([int(g) if g else 0 for g in match.groups()] + [0, 0, 0])[:6]
        try:
            naive = dt.datetime(year, month, day, hour, minute, second)
        except ValueError:
            raise CellError(
                _("“%(value)s” is not a date and time (write it as 2024-03-05 14:30).") % {"value": text}
            ) from None
    naive = naive.replace(microsecond=0)  # files hold whole seconds; so do natural keys
    if timezone.is_aware(naive):
        return naive
    return timezone.make_aware(naive)


_MONEY_NOISE = re.compile(r"[\s,，¥￥元]|RMB|CNY", re.IGNORECASE)


def parse_decimal(raw: Any, *, places: int, max_digits: int) -> Decimal:
    text = _MONEY_NOISE.sub("", as_text(raw))
    text = text.removesuffix("小时").removesuffix("课时").removesuffix("节")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CellError(_("“%(value)s” is not a number.") % {"value": as_text(raw)}) from None
    if not value.is_finite():
        raise CellError(_("“%(value)s” is not a number.") % {"value": as_text(raw)})
    quantum = Decimal(1).scaleb(-places)
    rounded = value.quantize(quantum)
    if rounded != value:
        raise CellError(
            _("“%(value)s” has more than %(places)s decimal places.") % {"value": as_text(raw), "places": places}
        )
    if len(rounded.as_tuple().digits) > max_digits:
        raise CellError(_("“%(value)s” is too large.") % {"value": as_text(raw)})
    return rounded


_TAG_SPLIT = re.compile(r"[;；,，、\n]+")
_TAG_PAIR = re.compile(r"[:：]")


def parse_tags(raw: Any) -> list[tuple[str, str]]:
    """ "意向:高;兴趣:编程" -> [("意向", "高"), ("兴趣", "编程")]; a bare name keeps an empty group."""
    tags: list[tuple[str, str]] = []
    for item in _TAG_SPLIT.split(as_text(raw)):
        item = item.strip()
        if not item:
            continue
        parts = _TAG_PAIR.split(item, maxsplit=1)
        group, name = (parts[0].strip(), parts[1].strip()) if len(parts) == 2 else ("", item)
        if not name:
            raise CellError(_("“%(value)s” has a group but no tag name.") % {"value": item})
        if len(group) > limit_of(TagGroup, "name") or len(name) > limit_of(Tag, "name"):
            raise CellError(_("“%(value)s” is too long for a tag.") % {"value": item})
        if (group, name) not in tags:
            tags.append((group, name))
    return tags
