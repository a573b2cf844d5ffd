"""The personas pages: the persona card, the overview, the tag rules, a care task's "done".
Included before crm.urls: the persona card is the student page."""

from django.urls import include, path

from personas.views import card, followups, overview

urlpatterns = [
    path("personas/", overview.overview, name="personas_overview"),
    path("personas/refresh/", overview.overview_refresh, name="personas_overview_refresh"),
    path("students/<int:pk>/", card.student_detail, name="student_detail"),
    path("students/<int:pk>/timeline/", card.student_timeline, name="student_timeline"),
    path("students/<int:pk>/<slug:action>/", card.student_action, name="student_action"),
    path("personas/tag-rules/", include("personas.views.tag_rules")),
    path("segments/", include("personas.views.segments")),
    path("followups/care/<int:pk>/done/", followups.care_task_done, name="care_task_done"),
]
