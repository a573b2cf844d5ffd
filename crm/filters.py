"""The FilterSets of crm's record lists (consultations, trials, contracts, attendance): the
API uses them now, and a page or the admin listing the same records is meant to share them.

Each is made for one viewer: the students, staff and lessons a client may name are only those
the viewer may see, so naming another campus's student is "not a valid choice" (a 400), never
a way to learn whether it exists. The rows themselves come from the caller, already scoped
(crm.selectors.*_visible_to): a filter narrows what a viewer sees, never widens it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_filters
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from crm.models import (
    Attendance,
    AttendanceStatus,
    Consultation,
    Contract,
    ContractStatus,
    Lesson,
    Role,
    Student,
    TrialLesson,
    TrialStatus,
    User,
)
from crm.selectors import day_bounds, in_viewers_campuses, lessons_visible_to, students_visible_to

# Dates a list may be narrowed to. Outside them the local day's bounds would overflow a
# datetime (9999-12-31 has no next day), and no school keeps records from before 1900.
EARLIEST_DAY = dt.date(1900, 1, 1)
LATEST_DAY = dt.date(2999, 12, 31)


def day_filter(label: Any, method: str) -> django_filters.DateFilter:
    return django_filters.DateFilter(
        label=label,
        method=method,
        validators=[MinValueValidator(EARLIEST_DAY), MaxValueValidator(LATEST_DAY)],
    )


def staff_in_campuses(viewer: User, *roles: str) -> QuerySet[User]:
    return in_viewers_campuses(User.objects.filter(groups__name__in=roles), viewer).distinct()


class ViewerFilterSet(django_filters.FilterSet):
    """A FilterSet made for a viewer, whose choices are the viewer's own. Subclasses name their
    scoped choices in `scoped_choices` (filter name -> the viewer's queryset), and the date
    field the `date_from`/`date_to` pair narrows in `date_field` (whole local days)."""

    date_field = ""

    def __init__(self, data: Any = None, queryset: QuerySet[Any] | None = None, *, viewer: User, **kwargs: Any):
        super().__init__(data, queryset, **kwargs)
        self.viewer = viewer
        for name, choices in self.scoped_choices(viewer).items():
            self.filters[name].queryset = choices  # type: ignore[attr-defined]

    def scoped_choices(self, viewer: User) -> dict[str, QuerySet[Any]]:
        return {"student": students_visible_to(viewer)}

    def filter_from(self, queryset: QuerySet[Any], name: str, value: dt.date | None) -> QuerySet[Any]:
        return queryset.filter(**{f"{self.date_field}__gte": day_bounds(value)[0]}) if value else queryset

    def filter_to(self, queryset: QuerySet[Any], name: str, value: dt.date | None) -> QuerySet[Any]:
        return queryset.filter(**{f"{self.date_field}__lt": day_bounds(value)[1]}) if value else queryset


class ConsultationFilter(ViewerFilterSet):
    date_field = "consulted_at"
    student = django_filters.ModelChoiceFilter(label=_("Student"), queryset=Student.objects.none())
    consultant = django_filters.ModelChoiceFilter(label=_("Consultant"), queryset=User.objects.none())
    date_from = day_filter(_("Consulted on or after"), "filter_from")
    date_to = day_filter(_("Consulted on or before"), "filter_to")

    class Meta:
        model = Consultation
        fields = ["student", "consultant", "date_from", "date_to"]

    def scoped_choices(self, viewer: User) -> dict[str, QuerySet[Any]]:
        return {**super().scoped_choices(viewer), "consultant": in_viewers_campuses(User.objects.all(), viewer)}


class TrialFilter(ViewerFilterSet):
    date_field = "scheduled_at"
    student = django_filters.ModelChoiceFilter(label=_("Student"), queryset=Student.objects.none())
    teacher = django_filters.ModelChoiceFilter(label=_("Teacher"), queryset=User.objects.none())
    status = django_filters.ChoiceFilter(label=_("Status"), choices=TrialStatus.choices)
    day = day_filter(_("Day"), "filter_day")

    class Meta:
        model = TrialLesson
        fields = ["student", "teacher", "status", "day"]

    def scoped_choices(self, viewer: User) -> dict[str, QuerySet[Any]]:
        return {**super().scoped_choices(viewer), "teacher": staff_in_campuses(viewer, Role.TEACHER)}

    def filter_day(self, queryset: QuerySet[TrialLesson], name: str, value: dt.date | None) -> QuerySet[TrialLesson]:
        return self.filter_to(self.filter_from(queryset, name, value), name, value)


class ContractFilter(ViewerFilterSet):
    student = django_filters.ModelChoiceFilter(label=_("Student"), queryset=Student.objects.none())
    status = django_filters.ChoiceFilter(label=_("Status"), choices=ContractStatus.choices)

    class Meta:
        model = Contract
        fields = ["student", "status"]


class AttendanceFilter(ViewerFilterSet):
    date_field = "lesson_at"
    student = django_filters.ModelChoiceFilter(label=_("Student"), queryset=Student.objects.none())
    lesson = django_filters.ModelChoiceFilter(label=_("Lesson"), queryset=Lesson.objects.none())
    status = django_filters.ChoiceFilter(label=_("Status"), choices=AttendanceStatus.choices)
    date_from = day_filter(_("Lesson on or after"), "filter_from")
    date_to = day_filter(_("Lesson on or before"), "filter_to")

    class Meta:
        model = Attendance
        fields = ["student", "lesson", "status", "date_from", "date_to"]

    def scoped_choices(self, viewer: User) -> dict[str, QuerySet[Any]]:
        return {**super().scoped_choices(viewer), "lesson": lessons_visible_to(viewer)}
