"""The persona card's pages. Included before crm.urls: the card is the student page."""

from django.urls import path

from personas.views import card

urlpatterns = [
    path("students/<int:pk>/", card.student_detail, name="student_detail"),
    path("students/<int:pk>/timeline/", card.student_timeline, name="student_timeline"),
    path("students/<int:pk>/<slug:action>/", card.student_action, name="student_action"),
]
