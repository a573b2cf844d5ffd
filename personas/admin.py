"""Admin for the personas app: the campuses' tag rules, value-tier cut-offs and segments.

Managers see and write their campus's rules, administrators every campus's; the form, the delete
page and the delete action call `personas.services.tag_rules` (the page's services too). Access
follows the staff role, as lifecycle's admin does (crm's role groups carry crm's permissions
only), and every list and change page is scoped by crm's campus rule: another campus's rule is a
404.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from crm.admin.base import NOTHING_CHOSEN, ServiceModelForm
from crm.models import Role, User
from crm.roles import sees_all_campuses
from crm.selectors import campuses_visible_to
from lifecycle.admin import LifecycleAdmin
from personas.conditions import describe, ref_names
from personas.forms import ConditionTreeField
from personas.models import PersonaSettings, Segment, TagRule
from personas.selectors import segments_visible_to, tag_rules_visible_to
from personas.services.persona_settings import SETTING_FIELDS, persona_settings_ensure, persona_settings_update
from personas.services.segments import may_change_segment, segment_create, segment_delete, segment_update
from personas.services.tag_rules import tag_rule_create, tag_rule_delete, tag_rule_update
from personas.widgets import ConditionTreeWidget


def viewer(request: HttpRequest) -> User:
    return cast(User, request.user)


class TagRuleAdminForm(ServiceModelForm):
    """Saved by `tag_rule_create` / `tag_rule_update`, which check the conditions for the campus."""

    conditions = ConditionTreeField(
        label=gettext_lazy("conditions"),
        widget=forms.Textarea(attrs={"rows": 8, "translate": "no", "spellcheck": "false", "class": "vLargeTextField"}),
    )

    class Meta:
        model = TagRule
        fields = ("campus", "name", "tag", "conditions", "active")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["conditions"].viewer = self.actor  # type: ignore[attr-defined]
        if "campus" in self.fields:
            self.fields["campus"].queryset = campuses_visible_to(self.actor)  # type: ignore[attr-defined]

    def run_service(self) -> TagRule:
        data = self.cleaned_data
        if self.instance.pk is None:
            return tag_rule_create(
                actor=self.actor,
                campus=data.get("campus"),
                tag=data["tag"],
                name=data["name"],
                conditions=data["conditions"],
                active=data["active"],
            )
        changes = {name: data[name] for name in ("name", "tag", "conditions", "active")}
        return tag_rule_update(actor=self.actor, rule=self.instance, **changes)


@admin.register(TagRule)
class TagRuleAdmin(admin.ModelAdmin):
    form = TagRuleAdminForm
    list_display = ("name", "campus", "tag", "conditions_words", "active", "carriers")
    list_display_links = ("name",)
    list_filter = ("active",)
    search_fields = ("name", "tag__name")
    list_select_related = ("campus", "tag__group")
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ["delete_rules"]

    # Access ----------------------------------------------------------------------------

    def allowed(self, request: HttpRequest) -> bool:
        user = viewer(request)
        return user.is_active and user.is_staff and (user.is_superuser or user.role in (Role.MANAGER, Role.ADMIN))

    def sees(self, request: HttpRequest, obj: Any) -> bool:
        if obj is None or sees_all_campuses(viewer(request)):
            return True
        return obj.campus_id == viewer(request).campus_id

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.allowed(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request) and self.sees(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.allowed(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request) and self.sees(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request) and self.sees(request, obj)

    # Reads -----------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        if not self.allowed(request):
            return TagRule.objects.none()
        return tag_rules_visible_to(viewer(request))

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        """Another campus's rule does not exist for this viewer: 404, not the admin's redirect.
        Staff whose role has no rules are refused (403) before any lookup."""
        if not self.allowed(request):
            raise PermissionDenied
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404(_("No %(name)s with this id.") % {"name": self.opts.verbose_name})
        return obj

    def get_list_filter(self, request: HttpRequest) -> Any:
        extra = ("campus",) if sees_all_campuses(viewer(request)) else ()
        return (*extra, *super().get_list_filter(request))

    def get_action_choices(self, request: HttpRequest, default_choices: Any = None) -> Any:
        return super().get_action_choices(request, default_choices=NOTHING_CHOSEN)

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # Django's would delete rows without the service
        return actions

    @admin.display(description=gettext_lazy("conditions"))
    def conditions_words(self, obj: TagRule) -> str:
        return describe(obj.conditions)

    @admin.display(description=gettext_lazy("students"))
    def carriers(self, obj: TagRule) -> int:
        return getattr(obj, "carriers", 0)

    # Writes ----------------------------------------------------------------------------

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = ["campus", "name", "tag", "conditions", "active"]
        if obj is not None or not sees_all_campuses(viewer(request)):
            fields.remove("campus")  # a manager's rules are their campus's; a rule keeps its campus
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("campus",) if obj is not None else ()

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        cast(type[TagRuleAdminForm], form).actor = viewer(request)  # a fresh class per request
        return form

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        kwargs.setdefault("empty_label", NOTHING_CHOSEN[0][1])
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """The service wrote it when the form was validated."""

    def delete_model(self, request: HttpRequest, obj: TagRule) -> None:
        tag_rule_delete(actor=viewer(request), rule=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[TagRule]) -> None:
        for rule in queryset:
            tag_rule_delete(actor=viewer(request), rule=rule)

    @admin.action(description=gettext_lazy("Delete the selected rules and the tags they gave"))
    def delete_rules(self, request: HttpRequest, queryset: QuerySet[TagRule]) -> None:
        rules = list(queryset)
        removed = sum(tag_rule_delete(actor=viewer(request), rule=rule) for rule in rules)
        self.message_user(
            request,
            ngettext(
                "%(rules)s rule deleted; %(tags)s tags it gave were removed.",
                "%(rules)s rules deleted; %(tags)s tags they gave were removed.",
                len(rules),
            )
            % {"rules": len(rules), "tags": removed},
            messages.SUCCESS,
        )


class PersonaSettingsForm(ServiceModelForm):
    """Saved by `persona_settings_update` (audited; the campus is scored again as a task)."""

    class Meta:
        model = PersonaSettings
        fields = SETTING_FIELDS

    def run_service(self) -> PersonaSettings:
        changes = {name: self.cleaned_data[name] for name in self.changed_data if name in SETTING_FIELDS}
        return persona_settings_update(actor=self.actor, campus=self.instance.campus, **changes)


@admin.register(PersonaSettings)
class PersonaSettingsAdmin(LifecycleAdmin):
    """The value tiers' cut-offs and the satisfaction schedule per campus; managers change their
    campus's, administrators any."""

    list_display = (
        "campus",
        "tier_high_above_pct",
        "tier_medium_above_pct",
        "satisfaction_after_lessons",
        "satisfaction_every_days",
    )
    readonly_fields = ("campus",)
    form = PersonaSettingsForm

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request) and self.sees(request, obj)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        persona_settings_ensure()  # a campus created since has its row, with the defaults
        return super().changelist_view(request, extra_context)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        cast(type[PersonaSettingsForm], form).actor = viewer(request)  # a fresh class per request
        return form

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """`persona_settings_update` wrote it when the form was validated."""


