"""Segments: which a viewer sees, and their members as that viewer sees them."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet
from django.http import Http404

from crm.models import (
    Role,
    Student,
    User,
)
from crm.roles import sees_all_campuses
from crm.selectors import students_visible_to
from personas.conditions import ConditionError, compile_tree
from personas.models import (
    Segment,
)

# Roles that use segments: managers build them, front-desk staff filter the board by them.
SEGMENT_ROLES = (Role.FRONT_DESK, Role.MANAGER, Role.ADMIN)


def segments_visible_to(viewer: User) -> QuerySet[Segment]:
    """Every segment for an administrator; a campus's own segments and the shared ones (no campus)
    for its managers and front desk; none for anyone else."""
    segments = Segment.objects.select_related("campus", "created_by")
    if sees_all_campuses(viewer):
        return segments
    if viewer.campus_id is None or viewer.role not in SEGMENT_ROLES:
        return segments.none()
    return segments.filter(Q(campus_id=viewer.campus_id) | Q(campus__isnull=True))


def segment_get(*, viewer: User, segment_id: int) -> Segment:
    """One segment the viewer may see, or 404: another campus's segment does not exist for them."""
    segment = segments_visible_to(viewer).filter(pk=segment_id).first()
    if segment is None:
        raise Http404
    return segment


def tree_q(*, viewer: User, conditions: object, campus_id: int | None = None) -> Q:
    """What a segment's tree selects, compiled for this viewer (a course or owner of a campus they
    cannot see is refused with ConditionError, never matched) and kept to the segment's campus.
    To be applied to the viewer's students: the pages, the board filter, the counts and the API
    all narrow `students_visible_to(viewer)` by it."""
    q = compile_tree(conditions, viewer=viewer)
    return q & Q(campus_id=campus_id) if campus_id is not None else q


def students_matching_tree(*, viewer: User, conditions: object, campus_id: int | None = None) -> QuerySet[Student]:
    """The students the viewer sees who meet `conditions` (a tree being built, not yet saved)."""
    return students_visible_to(viewer).filter(tree_q(viewer=viewer, conditions=conditions, campus_id=campus_id))


def segment_members(*, viewer: User, segment: Segment) -> QuerySet[Student]:
    """A segment's members as this viewer sees them: their own campus's students only, even in a
    segment an administrator built for every campus; a campus segment never reaches beyond it."""
    return students_matching_tree(viewer=viewer, conditions=segment.conditions, campus_id=segment.campus_id)


def member_rows(members: QuerySet[Student]) -> QuerySet[Student]:
    """Members with what a preview, an export and the API show, fetched in the same query."""
    return members.select_related("pipeline", "profile", "owner", "campus").order_by("name", "pk")


def segment_counts(*, viewer: User, segments: list[Segment]) -> dict[int, int | str]:
    """How many members each segment has for this viewer, in one query over their students
    (one filtered count per segment); a segment this viewer cannot use gets its message."""
    problems: dict[int, int | str] = {}
    counts: dict[str, Count] = {}
    for segment in segments:
        try:
            q = tree_q(viewer=viewer, conditions=segment.conditions, campus_id=segment.campus_id)
        except ConditionError as exc:
            problems[segment.pk] = exc.message
            continue
        counts[f"segment_{segment.pk}"] = Count("pk", filter=q)
    found = students_visible_to(viewer).aggregate(**counts) if counts else {}
    return {**problems, **{int(key.removeprefix("segment_")): value for key, value in found.items()}}
