"""Staff pages for spreadsheet import and export: upload, preview, confirm, progress.

Thin views: they check who is asking, scope jobs and exports to the viewer's campus
and call crm.services.imports; the rules live there.
"""

from __future__ import annotations

import csv
import io

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST
from import_export.formats import base_formats

from crm.forms_import import ImportUploadForm
from crm.models import Consultation, Contract, ImportJob, Student, User
from crm.resources import RESOURCES
from crm.roles import IMPORTING_ROLES, sees_all_campuses
from crm.selectors import in_viewers_campuses, students_visible_to
from crm.services.imports import (
    import_job_confirm,
    import_job_confirmable,
    import_job_create,
    import_job_preview,
    import_job_progress,
    runs_in_background,
)
from crm.services.imports.columns import COLUMNS_BY_KIND

RECENT_JOBS = 20
FINISHED = (ImportJob.Status.DONE, ImportJob.Status.FAILED)


def _importer(request: HttpRequest) -> User:
    """Front desk, managers and administrators import and export; teachers may not."""
    user: User = request.user  # type: ignore[assignment]
    if user.role not in IMPORTING_ROLES:
        raise PermissionDenied(_("Your role may not import or export."))
    return user


def _jobs(user: User) -> QuerySet[ImportJob]:
    return in_viewers_campuses(ImportJob.objects.select_related("campus", "created_by"), user)


@login_required
def import_list(request: HttpRequest) -> HttpResponse:
    user = _importer(request)
    form = ImportUploadForm(request.POST or None, request.FILES or None, user=user)
    if request.method == "POST" and form.is_valid():
        campus = form.cleaned_data.get("campus") or user.campus
        if campus is None:
            form.add_error(None, _("Your account has no campus; ask an administrator."))
        else:
            upload = form.cleaned_data["file"]
            job = import_job_create(
                actor=user, kind=form.cleaned_data["kind"], campus=campus, content=upload.read(), file_name=upload.name
            )
            import_job_preview(job=job)
            return redirect("import_detail", job.pk)
    context = {
        "nav": "imports",
        "form": form,
        "jobs": _jobs(user)[:RECENT_JOBS],
        "kinds": ImportJob.Kind.choices,
    }
    return render(request, "crm/imports/list.html", context)


# What the report's counts of written records are called on the page.
WRITTEN_LABELS = {
    "students": gettext_lazy("students"),
    "guardians": gettext_lazy("parents"),
    "student_tags": gettext_lazy("tags given"),
    "student_tags_removed": gettext_lazy("tags replaced"),
    "tags": gettext_lazy("new tags"),
    "consultations": gettext_lazy("consultations"),
    "contracts": gettext_lazy("contracts"),
}


def _written(counts: dict[str, int]) -> list[tuple[str, int]]:
    return [(str(WRITTEN_LABELS.get(key, key)), n) for key, n in counts.items() if n]


def _detail_context(job: ImportJob, user: User) -> dict[str, object]:
    report = job.report or {}
    return {
        "created": _written(report.get("created", {})),
        "updated": _written(report.get("updated", {})),
        "nav": "imports",
        "job": job,
        "report": report,
        "progress": import_job_progress(job),
        "finished": job.status in FINISHED,
        "running": job.status in (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING),
        "confirmable": import_job_confirmable(job) and (job.created_by_id == user.pk or sees_all_campuses(user)),
        "background": runs_in_background(job),
    }


@login_required
@require_GET
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = _importer(request)
    job = get_object_or_404(_jobs(user), pk=pk)
    return render(request, "crm/imports/detail.html", _detail_context(job, user))


@login_required
@require_POST
def import_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    user = _importer(request)
    job = get_object_or_404(_jobs(user), pk=pk)
    try:
        job = import_job_confirm(actor=user, job=job)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("import_detail", job.pk)
    if job.status == ImportJob.Status.DONE:
        messages.success(request, _("Imported: nothing else to do."))
    elif job.status == ImportJob.Status.FAILED:
        messages.error(request, _("The import failed; nothing was written."))
    return redirect("import_detail", job.pk)


@login_required
@require_GET
def import_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress fragment htmx polls every second until the job is finished."""
    user = _importer(request)
    job = get_object_or_404(_jobs(user), pk=pk)
    return render(request, "crm/imports/_progress.html", _detail_context(job, user))


def _export_queryset(kind: str, user: User) -> QuerySet[Student] | QuerySet[Consultation] | QuerySet[Contract]:
    """The viewer's campus only (administrators: every campus)."""
    if kind == "students":
        return students_visible_to(user).order_by("pk")
    if kind == "consultations":
        return in_viewers_campuses(Consultation.objects.order_by("pk"), user, campus_lookup="student__campus_id")
    return in_viewers_campuses(Contract.objects.order_by("pk"), user, campus_lookup="student__campus_id")


@login_required
@require_GET
def export_download(request: HttpRequest, kind: str, fmt: str) -> HttpResponse:
    """The viewer's campus's students, consultations or contracts, formulae escaped."""
    user = _importer(request)
    if kind not in RESOURCES or fmt not in ("xlsx", "csv"):
        raise Http404
    dataset = RESOURCES[kind]().export(queryset=_export_queryset(kind, user))
    name = f"{kind}-{timezone.localdate():%Y%m%d}.{fmt}"
    if fmt == "xlsx":
        file_format: base_formats.TablibFormat = base_formats.XLSX()
        content: bytes = file_format.export_data(dataset)
    else:
        file_format = base_formats.CSV()
        content = file_format.export_data(dataset).encode("utf-8-sig")  # the BOM makes Excel read UTF-8
    response = HttpResponse(content, content_type=file_format.get_content_type())
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@login_required
@require_GET
def import_template(request: HttpRequest, kind: str) -> HttpResponse:
    """An empty csv with the kind's headers, to fill in."""
    _importer(request)
    if kind not in COLUMNS_BY_KIND:
        raise Http404
    out = io.StringIO()
    csv.writer(out).writerow([c.header for c in COLUMNS_BY_KIND[kind]])
    response = HttpResponse(out.getvalue().encode("utf-8-sig"), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{kind}-template.csv"'
    return response


urlpatterns = [
    path("", import_list, name="import_list"),
    path("<int:pk>/", import_detail, name="import_detail"),
    path("<int:pk>/confirm/", import_confirm, name="import_confirm"),
    path("<int:pk>/progress/", import_progress, name="import_progress"),
    path("export/<str:kind>.<str:fmt>", export_download, name="import_export_download"),
    path("template/<str:kind>.csv", import_template, name="import_template"),
]
