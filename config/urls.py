from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from config import api_schema  # noqa: F401  (registers the schema's authentication schemes)
from config.health import healthz
from personas.api.card import PersonaCardView

# The REST API (DRF): staff resources, and the parents' mini-program under parent/.
api_v1: list[URLPattern | URLResolver] = [
    path("parent/", include("parents.urls")),
    path("students/<int:pk>/persona/", PersonaCardView.as_view(), name="api_student_persona"),
    path("", include("personas.api.segments")),
    path("", include("campaigns.api.webhooks")),
    path("", include("campaigns.api.campaigns")),
    path("", include("lifecycle.api.students")),
    path("", include("crm.api.guardians")),
    path("", include("crm.api.tags")),
    path("", include("crm.api.courses")),
    path("", include("crm.api.consultations")),
    path("", include("crm.api.trials")),
    path("", include("crm.api.contracts")),
    path("", include("crm.api.attendance")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="api_schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="api_schema", permission_classes=[AllowAny]),
        name="api_docs",
    ),
    # The persona card is the student page: its routes come before crm's.
    path("", include("personas.urls")),
    path("", include("crm.urls")),
    path("", include("lifecycle.urls")),
    path("", include("campaigns.urls")),
    path("", include("parents.page_urls")),
]

handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"
