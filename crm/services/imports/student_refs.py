"""Rows about an existing student (consultations, contracts) name them by family phone
and student name, the natural key staff know, never by database id."""

from __future__ import annotations

from django.utils.translation import gettext as _

from crm.models import Student
from crm.services.imports import cells
from crm.services.imports.core import ImportContext
from crm.services.imports.lookups import FamilyIndex
from crm.services.imports.tables import SheetRow


def parse_student_ref(row: SheetRow, ctx: ImportContext) -> tuple[str, str]:
    """(E.164 phone, student name); errors are recorded on the row."""
    phone = name = ""
    try:
        phone = cells.parse_phone(ctx.cell(row, "phone"))
    except cells.CellError as exc:
        ctx.error(row.number, "phone", exc.message)
    try:
        name = cells.parse_text(ctx.cell(row, "student_name"), Student, "name")
        if not name:
            ctx.error(row.number, "student_name", _("Enter the student's name."))
    except cells.CellError as exc:
        ctx.error(row.number, "student_name", exc.message)
    return phone, name


def resolve_student(families: FamilyIndex, row: int, phone: str, name: str, ctx: ImportContext) -> Student | None:
    found = families.find(phone, name)
    if found.error:
        ctx.error(row, found.error_column, found.error)
        return None
    if found.student is None:
        if found.guardian is None:
            message = _("No family has this phone; import the students first.")
            ctx.error(row, "phone", message)
        else:
            message = _("This family has no student called %(name)s at %(campus)s; import the students first.") % {
                "name": name,
                "campus": ctx.campus,
            }
            ctx.error(row, "student_name", message)
        return None
    return found.student
