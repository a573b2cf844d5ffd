"""What a logged-in parent reads and asks: me/, children/, a child's page, their attendance
history, the courses to ask a trial of, and trial requests. Every child is looked up through
the parent's own guardian (`parents.selectors`), so another family's child is a 404."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.fields import DateTimeInput
from crm.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from crm.api.pagination import CursorPage
from crm.models import Attendance, Contract, Course, Lesson, Student, TrialLesson
from crm.phones import phone_display
from parents.api.permissions import IsParent
from parents.auth import Parent
from parents.child_page import child_page_data
from parents.models import TrialRequest
from parents.selectors import (
    ChildPage,
    attendance_of,
    child_get,
    children_of,
    hours_left_by_child,
    trial_courses,
)
from parents.services.trial_requests import trial_request_create


def guardian_of(request: Request) -> Any:
    parent: Parent = request.user  # type: ignore[assignment]
    return parent.guardian


def person(user: Any) -> str:
    """A teacher as parents know them: the name the staff pages show (display_name, "林小雨"),
    never a login name, nothing else."""
    if user is None:
        return ""
    return str(user)


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    relation = serializers.CharField()
    phone = serializers.CharField(help_text="As people dial it.")
    email = serializers.CharField()
    wechat_bound = serializers.BooleanField()
    children = serializers.IntegerField(help_text="How many children this phone is linked to.")


class MeView(APIView):
    permission_classes = [IsParent]

    @extend_schema(operation_id="parent_me", summary="The logged-in parent", responses=MeSerializer)
    def get(self, request: Request) -> Response:
        guardian = guardian_of(request)
        body = {
            "id": guardian.pk,
            "name": guardian.name,
            "relation": guardian.relation,
            "phone": phone_display(guardian.phone),
            "email": guardian.email,
            "wechat_bound": bool(guardian.wechat_openid),
            "children": children_of(guardian).count(),
        }
        return Response(MeSerializer(body).data)


class ParentChildSerializer(serializers.ModelSerializer):
    campus = serializers.CharField(source="campus.name")
    hours_left = serializers.SerializerMethodField(help_text="Hours left on the child's active contracts.")

    class Meta:
        model = Student
        fields = ["id", "name", "gender", "birth_date", "grade", "school", "campus", "hours_left"]

    @extend_schema_field(serializers.DecimalField(max_digits=9, decimal_places=1))
    def get_hours_left(self, child: Student) -> str:
        return f"{self.context['hours_left'].get(child.pk, 0):.1f}"


class ChildrenView(generics.ListAPIView):
    """Every child linked to the parent's phone, in every campus."""

    permission_classes = [IsParent]
    serializer_class = ParentChildSerializer

    def get_queryset(self) -> QuerySet[Student]:
        if getattr(self, "swagger_fake_view", False):
            return Student.objects.none()
        return children_of(guardian_of(self.request))

    @extend_schema(operation_id="parent_children", summary="My children")
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        rows = list(page or [])
        context = {**self.get_serializer_context(), "hours_left": hours_left_by_child(rows)}
        return self.get_paginated_response(ParentChildSerializer(rows, many=True, context=context).data)


class ParentLessonSerializer(serializers.ModelSerializer):
    course = serializers.CharField(source="course.name")
    subject = serializers.CharField(source="course.subject")
    teacher = serializers.SerializerMethodField()

    class Meta:
        model = Lesson
        fields = ["id", "course", "subject", "teacher", "starts_at", "duration_minutes", "hours"]

    def get_teacher(self, lesson: Lesson) -> str:
        return person(lesson.teacher)


class ParentTrialSerializer(serializers.ModelSerializer):
    course = serializers.CharField(source="course.name")
    teacher = serializers.SerializerMethodField()
    status_label = serializers.CharField(source="get_status_display")

    class Meta:
        model = TrialLesson
        fields = ["id", "course", "teacher", "scheduled_at", "duration_minutes", "status", "status_label"]

    def get_teacher(self, trial: TrialLesson) -> str:
        return person(trial.teacher)


class ParentContractSerializer(serializers.ModelSerializer):
    course = serializers.CharField(source="course.name")
    hours_left = serializers.DecimalField(source="hours_remaining", max_digits=8, decimal_places=1)
    status_label = serializers.CharField(source="get_status_display")

    class Meta:
        model = Contract
        fields = [
            "id",
            "course",
            "hours_bought",
            "hours_consumed",
            "hours_left",
            "signed_at",
            "valid_until",
            "status",
            "status_label",
        ]


class ParentAttendanceSerializer(serializers.ModelSerializer):
    course = serializers.CharField(source="contract.course.name")
    teacher = serializers.SerializerMethodField()
    status_label = serializers.CharField(source="get_status_display")

    class Meta:
        model = Attendance
        fields = ["id", "lesson_at", "course", "teacher", "status", "status_label", "hours", "feedback"]

    def get_teacher(self, row: Attendance) -> str:
        return person(row.teacher)


class ParentFeedbackSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["trial", "lesson"])
    at = serializers.DateTimeField()
    course = serializers.CharField()
    teacher = serializers.CharField()
    rating = serializers.IntegerField(allow_null=True, help_text="1-5, trial lessons only.")
    comment = serializers.CharField()
    recommended_level = serializers.CharField()


