"""The student FilterSet: the pipeline board uses it now; the admin, the API and segments
are meant to share it, so a filter means the same thing everywhere.

It always starts from `students_visible_to(viewer)`: a filter can narrow what a viewer
sees, never widen it. A value the viewer may not choose (another campus's owner, a
campus for a non-admin) is not among the choices, so the form drops it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django_filters
from django.db.models import Exists, OuterRef, QuerySet
from django.utils.translation import gettext_lazy as _

from crm.models import Campus, Channel, Stage, Student, StudentTag, Tag, User
from crm.roles import OWNER_ROLES, sees_all_campuses
from crm.selectors import campuses_visible_to, in_viewers_campuses, students_matching, students_visible_to


class Flag:
    AT_RISK = "at_risk"
    RENEWAL_DUE = "renewal_due"
    choices = [(AT_RISK, _("At risk")), (RENEWAL_DUE, _("Renewal due"))]


def owners_for(viewer: User) -> QuerySet[User]:
    """Staff who can own students (consultants and managers) among those the viewer sees."""
    owners = User.objects.filter(groups__name__in=OWNER_ROLES, is_active=True).distinct()
    return in_viewers_campuses(owners, viewer).order_by("display_name", "username")


# Filters a higher app contributes (lifecycle must not import personas): each is made per
# viewer, so its choices are the viewer's own (their segments). personas registers its segment
# and profile filters in its AppConfig.ready(), defined through `personas.conditions`, so the
# board's filter means what the segment builder's condition means.
FilterFactory = Callable[[User], django_filters.Filter]
_contributed: dict[str, FilterFactory] = {}


def contribute_student_filter(name: str, make: FilterFactory) -> None:
    """Add a filter `name` to every StudentFilter; `make(viewer)` builds it for one viewer."""
    _contributed[name] = make


def contributed_filter_names() -> tuple[str, ...]:
    return tuple(_contributed)


class StudentFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(label=_("Name or parent's phone"), method="filter_text")
    campus = django_filters.ModelChoiceFilter(label=_("Campus"), queryset=Campus.objects.all())
    owner = django_filters.ModelChoiceFilter(
        label=_("Owner"), queryset=User.objects.none(), null_label=_("No owner (pool)")
    )
    channel = django_filters.ChoiceFilter(label=_("Source channel"), choices=Channel.choices)
    tag = django_filters.ModelChoiceFilter(
        label=_("Tag"), queryset=Tag.objects.select_related("group"), method="filter_tag"
    )
    flag = django_filters.ChoiceFilter(label=_("Flag"), choices=Flag.choices, method="filter_flag")
    # One stage row per student: no DISTINCT (which would sort every matching row before the LIMIT).
    stage = django_filters.MultipleChoiceFilter(
        label=_("Stage"), field_name="pipeline__stage", choices=Stage.choices, distinct=False
    )

    class Meta:
        model = Student
        fields = ["q", "campus", "owner", "channel", "tag", "flag", "stage"]

    def __init__(
        self, data: Any = None, queryset: QuerySet[Student] | None = None, *, viewer: User, **kwargs: Any
    ) -> None:
        super().__init__(data, students_visible_to(viewer) if queryset is None else queryset, **kwargs)
        self.viewer = viewer
        if not sees_all_campuses(viewer):
            del self.filters["campus"]
        self.filters["owner"].queryset = owners_for(viewer)
        for name, make in _contributed.items():
            contributed = make(viewer)
            contributed.model, contributed.parent = Student, self
            self.filters[name] = contributed

    def filter_text(self, queryset: QuerySet[Student], name: str, value: str) -> QuerySet[Student]:
        """The search every student list shares (`crm.selectors.student_search_q`)."""
        return students_matching(queryset, value)

    def filter_tag(self, queryset: QuerySet[Student], name: str, value: Tag | None) -> QuerySet[Student]:
        if value is None:
            return queryset
        return queryset.filter(Exists(StudentTag.objects.filter(student_id=OuterRef("pk"), tag=value)))

    def filter_flag(self, queryset: QuerySet[Student], name: str, value: str) -> QuerySet[Student]:
        if value == Flag.AT_RISK:
            return queryset.filter(pipeline__at_risk=True)
        if value == Flag.RENEWAL_DUE:
            return queryset.filter(pipeline__renewal_due=True)
        return queryset

    def filter_queryset(self, queryset: QuerySet[Student]) -> QuerySet[Student]:
        queryset = super().filter_queryset(queryset)
        campus_id = self.campus_id()
        if campus_id is not None and self.form.cleaned_data.get("stage"):
            # The same campus said on the stage's own table too: a stage's list of one campus is
            # then a range of StudentStage's board index instead of a walk over every campus.
            # Only with a stage chosen: otherwise the second campus condition is one the planner
            # cannot see is the first, and it misjudges a small campus's newest page (the API's
            # list) as a hash join of the whole campus rather than a walk down the primary key.
            queryset = queryset.filter(pipeline__campus_id=campus_id)
        return queryset

    def campus_ids(self) -> list[int]:
        """The campuses this list may span: the viewer's (none if they have none), the one an
        administrator chose, or every campus."""
        campus_id = self.campus_id() if sees_all_campuses(self.viewer) else None
        if campus_id is not None:
            return [campus_id]
        return list(campuses_visible_to(self.viewer).order_by("pk").values_list("pk", flat=True))

    def campus_id(self) -> int | None:
        """The one campus this list is confined to (the viewer's, or the one chosen), if any."""
        if not sees_all_campuses(self.viewer):
            return self.viewer.campus_id
        campus = self.form.cleaned_data.get("campus") if self.is_valid() else None
        return campus.pk if campus else None
