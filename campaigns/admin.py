"""Admin for the messaging layer: every message sent, read-only (only the services write them).

Managers see their campus's messages, administrators every message (a login code belongs to no
campus); the other roles never see the list. Access and campus scoping are lifecycle's admin rule.
"""

from __future__ import annotations

from django.contrib import admin

from campaigns.models import Message
from lifecycle.admin import LifecycleAdmin


@admin.register(Message)
class MessageAdmin(LifecycleAdmin):
    list_display = ("created_at", "channel", "category", "recipient", "status", "attempts", "error_code")
    list_filter = ("status", "channel", "category", "campus")
    search_fields = ("recipient", "provider_message_id", "idempotency_key")
    date_hierarchy = "created_at"
    list_select_related = ("campus",)
    readonly_fields = [field.name for field in Message._meta.fields]
