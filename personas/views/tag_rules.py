"""The campus's tag rules at /personas/tag-rules/: the list, a rule's form, deleting one.

Managers write their campus's rules, administrators any campus's; front desk and teachers are
refused (403) and another campus's rule does not exist (404). Thin: parse -> scoped fetch ->
service -> render; the service checks the conditions again for the rule's campus.
"""

from __future__ import annotations

import contextlib
import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from crm.forms import apply_service_errors
from crm.models import Role, User
from crm.views.access import role_required
from personas.conditions import describe
from personas.forms import TagRuleForm
from personas.models import TagRule
from personas.selectors import tag_rule_get, tag_rules_visible_to
from personas.services.tag_rules import tag_rule_create, tag_rule_delete, tag_rule_update

RULE_WRITERS = (Role.MANAGER, Role.ADMIN)


@role_required(*RULE_WRITERS)
def tag_rule_list(request: HttpRequest) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    rules = list(tag_rules_visible_to(viewer))
    for rule in rules:
        rule.words = describe(rule.conditions)  # type: ignore[attr-defined]
    return render(request, "personas/tag_rules.html", {"rules": rules, "nav": "tag_rules"})


def _form_page(request: HttpRequest, form: TagRuleForm, rule: TagRule | None) -> HttpResponse:
    # The tree in words once it reads as one (the field's own errors say what is wrong otherwise).
    words = ""
    if "conditions" not in form.errors:
        with contextlib.suppress(TypeError, ValueError):
            words = describe(json.loads(form["conditions"].value()))
    context = {"form": form, "rule": rule, "words": words, "nav": "tag_rules"}
    return render(request, "personas/tag_rule_form.html", context)


@role_required(*RULE_WRITERS)
def tag_rule_create_view(request: HttpRequest) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    form = TagRuleForm(request.POST or None, viewer=viewer, count_url=reverse("segment_count"))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            rule = tag_rule_create(
                actor=viewer,
                campus=data.get("campus"),
                tag=data["tag"],
                name=data["name"],
                conditions=data["conditions"],
                active=data["active"],
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(
                request, _("Rule “%(name)s” saved: its students are tagged in a moment.") % {"name": rule.name}
            )
            return redirect("tag_rule_list")
    return _form_page(request, form, None)


@role_required(*RULE_WRITERS)
def tag_rule_edit_view(request: HttpRequest, pk: int) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    rule = tag_rule_get(viewer=viewer, rule_id=pk)
    initial = {"name": rule.name, "tag": rule.tag, "conditions": rule.conditions, "active": rule.active}
    form = TagRuleForm(
        request.POST or None, viewer=viewer, rule=rule, initial=initial, count_url=reverse("segment_count")
    )
    if request.method == "POST" and form.is_valid():
        try:
            tag_rule_update(actor=viewer, rule=rule, **{name: form.cleaned_data[name] for name in initial})
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(
                request,
                _("Rule “%(name)s” saved: its students are tagged in a moment.") % {"name": form.cleaned_data["name"]},
            )
            return redirect("tag_rule_list")
    return _form_page(request, form, rule)


@role_required(*RULE_WRITERS)
def tag_rule_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    rule = tag_rule_get(viewer=viewer, rule_id=pk)
    if request.method == "POST":
        removed = tag_rule_delete(actor=viewer, rule=rule)
        messages.success(
            request,
            ngettext(
                "Rule “%(name)s” deleted; %(count)s tag it gave was removed.",
                "Rule “%(name)s” deleted; %(count)s tags it gave were removed.",
                removed,
            )
            % {"name": rule.name, "count": removed},
        )
        return redirect("tag_rule_list")
    context = {"rule": rule, "carriers": rule.carriers, "nav": "tag_rules"}  # type: ignore[attr-defined]
    return render(request, "personas/tag_rule_delete.html", context)


urlpatterns: list[URLPattern] = [
    path("", tag_rule_list, name="tag_rule_list"),
    path("new/", tag_rule_create_view, name="tag_rule_create"),
    path("<int:pk>/", tag_rule_edit_view, name="tag_rule_edit"),
    path("<int:pk>/delete/", tag_rule_delete_view, name="tag_rule_delete"),
]
