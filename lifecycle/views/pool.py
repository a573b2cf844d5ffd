"""The campus lead pool (公海) at /pool/."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