# --- segments ----------------------------------------------------------------------------------
# Scoped as the pages are (`personas.selectors.segments_visible_to`: a manager sees their campus's
# segments and the shared ones, and changes only their campus's); every write calls
# `personas.services.segments`, and the conditions are built with the segment page's widget
# (`personas.widgets.ConditionTreeWidget`), checked for the person saving them.


class SegmentAdminForm(ServiceModelForm):
    class Meta:
        model = Segment
        fields = ("name", "description", "campus")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        count_url = reverse("segment_count") + (f"?segment={self.instance.pk}" if self.instance.pk else "")
        self.fields["conditions"] = ConditionTreeField(
            label=gettext_lazy("conditions"),
            viewer=self.actor,
            initial=self.instance.conditions or {"all": []},
            widget=ConditionTreeWidget(count_url=count_url),
        )
        if "campus" in self.fields:
            campus = cast(forms.ModelChoiceField, self.fields["campus"])
            campus.queryset = campuses_visible_to(self.actor).order_by("name")
            campus.empty_label = str(gettext_lazy("Every campus"))

    def run_service(self) -> Model:
        data = self.cleaned_data
        if self.instance.pk is None:
            return segment_create(
                actor=self.actor,
                name=data["name"],
                description=data.get("description", ""),
                conditions=data["conditions"],
                campus=data.get("campus"),
            )
        return segment_update(
            actor=self.actor,
            segment=self.instance,
            name=data["name"],
            description=data.get("description", ""),
            conditions=data["conditions"],
        )


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentAdminForm
    list_display = ("name", "campus", "in_words", "created_by", "updated_at")
    list_select_related = ("campus", "created_by")
    search_fields = ("name",)
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def allowed(self, request: HttpRequest) -> bool:
        user = viewer(request)
        return user.is_active and user.is_staff and (user.is_superuser or user.role in (Role.MANAGER, Role.ADMIN))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.allowed(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.allowed(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request) and (obj is None or may_change_segment(viewer(request), obj))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_change_permission(request, obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Segment]:
        if not self.allowed(request):
            return Segment.objects.none()
        return segments_visible_to(viewer(request))

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        """Another campus's segment does not exist for this viewer: 404, as on the pages."""
        if not self.allowed(request):
            raise PermissionDenied
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404
        return obj

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Only an administrator chooses the campus, and only for a new segment.
        campus = ("campus",) if obj is None and sees_all_campuses(viewer(request)) else ()
        return ("name", "description", *campus, "conditions")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ()

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        kwargs["fields"] = [name for name in self.get_fields(request, obj) if name != "conditions"]
        form = super().get_form(request, obj, change=change, **kwargs)
        cast(type[SegmentAdminForm], form).actor = viewer(request)  # a fresh class per request
        return form

    def get_action_choices(self, request: HttpRequest, default_choices: Any = None) -> Any:
        return super().get_action_choices(request, default_choices=NOTHING_CHOSEN)

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deleting goes through the service, one by one
        return actions

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """The service wrote it when the form was validated."""

    def delete_model(self, request: HttpRequest, obj: Segment) -> None:
        segment_delete(actor=viewer(request), segment=obj)

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        # The names of the tags and courses the page's segments name, in one query per kind.
        names = ref_names([segment.conditions for segment in changelist.result_list])
        for segment in changelist.result_list:
            segment.in_words = describe(segment.conditions, names=names)
        return changelist

    @admin.display(description=gettext_lazy("Conditions"))
    def in_words(self, segment: Segment) -> str:
        return getattr(segment, "in_words", "") or describe(segment.conditions)
