"""Reading the spreadsheets institutions keep: xlsx, or csv in UTF-8 (BOM or not) or GBK.

Whatever the format, a file becomes a `Table`: its header row and its data rows, each
with the row number a spreadsheet program shows (the header is row 1), so every
message can point at the exact row.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import tablib
from django.utils.translation import gettext as _

from crm.text import tidy

# A csv file is tried in this order; GB18030 is a superset of GBK and GB2312, which is
# what Excel on a Chinese Windows writes when asked for "CSV".
CSV_ENCODINGS = ("utf-8-sig", "gb18030")
XLSX_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # the old binary .xls


class ImportFileError(Exception):
    """The file cannot be read at all (wrong format, unknown encoding, no header)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class SheetRow:
    number: int  # as the spreadsheet shows it: the header is row 1
    cells: tuple[Any, ...]  # text cells cleaned by cell_text; xlsx dates and numbers typed


@dataclass
class Table:
    headers: list[str]
    rows: list[SheetRow] = field(default_factory=list)
    encoding: str = ""

    @classmethod
    def from_rows(cls, rows: Iterable[Sequence[Any]], *, encoding: str = "") -> Table:
        """The first row is the header; blank rows are dropped but keep their numbers counted."""
        iterator = iter(rows)
        try:
            header = next(iterator)
        except StopIteration:
            raise ImportFileError(_("The file is empty.")) from None
        headers = [cell_text(h) for h in header]
        while headers and not headers[-1]:
            headers.pop()
        if not any(headers):
            raise ImportFileError(_("The first row must hold the column headers."))
        table = cls(headers=headers, encoding=encoding)
        width = len(headers)
        for number, raw in enumerate(iterator, start=2):
            # Text cells are cleaned once here; typed xlsx cells (dates, numbers) stay typed.
            cells = tuple(cell_text(c) if c is None or isinstance(c, str) else c for c in raw[:width])
            if all(c == "" for c in cells):
                continue
            table.rows.append(SheetRow(number=number, cells=cells))
        return table


def read_table(content: bytes, file_name: str = "") -> Table:
    """Read an uploaded file into a Table, detecting xlsx/csv and the csv's encoding."""
    name = file_name.lower()
    if content.startswith(XLSX_MAGIC) or name.endswith(".xlsx"):
        return read_xlsx(content)
    if content.startswith(OLE_MAGIC) or name.endswith(".xls"):
        raise ImportFileError(_("Old .xls workbooks are not supported: save the sheet as .xlsx or .csv."))
    return read_csv(content)


def decode_csv(content: bytes) -> tuple[str, str]:
    """The text and the encoding it was written in: UTF-8 (with or without BOM), else GB18030."""
    for encoding in CSV_ENCODINGS:
        try:
            return content.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise ImportFileError(_("The file's encoding is not UTF-8 or GBK; save it as “CSV UTF-8” or .xlsx."))


def read_csv(content: bytes) -> Table:
    text, encoding = decode_csv(content)
    try:
        return Table.from_rows(csv_rows(text), encoding=encoding)
    except csv.Error as exc:
        raise ImportFileError(_("The csv file cannot be read: %(error)s") % {"error": exc}) from None


def csv_rows(text: str) -> Iterator[list[str]]:
    # The delimiter is read off the header line only: data cells hold ; and , themselves
    # (tags like "意向:高;兴趣:编程"), which can fool a sniffer looking at whole rows.
    end = text.find("\n")
    header_line = text if end < 0 else text[:end]
    delimiter = max(",\t;", key=header_line.count) if header_line else ","
    if header_line.count(delimiter) == 0:
        delimiter = ","
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)


def read_xlsx(content: bytes) -> Table:
    import openpyxl  # only xlsx files pay for importing it

    try:
        book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception:  # openpyxl raises a zoo of exceptions for a damaged file
        raise ImportFileError(_("The file is not a readable .xlsx workbook.")) from None
    try:
        return Table.from_rows(first_visible_sheet(book).iter_rows(values_only=True), encoding="xlsx")
    finally:
        book.close()


def first_visible_sheet(book: Any) -> Any:
    """The worksheet every door reads: the first one a person sees as a tab.

    Not the active sheet: that is whichever tab was open when the file was last saved,
    so the same workbook would import differently after someone merely looked at
    another tab. Hidden sheets (lookup lists, macros' scratch space) are skipped.
    """
    for sheet in book.worksheets:
        if sheet.sheet_state == "visible":
            return sheet
    raise ImportFileError(_("The workbook has no visible worksheet."))


class TableDataset(tablib.Dataset):
    """An uploaded file read by read_table, in the shape django-import-export passes around.

    The admin's formats return it so the admin reads a file exactly as the page and the
    command do (same sheet, same blank-row and header rules); the rows stay in `table`,
    the bytes in `content` for a job that re-reads them.
    """

    def __init__(self, table: Table, content: bytes, file_name: str):
        super().__init__(headers=table.headers)
        self.table = table
        self.content = content
        self.file_name = file_name

    def __len__(self) -> int:
        return len(self.table.rows)

    def __bool__(self) -> bool:
        # The library refuses a falsy dataset with its own words; a file with a header
        # and no rows gets the service's answer instead, as on the page.
        return True


def table_from_dataset(dataset: Any) -> Table:
    """A tablib Dataset (what django-import-export's admin hands over) as a Table."""
    if isinstance(dataset, TableDataset):
        return dataset.table
    headers = list(dataset.headers or [])
    return Table.from_rows([headers, *list(dataset)], encoding="dataset")


def as_text(value: Any) -> str:
    """A Table cell as text: text cells are already clean (see Table.from_rows)."""
    return value if value.__class__ is str else cell_text(value)


def cell_text(value: Any) -> str:
    """A cell as the text a person typed: numbers without a trailing .0, dates in ISO."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = tidy(value)
        # Our exports prefix a formula-like text with ' so spreadsheets show it as text;
        # reading such a file back gives the original text.
        if len(text) > 1 and text[0] == "'" and text[1] in "=+-@":
            text = text[1:]
        return text
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()
