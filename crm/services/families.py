"""Shared families: which campus may change a guardian.

A family can span campuses: a campus that captures a sibling links its child to the
guardian another campus already knows (the phone is the family). The guardian's own
details, their name, relation and email, are kept by one campus, their *home campus*: the
campus of their first student (the lowest student id among their children). Every campus may
link its children to the guardian; only the home campus, or an administrator working outside
any campus, changes those details. A door of another campus (lead capture, the student page's
"add a guardian", the admin, an import row, the command) that gives a different, non-blank
detail is refused with the message below, and nothing is written; a blank or equal value is
not a change. A guardian with no student yet has no home campus, so whoever links the first
child may fill them in. An email is checked and normalised by `guardian_email_clean` at every
door before it is compared.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from crm import text
from crm.models import AuditAction, Campus, Guardian, Role, StudentGuardian, User
from crm.roles import require_role, sees_all_campuses
from crm.services.audit import audit

GUARDIAN_DETAILS = ("name", "relation", "email")


def home_campuses(links: Iterable[tuple[int, int, int]]) -> dict[int, int]:
    """(guardian id, student id, campus id) of each child -> each guardian's home campus id:
    the campus of the child with the lowest id."""
    first: dict[int, tuple[int, int]] = {}
    for guardian_id, student_id, campus_id in links:
        if guardian_id not in first or student_id < first[guardian_id][0]:
            first[guardian_id] = (student_id, campus_id)
    return {guardian_id: campus_id for guardian_id, (_student, campus_id) in first.items()}


def guardian_home_campus_id(guardian: Guardian) -> int | None:
    links = StudentGuardian.objects.filter(guardian_id=guardian.pk).values_list(
        "guardian_id", "student_id", "student__campus_id"
    )
    return home_campuses(links).get(guardian.pk)


def guardian_email_clean(errors: dict[str, Any], key: str, value: str) -> str:
    """`value` as a guardian's email is stored, or an error under `key` (as `text.clean` does).

    Full-width forms become ASCII (a Chinese input method types ＠ and ．); the domain is put in
    lower case, since it is case-insensitive and messages and duplicates compare it; the part
    before the @ is the mail server's to interpret and is kept as typed. Blank stays blank."""
    value = unicodedata.normalize("NFKC", text.tidy(value))
    if not value:
        return ""
    value = text.clean(errors, key, value, Guardian, "email")
    if key in errors:
        return value
    try:
        validate_email(value)
    except ValidationError:
        errors[key] = _("“%(email)s” is not an email address; write it like name@example.com.") % {"email": value}
        return value
    local, _at, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


def guardian_changes(guardian: Guardian, **values: str | None) -> dict[str, str]:
    """The details (name, relation, email) that `values` would change: non-blank and different."""
    changes = {}
    for key in GUARDIAN_DETAILS:
        value = (values.get(key) or "").strip()
        if value and value != getattr(guardian, key):
            changes[key] = value
    return changes


def guardian_check_lengths(*, error_keys: Mapping[str, str] | None = None, **values: str | None) -> None:
    """A ValidationError on each detail longer than its limit (crm.text), before any write tries it."""
    keys = error_keys or {}
    too_long: dict[str, str] = {}
    for key in GUARDIAN_DETAILS:
        text.clean(too_long, keys.get(key, key), values.get(key) or "", Guardian, key)
    if too_long:
        raise ValidationError(too_long)


def guardian_change_problem(*, campus_id: int | None, home_campus_id: int | None, home_campus_name: str) -> str | None:
    """Why a door working for `campus_id` (None: an administrator outside any campus) may not
    change the details of a guardian whose home campus is `home_campus_id`, or None."""
    if campus_id is None or home_campus_id is None or campus_id == home_campus_id:
        return None
    return _(
        "This guardian's name, relation and email are kept by %(campus)s (their first child's campus); "
        "ask that campus to change them, or leave them as they are."
    ) % {"campus": home_campus_name}


def guardian_change_refusal(guardian: Guardian, *, campus_id: int | None) -> str | None:
    """Why a door working for `campus_id` may not change this guardian's details, or None
    (also shown beforehand, when lead capture finds the family)."""
    if campus_id is None:
        return None
    home = guardian_home_campus_id(guardian)
    home_name = "?"
    if home is not None and home != campus_id:
        home_name = Campus.objects.filter(pk=home).values_list("name", flat=True).first() or home_name
    return guardian_change_problem(campus_id=campus_id, home_campus_id=home, home_campus_name=home_name)


