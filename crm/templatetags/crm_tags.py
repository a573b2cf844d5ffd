from __future__ import annotations

from django import template

from crm.models import User
from crm.phones import mask_phone, phone_display
from crm.roles import sees_full_phones

register = template.Library()


@register.filter
def phone_for(phone: str, viewer: User) -> str:
    """A guardian's phone as this viewer may see it: teachers get 138 **** 8000."""
    if not phone:
        return ""
    return phone_display(phone) if sees_full_phones(viewer) else mask_phone(phone)