def feedback_item(row: Attendance | TrialLesson) -> dict[str, Any]:
    if isinstance(row, TrialLesson):
        return {
            "kind": "trial",
            "at": row.scheduled_at,
            "course": row.course.name,
            "teacher": person(row.teacher),
            "rating": row.rating,
            "comment": row.comment,
            "recommended_level": row.recommended_level,
        }
    return {
        "kind": "lesson",
        "at": row.lesson_at,
        "course": row.contract.course.name,
        "teacher": person(row.teacher),
        "rating": None,
        "comment": row.feedback,
        "recommended_level": "",
    }


class TrialRequestSerializer(serializers.ModelSerializer):
    course = serializers.SerializerMethodField()
    status_label = serializers.CharField(source="get_status_display")

    class Meta:
        model = TrialRequest
        fields = ["id", "student", "course", "subject", "wished_at", "note", "status", "status_label", "created_at"]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_course(self, request: TrialRequest) -> str | None:
        return request.course.name if request.course else None


class ChildPageSerializer(serializers.Serializer):
    child = serializers.SerializerMethodField()
    hours_left = serializers.DecimalField(max_digits=9, decimal_places=1)
    upcoming_lessons = ParentLessonSerializer(many=True)
    upcoming_trials = ParentTrialSerializer(many=True)
    contracts = ParentContractSerializer(many=True)
    recent_attendance = ParentAttendanceSerializer(many=True, help_text="The latest 20; older ones: attendance/.")
    feedback = serializers.SerializerMethodField()
    trial_requests = TrialRequestSerializer(many=True)

    @extend_schema_field(ParentChildSerializer)
    def get_child(self, page: ChildPage) -> dict[str, Any]:
        return ParentChildSerializer(page.child, context={"hours_left": {page.child.pk: page.hours_left}}).data

    @extend_schema_field(ParentFeedbackSerializer(many=True))
    def get_feedback(self, page: ChildPage) -> list[dict[str, Any]]:
        return list(ParentFeedbackSerializer([feedback_item(row) for row in page.feedback], many=True).data)


class ChildView(APIView):
    permission_classes = [IsParent]

    @extend_schema(operation_id="parent_child", summary="A child's page", responses=ChildPageSerializer)
    def get(self, request: Request, pk: int) -> Response:
        # ChildPageSerializer(child_page(...)) defines the answer; this reads the same in SQL.
        return Response(child_page_data(guardian_id=guardian_of(request).pk, student_id=pk))


class LessonTimeCursor(CursorPage):
    # A child's lesson times are as good as unique, and their index (student, lesson_at) serves it.
    ordering = ("-lesson_at", "-id")  # type: ignore[assignment]  # DRF takes a string or a tuple

    def position_ok(self, position: str) -> bool:
        try:
            return parse_datetime(position) is not None
        except ValueError:
            return False


class ChildAttendanceView(generics.ListAPIView):
    """A child's whole attendance history, newest first, a page at a time."""

    permission_classes = [IsParent]
    serializer_class = ParentAttendanceSerializer
    pagination_class = LessonTimeCursor

    def get_queryset(self) -> QuerySet[Attendance]:
        if getattr(self, "swagger_fake_view", False):
            return Attendance.objects.none()
        return attendance_of(child_get(guardian=guardian_of(self.request), student_id=self.kwargs["pk"]))

    @extend_schema(operation_id="parent_child_attendance", summary="A child's attendance history")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class ParentCourseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Course
        fields = ["id", "name", "subject", "level"]


class ChildCoursesView(generics.ListAPIView):
    """The courses of the child's campus, to ask a trial of."""

    permission_classes = [IsParent]
    serializer_class = ParentCourseSerializer

    def get_queryset(self) -> QuerySet[Course]:
        if getattr(self, "swagger_fake_view", False):
            return Course.objects.none()
        return trial_courses(child_get(guardian=guardian_of(self.request), student_id=self.kwargs["pk"]))

    @extend_schema(operation_id="parent_child_courses", summary="Courses a trial can be asked of")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class TrialRequestInput(serializers.Serializer):
    wished_at = DateTimeInput(help_text="When the parent would like the trial.")
    course = serializers.IntegerField(required=False, allow_null=True, help_text="A course id from courses/.")
    subject = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ChildTrialRequestsView(APIView):
    permission_classes = [IsParent]

    @extend_schema(
        operation_id="parent_trial_request_create",
        summary="Ask the campus for a trial lesson",
        request=TrialRequestInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: TrialRequestSerializer},
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        guardian = guardian_of(request)
        child = child_get(guardian=guardian, student_id=pk)
        data = TrialRequestInput(data=request.data)
        data.is_valid(raise_exception=True)
        course = None
        if data.validated_data.get("course") is not None:
            course = trial_courses(child).filter(pk=data.validated_data["course"]).first()
            if course is None:
                raise serializers.ValidationError({"course": _("This course is not taught at your child's campus.")})
        created = trial_request_create(
            guardian=guardian,
            student=child,
            wished_at=data.validated_data["wished_at"],
            course=course,
            subject=data.validated_data["subject"],
            note=data.validated_data["note"],
        )
        return Response(TrialRequestSerializer(created).data, status=status.HTTP_201_CREATED)
