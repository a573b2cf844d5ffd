"""The student FilterSet: the pipeline board uses it now; the admin, the API and segments
are meant to share it, so a filter means the same thing everywhere.

It always starts from `students_visible_to(viewer)`: a filter can narrow what a viewer
sees, never widen it. A value the viewer may not choose (another campus's owner, a
campus for a non-admin) is not among the choices, so the form drops it.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Exists, OuterRef, QuerySet
from django.utils.translation import gettext_lazy as _

from crm.models import Campus, Channel, Role, Stage, Student, StudentGuardian, StudentTag, Tag, User
from crm.phones import try_normalize_phone
from crm.roles import sees_all_campuses
from crm.selectors import students_visible_to


class Flag:
    AT_RISK = "at_risk"
    RENEWAL_DUE = "renewal_due"
    choices = [(AT_RISK, _("At risk")), (RENEWAL_DUE, _("Renewal due"))]


def owners_for(viewer: User) -> QuerySet[User]:
    """Staff who can own students (consultants and managers) among those the viewer sees."""
    owners = User.objects.filter(groups__name__in=[Role.FRONT_DESK, Role.MANAGER], is_active=True).distinct()
    if not sees_all_campuses(viewer):
        if viewer.campus_id is None:
            return owners.none()
        owners = owners.filter(campus_id=viewer.campus_id)
    return owners.order_by("display_name", "username")


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
    stage = django_filters.MultipleChoiceFilter(label=_("Stage"), field_name="pipeline__stage", choices=Stage.choices)

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

    def filter_text(self, queryset: QuerySet[Student], name: str, value: str) -> QuerySet[Student]:
        """A phone-looking query finds the family whatever its format; anything else a name."""
        value = value.strip()
        if not value:
            return queryset
        phone = try_normalize_phone(value)
        if phone:
            family = StudentGuardian.objects.filter(student_id=OuterRef("pk"), guardian__phone=phone)
            return queryset.filter(Exists(family))
        return queryset.filter(name__icontains=value)

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
        if campus_id is not None:
            # The same campus said on the stage's own table too: a stage's list of one campus is
            # then a range of StudentStage's board index instead of a walk over every campus.
            queryset = queryset.filter(pipeline__campus_id=campus_id)
        return queryset

    def campus_ids(self) -> list[int]:
        """The campuses this list may span: the viewer's (none if they have none), the one an
        administrator chose, or every campus."""
        if not sees_all_campuses(self.viewer):
            return [] if self.viewer.campus_id is None else [self.viewer.campus_id]
        campus_id = self.campus_id()
        if campus_id is not None:
            return [campus_id]
        return list(Campus.objects.order_by("pk").values_list("pk", flat=True))

    def campus_id(self) -> int | None:
        """The one campus this list is confined to (the viewer's, or the one chosen), if any."""
        if not sees_all_campuses(self.viewer):
            return self.viewer.campus_id
        campus = self.form.cleaned_data.get("campus") if self.is_valid() else None
        return campus.pk if campus else None
