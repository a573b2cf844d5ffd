"""Cached lookups of what rows refer to: families by phone, staff by name, tags.

Each is loaded with a few set-based queries for the whole file, never one query per
row, so a 50,000-row file costs the same handful of queries as a 5-row one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Model, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils.translation import gettext as _

from crm.models import Campus, Guardian, Student, Tag, TagGroup, User
from crm.services.tags import TagKey
from crm.text import name_key

T = TypeVar("T")
M = TypeVar("M", bound=Model)
IN_CHUNK = 5000  # ids or phones per IN (...) list
# What imports read and may write of existing families; the rest stays unloaded. In the
# models' field order, as Model.from_db expects.
GUARDIAN_FIELDS = tuple(
    f.attname for f in Guardian._meta.concrete_fields if f.attname in {"id", "phone", "name", "relation", "email"}
)
STUDENT_FIELDS = tuple(
    f.attname
    for f in Student._meta.concrete_fields
    if f.attname
    in {
        "id",
        "name",
        "campus_id",
        "owner_id",
        "gender",
        "birth_date",
        "grade",
        "school",
        "channel",
        "notes",
        "next_follow_up_at",
    }
)
_GUARDIAN_PHONE = GUARDIAN_FIELDS.index("phone")


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def filter_in(queryset: QuerySet[M], field: str, values: Iterable[Any]) -> Iterator[QuerySet[M]]:
    """`queryset` restricted to `field` IN `values`, as one or more querysets to read.

    On PostgreSQL one query takes the values as one array, however many: right after a
    large import the planner's statistics are stale and it may scan the table, and one
    scan is fine where one per chunk of ids is not. Elsewhere, IN lists of IN_CHUNK.
    """
    wanted = sorted(set(values))
    if not wanted:
        return
    if connection.vendor == "postgresql":
        db_type = queryset.model._meta.get_field(field).db_type(connection)
        array = RawSQL(f"SELECT unnest(%s::{db_type}[])", [wanted])
        yield queryset.filter(**{f"{field}__in": array})
        return
    for chunk in chunked(wanted, IN_CHUNK):
        yield queryset.filter(**{f"{field}__in": chunk})


@dataclass(frozen=True)
class Found:
    """What (phone, student name) points at in one campus, or why it cannot be used."""

    guardian: Guardian | None
    student: Student | None
    error: str = ""
    error_column: str = ""  # "phone" or "student_name"


NOT_FOUND = Found(guardian=None, student=None)


class FamilyIndex:
    """The families behind a file's phones: guardians by E.164 phone, and their students."""

    def __init__(self, phones: Iterable[str], campus: Campus):
        self.campus = campus
        self.guardians: dict[str, Guardian] = {}
        self.students: dict[int, Student] = {}
        self.students_of: dict[int, list[Student]] = defaultdict(list)
        # One query per chunk of phones: each guardian joined to its students. Instances
        # are built with from_db (only these fields loaded), as a queryset would.
        columns = [*GUARDIAN_FIELDS, *(f"students__{name}" for name in STUDENT_FIELDS)]
        width = len(GUARDIAN_FIELDS)
        rows: list[tuple[Any, ...]] = []
        for guardians in filter_in(Guardian.objects.order_by(), "phone", phones):
            rows.extend(guardians.values_list(*columns))
        for row in sorted(rows, key=lambda r: (r[0], r[width] or 0)):
            phone = row[_GUARDIAN_PHONE]
            guardian = self.guardians.get(phone)
            if guardian is None:
                guardian = self.guardians[phone] = Guardian.from_db(DEFAULT_DB_ALIAS, GUARDIAN_FIELDS, row[:width])
            student_id = row[width]
            if student_id is None:
                continue
            student = self.students.get(student_id)
            if student is None:
                student = self.students[student_id] = Student.from_db(DEFAULT_DB_ALIAS, STUDENT_FIELDS, row[width:])
            self.students_of[guardian.pk].append(student)
        other = {s.campus_id for s in self.students.values()} - {campus.pk}
        self.campus_names = dict(Campus.objects.filter(pk__in=other).values_list("pk", "name"))

    def find(self, phone: str, name: str) -> Found:
        guardian = self.guardians.get(phone)
        if guardian is None:
            return NOT_FOUND
        family = self.students_of.get(guardian.pk, [])
        key = name_key(name)
        same_name = [s for s in family if name_key(s.name) == key]
        here = [s for s in same_name if s.campus_id == self.campus.pk]
        if here:
            return Found(guardian=guardian, student=here[0])
        if same_name:
            return Found(
                guardian=guardian,
                student=None,
                error_column="student_name",
                error=_(
                    "%(name)s of this family is a student of %(campus)s; "
                    "it cannot be changed by an import for %(here)s."
                )
                % {"name": name, "campus": self.campus_names.get(same_name[0].campus_id, "?"), "here": self.campus},
            )
        if family and not any(s.campus_id == self.campus.pk for s in family):
            return Found(
                guardian=guardian,
                student=None,
                error_column="phone",
                error=_(
                    "This phone belongs to a family of %(campus)s; ask that campus (or an administrator) "
                    "to add the child there."
                )
                % {"campus": self.campus_names.get(family[0].campus_id, "?")},
            )
        return Found(guardian=guardian, student=None)


