"""Page forms of the personas app: parse input, then a view calls a service."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.forms.fields import InvalidJSONInput
from django.utils.translation import gettext_lazy as _

from crm import text
from crm.models import Campus, Tag, User
from crm.roles import sees_all_campuses
from crm.selectors import campuses_visible_to
from personas.conditions import ConditionError, compile_tree
from personas.models import TagRule
from personas.widgets import ConditionTreeWidget


class ConditionTreeField(forms.JSONField):
    """A condition tree (personas.conditions), checked for the viewer who builds it.

    The segment builder and the tag rules' page both edit their conditions through this field; the
    widget decides how the tree is built on the page, the field only what is accepted."""

    default_error_messages = {"invalid": _("The conditions could not be read.")}

    def __init__(self, *, viewer: User | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"all": []})
        super().__init__(**kwargs)
        self.viewer = viewer
        # The builder widget offers only what this viewer may filter on (personas.widgets).
        if hasattr(self.widget, "viewer"):
            self.widget.viewer = viewer

    def to_python(self, value: Any) -> Any:
        try:
            return super().to_python(value)
        except RecursionError:
            # JSON nested thousands deep exhausts the parser's stack: unreadable, not a 500.
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None

    def bound_data(self, data: Any, initial: Any) -> Any:
        """What was posted, shown again as it was typed: never parsed and dumped again, so a
        hostile tree (thousands deep) cannot exhaust the stack while the page is re-rendered."""
        if self.disabled or data is None or not isinstance(data, str):
            return super().bound_data(data, initial)
        return InvalidJSONInput(data)

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


class TagChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.group.name} · {obj.name}"


class TagRuleForm(forms.Form):
    """A tag rule as a manager writes it; `tag_rule_create`/`tag_rule_update` decide what is kept.

    An administrator (who sees every campus) chooses the campus of a new rule; a manager's rules
    are their campus's. The campus of a rule never changes: its conditions were checked for it."""

    campus = forms.ModelChoiceField(label=_("Campus"), queryset=Campus.objects.none())
    name = forms.CharField(label=_("Rule name"), max_length=100)
    tag = TagChoiceField(
        label=_("Tag"),
        queryset=Tag.objects.select_related("group").order_by("group__name", "name"),
        empty_label=_("Choose…"),
    )
    conditions = ConditionTreeField(
        label=_("Conditions"),
        help_text=_("The students of the campus these conditions select get the tag."),
    )
    active = forms.BooleanField(label=_("Rule on"), required=False, initial=True)

    def __init__(
        self, *args: Any, viewer: User, rule: TagRule | None = None, count_url: str = "", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        # The segment builder's widget: the same fields, comparisons and pickers, with a live count.
        self.fields["conditions"].widget = ConditionTreeWidget(viewer=viewer, count_url=count_url)
        self.fields["conditions"].viewer = viewer  # type: ignore[attr-defined]
        if rule is None and sees_all_campuses(viewer):
            self.fields["campus"].queryset = campuses_visible_to(viewer)  # type: ignore[attr-defined]
            self.fields["campus"].empty_label = _("Choose…")  # type: ignore[attr-defined]
        else:
            del self.fields["campus"]


class SegmentForm(forms.Form):
    """The segment builder's fields; `personas.services.segments` checks and saves them."""

    name = forms.CharField(label=_("Segment name"), max_length=text.NAME)
    description = forms.CharField(label=_("Description"), max_length=text.LINE, required=False)
    campus = forms.ModelChoiceField(
        label=_("Campus"),
        queryset=Campus.objects.none(),
        required=False,
        empty_label=_("Every campus"),
    )

    def __init__(self, *args: Any, viewer: User, count_url: str = "", campus_editable: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["conditions"] = ConditionTreeField(
            label=_("Conditions"),
            viewer=viewer,
            widget=ConditionTreeWidget(count_url=count_url, preview_target="segment-preview"),
        )
        # Only an administrator chooses the campus (or every campus); a manager's segments are
        # their campus's. The campus of a saved segment stays.
        if sees_all_campuses(viewer) and campus_editable:
            self.fields["campus"].queryset = campuses_visible_to(viewer).order_by("name")  # type: ignore[attr-defined]
        else:
            del self.fields["campus"]
