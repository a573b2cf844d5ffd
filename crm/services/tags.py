"""Tagging a student, and the rule of exclusive tag groups, asked by every door.

The rule: a student holds at most one tag of an exclusive group. A tag chosen in one write
replaces the group's tag the student got in an earlier write (a newer judgement wins). Two
tags of one exclusive group named in the same write (one admin form, one import row) are
refused: which of them holds is the person's call, so nothing is written and they are asked.
An import file applies its rows in order, each row one write.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from crm.events import student_facts_changed
from crm.models import AuditAction, Role, Student, StudentTag, Tag, TagSource, User
from crm.roles import require_campus, require_role
from crm.services.audit import audit


@dataclass(frozen=True)
class TagKey:
    """A tag as the rule sees it; imports name tags that may not exist yet."""

    group: str
    name: str
    exclusive: bool


def tag_key(tag: Tag) -> TagKey:
    return TagKey(group=tag.group.name, name=tag.name, exclusive=tag.group.exclusive)


def exclusive_tag_problem(chosen: Iterable[TagKey]) -> str | None:
    """Why the tags named in one write cannot all be given, or None."""
    seen: dict[str, TagKey] = {}
    for key in chosen:
        if not key.exclusive:
            continue
        first = seen.setdefault(key.group, key)
        if first.name != key.name:
            return _("Choose one tag of “%(group)s”: %(a)s or %(b)s.") % {
                "group": key.group,
                "a": first.name,
                "b": key.name,
            }
    return None


def displaced_by(current: Iterable[TagKey], added: Iterable[TagKey]) -> set[TagKey]:
    """The student's current tags that the added ones replace: those of the same exclusive group."""
    added = set(added)
    groups = {key.group for key in added if key.exclusive}
    return {key for key in current if key.group in groups and key not in added}


@transaction.atomic
def student_tags_change(
    *,
    actor: User,
    student: Student,
    add: Sequence[Tag] = (),
    remove: Sequence[Tag] = (),
    source: str = TagSource.MANUAL,
    rule: str = "",
) -> None:
    """One write of a student's tags: `remove` goes, `add` comes, replacing per the module's rule."""
    require_role(actor, Role.FRONT_DESK, Role.MANAGER)
    require_campus(actor, student.campus_id)
    problem = exclusive_tag_problem(tag_key(tag) for tag in add)
    if problem:
        raise ValidationError({"tags": ValidationError(problem, code="exclusive_tags")})
    # Serialise writes of one student's tags, so two replacements cannot both keep their tag.
    Student.objects.select_for_update().filter(pk=student.pk).values_list("pk").get()
    adding = {tag.pk for tag in add}
    current = {st.tag: st for st in StudentTag.objects.filter(student=student).select_related("tag__group")}
    by_key = {tag_key(tag): tag for tag in current}
    displaced = {by_key[key] for key in displaced_by(by_key, (tag_key(tag) for tag in add))}
    for tag in sorted({*remove, *displaced} & set(current), key=lambda t: t.pk):
        if tag.pk in adding:
            continue
        current[tag].delete()
        audit(actor=actor, action=AuditAction.STUDENT_TAG_REMOVE, student=student, tag=str(tag))
    for tag in dict.fromkeys(add):
        if tag in current:
            continue
        StudentTag.objects.create(student=student, tag=tag, source=source, rule=rule, created_by=actor)
        audit(actor=actor, action=AuditAction.STUDENT_TAG_ADD, student=student, tag=str(tag))
    # Segments and tag rules read a student's tags.
    student_facts_changed([student.pk])


def student_tag_add(*, actor: User, student: Student, tag: Tag, source: str = TagSource.MANUAL, rule: str = "") -> None:
    student_tags_change(actor=actor, student=student, add=[tag], source=source, rule=rule)


def student_tag_remove(*, actor: User, student: Student, tag: Tag) -> None:
    student_tags_change(actor=actor, student=student, remove=[tag])
