"""Import/export wiring for the admin, mixed into crm.admin's ModelAdmins (first base).

The admin gets the library's import page (upload, preview, confirm) and export page,
but every import goes through the one import service via the resources' import_data
(crm/resources.py), for the campus chosen on the form (staff: their own campus only).
A file above IMPORT_ASYNC_ROW_THRESHOLD rows is committed by the import_commit task;
the admin then lands on the staff page that shows the job's progress.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportMixin
from import_export.formats import base_formats
from import_export.forms import ConfirmImportForm, ImportForm
from import_export.results import Result

from crm.models import Campus, User
from crm.resources import ConsultationResource, ContractResource, StudentResource
from crm.roles import IMPORTING_ROLES
from crm.selectors import campuses_visible_to
from crm.services.imports import (
    import_job_confirm,
    import_job_confirmable,
    import_job_create,
    import_job_preview,
)
from crm.services.imports.tables import ImportFileError, TableDataset, read_table

ADMIN_ERROR_MESSAGES = 20


class SheetFormat(base_formats.TablibFormat):
    """An uploaded file read by the one reader (read_table), as the page and the command do.

    The library's own readers differ from it: its xlsx reads the active sheet and its
    csv trips over a blank first row, so the admin would answer the same file otherwise.
    """

    extension: ClassVar[str]

    def is_binary(self) -> bool:
        return True

    def get_read_mode(self) -> str:
        return "rb"

    def create_dataset(self, in_stream: Any, **kwargs: Any) -> TableDataset:
        content = in_stream if isinstance(in_stream, bytes) else str(in_stream).encode("utf-8")
        name = f"import.{self.extension}"
        return TableDataset(read_table(content, name), content, name)


class SheetCSV(SheetFormat):
    """csv in UTF-8 (BOM or not) or GBK."""

    TABLIB_MODULE = "tablib.formats._csv"
    CONTENT_TYPE = "text/csv"
    extension = "csv"


class SheetXLSX(SheetFormat):
    TABLIB_MODULE = "tablib.formats._xlsx"
    CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    extension = "xlsx"


class ExcelCSV(base_formats.CSV):
    """Exported csv; the admin encodes it as UTF-8 with a BOM so Excel shows Chinese."""


class CampusImportForm(ImportForm):
    campus = forms.ModelChoiceField(queryset=Campus.objects.all(), label=_("Campus"))


class CampusConfirmImportForm(ConfirmImportForm):
    campus = forms.ModelChoiceField(queryset=Campus.objects.all(), widget=forms.HiddenInput)


def _limit_campus(form: forms.Form, user: User) -> None:
    form.fields["campus"].queryset = campuses_visible_to(user)  # type: ignore[attr-defined]


class CrmImportExportMixin(ImportExportMixin):
    import_kind: ClassVar[str]
    import_formats = [SheetCSV, SheetXLSX]
    export_formats = [ExcelCSV, base_formats.XLSX]
    import_form_class = CampusImportForm
    confirm_form_class = CampusConfirmImportForm
    to_encoding = "utf-8-sig"
    import_error_display = ("message",)

    def has_import_permission(self, request: HttpRequest) -> bool:
        user: User = request.user  # type: ignore[assignment]
        return user.role in IMPORTING_ROLES and self.has_add_permission(request)  # type: ignore[attr-defined]

    def has_export_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)  # type: ignore[attr-defined]

    def create_import_form(self, request: HttpRequest) -> Any:
        form = super().create_import_form(request)
        _limit_campus(form, request.user)  # type: ignore[arg-type]
        return form

    def create_confirm_form(self, request: HttpRequest, import_form: Any = None) -> Any:
        form = super().create_confirm_form(request, import_form)
        _limit_campus(form, request.user)  # type: ignore[arg-type]
        return form

    def get_import_form_initial(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_import_form_initial(request)
        initial["campus"] = request.user.campus_id  # type: ignore[union-attr]
        return initial

    def get_confirm_form_initial(self, request: HttpRequest, import_form: Any) -> dict[str, Any]:
        initial = super().get_confirm_form_initial(request, import_form)
        if import_form is not None:
            initial["campus"] = import_form.cleaned_data["campus"].pk
        return initial

    def get_import_data_kwargs(self, **kwargs: Any) -> dict[str, Any]:
        form = kwargs.get("form")
        data = super().get_import_data_kwargs(**kwargs)
        if form is not None and "campus" in form.cleaned_data:
            data["campus"] = form.cleaned_data["campus"]
        return data

    def add_data_read_fail_error_to_form(self, form: Any, e: Exception) -> None:
        if isinstance(e, ImportFileError):
            form.add_error("import_file", e.message)  # the reader's own words, as the page says them
            return
        super().add_data_read_fail_error_to_form(form, e)

    def process_dataset(self, dataset: Any, form: Any, request: HttpRequest, **kwargs: Any) -> Result:
        if len(dataset) <= settings.IMPORT_ASYNC_ROW_THRESHOLD:
            return super().process_dataset(dataset, form, request, **kwargs)
        # A large file: the same service, committed by the import_commit task.
        actor: User = request.user  # type: ignore[assignment]
        job = import_job_create(
            actor=actor,
            kind=self.import_kind,
            campus=form.cleaned_data["campus"],
            content=dataset.content,
            file_name=form.cleaned_data.get("original_file_name") or dataset.file_name,
        )
        import_job_preview(job=job)
        if import_job_confirmable(job):
            import_job_confirm(actor=actor, job=job)
        request._crm_import_job = job  # type: ignore[attr-defined]
        return Result()

    def process_result(self, result: Result, request: HttpRequest) -> HttpResponse:
        job = getattr(request, "_crm_import_job", None)
        if job is not None:
            messages.info(request, gettext("The import runs in the background; its progress is shown here."))
            return redirect("import_detail", job.pk)
        if result.has_validation_errors() or result.has_errors():
            # The data changed between preview and confirm: nothing was written.
            for row in result.invalid_rows[:ADMIN_ERROR_MESSAGES]:
                for column, errors in row.error_dict.items():
                    messages.error(request, f"第 {row.number} 行, {column}: {'; '.join(errors)}")
            messages.error(request, gettext("Nothing was imported."))
            info = self.get_model_info()
            return HttpResponseRedirect(reverse(f"admin:{info[0]}_{info[1]}_changelist"))
        return super().process_result(result, request)


class StudentImportExportMixin(CrmImportExportMixin):
    import_kind = "students"
    resource_classes = [StudentResource]


class ConsultationImportExportMixin(CrmImportExportMixin):
    import_kind = "consultations"
    resource_classes = [ConsultationResource]


class ContractImportExportMixin(CrmImportExportMixin):
    import_kind = "contracts"
    resource_classes = [ContractResource]
