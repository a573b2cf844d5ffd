"""The staff import page's upload form."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from crm.forms import CHOOSE
from crm.models import Campus, ImportJob, User
from crm.roles import sees_all_campuses

MAX_IMPORT_BYTES = 30 * 1024 * 1024  # a 50,000-row xlsx is about 4 MB; csv about 7 MB
IMPORT_EXTENSIONS = (".csv", ".xlsx")


class ImportUploadForm(forms.Form):
    kind = forms.ChoiceField(label=_("The file holds"), choices=ImportJob.Kind.choices)
    campus = forms.ModelChoiceField(label=_("Campus"), queryset=Campus.objects.all(), required=True, empty_label=CHOOSE)
    file = forms.FileField(
        label=_("Spreadsheet (.xlsx or .csv, UTF-8 or GBK)"),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.xlsx"}),
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if not sees_all_campuses(user):
            # Staff import into their own campus; only administrators choose.
            del self.fields["campus"]

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith(IMPORT_EXTENSIONS):
            raise forms.ValidationError(_("Upload an .xlsx or .csv file."))
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(_("The file is larger than 30 MB; split it into smaller files."))
        return upload
