"""Phone numbers: one canonical form (E.164, China as the default region)."""

from __future__ import annotations

import phonenumbers
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

DEFAULT_REGION = "CN"


def normalize_phone(raw: str) -> str:
    """Return `raw` in E.164 (+8613800138000), or raise ValidationError saying why not.

    "+86 138 0013 8000", "13800138000", "138-0013-8000" and "0086 13800138000" are all
    the same family.
    """
    text = (raw or "").strip()
    if not text:
        raise ValidationError(_("Enter a phone number."), code="required")
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
