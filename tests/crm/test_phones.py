"""Phones: one E.164 form whatever was typed, clear errors, masking, and the family invariant."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.models import Campus, Guardian, Student, User
from crm.phones import mask_phone, normalize_phone, phone_display, try_normalize_phone
from crm.services import ExistingFamily, guardian_add, lead_capture
from crm.services.imports import cells

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    """The factories hash a password per staff member; PBKDF2 would cost a third of a second each."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# The ways a front desk actually types one mobile number.
FORMATS = (
    "+86 {a} {b} {c}",
    "{a}{b}{c}",
    "{a}-{b}-{c}",
    "0086 {a}{b}{c}",
    "+86-{a}-{b}-{c}",
    " {a} {b} {c} ",
    "(+86) {a}{b}{c}",
    "８６{a}{b}{c}",  # full-width country code from a Chinese input method
)


def typed(number: str, fmt: str) -> str:
    """Write the 11-digit mobile `number` in format `fmt`."""
    text = fmt.format(a=number[:3], b=number[3:7], c=number[7:])
    return text.replace("８６", "\uff18\uff16")


@pytest.mark.parametrize(
    "raw",
    ["+86 138 0013 8000", "13800138000", "138-0013-8000", "0086 13800138000", "+86-138-0013-8000"],
)
def test_the_usual_formats_normalise_to_one_e164(raw: str) -> None:
    assert normalize_phone(raw) == "+8613800138000"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_of_the_pool_normalises_to_one_e164(fmt: str) -> None:
    assert normalize_phone(typed("13912345678", fmt)) == "+8613912345678"


def test_full_width_digits_normalise() -> None:
    assert normalize_phone("１３８００１３８０００") == "+8613800138000"


def test_a_landline_and_a_foreign_number_are_kept_in_e164() -> None:
    assert normalize_phone("010-6275 1234") == "+861062751234"
    assert normalize_phone("+1 415 555 2671") == "+14155552671"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "required"),
        ("   ", "required"),
        ("12345", "invalid"),
        ("1380013800", "invalid"),  # one digit short
        ("138001380001", "invalid"),  # one digit too many
        ("not a phone", "invalid"),
        ("+999 1234 5678", "invalid"),
        # Letters and extensions used to be dropped silently, merging two numbers into one family.
        ("abc13800138000", "invalid"),
        ("13800138000abc", "invalid"),
        ("138 0013 8000 ext 12", "invalid"),
        ("13800138000#1", "invalid"),
    ],
)
def test_invalid_input_gives_a_clear_validation_error(raw: str, code: str) -> None:
    with pytest.raises(ValidationError) as exc:
        normalize_phone(raw)
    assert exc.value.code == code
    assert exc.value.messages[0]
    if raw.strip():
        # The message quotes what was typed, so the front desk sees which entry is wrong.
        assert raw in exc.value.messages[0]
    assert try_normalize_phone(raw) is None


# Stored E.164 -> the form people dial (defect 2.6: a landline lost its leading 0).
SHOWN = [
    ("+8613800138000", "138 0013 8000"),
    ("+861062345678", "010-6234 5678"),
    ("+862158881234", "021-5888 1234"),
    ("+8675512345678", "0755-1234 5678"),
    ("+864001234567", "400 123 4567"),
    ("+85291234567", "+852 9123 4567"),
    ("+14155552671", "+1 415-555-2671"),
]


@pytest.mark.parametrize(("e164", "shown"), SHOWN)
def test_phones_show_in_the_form_people_dial(e164: str, shown: str) -> None:
    assert phone_display(e164) == shown


@pytest.mark.parametrize(("e164", "shown"), SHOWN)
def test_the_shown_form_reads_back_to_the_same_family(e164: str, shown: str) -> None:
    assert normalize_phone(shown) == e164
    assert cells.parse_phone(shown) == e164


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        ("+8613800138000", "138 **** 8000"),
        ("+861062345678", "010-**** 5678"),
        ("+8675512345678", "0755-**** 5678"),
        ("+85291234567", "+852 **** 4567"),
    ],
)
def test_masking_keeps_the_shown_form_and_hides_the_middle(e164: str, masked: str) -> None:
    assert mask_phone(e164) == masked


def test_masking_never_shows_a_short_number_in_full() -> None:
    assert mask_phone("+861234567") == "*** ****"
    assert "5552" not in mask_phone("+14155552671")


# --- Acceptance 2: whatever the sequence of captures, no two guardians share a phone. ---

POOL = ("13800138000", "13912345678", "15011112222")
NAMES = ("小明", "小红", "小刚")

steps = st.lists(
    st.tuples(
        st.sampled_from(("capture", "guardian_add")),
        st.sampled_from(POOL),
        st.sampled_from(FORMATS),
        st.booleans(),  # add_to_family
        st.sampled_from(NAMES),
        st.integers(min_value=0, max_value=10),  # which existing student gets the guardian
    ),
    min_size=1,
    max_size=12,
)


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_no_sequence_of_captures_makes_two_guardians_share_a_phone(
    steps: list[tuple[str, str, str, bool, str, int]], campus_a: Campus, front_desk: User
) -> None:
    with transaction.atomic():
        known: set[str] = set(Guardian.objects.values_list("phone", flat=True))
        for op, number, fmt, add_to_family, name, which in steps:
            raw = typed(number, fmt)
            e164 = "+86" + number
            if op == "capture":
                students_before = Student.objects.count()
                try:
                    captured = lead_capture(
                        actor=front_desk, campus=campus_a, phone=raw, student_name=name, add_to_family=add_to_family
                    )
                except ExistingFamily as exc:
                    # Found whatever the format, and nothing was written.
                    assert e164 in known and not add_to_family
                    assert exc.guardian.phone == e164
                    assert Student.objects.count() == students_before
                except ValidationError as exc:
                    assert [e.code for e in exc.error_dict["student_name"]] == ["duplicate_student"]
                    assert e164 in known and add_to_family
                    assert Student.objects.count() == students_before
                else:
                    assert captured.new_family == (e164 not in known)
                    assert captured.guardian.phone == e164
                    known.add(e164)
            else:
                students = list(Student.objects.order_by("pk"))
                if not students:
                    continue
                guardian = guardian_add(actor=front_desk, student=students[which % len(students)], phone=raw)
                assert guardian.phone == e164
                known.add(e164)

            phones = list(Guardian.objects.values_list("phone", flat=True))
            assert len(phones) == len(set(phones))
            assert set(phones) == known
            assert all(E164.match(p) for p in phones)
        transaction.set_rollback(True)
