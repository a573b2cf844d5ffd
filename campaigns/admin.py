"""Admin for the messaging layer and campaigns: every message sent, read-only (only the services
write them); the consent records (the proof, exportable; a person records a family's decision
through `consent_record`); the marketing settings per campus; campaigns and call tasks, read-only
(their pages call the services).

Managers see their campus's rows, administrators every row (a login code belongs to no campus);
the other roles never see the lists. Access and campus scoping are lifecycle's admin rule; a
guardian belongs to a campus through any of their children, as in crm's admin.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin
from django.db.models import Exists, Model, OuterRef, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext, gettext_lazy
from import_export.admin import ExportMixin
from import_export.formats import base_formats

from campaigns.models import (
    CallTask,
    Campaign,
    ConsentRecord,
    ConsentSource,
    MarketingSettings,
    Message,
    MessageChannel,
)
from campaigns.resources import ConsentRecordResource
from campaigns.services.consent import consent_record
from campaigns.services.marketing_settings import SETTING_FIELDS, marketing_settings_ensure, marketing_settings_update
from crm.admin.base import ServiceModelForm
from crm.admin.imports import ExcelCSV
from crm.admin.scoping import scope_to_viewer
from crm.models import Guardian, Role, StudentGuardian
from crm.roles import sees_all_campuses
from crm.selectors import in_viewers_campuses
from lifecycle.admin import LifecycleAdmin, viewer


@admin.register(Message)
class MessageAdmin(LifecycleAdmin):
    list_display = ("created_at", "channel", "category", "recipient", "status", "attempts", "error_code")
    list_filter = ("status", "suppressed_reason", "channel", "category", "campus")
    search_fields = ("recipient", "provider_message_id", "idempotency_key")
    date_hierarchy = "created_at"
    list_select_related = ("campus",)
    readonly_fields = [field.name for field in Message._meta.fields]
    SECRET_FIELDS = ("text", "html", "params")

    def get_fields(self, request: HttpRequest, obj: Message | None = None) -> Any:
        fields = super().get_fields(request, obj)
        # A parent's login code is theirs alone: whoever reads the log could log in as them.
        if obj is not None and obj.holds_secret:
            return [f for f in fields if f not in self.SECRET_FIELDS]
        return fields


class ConsentRecordForm(ServiceModelForm):
    """A decision a person took down (a signed form, a call): saved by `consent_record`."""

    channel = forms.ChoiceField(label=gettext_lazy("message channel"), choices=MessageChannel.choices)

    class Meta:
        model = ConsentRecord
        fields = ("guardian", "channel", "granted", "wording", "evidence")
        help_texts = {
            "wording": gettext_lazy("The exact words the guardian agreed to or asked for, as shown to them."),
            "evidence": gettext_lazy("Where the proof is kept: the form's number, the call's time."),
        }

    def run_service(self) -> Model:
        data = self.cleaned_data
        return consent_record(
            guardian=data["guardian"],
            channel=data["channel"],
            granted=data["granted"],
            source=ConsentSource.STAFF,
            wording=data["wording"],
            evidence=data["evidence"],
            actor=self.actor,
        )


@admin.register(ConsentRecord)
class ConsentRecordAdmin(ExportMixin, LifecycleAdmin):
    """Appended, never changed: a withdrawn consent is a new record, so the proof stays whole."""

    form = ConsentRecordForm
    resource_classes = [ConsentRecordResource]
    export_formats = [ExcelCSV, base_formats.XLSX]
    to_encoding = "utf-8-sig"
    list_display = ("recorded_at", "guardian", "channel", "granted", "source", "recorded_by", "evidence")
    list_filter = ("channel", "granted", "source")
    search_fields = ("guardian__phone", "guardian__name", "wording", "evidence")
    date_hierarchy = "recorded_at"
    list_select_related = ("guardian", "recorded_by")
    autocomplete_fields = ("guardian",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.allowed(request)

    def has_export_permission(self, request: HttpRequest) -> bool:
        return self.allowed(request)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ()
        return [field.name for field in ConsentRecord._meta.fields]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super(LifecycleAdmin, self).get_queryset(request)
        if not self.allowed(request):
            return queryset.none()
        user = viewer(request)
        if sees_all_campuses(user):
            return queryset
        links = StudentGuardian.objects.filter(guardian_id=OuterRef("guardian_id"))
        return queryset.filter(Exists(in_viewers_campuses(links, user, campus_lookup="student__campus_id")))

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "guardian":
            kwargs["queryset"] = scope_to_viewer(Guardian.objects.all(), viewer(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:
            cast(type[ConsentRecordForm], form).actor = viewer(request)
        return form

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """`consent_record` wrote it when the form was validated."""


class MarketingSettingsForm(ServiceModelForm):
    class Meta:
        model = MarketingSettings
        fields = SETTING_FIELDS
        widgets = {"quiet_from": forms.TimeInput(format="%H:%M"), "quiet_until": forms.TimeInput(format="%H:%M")}

    def run_service(self) -> Model:
        changes = {name: self.cleaned_data[name] for name in self.changed_data if name in SETTING_FIELDS}
        return marketing_settings_update(actor=self.actor, campus=self.instance.campus, **changes)


@admin.register(MarketingSettings)
class MarketingSettingsAdmin(LifecycleAdmin):
    form = MarketingSettingsForm
    list_display = ("campus", "time_zone", "quiet_from", "quiet_until", "cap_days")
    readonly_fields = ("campus",)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request) and self.sees(request, obj)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        marketing_settings_ensure()
        return super().changelist_view(request, extra_context)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        cast(type[MarketingSettingsForm], form).actor = viewer(request)
        return form

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """`marketing_settings_update` wrote it when the form was validated."""


@admin.register(Campaign)
class CampaignAdmin(LifecycleAdmin):
    """Read-only: campaigns are built, launched and paused on their page (/campaigns/), where the
    services are called; the admin lists them with a link there."""

    list_display = ("name", "campus", "goal", "status", "segment", "launched_at", "page")
    list_filter = ("status", "goal", "campus")
    search_fields = ("name",)
    list_select_related = ("campus", "segment")
    readonly_fields = [
        *(f.name for f in Campaign._meta.fields if f.editable and f.name not in ("channels", "seed")),
        "channel_names",
    ]
    fields = tuple(readonly_fields)

    @admin.display(description=gettext_lazy("channels"))
    def channel_names(self, campaign: Campaign) -> str:
        return "、".join(campaign.channel_labels)

    @admin.display(description=gettext_lazy("page"))
    def page(self, campaign: Campaign) -> str:
        return format_html('<a href="{}">{}</a>', reverse("campaign_detail", args=[campaign.pk]), gettext("Open"))


@admin.register(CallTask)
class CallTaskAdmin(LifecycleAdmin):
    """Read-only: a call is recorded from the follow-up list, as a consultation."""

    roles = (Role.FRONT_DESK, Role.MANAGER, Role.ADMIN)
    campus_lookup = "campaign__campus_id"
    list_display = ("created_at", "campaign", "student", "consultant", "status", "done_at")
    list_filter = ("status",)
    search_fields = ("student__name", "campaign__name")
    list_select_related = ("campaign", "student", "consultant")
    readonly_fields = [field.name for field in CallTask._meta.fields]
