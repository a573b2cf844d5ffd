"""The one import service: every kind, every caller (admin, page, command, task).

`import_rows` reads a Table in two phases:

1. checking (pure Python, no transaction): every cell is parsed, phones normalised,
   progress reported as it goes;
2. planning and writing (one transaction, imports serialised by an advisory lock on
   PostgreSQL): the file's families, staff and tags are loaded with a few set-based
   queries, each row is classified new / updated / unchanged / error, and, when this
   is a commit and no row is in error, the changes are written in bulk.

A preview (dry_run) stops before writing. One bad row means nothing is written.
"""

from __future__ import annotations

import datetime as dt
import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.events import student_facts_changed
from crm.models import AuditAction, Campus, Role, User
from crm.roles import require_campus, require_role
from crm.services.audit import audit
from crm.services.imports import cells
from crm.services.imports.columns import Column, ColumnMap, resolve_columns
from crm.services.imports.report import ERROR, ImportReport, RowOutcome
from crm.services.imports.tables import SheetRow, Table, as_text

Progress = Callable[[str, int, int], None]
CHECKING = "checking"
WRITING = "writing"
PROGRESS_EVERY = 2000  # rows between progress reports
BATCH = 2000  # rows per INSERT / UPDATE statement
# pg_advisory_xact_lock key: one import writes at a time, so two files naming the same
# new family cannot both try to create it.
IMPORT_LOCK_KEY = 7_301_775_001