def guardian_check_change(
    guardian: Guardian,
    *,
    campus_id: int | None,
    name: str | None = None,
    relation: str | None = None,
    email: str | None = None,
    error_keys: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The changes `name`, `relation` and `email` (cleaned by `guardian_email_clean`) make to
    `guardian` for `campus_id`, or a ValidationError on each changed detail (renamed through
    `error_keys` to the caller's parameter names) when that campus may not make them."""
    changes = guardian_changes(guardian, name=name, relation=relation, email=email)
    if not changes:
        return changes
    keys = error_keys or {}
    guardian_check_lengths(error_keys=keys, **changes)
    problem = guardian_change_refusal(guardian, campus_id=campus_id)
    if problem:
        raise ValidationError(
            {keys.get(key, key): ValidationError(problem, code="guardian_of_another_campus") for key in changes}
        )
    return changes


def guardian_apply_changes(*, actor: User, guardian: Guardian, changes: dict[str, str]) -> Guardian:
    """Write checked changes (from `guardian_check_change`), audited; the caller holds the transaction."""
    if not changes:
        return guardian
    for key, value in changes.items():
        setattr(guardian, key, value)
    guardian.save(update_fields=[*changes, "updated_at"])
    audit(actor=actor, action=AuditAction.GUARDIAN_UPDATE, phone=guardian.phone, fields=",".join(sorted(changes)))
    return guardian


@transaction.atomic
def guardian_update(
    *,
    actor: User,
    guardian: Guardian,
    name: str | None = None,
    relation: str | None = None,
    email: str | None = None,
) -> Guardian:
    """Correct a guardian's name, relation or email: staff of the home campus, or an administrator."""
    require_role(actor, Role.FRONT_DESK, Role.MANAGER)
    campus_id = None if sees_all_campuses(actor) else actor.campus_id
    if campus_id is None and not sees_all_campuses(actor):
        raise PermissionDenied(_("This belongs to another campus."))
    if email is not None:
        errors: dict[str, str] = {}
        email = guardian_email_clean(errors, "email", email)
        if errors:
            raise ValidationError(errors)
    guardian = Guardian.objects.select_for_update().get(pk=guardian.pk)
    changes = guardian_check_change(guardian, campus_id=campus_id, name=name, relation=relation, email=email)
    return guardian_apply_changes(actor=actor, guardian=guardian, changes=changes)


def _wechat_bound_elsewhere() -> ValidationError:
    return ValidationError(
        _(
            "This WeChat account is already linked to another parent of the school. "
            "Log in with that parent's phone, or ask the campus to help."
        ),
        code="wechat_bound_elsewhere",
    )


@transaction.atomic
def guardian_wechat_bind(*, guardian: Guardian, openid: str, unionid: str = "") -> Guardian:
    """Link a WeChat account (the mini program's openid, and the unionid if WeChat gave one) to a
    guardian whose phone WeChat has just vouched for; the guardian does it, so no staff actor.

    The phone is the family: a guardian already linked to another WeChat account (a new phone
    handset's account, say) is linked to this one instead. An account linked to another guardian
    is refused with a ValidationError (code `wechat_bound_elsewhere`), also when the other
    guardian took it in a concurrent request (the unique openid and unionid say so)."""
    openid, unionid = openid.strip(), unionid.strip()
    if not openid:
        raise ValueError("an openid is required")
    guardian = Guardian.objects.select_for_update().get(pk=guardian.pk)
    if guardian.wechat_openid == openid and (not unionid or guardian.wechat_unionid == unionid):
        return guardian
    taken = Q(wechat_openid=openid) | (Q(wechat_unionid=unionid) if unionid else Q(pk__in=[]))
    if Guardian.objects.filter(taken).exclude(pk=guardian.pk).exists():
        raise _wechat_bound_elsewhere()
    replaced = bool(guardian.wechat_openid) and guardian.wechat_openid != openid
    guardian.wechat_openid = openid
    # A unionid belongs to the WeChat account: another account's stays behind with it.
    guardian.wechat_unionid = unionid or (None if replaced else guardian.wechat_unionid)
    try:
        with transaction.atomic():
            guardian.save(update_fields=["wechat_openid", "wechat_unionid", "updated_at"])
    except IntegrityError:
        raise _wechat_bound_elsewhere() from None
    audit(actor=None, guardian=guardian, action=AuditAction.PARENT_WECHAT_BIND, replaced="yes" if replaced else "no")
    return guardian
