"""Referrals (转介绍): a parent's personal invite code, and which parent a code names.

A code is short and easy to read aloud or type from a screenshot: upper-case letters and digits
without the look-alikes 0/O and 1/I. It is given on first need and never changes, so a link a
parent shared last month still works; the unique index decides when two requests give one
guardian (or two guardians) a code at the same moment.
"""

from __future__ import annotations

import secrets

from django.db import IntegrityError, transaction

from crm.models import Guardian, Student
from crm.services.families import guardian_home_campus_id

INVITE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
INVITE_LENGTH = 6  # 32**6: about a billion codes, so a guessed one is rarely a parent's
MAX_TRIES = 10


def invite_code_new() -> str:
    return "".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_LENGTH))


def invite_code_normalize(code: str) -> str:
    """A code as typed (spaces, lower case) in its stored form."""
    return "".join(code.split()).upper()


def guardian_invite_code(guardian: Guardian) -> str:
    """The guardian's invite code, given now if they have none yet (and kept for good)."""
    if guardian.invite_code:
        return guardian.invite_code
    for _attempt in range(MAX_TRIES):
        code = invite_code_new()
        try:
            with transaction.atomic():
                # Only a guardian still without a code gets one: a concurrent request may have
                # given one already, and that one stays.
                given = Guardian.objects.filter(pk=guardian.pk, invite_code__isnull=True).update(invite_code=code)
        except IntegrityError:  # another guardian holds this code: draw again
            continue
        if not given:
            code = Guardian.objects.values_list("invite_code", flat=True).get(pk=guardian.pk) or code
        guardian.invite_code = code
        return code
    raise RuntimeError(f"no free invite code after {MAX_TRIES} tries")


def guardian_by_invite_code(code: str) -> Guardian | None:
    """The parent a code (as typed) names, or None."""
    code = invite_code_normalize(code)
    # No code is made of other characters: such a code names nobody (and a NUL byte never
    # reaches the database, which refuses it).
    if not code or len(code) > INVITE_LENGTH + 2 or set(code) - set(INVITE_ALPHABET):
        return None
    return Guardian.objects.filter(invite_code=code).first()


def referrer_child(inviter: Guardian, *, campus_id: int) -> Student | None:
    """The inviting parent's child recorded as a referred lead's referrer: one of the same campus
    if they have one there, else their first child."""
    children = list(inviter.students.order_by("pk").only("pk", "campus_id", "name"))
    same_campus = [child for child in children if child.campus_id == campus_id]
    choices = same_campus or children
    return choices[0] if choices else None


def invite_home_campus_id(inviter: Guardian) -> int | None:
    """Where a lead from the parent's invite link is captured: their home campus (the campus of
    their first child, crm.services.families), or None for a parent with no child."""
    return guardian_home_campus_id(inviter)


def same_family(guardian: Guardian, inviter: Guardian) -> bool:
    """Whether `guardian` is the inviter or shares a child with them: a parent cannot refer their
    own family."""
    if guardian.pk == inviter.pk:
        return True
    return Student.objects.filter(guardians=guardian).filter(guardians=inviter).exists()
