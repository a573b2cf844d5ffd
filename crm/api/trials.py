"""Trial lessons under /api/v1/: the list (every role; a teacher their own trials, as their
day page shows them), booking one (the front office, through `trial_book`, refused when the
teacher already teaches then), the teacher's feedback (`trial_feedback_record`) and
cancelling a booked trial (`trial_cancel`).

Another campus's trial, and for a teacher another teacher's, is a 404.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers

from crm import text
from crm.api.fields import DateTimeInput
from crm.api.idempotency import IDEMPOTENCY_PARAMETER
from crm.api.pagination import CursorPage
from crm.api.permissions import staff_roles
from crm.api.records import NamedRef, RecordAction, RecordListCreate, ScopedPk
from crm.filters import TrialFilter
from crm.models import Course, Student, TrialLesson, User
from crm.selectors import courses_visible_to, in_viewers_campuses, students_visible_to, trials_visible_to
from crm.services import trial_book, trial_cancel, trial_feedback_record
from crm.views.access import FRONT_OFFICE, TEACHING


class TrialSerializer(serializers.ModelSerializer):
    student = NamedRef()
    course = NamedRef()
    teacher = NamedRef()

    class Meta:
        model = TrialLesson
        fields = [
            "id",
            "student",
            "course",
            "teacher",
            "scheduled_at",
            "duration_minutes",
            "status",
            "rating",
            "comment",
            "recommended_level",
            "feedback_at",
            "created_at",
        ]
        read_only_fields = fields


def _staff_in_campuses(viewer: User) -> QuerySet[User]:
    return in_viewers_campuses(User.objects.all(), viewer)


class TrialInput(serializers.Serializer):
    """The course's campus, the teacher's role and campus, the length and the booking window
    are the service's to check, as for the page's form."""

    student = ScopedPk(queryset=Student.objects.all(), scope=students_visible_to)
    course = ScopedPk(queryset=Course.objects.all(), scope=courses_visible_to)
    teacher = ScopedPk(queryset=User.objects.all(), scope=_staff_in_campuses)
    scheduled_at = DateTimeInput()
    duration_minutes = serializers.IntegerField(default=60, help_text="15 to 240.")


class TrialFeedbackInput(serializers.Serializer):
    attended = serializers.BooleanField(help_text="false: the child did not come (no rating then).")
    rating = serializers.IntegerField(required=False, allow_null=True, default=None, help_text="1 to 5.")
    comment = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    recommended_level = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)


class TrialCancelInput(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=text.LINE)


def _trials(viewer: User) -> QuerySet[TrialLesson]:
    return trials_visible_to(viewer).select_related("student", "course", "teacher")


@extend_schema_view(
    get=extend_schema(operation_id="trial_list", summary="Trial lessons, the latest first"),
    post=extend_schema(
        operation_id="trial_create",
        summary="Book a trial lesson",
        request=TrialInput,
        responses={201: TrialSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    ),
)
class TrialList(RecordListCreate):
    pagination_class = CursorPage  # grows without bound: never a COUNT of the table
    write_roles = FRONT_OFFICE
    serializer_class = TrialSerializer
    filterset_class = TrialFilter
    input_class = TrialInput

    def rows(self, viewer: User) -> QuerySet[TrialLesson]:
        return _trials(viewer).order_by("-scheduled_at", "-pk")

    def record(self, viewer: User, data: dict[str, Any]) -> TrialLesson:
        return trial_book(actor=viewer, **data)


class TrialAction(RecordAction):
    output_class = TrialSerializer

    def rows(self, viewer: User) -> QuerySet[TrialLesson]:
        return _trials(viewer)


@extend_schema_view(
    post=extend_schema(
        operation_id="trial_feedback",
        summary="Record whether the child came, with a rating and a comment",
        request=TrialFeedbackInput,
        responses={200: TrialSerializer},
    )
)
class TrialFeedback(TrialAction):
    permission_classes = [staff_roles(*TEACHING)]
    input_class = TrialFeedbackInput

    def act(self, viewer: User, row: TrialLesson, data: dict[str, Any]) -> TrialLesson:
        return trial_feedback_record(actor=viewer, trial=row, **data)


@extend_schema_view(
    post=extend_schema(
        operation_id="trial_cancel",
        summary="Cancel a booked trial lesson",
        request=TrialCancelInput,
        responses={200: TrialSerializer},
    )
)
class TrialCancel(TrialAction):
    permission_classes = [staff_roles(*FRONT_OFFICE)]
    input_class = TrialCancelInput

    def act(self, viewer: User, row: TrialLesson, data: dict[str, Any]) -> TrialLesson:
        return trial_cancel(actor=viewer, trial=row, **data)


urlpatterns = [
    path("trials/", TrialList.as_view(), name="api_trial_list"),
    path("trials/<int:pk>/feedback/", TrialFeedback.as_view(), name="api_trial_feedback"),
    path("trials/<int:pk>/cancel/", TrialCancel.as_view(), name="api_trial_cancel"),
]
