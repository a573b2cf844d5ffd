"""Attendance under /api/v1/: the campus's records (GET, newest first, by cursor; a teacher
those of their own lessons), a whole lesson's sheet at once (POST
/lessons/<id>/attendance/, `lesson_attendance_record`, as the teacher's day page saves it:
everyone or nobody), and correcting a saved record (`attendance_correct`), only by whom
`attendance_correctable_by` allows: the lesson's teacher on the lesson's day, a manager or an
administrator at any time.

Another campus's lesson or record, and for a teacher another teacher's, is a 404.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.urls import path
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm import text
from crm.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from crm.api.pagination import CursorPage
from crm.api.permissions import staff_roles
from crm.api.records import NamedRef, RecordAction, RecordList, ScopedPk, decimal_input, scoped_get, viewer_of
from crm.filters import AttendanceFilter
from crm.models import Attendance, AttendanceStatus, Student, User
from crm.selectors import attendance_visible_to, lessons_visible_to, students_visible_to
from crm.services import AttendanceMark, attendance_correct, attendance_correctable_by, lesson_attendance_record
from crm.views.access import TEACHING


class AttendanceSerializer(serializers.ModelSerializer):
    student = NamedRef()
    teacher = NamedRef()

    class Meta:
        model = Attendance
        fields = [
            "id",
            "student",
            "contract",
            "lesson",
            "lesson_at",
            "status",
            "hours",
            "teacher",
            "feedback",
            "created_at",
        ]
        read_only_fields = fields


class MarkInput(serializers.Serializer):
    """One student's line of the sheet; the roster, the hours left and the lengths are the service's."""

    student = ScopedPk(queryset=Student.objects.all(), scope=students_visible_to)
    status = serializers.ChoiceField(choices=AttendanceStatus.choices, default=AttendanceStatus.PRESENT)
    feedback = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)


class LessonAttendanceInput(serializers.Serializer):
    marks = MarkInput(many=True)


class AttendanceCorrectInput(serializers.Serializer):
    status = serializers.ChoiceField(choices=AttendanceStatus.choices)
    hours = decimal_input(
        required=False, allow_null=True, default=None, help_text="The lesson's length; the lesson's own if left out."
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=text.LINE)


def _attendance(viewer: User) -> QuerySet[Attendance]:
    return attendance_visible_to(viewer).select_related("student", "teacher")


@extend_schema_view(get=extend_schema(operation_id="attendance_list", summary="Attendance records, newest first"))
class AttendanceList(RecordList):
    serializer_class = AttendanceSerializer
    pagination_class = CursorPage
    filterset_class = AttendanceFilter

    def rows(self, viewer: User) -> QuerySet[Attendance]:
        return _attendance(viewer)


class LessonAttendance(APIView):
    permission_classes = [staff_roles(*TEACHING)]

    @extend_schema(
        operation_id="lesson_attendance_record",
        summary="Record a whole lesson's attendance: everyone, or nobody and why",
        request=LessonAttendanceInput,
        responses={201: AttendanceSerializer(many=True)},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        viewer = viewer_of(request)
        lesson = scoped_get(lessons_visible_to(viewer).select_related("course", "teacher"), pk)
        data = LessonAttendanceInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        marks = [AttendanceMark(**mark) for mark in data.validated_data["marks"]]
        recorded = lesson_attendance_record(actor=viewer, lesson=lesson, marks=marks)
        return Response(AttendanceSerializer(recorded, many=True).data, status=201)


@extend_schema_view(
    post=extend_schema(
        operation_id="attendance_correct",
        summary="Correct a saved attendance record's status and hours",
        request=AttendanceCorrectInput,
        responses={200: AttendanceSerializer},
    )
)
class AttendanceCorrect(RecordAction):
    permission_classes = [staff_roles(*TEACHING)]
    input_class = AttendanceCorrectInput
    output_class = AttendanceSerializer

    def rows(self, viewer: User) -> QuerySet[Attendance]:
        return _attendance(viewer)

    def check(self, viewer: User, row: Attendance) -> None:
        if not attendance_correctable_by(viewer, row):
            raise PermissionDenied(
                _("A teacher corrects attendance only on the day of the lesson; ask a manager to correct it.")
            )

    def act(self, viewer: User, row: Attendance, data: dict[str, Any]) -> Attendance:
        return attendance_correct(actor=viewer, attendance=row, **data)


urlpatterns = [
    path("attendance/", AttendanceList.as_view(), name="api_attendance_list"),
    path("attendance/<int:pk>/correct/", AttendanceCorrect.as_view(), name="api_attendance_correct"),
    path("lessons/<int:pk>/attendance/", LessonAttendance.as_view(), name="api_lesson_attendance"),
]
