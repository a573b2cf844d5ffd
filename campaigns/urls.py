"""The campaigns pages."""

from django.urls import include, path

from campaigns.views import unsubscribe

urlpatterns = [
    path("campaigns/", include("campaigns.views.campaigns")),
    path("unsubscribe/<str:token>/", unsubscribe.unsubscribe, name="unsubscribe"),
]
