"""Students with their guardian and tags: one row per child.

A row's natural key is (guardian phone in E.164, student name): the phone finds the
family whatever its format, the name finds the child in it. Rows of one file that
reach the same child are merged (later non-blank cells win, tags add up, except that in
an exclusive group a later row's tag replaces an earlier one: crm.services.tags). A blank
cell never clears a value already stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.models import Guardian, Student, StudentGuardian, StudentTag, TagSource, User
from crm.phones import phone_display
from crm.services import date_ranges
from crm.services.families import GUARDIAN_DETAILS, guardian_change_problem, guardian_changes, home_campuses
from crm.services.imports import cells
from crm.services.imports.bulk import insert_rows
from crm.services.imports.columns import STUDENT_COLUMNS
from crm.services.imports.core import BATCH, WRITING, ImportContext, Importer
from crm.services.imports.lookups import FamilyIndex, StaffIndex, TagCatalogue, filter_in
from crm.services.imports.report import NEW, UNCHANGED, UPDATED
from crm.services.imports.tables import SheetRow
from crm.services.leads import stages_open
from crm.services.owners import owner_problem
from crm.services.tags import displaced_by, exclusive_tag_problem
from crm.text import name_key

# Student fields a row may set, in the order changes are listed.
STUDENT_FIELDS = ("gender", "birth_date", "grade", "school", "channel", "notes", "owner")
# The guardian's columns -> the detail each gives (crm.services.families.GUARDIAN_DETAILS).
GUARDIAN_COLUMNS = {"guardian_name": "name", "relation": "relation", "guardian_email": "email"}
CHOICE_WORDS = {"gender": cells.GENDER_WORDS, "channel": cells.CHANNEL_WORDS}
# Optional cells: a blank one is skipped (it never clears a stored value).
PARSERS: dict[str, Callable[[Any], Any]] = {
    "gender": lambda v: cells.parse_choice(v, cells.GENDER_WORDS, cells.GENDER_LOOKUP),
    "birth_date": cells.parse_date,
    "grade": lambda v: cells.parse_text(v, Student, "grade"),
    "school": lambda v: cells.parse_text(v, Student, "school"),
    "channel": lambda v: cells.parse_choice(v, cells.CHANNEL_WORDS, cells.CHANNEL_LOOKUP),
    "notes": lambda v: cells.parse_text(v, Student, "notes"),
    "owner": lambda v: cells.parse_text(v, User, "username"),
    "guardian_name": lambda v: cells.parse_text(v, Guardian, "name"),
    "relation": lambda v: cells.parse_text(v, Guardian, "relation"),
    "guardian_email": cells.parse_email,
    "tags": cells.parse_tags,
}


@dataclass
class StudentRow:
    number: int
    name: str
    phone: str
    fields: dict[str, Any]  # only the cells that hold something; owner as typed
    guardian: dict[str, str]  # name / relation / email, only when given
    tags: list[tuple[str, str]]


@dataclass
class GuardianPlan:
    phone: str
    guardian: Guardian | None
    values: dict[str, str] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)  # detail -> the row that last gave it
    changes: list[str] = field(default_factory=list)


@dataclass
class StudentPlan:
    name: str
    phone: str  # the first row's: a new child joins this family
    student: Student | None  # None: a new child
    rows: list[StudentRow] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)  # owner as a user id
    tags: list[tuple[str, str]] = field(default_factory=list)
    status: str = NEW
    changes: list[str] = field(default_factory=list)
    changed_fields: list[str] = field(default_factory=list)
    tags_add: list[tuple[str, str]] = field(default_factory=list)
    tags_remove: list[int] = field(default_factory=list)  # StudentTag ids


@dataclass
class Plan:
    students: list[StudentPlan]
    guardians: dict[str, GuardianPlan]
    catalogue: TagCatalogue
    new_tags: list[tuple[str, str]]


def _show(key: str, value: Any, owners: dict[int, str] | None = None) -> str:
    if value in (None, ""):
        return "—"
    if key in CHOICE_WORDS:
        return cells.choice_word(CHOICE_WORDS[key], value)
    if key == "owner" and owners is not None:
        return owners.get(value, str(value))
    return str(value)


class StudentImporter(Importer):
    kind = "students"
    columns = STUDENT_COLUMNS
    label_keys = ("name", "phone")

    def parse(self, row: SheetRow, ctx: ImportContext) -> StudentRow | None:
        before = len(ctx.report.errors)
        name = phone = ""
        try:
            name = cells.parse_text(ctx.cell(row, "name"), Student, "name")
            if not name:
                ctx.error(row.number, "name", _("Enter the student's name."))
        except cells.CellError as exc:
            ctx.error(row.number, "name", exc.message)
        try:
            phone = cells.parse_phone(ctx.cell(row, "phone"))
        except cells.CellError as exc:
            ctx.error(row.number, "phone", exc.message)
        values: dict[str, Any] = {}
        guardian: dict[str, str] = {}
        tags: list[tuple[str, str]] = []
        for key, parse in PARSERS.items():
            raw = ctx.cell(row, key)
            if cells.as_text(raw) == "":
                continue
            try:
                value = parse(raw)
            except cells.CellError as exc:
                ctx.error(row.number, key, exc.message)
                continue
            problem = (
                date_ranges.birth_date_problem(value, today=timezone.localdate(ctx.now))
                if key == "birth_date"
                else None
            )
            if problem:
                ctx.error(row.number, key, problem)
                continue
            if key in GUARDIAN_COLUMNS:
                guardian[GUARDIAN_COLUMNS[key]] = value
            elif key == "tags":
                tags = value
            else:
                values[key] = value
        if len(ctx.report.errors) > before:
            return None
        return StudentRow(number=row.number, name=name, phone=phone, fields=values, guardian=guardian, tags=tags)

    def plan(self, parsed: list[StudentRow], ctx: ImportContext) -> Plan:
        families = FamilyIndex((r.phone for r in parsed), ctx.campus)
        staff = StaffIndex((r.fields.get("owner", "") for r in parsed), ctx.campus)
        catalogue = TagCatalogue()

        plans: dict[tuple[Any, ...], StudentPlan] = {}
        for row in parsed:
            found = families.find(row.phone, row.name)
            if found.error:
                ctx.error(row.number, "name" if found.error_column == "student_name" else "phone", found.error)
                continue
            if found.student is not None:
                key: tuple[Any, ...] = ("id", found.student.pk)
            else:
                key = ("new", row.phone, name_key(row.name))
            plan = plans.get(key)
            if plan is None:
                plan = plans[key] = StudentPlan(name=row.name, phone=row.phone, student=found.student)
            plan.rows.append(row)

        self._lock_families_gaining_children(plans, families, ctx)

        owners: dict[int, str] = {}
        guardians: dict[str, GuardianPlan] = {}
        for plan in plans.values():
            for row in plan.rows:
                self._merge_row(plan, row, ctx, staff, catalogue, owners)
                gplan = guardians.get(row.phone)
                if gplan is None:
                    gplan = guardians[row.phone] = GuardianPlan(
                        phone=row.phone, guardian=families.guardians.get(row.phone)
                    )
                gplan.values.update(row.guardian)
                gplan.rows.update(dict.fromkeys(row.guardian, row.number))
        for gplan in guardians.values():
            self._diff_guardian(gplan, ctx, families)

        # Usernames of the owners a file replaces, to show "alice → bob" rather than ids.
        former = {
            p.student.owner_id
            for p in plans.values()
            if p.student is not None and p.student.owner_id is not None and "owner" in p.values
        } - set(owners)
        owners.update(User.objects.filter(pk__in=former).values_list("pk", "username"))

        existing_tags = self._existing_tags([p.student.pk for p in plans.values() if p.student is not None])
        for plan in plans.values():
            self._diff_student(plan, ctx, catalogue, existing_tags, guardians, owners)
            self._outcomes(plan, ctx)

        new_tags = catalogue.missing(t for p in plans.values() for t in p.tags_add)
        report = ctx.report
        report.created = {
            "students": sum(1 for p in plans.values() if p.student is None),
            "guardians": sum(1 for g in guardians.values() if g.guardian is None),
            "student_tags": sum(len(p.tags_add) for p in plans.values()),
            "tags": len(new_tags),
        }
        report.updated = {
            "students": sum(1 for p in plans.values() if p.student is not None and p.changed_fields),
            "guardians": sum(1 for g in guardians.values() if g.guardian is not None and g.changes),
            "student_tags_removed": sum(len(p.tags_remove) for p in plans.values()),
        }
        return Plan(students=list(plans.values()), guardians=guardians, catalogue=catalogue, new_tags=new_tags)

    def _lock_families_gaining_children(
        self, plans: dict[tuple[Any, ...], StudentPlan], families: FamilyIndex, ctx: ImportContext
    ) -> None:
        """Lock the families this file adds a child to, as lead_capture does, then look again:
        a sibling of the same name captured since the families were read is an error, not a
        second child. Only a committing import holds a transaction to lock in."""
        if not connection.in_atomic_block:
            return
        gaining: dict[int, list[tuple[tuple[Any, ...], StudentPlan]]] = {}
        for key, plan in plans.items():
            guardian = families.guardians.get(plan.phone)
            if plan.student is None and guardian is not None:
                gaining.setdefault(guardian.pk, []).append((key, plan))
        if not gaining:
            return
        ids = sorted(gaining)
        list(Guardian.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk", flat=True))
        there = {
            (guardian_id, name_key(name))
            for guardian_id, name in StudentGuardian.objects.filter(guardian_id__in=ids).values_list(
                "guardian_id", "student__name"
            )
        }
        for guardian_id, candidates in gaining.items():
            for key, plan in candidates:
                if (guardian_id, name_key(plan.name)) in there:
                    ctx.error(
                        plan.rows[0].number, "name", _("%(name)s is already in this family.") % {"name": plan.name}
                    )
                    del plans[key]

    def _merge_row(
        self,
        plan: StudentPlan,
        row: StudentRow,
        ctx: ImportContext,
        staff: StaffIndex,
        catalogue: TagCatalogue,
        owners: dict[int, str],
    ) -> None:
        for key, value in row.fields.items():
            if key == "owner":
                user, problem = staff.find(value)
                # Someone who exists but may not own the child: the owner rule's own words.
                problem = owner_problem(user or staff.elsewhere.get(value), ctx.campus.pk) or problem
                if user is None or problem:
                    ctx.error(row.number, "owner", problem)
                    continue
                owners[user.pk] = user.username
                value = user.pk
            plan.values[key] = value
        resolved_tags: list[tuple[str, str]] = []
        for group, name in row.tags:
            resolved, problem = catalogue.resolve(group, name)
            if resolved is None:
                ctx.error(row.number, "tags", problem)
                continue
            if resolved not in resolved_tags:
                resolved_tags.append(resolved)
        # One row is one write of the child's tags (crm.services.tags): two of one exclusive group
        # in it are refused; a later row's tag replaces an earlier row's.
        conflict = exclusive_tag_problem(catalogue.key(t) for t in resolved_tags)
        if conflict:
            ctx.error(row.number, "tags", conflict)
            return
        replaced = displaced_by(map(catalogue.key, plan.tags), map(catalogue.key, resolved_tags))
        plan.tags = [t for t in plan.tags if catalogue.key(t) not in replaced]
        plan.tags.extend(t for t in resolved_tags if t not in plan.tags)

    def _diff_guardian(self, gplan: GuardianPlan, ctx: ImportContext, families: FamilyIndex) -> None:
        guardian = gplan.guardian
        if guardian is None:
            return
        changes = guardian_changes(guardian, **gplan.values)
        if not changes:
            return
        # A family shared with another campus: its guardian's details are the home campus's.
        links = [(guardian.pk, s.pk, s.campus_id) for s in families.students_of.get(guardian.pk, [])]
        home = home_campuses(links).get(guardian.pk)
        problem = guardian_change_problem(
            campus_id=ctx.campus.pk,
            home_campus_id=home,
            home_campus_name=families.campus_names.get(home, "?") if home else "?",
        )
        for column, key in GUARDIAN_COLUMNS.items():
            if key not in changes:
                continue
            if problem:
                ctx.error(gplan.rows[key], column, problem)
                continue
            gplan.changes.append(f"{ctx.title(column)}: {getattr(guardian, key) or '—'} → {changes[key]}")

    def _existing_tags(self, student_ids: list[int]) -> dict[int, list[tuple[int, int]]]:
        """student id -> [(StudentTag id, Tag id)]."""
        found: dict[int, list[tuple[int, int]]] = {}
        for student_tags in filter_in(StudentTag.objects.order_by(), "student_id", student_ids):
            for st_id, student_id, tag_id in student_tags.values_list("id", "student_id", "tag_id"):
                found.setdefault(student_id, []).append((st_id, tag_id))
        return found

    def _diff_student(
        self,
        plan: StudentPlan,
        ctx: ImportContext,
        catalogue: TagCatalogue,
        existing_tags: dict[int, list[tuple[int, int]]],
        guardians: dict[str, GuardianPlan],
        owners: dict[int, str],
    ) -> None:
        student = plan.student
        if student is None:
            plan.status = NEW
            plan.tags_add = list(plan.tags)
            return
        for key in STUDENT_FIELDS:
            if key not in plan.values:
                continue
            new = plan.values[key]
            old = student.owner_id if key == "owner" else getattr(student, key)
            if new != old:
                plan.changed_fields.append(key)
                plan.changes.append(f"{ctx.title(key)}: {_show(key, old, owners)} → {_show(key, new, owners)}")
        have = existing_tags.get(student.pk, [])
        have_keys = {catalogue.by_id[tag_id]: st_id for st_id, tag_id in have if tag_id in catalogue.by_id}
        added = [tag for tag in plan.tags if tag not in have_keys]
        for tag in added:
            plan.tags_add.append(tag)
            plan.changes.append(f"{ctx.title('tags')}: +{tag[0]}:{tag[1]}")
        replaced = displaced_by(map(catalogue.key, have_keys), map(catalogue.key, added))
        for other, st_id in have_keys.items():
            if catalogue.key(other) in replaced:
                plan.tags_remove.append(st_id)
                plan.changes.append(f"{ctx.title('tags')}: −{other[0]}:{other[1]}")
        guardian_changes = [c for phone in dict.fromkeys(r.phone for r in plan.rows) for c in guardians[phone].changes]
        plan.changes.extend(guardian_changes)
        plan.status = UPDATED if plan.changes else UNCHANGED

    def _outcomes(self, plan: StudentPlan, ctx: ImportContext) -> None:
        first = plan.rows[0].number
        for index, row in enumerate(plan.rows):
            label = f"{row.name} · {phone_display(row.phone)}"
            if index == 0:
                ctx.outcome(row.number, plan.status, label, plan.changes)
            else:
                note = _("Same student as row %(row)s; merged.") % {"row": first}
                ctx.outcome(row.number, plan.status, label, note=note)

    def apply(self, plan: Plan, ctx: ImportContext) -> list[int]:
        now = ctx.now
        catalogue = plan.catalogue
        catalogue.create_missing(plan.new_tags)

        new_guardians = [g for g in plan.guardians.values() if g.guardian is None]
        ids = insert_rows(
            Guardian,
            [{"phone": g.phone, **{key: g.values.get(key, "") for key in GUARDIAN_DETAILS}} for g in new_guardians],
            now=now,
        )
        guardian_ids = {g.phone: pk for g, pk in zip(new_guardians, ids, strict=True)}
        changed_guardians = []
        for g in plan.guardians.values():
            if g.guardian is None:
                continue
            guardian_ids[g.phone] = g.guardian.pk
            if g.changes:
                for key in GUARDIAN_DETAILS:
                    if key in g.values:
                        setattr(g.guardian, key, g.values[key])
                g.guardian.updated_at = now
                changed_guardians.append(g.guardian)
        Guardian.objects.bulk_update(changed_guardians, [*GUARDIAN_DETAILS, "updated_at"], batch_size=BATCH)

        total = len(plan.students)
        new_plans = [p for p in plan.students if p.student is None]
        new_ids: list[int] = []
        for start in range(0, len(new_plans), BATCH * 5):
            batch = new_plans[start : start + BATCH * 5]
            rows = []
            for p in batch:
                row = {key: value for key, value in p.values.items() if key != "owner"}
                row.update(
                    name=p.name,
                    campus_id=ctx.campus.pk,
                    owner_id=p.values.get("owner"),
                    created_by_id=ctx.actor.pk,
                )
                rows.append(row)
            batch_ids = insert_rows(Student, rows, now=now)
            stages_open(batch_ids)
            new_ids.extend(batch_ids)
            ctx.tick(WRITING, len(new_ids), total)

        by_fields: dict[tuple[str, ...], list[Student]] = {}
        for p in plan.students:
            student = p.student
            if student is None or not p.changed_fields:
                continue
            for key in p.changed_fields:
                if key == "owner":
                    student.owner_id = p.values["owner"]
                else:
                    setattr(student, key, p.values[key])
            student.updated_at = now
            by_fields.setdefault(tuple(p.changed_fields), []).append(student)
        for fields, students in by_fields.items():
            Student.objects.bulk_update(students, [*fields, "updated_at"], batch_size=BATCH)
        ctx.tick(WRITING, total, total)

        links = [
            {"student_id": pk, "guardian_id": guardian_ids[p.phone]} for p, pk in zip(new_plans, new_ids, strict=True)
        ]
        insert_rows(StudentGuardian, links, now=now)

        StudentTag.objects.filter(pk__in=[st for p in plan.students for st in p.tags_remove]).delete()
        targets = [*zip(new_plans, new_ids, strict=True)]
        targets += [(p, p.student.pk) for p in plan.students if p.student is not None]
        student_tags = [
            {
                "student_id": student_id,
                "tag_id": catalogue.tags[tag].pk,
                "source": TagSource.IMPORT.value,
                "created_by_id": ctx.actor.pk,
            }
            for p, student_id in targets
            for tag in p.tags_add
        ]
        insert_rows(StudentTag, student_tags, now=now)
        return new_ids + [p.student.pk for p in plan.students if p.student is not None and p.changes]
