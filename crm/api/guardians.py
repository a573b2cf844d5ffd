"""The guardians API under /api/v1/: guardians of the students the viewer sees (searched by
phone in any format), one guardian, a correction of their details, and a guardian added to a
student.

Scoped like the pages (a family none of whose children the viewer sees is a 404), written
through `crm.services` (a guardian's home campus keeps their details, lead capture and "add a
guardian" reuse a known family), errors in the one shape of config/api_errors.py. Teachers read
with phones masked and no email, and may not search by phone (a search would tell them the
digits the mask hides); the front desk, managers and administrators write.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.urls import path
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from config.api_errors import FieldProblem, problem_responses
from crm import services
from crm.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from crm.api.pagination import CursorPage
from crm.api.permissions import IsStaff, staff_of, staff_roles
from crm.models import Campus, Guardian, Role, User
from crm.phones import mask_phone, phone_display
from crm.roles import sees_all_campuses, sees_full_phones
from crm.selectors import guardian_children, guardian_get, guardians_visible_to, phone_search, student_get
from crm.services.families import guardian_change_refusal, guardian_home_campus_id

# Who writes students, guardians and tags: the roles of the front-desk pages.
FRONT_OFFICE = (Role.FRONT_DESK, Role.MANAGER, Role.ADMIN)
FrontOffice = staff_roles(*FRONT_OFFICE)


class StaffReadsFrontOfficeWrites(generics.GenericAPIView):
    """Every staff role reads (scoped, phones masked for teachers); only the front office writes."""

    def get_permissions(self) -> list[permissions.BasePermission]:
        if self.request.method in permissions.SAFE_METHODS:
            return [IsStaff()]
        return [FrontOffice()]


def viewer_of(request: Request) -> User:
    viewer = staff_of(request)
    assert viewer is not None  # the permission classes let only staff in
    return viewer


def valid_input(request: Request, input_class: type[serializers.Serializer], **kwargs: Any) -> dict[str, Any]:
    """The request's body read by `input_class`, or a 400 naming each field at fault."""
    data = input_class(data=request.data, **kwargs)
    data.is_valid(raise_exception=True)
    return data.validated_data  # type: ignore[return-value]


def phone_as_seen(viewer: User, e164: str) -> str:
    """A phone as people dial it, masked (138 **** 8000) for a role that never sees it whole."""
    return phone_display(e164) if sees_full_phones(viewer) else mask_phone(e164)


def refuse_phone_search(viewer: User, term: str) -> None:
    """A role that sees phones masked may not search by one: the answers would give the digits away."""
    if term.strip() and not sees_full_phones(viewer) and phone_search(term)[0]:
        raise PermissionDenied(_("Phones are hidden from your role; search by name."))


class IdNameSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class GuardianBriefSerializer(serializers.ModelSerializer):
    """A guardian as a student's row shows them. Needs `viewer` in the context."""

    phone = serializers.SerializerMethodField(help_text="As people dial it; masked (138 **** 8000) for teachers.")

    class Meta:
        model = Guardian
        fields = ["id", "name", "relation", "phone"]
        read_only_fields = fields

    def get_phone(self, guardian: Guardian) -> str:
        return phone_as_seen(self.context["viewer"], guardian.phone)


class GuardianRowSerializer(GuardianBriefSerializer):
    email = serializers.SerializerMethodField(help_text="Blank for teachers.")
    children = serializers.SerializerMethodField(help_text="Their children the viewer sees.")

    class Meta(GuardianBriefSerializer.Meta):
        fields = ["id", "name", "relation", "phone", "email", "children"]
        read_only_fields = fields

    def get_email(self, guardian: Guardian) -> str:
        return guardian.email if sees_full_phones(self.context["viewer"]) else ""

    @extend_schema_field(IdNameSerializer(many=True))
    def get_children(self, guardian: Guardian) -> list[dict[str, Any]]:
        # Fetched with the page by `crm.selectors.guardian_children`.
        return [{"id": child.pk, "name": child.name} for child in guardian.visible_children]  # type: ignore[attr-defined]


class GuardianRecordSerializer(GuardianRowSerializer):
    home_campus = serializers.SerializerMethodField(
        help_text="The campus of their first child, which keeps their name, relation and email."
    )
    kept_elsewhere = serializers.SerializerMethodField(
        help_text="Why the viewer may not change their details (another home campus), or null."
    )

    class Meta(GuardianRowSerializer.Meta):
        fields = [*GuardianRowSerializer.Meta.fields, "home_campus", "kept_elsewhere"]
        read_only_fields = fields

    @extend_schema_field(IdNameSerializer(allow_null=True))
    def get_home_campus(self, guardian: Guardian) -> dict[str, Any] | None:
        campus_id = guardian_home_campus_id(guardian)
        if campus_id is None:
            return None
        return {"id": campus_id, "name": Campus.objects.values_list("name", flat=True).get(pk=campus_id)}

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_kept_elsewhere(self, guardian: Guardian) -> str | None:
        viewer = self.context["viewer"]
        return guardian_change_refusal(guardian, campus_id=None if sees_all_campuses(viewer) else viewer.campus_id)


