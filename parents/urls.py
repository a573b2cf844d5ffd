"""The parent API, mounted at /api/v1/parent/ (config/urls.py)."""

from __future__ import annotations

from django.urls import URLPattern

app_name = "parent_api"

urlpatterns: list[URLPattern] = []
