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


def phone_display(e164: str) -> str:
    """A stored phone in the form people dial, the one way every page, list and export
    shows it: 138 0013 8000; a landline's area code with its leading 0 and a dash,
    010-6234 5678; another country's number in international form, +852 9123 4567.
    The import reads each of these back to the same E.164 (one family)."""
    try:
        number = phonenumbers.parse(e164, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return e164
    if number.country_code != phonenumbers.country_code_for_region(DEFAULT_REGION):
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    shown = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    if shown.startswith("0") and " " in shown:
        # The library writes "010 6234 5678"; on paper and on signs the area code ends in a dash.
        area, _space, rest = shown.partition(" ")
        shown = f"{area}-{rest}"
    return shown


# The first group (country or area code, or a mobile's first three digits) stays readable.
_FIRST_GROUP = re.compile(r"\+?\d{1,4}(?=[\s-])|\d{3}")


def mask_phone(e164: str) -> str:
    """What a teacher sees: the shown form with all but its first group and last four digits
    hidden, 138 **** 8000 or 010-**** 5678. A short number is hidden entirely."""
    shown = phone_display(e164)
    digits = sum(c.isdigit() for c in shown)
    if digits < 8:
        return re.sub(r"\d", "*", shown)
    head = _FIRST_GROUP.match(shown)
    start = head.end() if head else 0
    kept_head = sum(c.isdigit() for c in shown[:start])
    to_hide = digits - kept_head - 4
    masked = []
    for char in shown[start:]:
        if char.isdigit() and to_hide > 0:
            masked.append("*")
            to_hide -= 1
        else:
            masked.append(char)
    return shown[:start] + "".join(masked)
