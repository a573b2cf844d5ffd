"""Reads of the personas app, each scoped to the viewer: the persona card of one student
(`card`), the campus's tag rules (`tag_rules`), the overview of a campus (`overview`), and
segments with their members as the viewer sees them (`segments`)."""

from personas.selectors.card import (
    MAX_TIMELINE_PAGE,
    TIMELINE_PAGE_SIZE,
    PersonaCard,
    TimelineEntry,
    TimelinePage,
    TouchKind,
    persona_card,
    timeline_for,
    timeline_page,
)
from personas.selectors.overview import Overview, OverviewRow, OverviewTable, overview_for
from personas.selectors.segments import (
    SEGMENT_ROLES,
    member_rows,
    segment_counts,
    segment_get,
    segment_members,
    segments_visible_to,
    students_matching_tree,
    tree_q,
)
from personas.selectors.tag_rules import tag_rule_get, tag_rules_visible_to

__all__ = [
    "MAX_TIMELINE_PAGE",
    "SEGMENT_ROLES",
    "TIMELINE_PAGE_SIZE",
    "Overview",
    "OverviewRow",
    "OverviewTable",
    "PersonaCard",
    "TimelineEntry",
    "TimelinePage",
    "TouchKind",
    "member_rows",
    "overview_for",
    "persona_card",
    "segment_counts",
    "segment_get",
    "segment_members",
    "segments_visible_to",
    "students_matching_tree",
    "tag_rule_get",
    "tag_rules_visible_to",
    "timeline_for",
    "timeline_page",
    "tree_q",
]
