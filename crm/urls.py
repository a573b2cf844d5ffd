from django.urls import include, path

urlpatterns = [
    path("imports/", include("crm.views.imports")),
]
