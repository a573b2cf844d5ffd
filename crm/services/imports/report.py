"""What an import found and did: one outcome per row, every error with row, column, reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _

from crm.models import ImportJob

NEW = "new"
UPDATED = "updated"
UNCHANGED = "unchanged"
ERROR = "error"
STATUSES = (NEW, UPDATED, UNCHANGED, ERROR)

# What a job keeps for the page: the first rows and (nearly) every error.
STORED_ROWS = 50
STORED_ERRORS = 1000


@dataclass(frozen=True)
class RowError:
    row: int  # as the spreadsheet shows it: the header is row 1
    column: str  # the header as the file spells it
    message: str

    def __str__(self) -> str:
        return f"第 {self.row} 行, {self.column}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "message": self.message}


@dataclass(slots=True)
class RowOutcome:
    row: int
    status: str
    label: str
    changes: list[str] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "status": self.status, "label": self.label, "changes": self.changes, "note": self.note}


@dataclass
class ImportReport:
    kind: str
    campus: str = ""
    file_name: str = ""
    dry_run: bool = True
    total_rows: int = 0
    outcomes: list[RowOutcome] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    # What the commit wrote (or a preview would write), e.g. {"students": 3, "guardians": 2}.
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    committed: bool = False
    failure: str = ""  # a reason that is not about one row (the data changed under us...)
    seconds: float = 0.0
    commit_seconds: float = 0.0  # from the start of import_rows to the write transaction's COMMIT

    @property
    def ok(self) -> bool:
        return not self.errors and not self.failure

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for outcome in self.outcomes:
            counts[outcome.status] += 1
        return counts

    def add_error(self, row: int, column: str, message: str) -> None:
        self.errors.append(RowError(row=row, column=column, message=message))

    def as_dict(self, *, rows: int = STORED_ROWS, errors: int = STORED_ERRORS) -> dict[str, Any]:
        ordered = sorted(self.errors, key=lambda e: (e.row, e.column))
        return {
            "kind": self.kind,
            "campus": self.campus,
            "file_name": self.file_name,
            "dry_run": self.dry_run,
            "total_rows": self.total_rows,
            "counts": self.counts,
            "rows": [o.as_dict() for o in self.outcomes[:rows]],
            "errors": [e.as_dict() for e in ordered[:errors]],
            "errors_total": len(self.errors),
            "ignored_columns": self.ignored_columns,
            "created": self.created,
            "updated": self.updated,
            "committed": self.committed,
            "failure": self.failure,
            "seconds": round(self.seconds, 2),
        }

    def lines(self) -> list[str]:
        """The report as text, for the command line."""
        counts = self.counts
        head = _("%(kind)s from %(file)s for %(campus)s: %(total)s rows") % {
            "kind": ImportJob.Kind(self.kind).label if self.kind in ImportJob.Kind.values else self.kind,
            "file": self.file_name or "-",
            "campus": self.campus or "-",
            "total": self.total_rows,
        }
        lines = [
            head,
            _("new %(new)s, updated %(updated)s, unchanged %(unchanged)s, error %(error)s") % counts,
        ]
        if self.ignored_columns:
            lines.append(_("Ignored columns: %(columns)s") % {"columns": ", ".join(self.ignored_columns)})
        for error in sorted(self.errors, key=lambda e: (e.row, e.column)):
            lines.append(str(error))
        if self.failure:
            lines.append(self.failure)
        if self.committed:
            written = ", ".join(f"{k} +{v}" for k, v in self.created.items() if v)
            changed = ", ".join(f"{k} ~{v}" for k, v in self.updated.items() if v)
            lines.append(_("Committed: %(what)s") % {"what": "; ".join(p for p in (written, changed) if p) or "-"})
        elif self.ok and not self.dry_run:
            lines.append(_("Nothing was written."))
        elif not self.ok:
            lines.append(_("Nothing was written: correct the rows above and import the file again."))
        else:
            lines.append(_("Dry run: nothing was written."))
        return lines