class GuardianChangeInput(serializers.Serializer):
    """Blank or equal is no change; the service checks lengths, the email and the home campus."""

    name = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    relation = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    email = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)


class GuardianAddInput(GuardianChangeInput):
    phone = serializers.CharField(help_text="In any format people type; stored in E.164, China by default.")


def guardian_detail_data(request: Request, viewer: User, guardian_id: int) -> dict[str, Any]:
    guardian = guardians_visible_to(viewer).prefetch_related(guardian_children(viewer)).get(pk=guardian_id)
    return GuardianRecordSerializer(guardian, context={"viewer": viewer, "request": request}).data


class GuardianList(generics.GenericAPIView):
    """The guardians of the students the viewer sees, newest first, a page at a time."""

    pagination_class = CursorPage
    queryset = Guardian.objects.none()  # for the schema; the viewer's rows come from crm.selectors

    @extend_schema(
        operation_id="guardians_list",
        summary="Guardians of the students you see",
        parameters=[
            OpenApiParameter(
                "phone",
                OpenApiTypes.STR,
                description="A phone in any format (138-0013-8000, +86 138 0013 8000), or four or more of its digits.",
            )
        ],
        responses={200: GuardianRowSerializer(many=True), **problem_responses(400)},
    )
    def get(self, request: Request) -> Response:
        viewer = viewer_of(request)
        guardians: QuerySet[Guardian] = guardians_visible_to(viewer)
        term = request.query_params.get("phone", "")
        if term.strip():
            refuse_phone_search(viewer, term)
            kind, value = phone_search(term)
            if kind == "exact":
                guardians = guardians.filter(phone=value)
            elif kind == "digits":
                guardians = guardians.filter(phone__contains=value)
            else:
                raise FieldProblem("phone", _("Type a phone number, or four or more of its digits."))
        page = self.paginate_queryset(guardians.prefetch_related(guardian_children(viewer)))
        context = {"viewer": viewer, "request": request}
        return self.get_paginated_response(GuardianRowSerializer(page, many=True, context=context).data)


class GuardianDetail(StaffReadsFrontOfficeWrites):
    @extend_schema(
        operation_id="guardians_retrieve",
        summary="One guardian",
        responses={200: GuardianRecordSerializer, **problem_responses(404)},
    )
    def get(self, request: Request, pk: int) -> Response:
        viewer = viewer_of(request)
        guardian_get(viewer=viewer, guardian_id=pk)
        return Response(guardian_detail_data(request, viewer, pk))

    @extend_schema(
        operation_id="guardians_partial_update",
        summary="Correct a guardian's name, relation or email (their home campus, or an administrator)",
        request=GuardianChangeInput,
        responses={200: GuardianRecordSerializer, **problem_responses(400, 404)},
    )
    def patch(self, request: Request, pk: int) -> Response:
        viewer = viewer_of(request)
        guardian = guardian_get(viewer=viewer, guardian_id=pk)
        services.guardian_update(actor=viewer, guardian=guardian, **valid_input(request, GuardianChangeInput))
        return Response(guardian_detail_data(request, viewer, pk))


class StudentGuardianAdd(generics.GenericAPIView):
    """Another parent for a student: a known phone links the existing family, never a copy."""

    permission_classes = [FrontOffice]

    @extend_schema(
        operation_id="students_guardians_create",
        summary="Add a guardian to a student",
        request=GuardianAddInput,
        responses={201: GuardianRecordSerializer, **problem_responses(400, 404, 409, 422)},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        viewer = viewer_of(request)
        student = student_get(viewer=viewer, student_id=pk)
        guardian = services.guardian_add(actor=viewer, student=student, **valid_input(request, GuardianAddInput))
        return Response(guardian_detail_data(request, viewer, guardian.pk), status=201)


urlpatterns = [
    path("guardians/", GuardianList.as_view(), name="api_guardian_list"),
    path("guardians/<int:pk>/", GuardianDetail.as_view(), name="api_guardian_detail"),
    path("students/<int:pk>/guardians/", StudentGuardianAdd.as_view(), name="api_student_guardian_add"),
]
