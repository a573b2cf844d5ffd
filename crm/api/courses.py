"""The courses of the viewer's campus (every campus for an administrator): GET /api/v1/courses/,
what a client offers when it books a trial or signs a contract."""

from __future__ import annotations

from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers

from crm.api.records import NamedRef, RecordList
from crm.models import Course, User
from crm.selectors import courses_visible_to


class CourseSerializer(serializers.ModelSerializer):
    campus = NamedRef()

    class Meta:
        model = Course
        fields = ["id", "campus", "name", "subject", "level", "price_per_hour", "active"]
        read_only_fields = fields


@extend_schema_view(get=extend_schema(operation_id="course_list", summary="The courses of the viewer's campus"))
class CourseList(RecordList):
    """Every staff role reads courses (crm.roles.ROLE_PERMISSIONS); the ones no longer offered
    come last, marked `active: false`, as old contracts still name them."""

    serializer_class = CourseSerializer
    filter_backends = []

    def rows(self, viewer: User) -> QuerySet[Course]:
        return courses_visible_to(viewer).select_related("campus").order_by("-active", "subject", "name", "pk")


urlpatterns = [
    path("courses/", CourseList.as_view(), name="api_course_list"),
]
