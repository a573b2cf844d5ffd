"""Admin for the parents app: each campus's referral reward rule, and the rewards given.

Managers see and change their campus's rule, administrators every campus's; the form calls
`parents.services.referrals.referral_settings_update` (audited). Rewards are read-only: only the
reward service writes them."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin
from django.http import HttpRequest

from crm.admin.base import ServiceModelForm
from crm.models import User
from lifecycle.admin import LifecycleAdmin
from parents.models import ReferralReward, ReferralSettings
from parents.services.referrals import referral_settings_ensure, referral_settings_update


class ReferralSettingsForm(ServiceModelForm):
    """Saved by `referral_settings_update` (audited)."""

    class Meta:
        model = ReferralSettings
        fields = ("reward_hours",)

    def run_service(self) -> ReferralSettings:
        return referral_settings_update(
            actor=self.actor, campus=self.instance.campus, reward_hours=self.cleaned_data["reward_hours"]
        )


@admin.register(ReferralSettings)
class ReferralSettingsAdmin(LifecycleAdmin):
    list_display = ("campus", "reward_hours", "updated_at")
    readonly_fields = ("campus",)
    form = ReferralSettingsForm

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request) and self.sees(request, obj)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        referral_settings_ensure()  # a campus created since has its row, with the default
        return super().changelist_view(request, extra_context)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        cast(type[ReferralSettingsForm], form).actor = cast(User, request.user)  # a fresh class per request
        return form

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """`referral_settings_update` wrote it when the form was validated."""


@admin.register(ReferralReward)
class ReferralRewardAdmin(LifecycleAdmin):
    campus_lookup = "student__campus_id"
    list_display = ("student", "guardian", "hours", "status", "contract", "applied_at")
    list_filter = ("status",)
    list_select_related = ("student", "guardian", "contract__student", "contract__course")
    readonly_fields = ("student", "guardian", "contract", "hours", "status", "created_at", "applied_at")
