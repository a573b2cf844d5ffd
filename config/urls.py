from django.contrib import admin
from django.urls import include, path

from config.health import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),
    # The persona card is the student page: its routes come before crm's.
    path("", include("personas.urls")),
    path("", include("crm.urls")),
    path("", include("lifecycle.urls")),
]

handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"
