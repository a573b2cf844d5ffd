"""Historical contracts: one row per contract of a known student.

A contract's natural key is (student, course, signed at). Re-importing finds it
unchanged; a corrected amount, paid amount, hours bought or end date updates it.
Hours consumed, refunds and status of a contract already in the system are kept by
attendance and refunds in the app, so an import that contradicts them is refused.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext as _

from crm.models import Contract, ContractStatus, Course, Student
from crm.phones import phone_display
from crm.services import date_ranges
from crm.services.imports import cells
from crm.services.imports.columns import CONTRACT_COLUMNS
from crm.services.imports.core import BATCH, WRITING, ImportContext, Importer
from crm.services.imports.lookups import FamilyIndex, filter_in
from crm.services.imports.report import NEW, UNCHANGED, UPDATED
from crm.services.imports.student_refs import parse_student_ref, resolve_student
from crm.services.imports.tables import SheetRow

UPDATABLE = ("hours_bought", "amount", "paid_amount", "valid_until")
KEPT_BY_APP = ("status", "hours_consumed", "refund_amount", "refund_reason")
ZERO = Decimal("0")


@dataclass
class ContractRow:
    number: int
    phone: str
    student_name: str
    course: str
    signed_at: dt.datetime
    values: dict[str, Any]  # only cells that hold something


@dataclass
class ContractPlan:
    student: Student
    course: Course
    signed_at: dt.datetime
    existing: Contract | None
    rows: list[ContractRow] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    status: str = NEW
    changes: list[str] = field(default_factory=list)
    changed_fields: list[str] = field(default_factory=list)


def _money(places: int, digits: int) -> Any:
    return lambda v: cells.parse_decimal(v, places=places, max_digits=digits)


def _show(key: str, value: Any) -> str:
    if value in (None, ""):
        return "—"
    if key == "status":
        return cells.choice_word(cells.CONTRACT_STATUS_WORDS, value)
    return str(value)


class ContractImporter(Importer):
    kind = "contracts"
    columns = CONTRACT_COLUMNS
    label_keys = ("student_name", "phone", "course")

    def parse(self, row: SheetRow, ctx: ImportContext) -> ContractRow | None:
        before = len(ctx.report.errors)
        phone, name = parse_student_ref(row, ctx)
        course = ""
        try:
            course = cells.parse_text(ctx.cell(row, "course"), Course, "name")
            if not course:
                ctx.error(row.number, "course", _("Name the course."))
        except cells.CellError as exc:
            ctx.error(row.number, "course", exc.message)
        signed_at = None
        try:
            signed_at = cells.parse_datetime(ctx.cell(row, "signed_at"))
            problem = date_ranges.signed_at_problem(signed_at, now=ctx.now)
            if problem:
                ctx.error(row.number, "signed_at", problem)
        except cells.CellError as exc:
            ctx.error(row.number, "signed_at", exc.message)
        values: dict[str, Any] = {}
        parsers: dict[str, Any] = {
            "hours_bought": _money(1, 7),
            "amount": _money(2, 12),
            "paid_amount": _money(2, 12),
            "valid_until": cells.parse_date,
            "status": lambda v: cells.parse_choice(v, cells.CONTRACT_STATUS_WORDS, cells.CONTRACT_STATUS_LOOKUP),
            "hours_consumed": _money(1, 7),
            "refund_amount": _money(2, 12),
            "refund_reason": lambda v: cells.parse_text(v, Contract, "refund_reason"),
        }
        for key, parse in parsers.items():
            raw = ctx.cell(row, key)
            if cells.as_text(raw) == "":
                if key in ("hours_bought", "amount"):
                    ctx.error(row.number, key, _("This cell is required."))
                continue
            try:
                values[key] = parse(raw)
            except cells.CellError as exc:
                ctx.error(row.number, key, exc.message)
        if len(ctx.report.errors) > before or signed_at is None:
            return None
        self._check_amounts(row.number, values, signed_at, ctx)
        if len(ctx.report.errors) > before:
            return None
        return ContractRow(
            number=row.number, phone=phone, student_name=name, course=course, signed_at=signed_at, values=values
        )

    def _check_amounts(self, row: int, values: dict[str, Any], signed_at: dt.datetime, ctx: ImportContext) -> None:
        """The rules contract_sign and the table's constraints hold, said per cell."""
        hours = values["hours_bought"]
        amount = values["amount"]
        paid = values.get("paid_amount", amount)
        if hours <= 0:
            ctx.error(row, "hours_bought", _("Hours bought must be more than zero."))
        if amount < 0:
            ctx.error(row, "amount", _("The amount cannot be negative."))
        if paid < 0:
            ctx.error(row, "paid_amount", _("The paid amount cannot be negative."))
        elif paid > amount:
            ctx.error(row, "paid_amount", _("The paid amount cannot exceed the contract amount."))
        valid_until = values.get("valid_until")
        problem = date_ranges.valid_until_problem(valid_until, signed_at=signed_at) if valid_until else None
        if problem:
            ctx.error(row, "valid_until", problem)
        consumed = values.get("hours_consumed", ZERO)
        if consumed < 0:
            ctx.error(row, "hours_consumed", _("Hours cannot be negative."))
        elif consumed > hours:
            ctx.error(row, "hours_consumed", _("Hours consumed cannot exceed the hours bought."))
        refund = values.get("refund_amount", ZERO)
        if refund < 0:
            ctx.error(row, "refund_amount", _("The refund cannot be negative."))
        elif refund > paid:
            ctx.error(row, "refund_amount", _("The refund cannot exceed the %(paid)s paid.") % {"paid": paid})

    def plan(self, parsed: list[ContractRow], ctx: ImportContext) -> list[ContractPlan]:
        families = FamilyIndex((r.phone for r in parsed), ctx.campus)
        courses = {c.name: c for c in Course.objects.filter(campus=ctx.campus)}
        folded = {name.casefold(): c for name, c in courses.items()}
        resolved: list[tuple[ContractRow, Student, Course]] = []
        for row in parsed:
            student = resolve_student(families, row.number, row.phone, row.student_name, ctx)
            course = courses.get(row.course) or folded.get(row.course.casefold())
            if course is None:
                ctx.error(
                    row.number,
                    "course",
                    _("%(campus)s has no course “%(course)s”.") % {"campus": ctx.campus, "course": row.course},
                )
            if student is not None and course is not None:
                resolved.append((row, student, course))

        existing: dict[tuple[int, int, dt.datetime], Contract] = {}
        for contracts in filter_in(Contract.objects.order_by("pk"), "student_id", (s.pk for _r, s, _c in resolved)):
            for contract in contracts:
                # Files hold whole seconds; a contract signed in the app has microseconds.
                key = (contract.student_id, contract.course_id, contract.signed_at.replace(microsecond=0))
                existing.setdefault(key, contract)

        plans: dict[tuple[int, int, dt.datetime], ContractPlan] = {}
        for row, student, course in resolved:
            key = (student.pk, course.pk, row.signed_at)
            plan = plans.get(key)
            if plan is None:
                plan = plans[key] = ContractPlan(
                    student=student, course=course, signed_at=row.signed_at, existing=existing.get(key)
                )
            plan.rows.append(row)
            plan.values.update(row.values)

        for plan in plans.values():
            self._diff(plan, ctx)
            first = plan.rows[0].number
            for index, row in enumerate(plan.rows):
                label = f"{row.student_name} · {phone_display(row.phone)} · {plan.course.name}"
                if index == 0:
                    ctx.outcome(row.number, plan.status, label, plan.changes)
                else:
                    note = _("Same contract as row %(row)s; merged.") % {"row": first}
                    ctx.outcome(row.number, plan.status, label, note=note)
        ctx.report.created = {"contracts": sum(1 for p in plans.values() if p.existing is None)}
        ctx.report.updated = {"contracts": sum(1 for p in plans.values() if p.changed_fields)}
        return list(plans.values())

    def _diff(self, plan: ContractPlan, ctx: ImportContext) -> None:
        contract = plan.existing
        if contract is None:
            plan.status = NEW
            return
        row = plan.rows[-1].number
        for key in KEPT_BY_APP:
            if key in plan.values and plan.values[key] != getattr(contract, key):
                ctx.error(
                    row,
                    key,
                    _(
                        "This contract is already in the system with %(column)s “%(value)s”; "
                        "attendance, refunds and status changes are recorded in the app, not by import."
                    )
                    % {"column": ctx.title(key), "value": _show(key, getattr(contract, key))},
                )
        for key in UPDATABLE:
            if key in plan.values and plan.values[key] != getattr(contract, key):
                plan.changed_fields.append(key)
                plan.changes.append(
                    f"{ctx.title(key)}: {_show(key, getattr(contract, key))} → {_show(key, plan.values[key])}"
                )
        hours = plan.values.get("hours_bought", contract.hours_bought)
        if hours < contract.hours_consumed:
            ctx.error(
                row,
                "hours_bought",
                _("%(used)s hours of this contract are already consumed.") % {"used": contract.hours_consumed},
            )
        paid = plan.values.get("paid_amount", contract.paid_amount)
        if paid > plan.values.get("amount", contract.amount):
            ctx.error(row, "paid_amount", _("The paid amount cannot exceed the contract amount."))
        if contract.refund_amount > paid:
            ctx.error(row, "paid_amount", _("The paid amount cannot be less than the refund already made."))
        plan.status = UPDATED if plan.changed_fields else UNCHANGED

    def apply(self, plans: list[ContractPlan], ctx: ImportContext) -> list[int]:
        new = []
        for plan in plans:
            if plan.existing is not None:
                continue
            values = dict(plan.values)
            values.setdefault("paid_amount", values["amount"])
            values.setdefault("status", ContractStatus.ACTIVE)
            new.append(
                Contract(
                    student=plan.student,
                    course=plan.course,
                    signed_at=plan.signed_at,
                    signed_by=ctx.actor,
                    **values,
                )
            )
        Contract.objects.bulk_create(new, batch_size=BATCH)
        by_fields: dict[tuple[str, ...], list[Contract]] = {}
        for plan in plans:
            if plan.existing is None or not plan.changed_fields:
                continue
            for key in plan.changed_fields:
                setattr(plan.existing, key, plan.values[key])
            by_fields.setdefault(tuple(plan.changed_fields), []).append(plan.existing)
        for fields, contracts in by_fields.items():
            Contract.objects.bulk_update(contracts, list(fields), batch_size=BATCH)
        ctx.tick(WRITING, len(plans), len(plans))
        return sorted({p.student.pk for p in plans if p.existing is None or p.changed_fields})
