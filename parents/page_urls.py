"""The parents' side's pages: the H5 parent app at /m/ (a shell the parent API fills) and the
staff's handling of trial requests."""

from django.urls import path

from parents import h5, views

urlpatterns = [
    path("m/", h5.parent_app, name="parent_app"),
    path("trial-requests/<int:pk>/handle/", views.trial_request_handle, name="trial_request_handle"),
]
