"""What each admin user may see: their campus's rows, or everything for an administrator.

One function, `scope_to_viewer`, narrows any crm queryset to the viewer by the campus rule
of `crm.selectors.in_viewers_campuses` (the pages', board's and pool's rule too); this module
only knows the path from each model to its campus. The admin uses it
for change lists, change pages (another campus's row is a 404), autocomplete endpoints,
list-filter choices and foreign-key choices, so every way into a row applies the same rule.
"""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Exists, Model, OuterRef, QuerySet
from django.http import HttpRequest

from crm.models import (
    Attendance,
    AuditEntry,
    Campus,
    Consultation,
    Contract,
    Course,
    Guardian,
    ImportJob,
    Lesson,
    Student,
    StudentGuardian,
    StudentStage,
    StudentTag,
    Tag,
    TagGroup,
    TrialLesson,
    User,
)
from crm.roles import sees_all_campuses
from crm.selectors import in_viewers_campuses

M = TypeVar("M", bound=Model)

# The lookup from each model to the campus it belongs to.
CAMPUS_LOOKUPS: dict[type[Model], str] = {
    Campus: "pk",
    User: "campus_id",
    Student: "campus_id",
    StudentStage: "campus_id",
    StudentTag: "student__campus_id",
    Course: "campus_id",
    Consultation: "student__campus_id",
    TrialLesson: "student__campus_id",
    Contract: "student__campus_id",
    Lesson: "course__campus_id",
    Attendance: "student__campus_id",
    AuditEntry: "student__campus_id",
    ImportJob: "campus_id",
}

# Shared vocabulary, the same for every campus.
UNSCOPED_MODELS: frozenset[type[Model]] = frozenset({Tag, TagGroup})


def scope_to_viewer(queryset: QuerySet[M], viewer: User) -> QuerySet[M]:
    """`queryset` narrowed to the rows `viewer` may see.

    Administrators see everything. Other staff see their own campus; a guardian belongs
    to a campus through any of their children. A model this module does not know is
    closed (no rows), so a new model cannot leak by being forgotten here.
    """
    model = queryset.model
    if model in UNSCOPED_MODELS:
        return queryset
    if model is Guardian:
        if sees_all_campuses(viewer):
            return queryset
        links = StudentGuardian.objects.filter(guardian_id=OuterRef("pk"))
        return queryset.filter(Exists(in_viewers_campuses(links, viewer, campus_lookup="student__campus_id")))
    lookup = CAMPUS_LOOKUPS.get(model)
    if lookup is None:
        return queryset if sees_all_campuses(viewer) else queryset.none()
    return in_viewers_campuses(queryset, viewer, campus_lookup=lookup)


def viewer_sees(request: HttpRequest, obj: Model, viewer: User) -> bool:
    """Whether `viewer` may see `obj`; memoised per request, as the admin asks several times per page."""
    if sees_all_campuses(viewer) or type(obj) in UNSCOPED_MODELS or obj.pk is None:
        return True
    memo: dict[tuple[str, object], bool] = request.__dict__.setdefault("_crm_viewer_sees", {})
    key = (obj._meta.label, obj.pk)
    if key not in memo:
        manager = type(obj)._default_manager
        memo[key] = scope_to_viewer(manager.filter(pk=obj.pk), viewer).exists()
    return memo[key]