class StaffIndex:
    """Staff named in a file, by username or display name, who work at the campus."""

    def __init__(self, names: Iterable[str], campus: Campus):
        self.campus = campus
        wanted = sorted(set(names) - {""})
        self.users: list[User] = (
            list(
                User.objects.filter(Q(username__in=wanted) | Q(display_name__in=wanted))
                .filter(is_active=True)
                .prefetch_related("groups")  # their roles, for the owner rule, in one query
            )
            if wanted
            else []
        )
        self._found: dict[str, tuple[User | None, str]] = {}
        # Names found only among another campus's staff, with one of them.
        self.elsewhere: dict[str, User] = {}

    def find(self, name: str) -> tuple[User | None, str]:
        found = self._found.get(name)
        if found is None:
            found = self._found[name] = self._find(name)
        return found

    def _find(self, name: str) -> tuple[User | None, str]:
        by_username = [u for u in self.users if u.username == name]
        candidates = by_username or [u for u in self.users if u.display_name == name]
        if not candidates:
            return None, _("No active staff member has the username or name “%(name)s”.") % {"name": name}
        here = [u for u in candidates if u.campus_id in (self.campus.pk, None)]
        if not here:
            self.elsewhere[name] = candidates[0]
            return None, _("%(name)s works at another campus.") % {"name": name}
        if len(here) > 1:
            return None, _("More than one staff member is called “%(name)s”; use the username.") % {"name": name}
        return here[0], ""


class TagCatalogue:
    """Every tag group and tag (small tables), and the ones an import will create."""

    def __init__(self) -> None:
        self.groups: dict[str, TagGroup] = {g.name: g for g in TagGroup.objects.all()}
        self.tags: dict[tuple[str, str], Tag] = {}
        self.by_id: dict[int, tuple[str, str]] = {}
        for tag in Tag.objects.select_related("group"):
            key = (tag.group.name, tag.name)
            self.tags[key] = tag
            self.by_id[tag.pk] = key

    def resolve(self, group: str, name: str) -> tuple[tuple[str, str] | None, str]:
        """A bare tag name is fine when exactly one group has it."""
        if group:
            return (group, name), ""
        return self._resolve_bare(name)

    def _resolve_bare(self, name: str) -> tuple[tuple[str, str] | None, str]:
        owners = [key for key in self.tags if key[1] == name]
        if len(owners) == 1:
            return owners[0], ""
        if not owners:
            return None, _("“%(name)s” needs its group, as in 意向:高.") % {"name": name}
        return None, _("“%(name)s” is in several groups; write it as group:tag.") % {"name": name}

    def exclusive(self, group: str) -> bool:
        found = self.groups.get(group)
        return bool(found and found.exclusive)

    def key(self, tag: tuple[str, str]) -> TagKey:
        """The tag as crm.services.tags' rule sees it (a group the file creates is not exclusive)."""
        return TagKey(group=tag[0], name=tag[1], exclusive=self.exclusive(tag[0]))

    def missing(self, keys: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        return sorted({key for key in keys if key not in self.tags})

    def create_missing(self, keys: Iterable[tuple[str, str]]) -> tuple[int, int]:
        """Create the groups and tags a file names that do not exist yet; returns (groups, tags)."""
        missing = self.missing(keys)
        new_groups = [TagGroup(name=g) for g in sorted({g for g, _n in missing} - set(self.groups))]
        TagGroup.objects.bulk_create(new_groups)
        for group in new_groups:
            self.groups[group.name] = group
        new_tags = [Tag(group=self.groups[g], name=n) for g, n in missing]
        Tag.objects.bulk_create(new_tags)
        for tag in new_tags:
            key = (tag.group.name, tag.name)
            self.tags[key] = tag
            self.by_id[tag.pk] = key
        return len(new_groups), len(new_tags)
