"""Historical consultations: one row per conversation with a known student.

A consultation's natural key is (student, consulted at): importing the same history
twice finds every row unchanged. After a commit, a student whose newest fact is an
imported consultation gets that consultation's next follow-up, as consultation_log does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.models import Consultation, ConsultationChannel, Contract, Intent, Student, User
from crm.phones import phone_display
from crm.services import date_ranges
from crm.services.imports import cells
from crm.services.imports.columns import CONSULTATION_COLUMNS
from crm.services.imports.core import BATCH, WRITING, ImportContext, Importer
from crm.services.imports.lookups import FamilyIndex, StaffIndex, filter_in
from crm.services.imports.report import NEW, UNCHANGED, UPDATED
from crm.services.imports.student_refs import parse_student_ref, resolve_student
from crm.services.imports.tables import SheetRow

FIELDS = ("channel", "content", "intent", "outcome", "next_follow_up_at", "consultant")
CHOICE_WORDS = {"channel": cells.CONSULTATION_CHANNEL_WORDS, "intent": cells.INTENT_WORDS}


@dataclass
class ConsultationRow:
    number: int
    phone: str
    student_name: str
    consulted_at: dt.datetime
    values: dict[str, Any]  # only cells that hold something; consultant as typed


@dataclass
class ConsultationPlan:
    student: Student
    consulted_at: dt.datetime
    existing: Consultation | None
    rows: list[ConsultationRow] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)  # consultant as a user id
    status: str = NEW
    changes: list[str] = field(default_factory=list)
    changed_fields: list[str] = field(default_factory=list)


def _show(key: str, value: Any, names: dict[int, str]) -> str:
    if value in (None, ""):
        return "—"
    if key in CHOICE_WORDS:
        return cells.choice_word(CHOICE_WORDS[key], value)
    if key == "consultant":
        return names.get(value, str(value))
    if isinstance(value, dt.datetime):
        return f"{timezone.localtime(value):%Y-%m-%d %H:%M}"
    return str(value)


class ConsultationImporter(Importer):
    kind = "consultations"
    columns = CONSULTATION_COLUMNS
    label_keys = ("student_name", "phone", "consulted_at")

    def parse(self, row: SheetRow, ctx: ImportContext) -> ConsultationRow | None:
        before = len(ctx.report.errors)
        phone, name = parse_student_ref(row, ctx)
        consulted_at = None
        try:
            consulted_at = cells.parse_datetime(ctx.cell(row, "consulted_at"))
            problem = date_ranges.consulted_at_problem(consulted_at, now=ctx.now)
            if problem:
                ctx.error(row.number, "consulted_at", problem)
        except cells.CellError as exc:
            ctx.error(row.number, "consulted_at", exc.message)
        values: dict[str, Any] = {}
        parsers: dict[str, Any] = {
            "channel": lambda v: cells.parse_choice(
                v, cells.CONSULTATION_CHANNEL_WORDS, cells.CONSULTATION_CHANNEL_LOOKUP
            ),
            "content": lambda v: cells.parse_text(v, Consultation, "content"),
            "intent": lambda v: cells.parse_choice(v, cells.INTENT_WORDS, cells.INTENT_LOOKUP),
            "outcome": lambda v: cells.parse_text(v, Consultation, "outcome"),
            "next_follow_up_at": cells.parse_datetime,
            "consultant": lambda v: cells.parse_text(v, User, "username"),
        }
        for key, parse in parsers.items():
            raw = ctx.cell(row, key)
            if cells.as_text(raw) == "":
                continue
            try:
                values[key] = parse(raw)
            except cells.CellError as exc:
                ctx.error(row.number, key, exc.message)
        if ctx.text(row, "content") == "":
            ctx.error(row.number, "content", _("Write down what was discussed."))
        follow_up = values.get("next_follow_up_at")
        if follow_up is not None and consulted_at is not None:
            problem = date_ranges.follow_up_problem(follow_up, consulted_at=consulted_at)
            if problem:
                ctx.error(row.number, "next_follow_up_at", problem)
        if len(ctx.report.errors) > before or consulted_at is None:
            return None
        return ConsultationRow(
            number=row.number, phone=phone, student_name=name, consulted_at=consulted_at, values=values
        )

    def plan(self, parsed: list[ConsultationRow], ctx: ImportContext) -> list[ConsultationPlan]:
        families = FamilyIndex((r.phone for r in parsed), ctx.campus)
        staff = StaffIndex((r.values.get("consultant", "") for r in parsed), ctx.campus)
        resolved: list[tuple[ConsultationRow, Student]] = []
        for row in parsed:
            student = resolve_student(families, row.number, row.phone, row.student_name, ctx)
            if student is not None:
                resolved.append((row, student))

        student_ids = sorted({s.pk for _r, s in resolved})
        existing: dict[tuple[int, dt.datetime], Consultation] = {}
        for consultations in filter_in(Consultation.objects.order_by("pk"), "student_id", student_ids):
            for consultation in consultations:
                # Files hold whole seconds; a consultation logged in the app has microseconds.
                key = (consultation.student_id, consultation.consulted_at.replace(microsecond=0))
                existing.setdefault(key, consultation)

        names: dict[int, str] = {ctx.actor.pk: ctx.actor.username}
        plans: dict[tuple[int, dt.datetime], ConsultationPlan] = {}
        for row, student in resolved:
            key = (student.pk, row.consulted_at)
            plan = plans.get(key)
            if plan is None:
                plan = plans[key] = ConsultationPlan(
                    student=student, consulted_at=row.consulted_at, existing=existing.get(key)
                )
            plan.rows.append(row)
            for name, value in row.values.items():
                if name == "consultant":
                    user, problem = staff.find(value)
                    if user is None:
                        ctx.error(row.number, "consultant", problem)
                        continue
                    names[user.pk] = user.username
                    value = user.pk
                plan.values[name] = value

        former = {p.existing.consultant_id for p in plans.values() if p.existing and "consultant" in p.values}
        if former - set(names):
            names.update(User.objects.filter(pk__in=former - set(names)).values_list("pk", "username"))

        for plan in plans.values():
            self._diff(plan, ctx, names)
            first = plan.rows[0].number
            for index, row in enumerate(plan.rows):
                when = timezone.localtime(row.consulted_at)
                label = f"{row.student_name} · {phone_display(row.phone)} · {when:%Y-%m-%d %H:%M}"
                if index == 0:
                    ctx.outcome(row.number, plan.status, label, plan.changes)
                else:
                    ctx.outcome(
                        row.number,
                        plan.status,
                        label,
                        note=_("Same consultation as row %(row)s; merged.") % {"row": first},
                    )
        ctx.report.created = {"consultations": sum(1 for p in plans.values() if p.existing is None)}
        ctx.report.updated = {"consultations": sum(1 for p in plans.values() if p.changed_fields)}
        return list(plans.values())

    def _diff(self, plan: ConsultationPlan, ctx: ImportContext, names: dict[int, str]) -> None:
        if plan.existing is None:
            plan.status = NEW
            return
        for key in FIELDS:
            if key not in plan.values:
                continue
            new = plan.values[key]
            old = plan.existing.consultant_id if key == "consultant" else getattr(plan.existing, key)
            if new != old:
                plan.changed_fields.append(key)
                plan.changes.append(f"{ctx.title(key)}: {_show(key, old, names)} → {_show(key, new, names)}")
        plan.status = UPDATED if plan.changed_fields else UNCHANGED

    def apply(self, plans: list[ConsultationPlan], ctx: ImportContext) -> list[int]:
        new = []
        for plan in plans:
            if plan.existing is not None:
                continue
            values = dict(plan.values)
            consultant_id = values.pop("consultant", ctx.actor.pk)
            values.setdefault("channel", ConsultationChannel.PHONE)
            values.setdefault("intent", Intent.MEDIUM)
            new.append(
                Consultation(
                    student=plan.student, consultant_id=consultant_id, consulted_at=plan.consulted_at, **values
                )
            )
        Consultation.objects.bulk_create(new, batch_size=BATCH)
        by_fields: dict[tuple[str, ...], list[Consultation]] = {}
        for plan in plans:
            if plan.existing is None or not plan.changed_fields:
                continue
            for key in plan.changed_fields:
                if key == "consultant":
                    plan.existing.consultant_id = plan.values[key]
                else:
                    setattr(plan.existing, key, plan.values[key])
            by_fields.setdefault(tuple(plan.changed_fields), []).append(plan.existing)
        for fields, consultations in by_fields.items():
            Consultation.objects.bulk_update(consultations, list(fields), batch_size=BATCH)
        ctx.tick(WRITING, len(plans), len(plans))

        touched = [p for p in plans if p.existing is None or p.changed_fields]
        self._sync_follow_ups(touched, ctx)
        return sorted({p.student.pk for p in touched})

    def _sync_follow_ups(self, touched: list[ConsultationPlan], ctx: ImportContext) -> None:
        """A student whose newest fact is an imported consultation follows up as it says."""
        newest: dict[int, ConsultationPlan] = {}
        for plan in touched:
            best = newest.get(plan.student.pk)
            if best is None or plan.consulted_at > best.consulted_at:
                newest[plan.student.pk] = plan
        if not newest:
            return
        ids = sorted(newest)
        latest_consulted: dict[int, dt.datetime] = {}
        latest_signed: dict[int, dt.datetime] = {}
        for consultations in filter_in(Consultation.objects.order_by(), "student_id", ids):
            latest_consulted.update(
                consultations.values("student_id").annotate(at=Max("consulted_at")).values_list("student_id", "at")
            )
        for contracts in filter_in(Contract.objects.order_by(), "student_id", ids):
            latest_signed.update(
                contracts.values("student_id").annotate(at=Max("signed_at")).values_list("student_id", "at")
            )
        changed = []
        for student_id, plan in newest.items():
            if latest_consulted.get(student_id, plan.consulted_at) > plan.consulted_at:
                continue  # a later consultation already decides the follow-up
            signed = latest_signed.get(student_id)
            if signed is not None and signed >= plan.consulted_at:
                continue  # signed since: nothing to follow up
            follow_up = plan.values.get("next_follow_up_at", plan.existing.next_follow_up_at if plan.existing else None)
            if plan.student.next_follow_up_at != follow_up:
                plan.student.next_follow_up_at = follow_up
                plan.student.updated_at = ctx.now
                changed.append(plan.student)
        Student.objects.bulk_update(changed, ["next_follow_up_at", "updated_at"], batch_size=BATCH)
