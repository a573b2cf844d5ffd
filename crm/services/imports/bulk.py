"""Set-based inserts for large imports.

On PostgreSQL new rows go in with COPY, their ids allocated up front from the table's
sequence: no model instance per row and no giant parameter lists, which is what lets a
50,000-row file (with guardians, links and tags: about 270,000 rows) commit in seconds.
Elsewhere (the SQLite embedded default) it is Django's bulk_create.

Callers pass rows as dicts keyed by attname (`student_id`, not `student`); fields not
given take the model field's default, and auto_now/auto_now_add fields take `now`, so a
row written here is the row Model.objects.create would write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from enum import Enum
from typing import Any

from django.db import connection, models

BATCH = 2000


def insert_rows(model: type[models.Model], rows: Sequence[dict[str, Any]], *, now: dt.datetime) -> list[int]:
    """Insert `rows` into `model`'s table; returns the new primary keys in order."""
    if not rows:
        return []
    if connection.vendor == "postgresql":
        return _copy(model, rows, now)
    objects = [model(**row) for row in rows]
    model._default_manager.bulk_create(objects, batch_size=BATCH)
    return [obj.pk for obj in objects]


def _copy(model: type[models.Model], rows: Sequence[dict[str, Any]], now: dt.datetime) -> list[int]:
    meta = model._meta
    pk = meta.pk
    assert pk is not None
    fields = [f for f in meta.concrete_fields if f is not pk]
    defaults: dict[str, Any] = {}
    for field in fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            defaults[field.attname] = now
        else:
            default = field.get_default()
            defaults[field.attname] = default.value if isinstance(default, Enum) else default
    attnames = [f.attname for f in fields]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(c)) for c in [pk.column, *(f.column for f in fields)])
    table = quote(meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, str(pk.column), len(rows)],
        )
        ids = [row[0] for row in cursor.fetchall()]
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        default_values = [defaults[name] for name in attnames]
        with raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:  # type: ignore[union-attr]
            write = copy.write_row
            for new_id, row in zip(ids, rows, strict=True):
                write((new_id, *map(row.get, attnames, default_values)))
    return ids
