"""Capturing leads and keeping families whole: a phone identifies a family."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm import text
from crm.events import student_facts_changed
from crm.models import (
    AuditAction,
    Campus,
    Channel,
    ContractStatus,
    Gender,
    Guardian,
    Role,
    Student,
    StudentStage,
    User,
)
from crm.phones import normalize_phone
from crm.roles import require_campus, require_role
from crm.services.audit import audit
from crm.services.date_ranges import birth_date_problem
from crm.services.families import guardian_apply_changes, guardian_check_change, guardian_email_clean
from crm.services.owners import owner_problem
from crm.services.referrals import (
    guardian_by_invite_code,
    invite_home_campus_id,
    referrer_child,
    same_family,
)


class ExistingFamily(ValidationError):
    """The phone belongs to a family already; the caller must choose to add a sibling."""

    def __init__(self, guardian: Guardian):
        self.guardian = guardian
        super().__init__(
            {
                "phone": ValidationError(
                    _("This phone already belongs to a family. Open it, or add this child as a sibling."),
                    code="existing_family",
                )
            }
        )


@dataclass(frozen=True)
class LeadCaptured:
    student: Student
    guardian: Guardian
    new_family: bool


def guardian_find(phone: str) -> Guardian | None:
    """The family behind a phone typed in any format, or None."""
    return Guardian.objects.filter(phone=normalize_phone(phone)).first()


def _guardian_get_or_create(*, phone: str, name: str, relation: str, email: str) -> tuple[Guardian, bool]:
    """Race-safe: the unique phone decides, whichever request gets there first."""
    try:
        with transaction.atomic():
            return Guardian.objects.create(phone=phone, name=name, relation=relation, email=email), True
    except IntegrityError:
        return Guardian.objects.get(phone=phone), False


def family_has_child(guardian: Guardian, name: str) -> bool:
    """Whether the family already has a child of this name, whichever space was typed."""
    key = text.name_key(name)
    return any(text.name_key(other) == key for other in guardian.students.values_list("name", flat=True))


@transaction.atomic
def lead_capture(
    *,
    actor: User,
    campus: Campus,
    phone: str,
    student_name: str,
    guardian_name: str = "",
    relation: str = "",
    guardian_email: str = "",
    channel: str = Channel.WALK_IN,
    grade: str = "",
    school: str = "",
    gender: str = "",
    birth_date: dt.date | None = None,
    notes: str = "",
    owner: User | None = None,
    referrer: Student | None = None,
    add_to_family: bool = False,
    referral_code: str = "",
) -> LeadCaptured:
    """Capture a new lead, phone first.

    If the phone already belongs to a family, nothing is created unless the caller says
    `add_to_family` (a sibling); a child of the same name in that family is refused. A
    guardian name, relation or email typed for a known family corrects the guardian, if this
    campus is the guardian's home campus (crm.services.families); otherwise it is refused.

    A parent's invite code (`referral_code`, crm.services.referrals) records that parent as the
    lead's inviter, the source channel as a referral and one of their children as the referrer;
    an unknown code, or a parent's own family, is refused on the code.
    """
    require_role(actor, Role.FRONT_DESK, Role.MANAGER)
    require_campus(actor, campus.pk)
    errors: dict[str, str] = {}
    student_name = text.clean(errors, "student_name", student_name, Student, "name")
    guardian_name = text.clean(errors, "guardian_name", guardian_name, Guardian, "name")
    relation = text.clean(errors, "relation", relation, Guardian)
    guardian_email = guardian_email_clean(errors, "guardian_email", guardian_email)
    grade = text.clean(errors, "grade", grade, Student)
    school = text.clean(errors, "school", school, Student)
    notes = text.clean(errors, "notes", notes, Student)
    if not student_name:
        errors["student_name"] = _("Enter the child's name.")
    if channel not in Channel.values:
        errors["channel"] = _("Unknown source channel.")
    if gender not in Gender.values:
        errors["gender"] = _("Unknown gender.")
    problem = owner_problem(owner, campus.pk)
    if problem:
        errors["owner"] = problem
    problem = birth_date_problem(birth_date) if birth_date else None
    if problem:
        errors["birth_date"] = problem
    try:
        e164 = normalize_phone(phone)
    except ValidationError as exc:
        errors["phone"] = exc.messages[0]
    inviter = None
    if referral_code.strip():
        inviter = guardian_by_invite_code(referral_code)
        if inviter is None:
            errors["referral_code"] = _("No parent has this invite code. Check it with the parent who sent it.")
        elif "phone" not in errors and inviter.phone == e164:
            errors["referral_code"] = _own_family()
    if errors:
        raise ValidationError(errors)

    guardian, new_family = _guardian_get_or_create(
        phone=e164, name=guardian_name, relation=relation, email=guardian_email
    )
    if inviter is not None and not new_family and same_family(guardian, inviter):
        raise ValidationError({"referral_code": ValidationError(_own_family(), code="own_family")})
    if not new_family:
        if not add_to_family:
            raise ExistingFamily(guardian)
        # Two siblings of one name captured at once would both pass the check below: the
        # family's guardian row is the lock that queues them, held until this transaction
        # ends. (A unique constraint cannot say "one name per family" across the link table.)
        guardian = Guardian.objects.select_for_update().get(pk=guardian.pk)
        if family_has_child(guardian, student_name):
            raise ValidationError(
                {
                    "student_name": ValidationError(
                        _("%(name)s is already in this family.") % {"name": student_name}, code="duplicate_student"
                    )
                }
            )
        guardian_changes = guardian_check_change(
            guardian,
            campus_id=campus.pk,
            name=guardian_name,
            relation=relation,
            email=guardian_email,
            error_keys={"name": "guardian_name", "email": "guardian_email"},
        )
        guardian_apply_changes(actor=actor, guardian=guardian, changes=guardian_changes)
    if owner is None and actor.role == Role.FRONT_DESK:
        owner = actor
    if inviter is not None:
        channel = Channel.REFERRAL
        referrer = referrer or referrer_child(inviter, campus_id=campus.pk)
    student = _student_create(
        guardian,
        name=student_name,
        campus=campus,
        channel=channel,
        grade=grade,
        school=school,
        gender=gender,
        birth_date=birth_date,
        notes=notes,
        owner=owner,
        referrer=referrer,
        referred_by=inviter,
        created_by=actor,
    )
    audit(
        actor=actor,
        action=AuditAction.LEAD_CAPTURE,
        student=student,
        phone=e164,
        new_family=new_family,
        referred_by=inviter.pk if inviter is not None else "",
    )
    student_facts_changed([student.pk])
    return LeadCaptured(student=student, guardian=guardian, new_family=new_family)


def _own_family() -> str:
    return _("A parent cannot refer their own family.")


def _student_create(guardian: Guardian, **fields: object) -> Student:
    """The new student with their first stage row, linked to their family."""
    student = Student.objects.create(**fields)
    stages_open([student.pk])
    student.guardians.add(guardian)
    return student


@transaction.atomic
def referral_lead_capture(
    *, inviter: Guardian, phone: str, student_name: str, guardian_name: str = "", notes: str = ""
) -> LeadCaptured | None:
    """A lead a parent left through another parent's invite link, with no staff member present.

    It is captured at the inviter's home campus, as a referral by them. A phone that is already a
    family creates nothing and changes nothing (None): the caller answers as if it had, so the
    public link never tells a stranger who is a family here. Refused (ValidationError) when the
    inviter has no child to give a campus, or the input is not a lead."""
    errors: dict[str, str] = {}
    student_name = text.clean(errors, "student_name", student_name, Student, "name")
    guardian_name = text.clean(errors, "guardian_name", guardian_name, Guardian, "name")
    notes = text.clean(errors, "notes", notes, Student)
    if not student_name:
        errors["student_name"] = _("Enter the child's name.")
    try:
        e164 = normalize_phone(phone)
    except ValidationError as exc:
        errors["phone"] = exc.messages[0]
    if errors:
        raise ValidationError(errors)
    campus_id = invite_home_campus_id(inviter)
    if campus_id is None:
        raise ValidationError(_("This invitation is no longer valid."), code="invite_without_campus")
    guardian, new_family = _guardian_get_or_create(phone=e164, name=guardian_name, relation="", email="")
    if not new_family:
        return None
    student = _student_create(
        guardian,
        name=student_name,
        campus_id=campus_id,
        channel=Channel.REFERRAL,
        notes=notes,
        referrer=referrer_child(inviter, campus_id=campus_id),
        referred_by=inviter,
    )
    audit(actor=None, guardian=inviter, action=AuditAction.REFERRAL_LEAD, student=student, campus=campus_id)
    student_facts_changed([student.pk])
    return LeadCaptured(student=student, guardian=guardian, new_family=True)


def stages_open(student_ids: Iterable[int]) -> int:
    """The first StudentStage row (`StudentStage.first_for`) of each of these students who has none
    yet; how many were written. Every door that creates students calls it (capture, import), and
    the lifecycle engine for students written outside the services; from then on only the engine
    writes the row."""
    ids = list(student_ids)
    missing: list[tuple[int, int]] = []
    for start in range(0, len(ids), OPEN_BATCH):
        missing += Student.objects.filter(pk__in=ids[start : start + OPEN_BATCH], pipeline__isnull=True).values_list(
            "pk", "campus_id"
        )
    StudentStage.objects.bulk_create(
        [StudentStage.first_for(student_id=pk, campus_id=campus_id) for pk, campus_id in missing],
        batch_size=OPEN_BATCH,
        ignore_conflicts=True,  # a concurrent opener wrote it first: the same row
    )
    return len(missing)


OPEN_BATCH = 5000


@transaction.atomic
def guardian_add(
    *, actor: User, student: Student, phone: str, name: str = "", relation: str = "", email: str = ""
) -> Guardian:
    """Link another parent to a student; an existing family's guardian is reused, never copied.
    A name, relation or email typed for a known guardian corrects it, if the student's campus is the
    guardian's home campus (crm.services.families)."""
    require_role(actor, Role.FRONT_DESK, Role.MANAGER)
    require_campus(actor, student.campus_id)
    errors: dict[str, object] = {}
    name = text.clean(errors, "name", name, Guardian)
    relation = text.clean(errors, "relation", relation, Guardian)
    email = guardian_email_clean(errors, "email", email)
    try:
        e164 = normalize_phone(phone)
    except ValidationError as exc:
        errors["phone"] = exc.error_list
    if errors:
        raise ValidationError(errors)
    guardian, created = _guardian_get_or_create(phone=e164, name=name, relation=relation, email=email)
    if not created:
        guardian = Guardian.objects.select_for_update().get(pk=guardian.pk)
        changes = guardian_check_change(
            guardian, campus_id=student.campus_id, name=name, relation=relation, email=email
        )
        guardian_apply_changes(actor=actor, guardian=guardian, changes=changes)
    student.guardians.add(guardian)
    audit(actor=actor, action=AuditAction.GUARDIAN_ADD, student=student, phone=e164)
    return guardian


