"""The tags API under /api/v1/: the tag groups with their tags, which the front office gives to
students (`POST /api/v1/students/<id>/tags/`). Tags are one vocabulary shared by every campus;
teachers do not tag students (crm.roles.ROLE_PERMISSIONS), so they are refused (403)."""

from __future__ import annotations

from django.db.models import Prefetch
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from config.api_errors import problem_responses
from crm.api.guardians import FrontOffice
from crm.api.pagination import PageNumberPage
from crm.models import Tag, TagGroup


class TagChoiceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "name"]
        read_only_fields = fields


class TagGroupSerializer(serializers.ModelSerializer):
    exclusive = serializers.BooleanField(help_text="One tag of this group per student: a new one replaces the old.")
    tags = TagChoiceSerializer(many=True)

    class Meta:
        model = TagGroup
        fields = ["id", "name", "exclusive", "tags"]
        read_only_fields = fields


class TagGroupList(generics.GenericAPIView):
    permission_classes = [FrontOffice]
    pagination_class = PageNumberPage
    queryset = TagGroup.objects.none()  # for the schema

    @extend_schema(
        operation_id="tags_list",
        summary="Tag groups with their tags",
        responses={200: TagGroupSerializer(many=True), **problem_responses(404)},
    )
    def get(self, request: Request) -> Response:
        groups = TagGroup.objects.order_by("name", "pk").prefetch_related(
            Prefetch("tags", queryset=Tag.objects.order_by("name", "pk"))
        )
        page = self.paginate_queryset(groups)
        return self.get_paginated_response(TagGroupSerializer(page, many=True).data)


urlpatterns = [
    path("tags/", TagGroupList.as_view(), name="api_tag_list"),
]
