"""The personas API under /api/v1/: segments (list, detail, create, update), a segment's
members, and the count of a condition tree being built.

Scoped like the pages (managers and administrators; a segment of another campus is a 404),
written through `personas.services.segments`, errors in the one shape of config/api_errors.py.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import path
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_errors import FieldProblem
from crm.models import Campus, Role, Student
from crm.selectors import campuses_visible_to
from personas.conditions import ConditionError, describe, ref_names
from personas.models import Segment
from personas.selectors import member_rows, segment_get, segment_members, segments_visible_to, students_matching_tree
from personas.services.segments import segment_create, segment_update


class UsesSegments(permissions.BasePermission):
    """Managers and administrators; other roles are refused (403), strangers asked to log in."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and (user.is_superuser or user.role in (Role.MANAGER, Role.ADMIN)))  # type: ignore[union-attr]


class SegmentSerializer(serializers.ModelSerializer):
    in_words = serializers.SerializerMethodField()
    # null once its author's account is deleted (or for a segment made outside the pages)
    created_by: serializers.Field = serializers.StringRelatedField(allow_null=True)

    class Meta:
        model = Segment
        fields = [
            "id",
            "name",
            "description",
            "campus",
            "conditions",
            "in_words",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_in_words(self, segment: Segment) -> str:
        return describe(segment.conditions, names=self.context.get("names") or ref_names([segment.conditions]))


class SegmentInput(serializers.Serializer):
    """What a client sends; the service checks the conditions and the campus."""

    name = serializers.CharField(allow_blank=True, trim_whitespace=False)
    description = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    campus = serializers.PrimaryKeyRelatedField(queryset=Campus.objects.all(), required=False, allow_null=True)
    conditions = serializers.JSONField()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            # A campus the client cannot see is "does not exist", as everywhere.
            self.fields["campus"].queryset = campuses_visible_to(request.user)  # type: ignore[attr-defined]


class MemberSerializer(serializers.ModelSerializer):
    stage = serializers.CharField(read_only=True)
    rfm_segment = serializers.SerializerMethodField()
    value_tier = serializers.SerializerMethodField()

    class Meta:
        model = Student
        fields = ["id", "name", "campus", "grade", "channel", "stage", "rfm_segment", "value_tier", "owner"]
        read_only_fields = fields

    def get_rfm_segment(self, student: Student) -> str:
        profile = getattr(student, "profile", None)
        return profile.rfm_segment if profile else ""

    def get_value_tier(self, student: Student) -> str:
        profile = getattr(student, "profile", None)
        return profile.value_tier if profile else ""


class SegmentList(generics.ListCreateAPIView):
    permission_classes = [UsesSegments]
    serializer_class = SegmentSerializer

    def get_queryset(self) -> QuerySet[Segment]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no viewer
            return Segment.objects.none()
        return segments_visible_to(self.request.user).order_by("name", "pk")  # type: ignore[arg-type]

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        rows = list(page) if page is not None else []
        context = {**self.get_serializer_context(), "names": ref_names([s.conditions for s in rows])}
        return self.get_paginated_response(SegmentSerializer(rows, many=True, context=context).data)

    @extend_schema(request=SegmentInput, responses={201: SegmentSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = SegmentInput(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        segment = segment_create(actor=request.user, **data.validated_data)  # type: ignore[arg-type]
        return Response(SegmentSerializer(segment, context=self.get_serializer_context()).data, status=201)


class SegmentDetail(generics.RetrieveUpdateAPIView):
    permission_classes = [UsesSegments]
    serializer_class = SegmentSerializer

    def get_object(self) -> Segment:
        return segment_get(viewer=self.request.user, segment_id=self.kwargs["pk"])  # type: ignore[arg-type]

    @extend_schema(request=SegmentInput, responses={200: SegmentSerializer})
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        segment = self.get_object()
        partial = kwargs.get("partial", False)
        data = SegmentInput(data=request.data, partial=partial, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        values = {
            "name": segment.name,
            "description": segment.description,
            "conditions": segment.conditions,
            **{k: v for k, v in data.validated_data.items() if k != "campus"},
        }
        segment = segment_update(actor=request.user, segment=segment, **values)  # type: ignore[arg-type]
        return Response(SegmentSerializer(segment, context=self.get_serializer_context()).data)


class SegmentMembers(generics.ListAPIView):
    """The segment's members as the viewer sees them, a page at a time (constant queries)."""

    permission_classes = [UsesSegments]
    serializer_class = MemberSerializer

    def get_queryset(self) -> QuerySet[Student]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no viewer
            return Student.objects.none()
        viewer = self.request.user
        segment = segment_get(viewer=viewer, segment_id=self.kwargs["pk"])  # type: ignore[arg-type]
        try:
            return member_rows(segment_members(viewer=viewer, segment=segment))  # type: ignore[arg-type]
        except ConditionError as exc:
            # A shared segment naming a course of a campus this viewer does not see.
            raise FieldProblem("conditions", exc.message, exc.path) from exc


class SegmentCount(APIView):
    """How many students a condition tree selects for the viewer, before it is saved."""

    permission_classes = [UsesSegments]

    @extend_schema(
        request=inline_serializer("CountInput", {"conditions": serializers.JSONField()}),
        responses={200: inline_serializer("CountOutput", {"count": serializers.IntegerField()})},
    )
    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict) or "conditions" not in body:
            raise FieldProblem("conditions", _("The conditions could not be read."))
        try:
            members = students_matching_tree(viewer=request.user, conditions=body["conditions"])  # type: ignore[arg-type]
        except ConditionError as exc:
            raise FieldProblem("conditions", exc.message, exc.path) from exc
        return Response({"count": members.count()})


urlpatterns = [
    path("segments/", SegmentList.as_view(), name="api_segment_list"),
    path("segments/count/", SegmentCount.as_view(), name="api_segment_count"),
    path("segments/<int:pk>/", SegmentDetail.as_view(), name="api_segment_detail"),
    path("segments/<int:pk>/members/", SegmentMembers.as_view(), name="api_segment_members"),
]
