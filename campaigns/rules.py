"""The marketing rules in pure Python: what an SMS reply means, when quiet hours hold, what every
marketing SMS must say, how a template is filled in, who falls in a campaign's holdout and
variants. The services read the database and ask these; tests ask them directly."""

from __future__ import annotations

import datetime as dt
import math
import re
import string
import unicodedata
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

# Replies that withdraw consent to marketing SMS, as carriers and the big SMS clouds read them.
OPT_OUT_KEYWORDS = frozenset({"TD", "T", "N", "退订"})

# Every marketing SMS ends with how to stop them (the carriers refuse marketing SMS without it).
SMS_OPT_OUT_WORDING = "拒收请回复TD"


def is_opt_out_reply(text: str) -> bool:
    """True for a reply that is one of the keywords, whatever its width, case, spaces or
    punctuation ("ｔｄ", " TD。", "退订!"). Anything longer is a message for a person, not a keyword."""
    folded = unicodedata.normalize("NFKC", text).upper()
    kept = "".join(char for char in folded if not unicodedata.category(char).startswith(("P", "Z", "C")))
    return kept in OPT_OUT_KEYWORDS


def with_opt_out_wording(text: str) -> str:
    """The SMS text with the opt-out wording at its end, once."""
    text = text.rstrip()
    if text.endswith(SMS_OPT_OUT_WORDING):
        return text
    return f"{text} {SMS_OPT_OUT_WORDING}"


def quiet_until(now: dt.datetime, *, time_zone: str, quiet_from: dt.time, quiet_until: dt.time) -> dt.datetime | None:
    """When the quiet hours around `now` end, or None when `now` is outside them.

    The window is [quiet_from, quiet_until) in the campus's local time and may cross midnight
    (21:00-09:00): 20:59:59 is outside, 21:00 inside, 08:59:59 inside, 09:00 outside. Equal
    bounds mean no quiet hours."""
    if quiet_from == quiet_until:
        return None
    local = now.astimezone(zoneinfo.ZoneInfo(time_zone))
    clock = local.time().replace(tzinfo=None)
    crosses_midnight = quiet_from > quiet_until
    inside_late, inside_early = clock >= quiet_from, clock < quiet_until
    inside = (inside_late or inside_early) if crosses_midnight else (inside_late and inside_early)
    if not inside:
        return None
    end_day = local.date()
    if crosses_midnight and clock >= quiet_from:
        end_day += dt.timedelta(days=1)
    naive_end = dt.datetime.combine(end_day, quiet_until)
    return naive_end.replace(tzinfo=local.tzinfo)


# What a campaign's templates may say about each recipient, by its key or its Chinese name.
TEMPLATE_VARIABLES = ("student", "guardian", "hours_left", "consultant")
CHINESE_VARIABLES = {"学员": "student", "家长": "guardian", "剩余课时": "hours_left", "顾问": "consultant"}
VARIABLE_KEYS = {**{key: key for key in TEMPLATE_VARIABLES}, **CHINESE_VARIABLES}


def variable_names(*, chinese: bool) -> list[str]:
    """The variables as a person of that language writes them, in braces."""
    return [f"{{{name}}}" for name in (CHINESE_VARIABLES if chinese else TEMPLATE_VARIABLES)]


def template_problem(text: str) -> str | None:
    """Why a template cannot be filled in (an unknown or malformed `{...}`), or None."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError:
        return "braces"
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in VARIABLE_KEYS or spec or conversion:
            return name or "{}"
    return None


def render(text: str, values: Mapping[str, str]) -> str:
    """A template filled in for one recipient. Only a plain `{name}` of VARIABLE_KEYS is read (no
    attribute or index access: a template is text a manager typed); `{{` and `}}` are braces."""
    out = []
    for literal, name, _spec, _conversion in string.Formatter().parse(text):
        out.append(literal)
        if name is not None:
            out.append(values.get(VARIABLE_KEYS.get(name, ""), ""))
    return "".join(out)


# Knuth's multiplicative hash: spreads consecutive student ids over 2**32, the same in Python
# and in SQL's bigint arithmetic (`campaigns.services.audience`), so a campaign's groups can be
# drawn set-based and checked one by one.
HASH_MULTIPLIER = 2654435761
HASH_RANGE = 2**32


def bucket_for(seed: int, student_id: int) -> int:
    """0..99, fixed for a campaign (its seed) and a student."""
    return ((student_id * HASH_MULTIPLIER + seed) % HASH_RANGE) * 100 // HASH_RANGE


def group_for(*, seed: int, student_id: int, holdout_pct: int, split_a_pct: int, has_b: bool) -> str:
    """The student's group in a campaign: the holdout for the first `holdout_pct` buckets, then
    variant A for `split_a_pct` percent of the rest (all of it without a variant B), then B."""
    bucket = bucket_for(seed, student_id)
    if bucket < holdout_pct:
        return "holdout"
    if not has_b or (bucket - holdout_pct) * 100 < (100 - holdout_pct) * split_a_pct:
        return "A"
    return "B"


@dataclass(frozen=True)
class Uplift:
    """A reached group's conversion rate minus the holdout's, with its 95% confidence interval
    (Wald's normal approximation for a difference of two proportions). In rate units (0.05 is
    five percentage points); None where a group is empty."""

    treated_rate: float | None
    holdout_rate: float | None
    uplift: float | None
    low: float | None
    high: float | None


Z_95 = 1.959963984540054


def uplift_for(*, converted: int, members: int, holdout_converted: int, holdout_members: int) -> Uplift:
    treated = converted / members if members else None
    control = holdout_converted / holdout_members if holdout_members else None
    if treated is None or control is None:
        return Uplift(treated, control, None, None, None)
    diff = treated - control
    spread = Z_95 * math.sqrt(treated * (1 - treated) / members + control * (1 - control) / holdout_members)
    return Uplift(treated, control, diff, diff - spread, diff + spread)


# A WeChat subscription message is the template's fields, not free text: a manager writes one
# `field=value` line per field of the template (`thing1={学员}`, `time2=12月20日`).
WECHAT_FIELD = re.compile(r"^\s*([a-z_]+[0-9]+)\s*[=＝:：]\s*(.*?)\s*$")
# WeChat refuses a "thing" field longer than 20 characters.
WECHAT_THING_MAX = 20


def wechat_fields(text: str) -> dict[str, str] | None:
    """The template's fields from a manager's `field=value` lines, or None if a line is not one."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        match = WECHAT_FIELD.match(line)
        if match is None:
            return None
        name, value = match.groups()
        fields[name] = value[:WECHAT_THING_MAX] if name.startswith("thing") else value
    return fields or None
