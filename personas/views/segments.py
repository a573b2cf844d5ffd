"""The segment pages at /segments/: the list with live counts, the builder (conditions, a live
count and a preview of the first members), the export to xlsx.

Managers build their campus's segments, administrators any campus's (or shared ones); the
front desk uses segments on the board only, and teachers never see them. Thin views: the
conditions mean what `personas.conditions` says, reads go through `personas.selectors`,
writes through `personas.services.segments`.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from openpyxl import Workbook

from config.api_errors import error_body
from crm.forms import apply_service_errors
from crm.models import Role, Student, User
from crm.phones import phone_display
from crm.resources import neutralise_formula
from crm.views.access import role_required
from personas.conditions import ConditionError, describe, ref_names
from personas.forms import SegmentForm
from personas.models import Segment
from personas.selectors import (
    member_rows,
    segment_counts,
    segment_get,
    segment_members,
    segments_visible_to,
    students_matching_tree,
)
from personas.services.segments import may_change_segment, segment_create, segment_delete, segment_update

BUILDERS = (Role.MANAGER, Role.ADMIN)
PREVIEW_ROWS = 20
EXPORT_CHUNK = 2000


def _viewer(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _preview(members: QuerySet[Student]) -> dict[str, Any]:
    """The count and the first members (two queries, whatever the segment's size)."""
    return {"count": members.count(), "rows": list(member_rows(members)[:PREVIEW_ROWS]), "limit": PREVIEW_ROWS}


def _tree_preview(viewer: User, conditions: Any, segment: Segment | None) -> dict[str, Any]:
    campus_id = segment.campus_id if segment is not None else None
    try:
        members = students_matching_tree(viewer=viewer, conditions=conditions, campus_id=campus_id)
    except ConditionError as exc:
        return {"problem": exc.message, "path": exc.path}
    return _preview(members)


@require_GET
@role_required(*BUILDERS)
def segment_list(request: HttpRequest) -> HttpResponse:
    viewer = _viewer(request)
    segments = list(segments_visible_to(viewer).order_by("name", "pk"))
    counts = segment_counts(viewer=viewer, segments=segments)
    names = ref_names([segment.conditions for segment in segments])
    rows = [
        {
            "segment": segment,
            "words": describe(segment.conditions, names=names),
            "count": counts.get(segment.pk),
            "counted": isinstance(counts.get(segment.pk), int),
            "may_change": may_change_segment(viewer, segment),
        }
        for segment in segments
    ]
    return render(request, "personas/segments/list.html", {"rows": rows, "nav": "segments"})


def _builder(
    request: HttpRequest, form: SegmentForm, segment: Segment | None, conditions: Any, status: int = 200
) -> HttpResponse:
    viewer = _viewer(request)
    context = {
        "form": form,
        "segment": segment,
        "preview": _tree_preview(viewer, conditions, segment),
        "nav": "segments",
        "may_change": segment is None or may_change_segment(viewer, segment),
    }
    if segment is not None:
        context["words"] = describe(segment.conditions, names=ref_names([segment.conditions]))
    return render(request, "personas/segments/builder.html", context, status=status)


def _posted_conditions(form: SegmentForm, fallback: Any) -> Any:
    raw = form.data.get("conditions", "")
    try:
        return json.loads(raw) if raw else fallback
    except (ValueError, RecursionError):
        return fallback


@require_http_methods(["GET", "POST"])
@role_required(*BUILDERS)
def segment_new(request: HttpRequest) -> HttpResponse:
    viewer = _viewer(request)
    count_url = reverse("segment_count")
    if request.method == "GET":
        form = SegmentForm(viewer=viewer, count_url=count_url)
        return _builder(request, form, None, {"all": []})
    form = SegmentForm(request.POST, viewer=viewer, count_url=count_url)
    if form.is_valid():
        data = form.cleaned_data
        try:
            segment = segment_create(
                actor=viewer,
                name=data["name"],
                description=data["description"],
                conditions=data["conditions"],
                campus=data.get("campus"),
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, _("Segment “%(name)s” saved.") % {"name": segment.name})
            return redirect("segment_detail", pk=segment.pk)
    return _builder(request, form, None, _posted_conditions(form, {"all": []}), status=422)


@require_http_methods(["GET", "POST"])
@role_required(*BUILDERS)
def segment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    viewer = _viewer(request)
    segment = segment_get(viewer=viewer, segment_id=pk)
    count_url = f"{reverse('segment_count')}?segment={segment.pk}"
    initial = {"name": segment.name, "description": segment.description, "conditions": segment.conditions}
    if request.method == "GET":
        form = SegmentForm(initial=initial, viewer=viewer, count_url=count_url, campus_editable=False)
        return _builder(request, form, segment, segment.conditions)
    if not may_change_segment(viewer, segment):
        raise PermissionDenied
    form = SegmentForm(request.POST, viewer=viewer, count_url=count_url, campus_editable=False)
    if form.is_valid():
        data = form.cleaned_data
        try:
            segment = segment_update(
                actor=viewer,
                segment=segment,
                name=data["name"],
                description=data["description"],
                conditions=data["conditions"],
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, _("Segment “%(name)s” saved.") % {"name": segment.name})
            return redirect("segment_detail", pk=segment.pk)
    return _builder(request, form, segment, _posted_conditions(form, segment.conditions), status=422)


@require_POST
@role_required(*BUILDERS)
def segment_remove(request: HttpRequest, pk: int) -> HttpResponse:
    viewer = _viewer(request)
    segment = segment_get(viewer=viewer, segment_id=pk)
    segment_delete(actor=viewer, segment=segment)
    messages.success(request, _("Segment “%(name)s” deleted.") % {"name": segment.name})
    return redirect("segment_list")


@require_POST
@role_required(*BUILDERS)
def segment_count(request: HttpRequest) -> JsonResponse:
    """The builder's live count and preview for the conditions being built (not yet saved):
    `{"count", "count_label", "html"}`, or a 400 in the API's error shape naming the node."""
    viewer = _viewer(request)
    segment = None
    if request.GET.get("segment", "").isdigit():
        segment = segment_get(viewer=viewer, segment_id=int(request.GET["segment"]))
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser's stack
        body = None
    if not isinstance(body, dict) or "conditions" not in body:
        message = _("The conditions could not be read.")
        return JsonResponse(
            error_body("invalid", message, {"conditions": [{"message": message, "path": ""}]}), status=400
        )
    preview = _tree_preview(viewer, body["conditions"], segment)
    html = render_to_string("personas/segments/_preview.html", {"preview": preview}, request)
    if "problem" in preview:
        problem = {"message": preview["problem"], "path": preview["path"]}
        return JsonResponse(
            {**error_body("invalid", preview["problem"], {"conditions": [problem]}), "html": html}, status=400
        )
    return JsonResponse({"count": preview["count"], "count_label": f"{preview['count']:,}", "html": html})


EXPORT_HEADERS = (
    gettext_lazy("Name"),
    gettext_lazy("Campus"),
    gettext_lazy("Grade"),
    gettext_lazy("Source channel"),
    gettext_lazy("Stage"),
    gettext_lazy("RFM segment"),
    gettext_lazy("Value tier"),
    gettext_lazy("Owner"),
    gettext_lazy("Parent's phone"),
)


def _export_row(student: Student) -> list[Any]:
    profile = getattr(student, "profile", None)
    guardians = list(student.guardians.all())
    cells = [
        student.name,
        str(student.campus),
        student.grade,
        student.get_channel_display(),
        student.get_stage_display(),
        profile.get_rfm_segment_display() if profile else "",
        profile.get_value_tier_display() if profile else "",
        str(student.owner) if student.owner else "",
        phone_display(guardians[0].phone) if guardians else "",
    ]
    return [neutralise_formula(cell) for cell in cells]


@require_GET
@role_required(*BUILDERS)  # type: ignore[arg-type]  # a streamed file, not an HttpResponse
def segment_export(request: HttpRequest, pk: int) -> HttpResponse | FileResponse:
    """The segment's members as the viewer sees them, in an xlsx written row by row: rows are
    read in chunks and openpyxl's write-only sheet keeps them on disk, so a segment of 100,000
    students is never held in memory at once. Spreadsheet formulae are escaped."""
    viewer = _viewer(request)
    segment = segment_get(viewer=viewer, segment_id=pk)
    try:
        members = segment_members(viewer=viewer, segment=segment)
    except ConditionError as exc:
        messages.error(request, exc.message)
        return redirect("segment_detail", pk=segment.pk)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=_("Members"))
    sheet.append([str(header) for header in EXPORT_HEADERS])
    rows = member_rows(members).prefetch_related("guardians")
    for student in rows.iterator(chunk_size=EXPORT_CHUNK):
        sheet.append(_export_row(student))
    # Closed (and so deleted) by FileResponse once it has been sent.
    out = tempfile.TemporaryFile()  # noqa: SIM115
    workbook.save(out)
    out.seek(0)
    name = f"segment-{segment.pk}-{timezone.localdate():%Y%m%d}.xlsx"
    return FileResponse(out, as_attachment=True, filename=name, content_type=XLSX)


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

urlpatterns = [
    path("", segment_list, name="segment_list"),
    path("new/", segment_new, name="segment_new"),
    path("count/", segment_count, name="segment_count"),
    path("<int:pk>/", segment_detail, name="segment_detail"),
    path("<int:pk>/delete/", segment_remove, name="segment_delete"),
    path("<int:pk>/export.xlsx", segment_export, name="segment_export"),
]
