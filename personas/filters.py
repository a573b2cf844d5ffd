"""The filters personas adds to the student FilterSet (lifecycle.filters.StudentFilter), for
the board and every list that shares it: a saved segment, and the profile's RFM segment and
value tier. Each is defined through `personas.conditions`, so "value tier is high" on the board
selects exactly the students the same condition selects in a segment."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from crm.models import Student, User
from lifecycle.filters import contribute_student_filter
from personas.conditions import FIELDS, ConditionError, leaf_q
from personas.models import Segment
from personas.selectors import segments_visible_to, tree_q


def segment_filter(viewer: User) -> django_filters.Filter:
    def members(queryset: QuerySet[Student], name: str, segment: Segment | None) -> QuerySet[Student]:
        if segment is None:
            return queryset
        try:
            q = tree_q(viewer=viewer, conditions=segment.conditions, campus_id=segment.campus_id)
        except ConditionError:
            # A shared segment naming a course this viewer cannot see matches none of their students.
            return queryset.none()
        return queryset.filter(q)

    return django_filters.ModelChoiceFilter(
        label=_("Segment"), queryset=segments_visible_to(viewer).order_by("name", "pk"), method=members
    )


def profile_filter(field_name: str) -> Any:
    spec = FIELDS[field_name]

    def make(viewer: User) -> django_filters.Filter:
        def matching(queryset: QuerySet[Student], name: str, value: str) -> QuerySet[Student]:
            return queryset.filter(leaf_q(field_name, "in", [value], viewer=viewer)) if value else queryset

        return django_filters.ChoiceFilter(label=spec.label, choices=spec.choices, method=matching)

    return make


def register() -> None:
    contribute_student_filter("segment", segment_filter)
    contribute_student_filter("rfm_segment", profile_filter("rfm_segment"))
    contribute_student_filter("value_tier", profile_filter("value_tier"))
