"""Staff pages for spreadsheet import: upload, preview, commit, progress."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
