"""How the campaigns pages write figures."""

from __future__ import annotations

from django import template
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def points(value: float | None) -> str:
    """A difference of two rates in percentage points, signed: 0.0512 -> "+5.1 pt"."""
    if value is None:
        return "-"
    return _("%(value)s pt") % {"value": f"{value * 100:+.1f}"}


@register.filter
def signed(value: float | None) -> str:
    """A difference of two rates in percentage points, signed, without the unit: 0.0512 -> "+5.1"."""
    return "-" if value is None else f"{value * 100:+.1f}"


@register.filter
def percent(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.1f}%"
