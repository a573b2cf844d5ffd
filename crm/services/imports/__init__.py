"""Spreadsheet import: one write path per kind for the admin, the staff page, the
command and the task. See core.py for how a file is checked and written, and
docs/import.md for the columns operators use."""

from crm.services.imports.core import KINDS, import_rows
from crm.services.imports.jobs import (
    import_job_commit,
    import_job_confirm,
    import_job_confirmable,
    import_job_create,
    import_job_preview,
    import_job_progress,
    import_job_requeue,
    runs_in_background,
)
from crm.services.imports.report import ImportReport, RowError, RowOutcome
from crm.services.imports.tables import ImportFileError, Table, read_table, table_from_dataset

__all__ = [
    "KINDS",
    "ImportFileError",
    "ImportReport",
    "RowError",
    "RowOutcome",
    "Table",
    "import_job_commit",
    "import_job_confirm",
    "import_job_confirmable",
    "import_job_create",
    "import_job_preview",
    "import_job_progress",
    "import_job_requeue",
    "import_rows",
    "read_table",
    "runs_in_background",
    "table_from_dataset",
]
