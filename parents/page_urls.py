"""The parents' side's staff pages (the H5 parent app itself is at /m/)."""

from django.urls import path

from parents import views

urlpatterns = [
    path("trial-requests/<int:pk>/handle/", views.trial_request_handle, name="trial_request_handle"),
]
