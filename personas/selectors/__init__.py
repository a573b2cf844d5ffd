"""Reads of the personas app, each scoped to the viewer: the persona card of one student
(`card`), the campus's tag rules (`tag_rules`), the overview of a campus (`overview`),
segments with their members as the viewer sees them (`segments`), and the parents' satisfaction:
what is due for a guardian's children, a student's figures, the care tasks (`satisfaction`)."""

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
from personas.selectors.satisfaction import (
    SatisfactionDue,
    SatisfactionFigures,
    care_tasks_for,
    satisfaction_due_for,
    satisfaction_figures,
)
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
    "SatisfactionDue",
    "SatisfactionFigures",
    "TimelineEntry",
    "TimelinePage",
    "TouchKind",
    "care_tasks_for",
    "member_rows",
    "overview_for",
    "persona_card",
    "satisfaction_due_for",
    "satisfaction_figures",
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
