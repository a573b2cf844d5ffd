"""Free text people type: one way to tidy it, one length limit per kind of field.

Every door (staff page, admin, import, command, API) hands text to a service, and the
service tidies it with `tidy` and checks it with `clean` against the model field's
`max_length`, which is one of the limits below. The database holds the same limits as a
backstop: varchar lengths, and a check constraint on each long text column.

The limits stay below what one spreadsheet cell holds (32,767 characters in xlsx), so
whatever the app stores an export writes whole and an import reads back unchanged.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import models
from django.db.models.functions import Length
from django.db.models.lookups import LessThanOrEqual
from django.utils.text import capfirst
from django.utils.translation import gettext as _

NAME = 50  # a child's or parent's name, a tag, a tag group
SHORT = 20  # a grade, a relation ("妈妈")
LABEL = 50  # a level, a subject
TITLE = 100  # a school, a course
LINE = 200  # a reason, an outcome: one sentence
LONG = 10_000  # notes, what was discussed, a teacher's comment or feedback

# Control characters break csv and xlsx (openpyxl refuses to write them) and no keyboard
# types them on purpose; tabs and line breaks are text. A BOM is what a pasted file left.
_INVISIBLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]")
_WHITESPACE = re.compile(r"\s+")


def tidy(value: str) -> str:
    """What a person meant to type: no whitespace at either end (full-width and
    non-breaking spaces included), no control characters, line breaks as \\n.
    Spaces inside are kept as typed."""
    if value.isprintable():  # most cells: nothing but letters, digits and ASCII spaces
        return value.strip()
    return _INVISIBLE.sub("", value.replace("\r\n", "\n").replace("\r", "\n")).strip()


def printable(value: str) -> str:
    """`value` without control characters, which a spreadsheet cannot hold (rows stored
    before tidy existed may have them)."""
    return _INVISIBLE.sub("", value)


def name_key(name: str) -> str:
    """How two names of one family are compared: 王\u3000小明, 王\u00a0小明 and 王 小明 are
    one child, whichever space the person's keyboard typed."""
    return _WHITESPACE.sub(" ", tidy(name))


def limit_of(model: type[models.Model], field: str) -> int:
    limit = model._meta.get_field(field).max_length  # type: ignore[union-attr]
    assert limit is not None, f"{model.__name__}.{field} has no length limit"
    return int(limit)


def too_long(label: Any, value: str, limit: int) -> str:
    return _("%(field)s: at most %(limit)s characters (this has %(length)s).") % {
        "field": capfirst(label),
        "limit": limit,
        "length": len(value),
    }


def clean(errors: dict[str, Any], key: str, value: str, model: type[models.Model], field: str = "") -> str:
    """`value` tidied; if it is longer than the model field allows, an error under `key`
    naming the field and its limit."""
    value = tidy(value)
    model_field = model._meta.get_field(field or key)
    limit = limit_of(model, field or key)
    if len(value) > limit:
        errors[key] = too_long(model_field.verbose_name, value, limit)  # type: ignore[union-attr]
    return value


def length_constraint(model_name: str, field: str, limit: int) -> models.CheckConstraint:
    """The database's backstop for a long text column (varchar columns have their own)."""
    return models.CheckConstraint(
        condition=LessThanOrEqual(Length(field), limit),
        name=f"{model_name}_{field}_length",
    )
