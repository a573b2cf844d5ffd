"""The condition builder as a form widget: people build a condition tree by picking fields,
comparisons and values, never by writing JSON.

`ConditionTreeWidget` renders the tree's JSON in a hidden input (what the form posts and
`ConditionTreeField` checks) and a builder that static/js/conditions.js draws from a catalogue
of the fields this viewer may filter on. The segment builder and the tag rules' page use it
through `ConditionTreeField`, which hands the widget its viewer.

With `count_url`, the builder asks that URL how many students the tree selects whenever it
changes (debounced): it POSTs `{"conditions": tree}` as JSON and shows `count`, or `message`
on the node at `path`; an answer's `html` goes into the element `preview_target` names.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from crm.models import User
from personas.conditions import MAX_DEPTH, OP_LABELS, OPS, Kind, fields_for, ref_choices


def catalogue_for(viewer: User | None) -> dict[str, Any]:
    """What the builder offers this viewer: fields by group, each kind's comparisons, the values."""
    groups: list[dict[str, Any]] = []
    by_group: dict[str, dict[str, Any]] = {}
    if viewer is None:  # a widget not given its viewer offers nothing rather than everything
        return {"groups": [], "ops": {}, "maxDepth": MAX_DEPTH, "text": {}}
    for spec in fields_for(viewer):
        group = str(spec.group)
        if group not in by_group:
            by_group[group] = {"label": group, "fields": []}
            groups.append(by_group[group])
        choices = ref_choices(spec, viewer) if spec.kind == Kind.REF else [(str(k), str(v)) for k, v in spec.choices]
        field: dict[str, Any] = {"name": spec.name, "label": str(spec.label), "kind": spec.kind, "choices": choices}
        if spec.kind == Kind.NUMBER:
            field.update(
                min=None if spec.minimum is None else float(spec.minimum),
                max=None if spec.maximum is None else float(spec.maximum),
            )
        by_group[group]["fields"].append(field)
    return {
        "groups": groups,
        "ops": {kind: [[op, str(OP_LABELS[op])] for op in ops] for kind, ops in OPS.items()},
        "maxDepth": MAX_DEPTH,
        "text": {
            "all": _("all of these"),
            "any": _("any of these"),
            "match": _("Students who match"),
            "matchNested": _("Match"),
            "addCondition": _("Add a condition"),
            "addGroup": _("Add a group"),
            "remove": _("Remove"),
            "chooseField": _("Choose a field…"),
            "choose": _("Choose…"),
            "yes": _("yes"),
            "no": _("no"),
            "from": pgettext("range", "from"),
            "to": pgettext("range", "to"),
            "days": _("days"),
            "empty": _("No condition yet: every student you can see matches. Add a condition."),
            "counting": _("Counting…"),
            "count": _("%(count)s students match"),
            "failed": _("The count could not be loaded. Check your connection."),
        },
    }


class ConditionTreeWidget(forms.Widget):
    template_name = "personas/widgets/condition_tree.html"

    class Media:
        css = {"all": ("css/conditions.css",)}
        js = ("js/conditions.js",)

    def __init__(
        self, *, viewer: User | None = None, count_url: str = "", preview_target: str = "", attrs: Any = None
    ) -> None:
        super().__init__(attrs)
        self.viewer = viewer
        self.count_url = count_url
        self.preview_target = preview_target

    def format_value(self, value: Any) -> str:
        if value in (None, ""):
            return json.dumps({"all": []})
        if isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False)

    def get_context(self, name: str, value: Any, attrs: Any) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        element_id = context["widget"]["attrs"].get("id") or f"id_{name}"
        context["widget"]["attrs"]["id"] = element_id
        context["widget"].update(
            catalogue=catalogue_for(self.viewer),
            catalogue_id=f"{element_id}-catalogue",
            count_url=self.count_url,
            preview_target=self.preview_target,
        )
        return context
