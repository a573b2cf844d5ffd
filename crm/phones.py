"""Phone numbers: one canonical form (E.164, China as the default region)."""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

DEFAULT_REGION = "CN"

# What people type around the digits. Letters, "ext", "#" and "转" are refused rather than
# dropped: the library would silently strip them and merge two numbers into one family.
_PHONE_CHARACTERS = re.compile(r"[0-9\s+\-().\u2010-\u2015]+")


def normalize_phone(raw: str) -> str:
    """Return `raw` in E.164 (+8613800138000), or raise ValidationError saying why not.

    "+86 138 0013 8000", "13800138000", "138-0013-8000" and "0086 13800138000" are all
    the same family; so are full-width digits from a Chinese input method.
    """
    text = unicodedata.normalize("NFKC", raw or "").strip()
    if not text:
        raise ValidationError(_("Enter a phone number."), code="required")
    if not _PHONE_CHARACTERS.fullmatch(text):
        raise ValidationError(
            _("“%(phone)s” is not a phone number: use digits only, without an extension."),
            code="invalid",
            params={"phone": raw},
        )
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise ValidationError(_("“%(phone)s” is not a phone number."), code="invalid", params={"phone": raw}) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(_("“%(phone)s” is not a valid phone number."), code="invalid", params={"phone": raw})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def try_normalize_phone(raw: str) -> str | None:
    try:
        return normalize_phone(raw)
    except ValidationError:
        return None


def national_digits(e164: str) -> str:
    """+8613800138000 -> 13800138000; other countries keep their full international form."""
    if e164.startswith("+86"):
        return e164[3:]
    return e164


def mask_phone(e164: str) -> str:
    """What a teacher sees: 138****8000."""
    digits = national_digits(e164)
    if len(digits) < 8:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"
