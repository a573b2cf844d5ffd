"""Sections a higher app adds to crm's pages, without crm importing it (apps depend one way).

The campaigns app adds its call tasks to the follow-up list: it registers a function in its
`AppConfig.ready()` that, given the viewer, returns a template and its context, or None when it
has nothing to show them. Each must read in a constant number of queries (the list's query
count is tested).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crm.models import User


@dataclass(frozen=True)
class Section:
    template: str
    context: dict[str, Any]


FollowupSection = Callable[[User], Section | None]

_followup_sections: list[FollowupSection] = []


def on_followups(section: FollowupSection) -> None:
    if section not in _followup_sections:
        _followup_sections.append(section)


def followup_sections(viewer: User) -> list[Section]:
    return [shown for section in _followup_sections if (shown := section(viewer)) is not None]
