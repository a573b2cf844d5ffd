"""Template filters of the personas pages."""

from __future__ import annotations

import re

from django import template

register = template.Library()

# What a rule records on the tags it gives: "#<rule id> <rule name>" (TagRule.ref).
_RULE_REF = re.compile(r"^#\d+ ")


@register.filter
def rule_name(recorded: str) -> str:
    """The rule's name as people know it, without the id that says which rule owns the tag."""
    return _RULE_REF.sub("", recorded or "", count=1)