STUDENT_EDITABLE_FIELDS = ("name", "gender", "birth_date", "grade", "school", "channel", "owner", "referrer", "notes")


@transaction.atomic
def student_update(*, actor: User, student: Student, **changes: object) -> Student:
    """Change a student's own fields. The caller's instance is updated only if the change is saved."""
    require_role(actor, Role.FRONT_DESK, Role.MANAGER)
    require_campus(actor, student.campus_id)
    unknown = set(changes) - set(STUDENT_EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not editable here: {sorted(unknown)}")
    locked = Student.objects.select_for_update().get(pk=student.pk)
    too_long: dict[str, str] = {}
    for field, value in changes.items():
        if isinstance(value, str):
            value = text.clean(too_long, field, value, Student)
        setattr(locked, field, value)
    errors: dict[str, list[str]] = {field: [message] for field, message in too_long.items()}
    try:
        locked.full_clean(exclude=["campus", *too_long])  # said once, with the limit, above
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if "owner" in changes:
        problem = owner_problem(locked.owner, locked.campus_id)
        if problem:
            errors.setdefault("owner", []).append(problem)
    if "birth_date" in changes and locked.birth_date:
        problem = birth_date_problem(locked.birth_date)
        if problem:
            errors.setdefault("birth_date", []).append(problem)
    if errors:
        raise ValidationError(errors)
    locked.save(update_fields=[*changes, "updated_at"])
    for field in [*changes, "updated_at"]:
        setattr(student, field, getattr(locked, field))
    audit(actor=actor, action=AuditAction.STUDENT_UPDATE, student=locked, fields=",".join(sorted(changes)))
    # A student's own fields are facts the higher apps read too (a tag rule on the grade).
    student_facts_changed([locked.pk])
    return student


@transaction.atomic
def lead_close_lost(*, actor: User, student: Student, reason: str) -> Student:
    """Close a lead as lost: a fact with a reason; the lifecycle engine moves the stage."""
    require_role(actor, Role.FRONT_DESK, Role.MANAGER)
    require_campus(actor, student.campus_id)
    errors: dict[str, str] = {}
    reason = text.clean(errors, "reason", reason, Student, "lost_reason")
    if not reason:
        errors["reason"] = _("Say why this lead is lost.")
    if errors:
        raise ValidationError(errors)
    student = Student.objects.select_for_update().get(pk=student.pk)
    if student.contracts.filter(status=ContractStatus.ACTIVE).exists():
        raise ValidationError(
            _("%(name)s has an active contract; only leads can be closed as lost.") % {"name": student.name}
        )
    student.lost_at = timezone.now()
    student.lost_reason = reason
    student.next_follow_up_at = None
    student.save(update_fields=["lost_at", "lost_reason", "next_follow_up_at", "updated_at"])
    audit(actor=actor, action=AuditAction.LEAD_CLOSE_LOST, student=student, reason=reason)
    student_facts_changed([student.pk])
    return student
