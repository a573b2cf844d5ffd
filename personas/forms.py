"""Page forms of the personas app: parse input, then a view calls a service."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from crm.models import User
from personas.conditions import ConditionError, compile_tree


class ConditionTreeField(forms.JSONField):
    """A condition tree (personas.conditions), checked for the viewer who builds it.

    The segment builder and the tag rules' page both edit their conditions through this field; the
    widget decides how the tree is built on the page, the field only what is accepted."""

    default_error_messages = {"invalid": _("The conditions could not be read.")}

    def __init__(self, *, viewer: User | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"all": []})
        super().__init__(**kwargs)
        self.viewer = viewer

    def validate(self, value: Any) -> None:
        super().validate(value)
        if self.viewer is None:
            raise forms.ValidationError(_("The conditions could not be read."))
        try:
            compile_tree(value, viewer=self.viewer)
        except ConditionError as exc:
            raise forms.ValidationError(exc.message) from exc

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False)