@dataclass
class ImportContext:
    kind: str
    campus: Campus
    actor: User
    columns: tuple[Column, ...]
    colmap: ColumnMap
    report: ImportReport
    now: dt.datetime
    progress: Progress | None = None
    failed_rows: set[int] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)

    def has(self, key: str) -> bool:
        return key in self.colmap.index

    def cell(self, row: SheetRow, key: str) -> Any:
        position = self.colmap.index.get(key)
        if position is None or position >= len(row.cells):
            return None
        return row.cells[position]

    def text(self, row: SheetRow, key: str) -> str:
        return as_text(self.cell(row, key))

    def title(self, key: str) -> str:
        return self.colmap.title(key, self.columns)

    def error(self, row: int, key: str, message: str) -> None:
        self.report.add_error(row, self.title(key), message)
        self.failed_rows.add(row)

    def outcome(self, row: int, status: str, label: str, changes: list[str] | None = None, note: str = "") -> None:
        self.report.outcomes.append(RowOutcome(row=row, status=status, label=label, changes=changes or [], note=note))

    def tick(self, phase: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(phase, done, total)


class Importer:
    """One kind of file: students, consultations or contracts."""

    kind: str
    columns: tuple[Column, ...]
    label_keys: tuple[str, ...]

    def parse(self, row: SheetRow, ctx: ImportContext) -> Any:
        """The row's values, or None after recording its errors with ctx.error."""
        raise NotImplementedError

    def plan(self, parsed: Any, ctx: ImportContext) -> Any:
        """Classify every parsed row (ctx.outcome) and fill ctx.report.created/updated; read only."""
        raise NotImplementedError

    def apply(self, plan: Any, ctx: ImportContext) -> list[int]:
        """Write the plan; returns the ids of students whose facts changed."""
        raise NotImplementedError


def _importers() -> dict[str, Importer]:
    from crm.services.imports.consultations import ConsultationImporter
    from crm.services.imports.contracts import ContractImporter
    from crm.services.imports.students import StudentImporter

    return {"students": StudentImporter(), "consultations": ConsultationImporter(), "contracts": ContractImporter()}


KINDS: tuple[str, ...] = ("students", "consultations", "contracts")


def import_rows(
    *,
    kind: str,
    table: Table,
    campus: Campus,
    actor: User,
    dry_run: bool = True,
    file_name: str = "",
    progress: Progress | None = None,
) -> ImportReport:
    """Preview (dry_run) or commit one file of `kind` for `campus`, on behalf of `actor`."""
    require_role(actor, Role.FRONT_DESK, Role.MANAGER)
    require_campus(actor, campus.pk)
    importers = _importers()
    if kind not in importers:
        raise ValueError(f"unknown import kind {kind!r}")
    importer = importers[kind]
    started = time.monotonic()
    report = ImportReport(
        kind=kind, campus=campus.name, file_name=file_name, dry_run=dry_run, total_rows=len(table.rows)
    )
    colmap, header_errors = resolve_columns(table.headers, importer.columns)
    report.ignored_columns = colmap.ignored
    if header_errors:
        report.errors.extend(header_errors)
        return report
    if not table.rows:
        report.failure = _("The file has no data rows under its header.")
        return report

    ctx = ImportContext(
        kind=kind,
        campus=campus,
        actor=actor,
        columns=importer.columns,
        colmap=colmap,
        report=report,
        now=timezone.now(),
        progress=progress,
        started=started,
    )
    gc_was_enabled = gc.isenabled()
    # Hundreds of thousands of small objects and no reference cycles: the cyclic
    # collector would rescan them over and over and take half the time.
    gc.disable()
    try:
        parsed = _check(importer, table.rows, ctx)
        if dry_run:
            importer.plan(parsed, ctx)
        else:
            _commit(importer, parsed, ctx, file_name=file_name)
    finally:
        cells._phone.cache_clear()
        if gc_was_enabled:
            gc.enable()
    _finish_outcomes(importer, table.rows, ctx)
    report.seconds = time.monotonic() - started
    return report


def _check(importer: Importer, rows: Sequence[SheetRow], ctx: ImportContext) -> list[Any]:
    parsed = []
    total = len(rows)
    for done, row in enumerate(rows, start=1):
        item = importer.parse(row, ctx)
        if item is not None:
            parsed.append(item)
        if done % PROGRESS_EVERY == 0:
            ctx.tick(CHECKING, done, total)
    ctx.tick(CHECKING, total, total)
    return parsed


def _commit(importer: Importer, parsed: list[Any], ctx: ImportContext, *, file_name: str) -> None:
    report = ctx.report
    try:
        with transaction.atomic():
            # Registered first, so it runs first after COMMIT: the moment the import's rows
            # are visible, before listeners (the lifecycle's recomputation) do their work.
            transaction.on_commit(lambda: setattr(report, "commit_seconds", time.monotonic() - ctx.started))
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [IMPORT_LOCK_KEY])
            plan = importer.plan(parsed, ctx)
            if report.errors:
                return  # one bad row: nothing is written
            changed = importer.apply(plan, ctx)
            counts = report.counts
            audit(
                actor=ctx.actor,
                action=AuditAction(f"import_{ctx.kind}"),
                kind=ctx.kind,
                file=file_name,
                campus=ctx.campus.code,
                rows=report.total_rows,
                new=counts["new"],
                updated=counts["updated"],
                unchanged=counts["unchanged"],
            )
            student_facts_changed(changed)
            report.committed = True
    except IntegrityError:
        report.committed = False
        report.failure = _(
            "Some of these records were changed by someone else while the file was being imported; "
            "nothing was written. Import the file again."
        )


def _finish_outcomes(importer: Importer, rows: Sequence[SheetRow], ctx: ImportContext) -> None:
    """Every row gets one outcome; a row with any error is an error row."""
    report = ctx.report
    seen = set()
    for outcome in report.outcomes:
        seen.add(outcome.row)
        if outcome.row in ctx.failed_rows:
            outcome.status = ERROR
            outcome.changes = []
    for row in rows:
        if row.number not in seen:
            label = " · ".join(t for t in (ctx.text(row, k) for k in importer.label_keys) if t)
            report.outcomes.append(RowOutcome(row=row.number, status=ERROR, label=label))
    report.outcomes.sort(key=lambda o: o.row)
