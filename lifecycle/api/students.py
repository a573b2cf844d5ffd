"""The students API under /api/v1/: the list (the board's FilterSet), lead capture, one student,
its correction, "close as lost", and its tags.

The list is what an integration polls: `students_visible_to(viewer)` narrowed by
`lifecycle.filters.StudentFilter` (with the filters higher apps contribute: segment, RFM segment,
value tier), newest first by id through a cursor, so each page is one `ORDER BY id DESC LIMIT`
walk down the primary key within the campus, never a COUNT, and a constant number of queries.

Writes go through `crm.services` with the pages' rules and messages (a known phone is refused as
`existing_family` unless `add_to_family`); another campus's student is a 404, a role that may not
write a 403. Teachers read with phones masked, and may not search by phone.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.urls import path
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import exceptions, generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from config.api_errors import FieldProblem, django_error_fields, error_body, problem_responses
from crm import services
from crm.api.guardians import (
    FrontOffice,
    GuardianBriefSerializer,
    IdNameSerializer,
    StaffReadsFrontOfficeWrites,
    phone_as_seen,
    refuse_phone_search,
    valid_input,
    viewer_of,
)
from crm.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from crm.api.pagination import CursorPage
from crm.models import (
    Campus,
    Channel,
    Gender,
    Guardian,
    Stage,
    Student,
    StudentGuardian,
    StudentTag,
    Tag,
    TagSource,
    User,
)
from crm.selectors import campuses_visible_to, in_viewers_campuses, student_get, students_visible_to
from lifecycle.filters import Flag, StudentFilter

# --- reading -------------------------------------------------------------------------------


def student_rows(students: QuerySet[Student]) -> QuerySet[Student]:
    """A list's students with what each row shows, fetched up front: one query for the rows
    (campus, owner and stage joined), one for all their guardians."""
    return students.select_related("campus", "owner", "pipeline").prefetch_related(
        Prefetch("guardians", queryset=Guardian.objects.order_by("pk"))
    )


def guardians_by_student(students: list[Student], viewer: User) -> dict[int, list[dict[str, Any]]]:
    """The guardians of a page of students as their rows show them, in one plain query. (Django's
    prefetch builds a queryset per student to hold its cache: most of the list's time.)"""
    rows: dict[int, list[dict[str, Any]]] = {s.pk: [] for s in students}
    links = (
        StudentGuardian.objects.filter(student_id__in=rows)
        .order_by("guardian_id")
        .values_list("student_id", "guardian_id", "guardian__name", "guardian__relation", "guardian__phone")
    )
    for student_id, guardian_id, name, relation, phone in links:
        rows[student_id].append(
            {"id": guardian_id, "name": name, "relation": relation, "phone": phone_as_seen(viewer, phone)}
        )
    return rows


def student_detail_rows(students: QuerySet[Student]) -> QuerySet[Student]:
    return (
        student_rows(students)
        .select_related("referrer")
        .prefetch_related(
            Prefetch(
                "student_tags",
                queryset=StudentTag.objects.select_related("tag__group").order_by("tag__group__name", "tag__name"),
            )
        )
    )


class StudentRowSerializer(serializers.ModelSerializer):
    """A student as a list shows them. Needs `viewer` in the context (for the guardians' phones)."""

    campus = IdNameSerializer()
    stage = serializers.ChoiceField(choices=Stage.choices, help_text="Decided by the lifecycle engine from the facts.")
    flags = serializers.SerializerMethodField()
    owner = serializers.SerializerMethodField()
    guardians = serializers.SerializerMethodField()

    class Meta:
        model = Student
        fields = ["id", "name", "campus", "grade", "channel", "stage", "flags", "owner", "created_at", "guardians"]
        read_only_fields = fields

    @extend_schema_field(GuardianBriefSerializer(many=True))
    def get_guardians(self, student: Student) -> Any:
        # A list hands in its page's guardians (guardians_by_student); one record reads its own.
        given = self.context.get("guardians")
        if given is not None:
            return given[student.pk]
        return GuardianBriefSerializer(student.guardians.all(), many=True, context=self.context).data

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=Flag.choices)))
    def get_flags(self, student: Student) -> list[str]:
        row = student.stage_row()
        return [code for code, on in ((Flag.AT_RISK, row.at_risk), (Flag.RENEWAL_DUE, row.renewal_due)) if on]

    @extend_schema_field(IdNameSerializer(allow_null=True))
    def get_owner(self, student: Student) -> dict[str, Any] | None:
        return {"id": student.owner_id, "name": str(student.owner)} if student.owner else None


class StudentTagSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(source="tag_id", help_text="The tag's id (DELETE .../tags/<id>/ removes it).")
    group = serializers.CharField(source="tag.group.name")
    name = serializers.CharField(source="tag.name")

    class Meta:
        model = StudentTag
        fields = ["id", "group", "name", "source", "rule", "created_at"]
        read_only_fields = fields


class StudentRecordSerializer(StudentRowSerializer):
    referrer = serializers.SerializerMethodField()
    tags = StudentTagSerializer(source="student_tags", many=True)

    class Meta(StudentRowSerializer.Meta):
        fields = [
            "id",
            "name",
            "gender",
            "birth_date",
            "grade",
            "school",
            "campus",
            "channel",
            "stage",
            "flags",
            "owner",
            "referrer",
            "notes",
            "next_follow_up_at",
            "lost_at",
            "lost_reason",
            "created_at",
            "updated_at",
            "guardians",
            "tags",
        ]
        read_only_fields = fields

    @extend_schema_field(IdNameSerializer(allow_null=True))
    def get_referrer(self, student: Student) -> dict[str, Any] | None:
        return {"id": student.referrer_id, "name": student.referrer.name} if student.referrer else None


def student_data(request: Request, viewer: User, student_id: int) -> dict[str, Any]:
    """One student the viewer sees as the API shows them, or 404."""
    student = student_detail_rows(students_visible_to(viewer)).filter(pk=student_id).first()
    if student is None:
        raise Http404
    return StudentRecordSerializer(student, context={"viewer": viewer, "request": request}).data


def viewer_and_student(request: Request, pk: int) -> tuple[User, Student]:
    """Who asks, and the student they name if they see them (another campus's: 404)."""
    viewer = viewer_of(request)
    return viewer, student_get(viewer=viewer, student_id=pk)


# --- the list's filters ----------------------------------------------------------------------


def _filter_parameter(name: str, spec: django_filters.Filter) -> OpenApiParameter:
    description = spec.label or ""
    if isinstance(spec, django_filters.ModelChoiceFilter):  # before ChoiceFilter, its base
        if spec.extra.get("null_label"):
            return OpenApiParameter(
                name, OpenApiTypes.STR, description=f"{description}: an id, or null", pattern=r"^(\d+|null)$"
            )
        return OpenApiParameter(name, OpenApiTypes.INT, description=f"{description} (id)")
    if isinstance(spec, django_filters.MultipleChoiceFilter | django_filters.ChoiceFilter):
        values = [str(value) for value, _label in spec.field.choices if value != ""]
        many = isinstance(spec, django_filters.MultipleChoiceFilter)
        return OpenApiParameter(name, OpenApiTypes.STR, description=description, enum=values, many=many or None)
    return OpenApiParameter(name, OpenApiTypes.STR, description=description)


def student_filter_parameters() -> list[OpenApiParameter]:
    """The FilterSet's filters as query parameters, those contributed by higher apps included
    (built as an administrator sees them: `campus` is theirs alone)."""
    every_filter = StudentFilter(viewer=User(is_superuser=True)).filters
    return [_filter_parameter(name, spec) for name, spec in every_filter.items()]


def student_filter(request: Request, viewer: User) -> StudentFilter:
    """The list's filters for this viewer, or a 400 naming each bad value (never ignored)."""
    params = request.query_params
    refuse_phone_search(viewer, params.get("q", ""))
    filterset = StudentFilter(params, viewer=viewer)
    if not filterset.is_valid():
        raise exceptions.ValidationError({name: list(problems) for name, problems in filterset.errors.items()})
    if "campus" not in filterset.filters and params.get("campus", "") not in ("", str(viewer.campus_id)):
        # Only administrators choose a campus; another one is not among this viewer's choices.
        raise FieldProblem("campus", _("Select a valid choice. That choice is not one of the available choices."))
    return filterset


# --- writing ------------------------------------------------------------------------------


class ViewerChoices(serializers.Serializer):
    """An input whose choices of people and places are the viewer's (another campus's: "does not exist")."""

    def __init__(self, *args: Any, viewer: User | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if viewer is None:  # the schema generator's instance: no choices
            return
        for name, field in self.fields.items():
            if name == "owner":
                field.queryset = in_viewers_campuses(User.objects.all(), viewer)  # type: ignore[attr-defined]
            elif name == "referrer":
                field.queryset = students_visible_to(viewer)  # type: ignore[attr-defined]
            elif name == "campus":
                field.queryset = campuses_visible_to(viewer)  # type: ignore[attr-defined]


def text_field(**kwargs: Any) -> serializers.CharField:
    """Free text as typed: the service tidies it and says when it is too long, as on the page."""
    return serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, **kwargs)


class LeadInput(ViewerChoices):
    phone = serializers.CharField(help_text="The parent's phone first, in any format; a known phone is a known family.")
    student_name = serializers.CharField(trim_whitespace=False)
    guardian_name = text_field(default="")
    relation = text_field(default="")
    guardian_email = text_field(default="")
    channel = serializers.ChoiceField(choices=Channel.choices, help_text="Where the lead came from.")
    grade = text_field(default="")
    school = text_field(default="")
    gender = serializers.ChoiceField(choices=Gender.choices, required=False, allow_blank=True, default="")
    birth_date = serializers.DateField(required=False, allow_null=True, default=None)
    notes = text_field(default="")
    owner = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.none(),
        required=False,
        allow_null=True,
        default=None,
        help_text="A consultant or manager of the campus; the front desk's own leads are theirs by default.",
    )
    add_to_family = serializers.BooleanField(
        default=False, help_text="Add the child as a sibling when the phone belongs to a family already."
    )
    campus = serializers.PrimaryKeyRelatedField(
        queryset=Campus.objects.none(),
        required=False,
        allow_null=True,
        default=None,
        help_text="For administrators; staff capture for their own campus.",
    )


class StudentChangeInput(ViewerChoices):
    name = serializers.CharField(required=False, trim_whitespace=False)
    gender = serializers.ChoiceField(choices=Gender.choices, required=False, allow_blank=True)
    birth_date = serializers.DateField(required=False, allow_null=True)
    grade = text_field()
    school = text_field()
    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    owner = serializers.PrimaryKeyRelatedField(queryset=User.objects.none(), required=False, allow_null=True)
    referrer = serializers.PrimaryKeyRelatedField(queryset=Student.objects.none(), required=False, allow_null=True)
    notes = text_field()


class CloseLostInput(serializers.Serializer):
    reason = serializers.CharField(allow_blank=True, trim_whitespace=False, help_text="Why the lead is lost.")


class TagInput(serializers.Serializer):
    tag = serializers.PrimaryKeyRelatedField(
        queryset=Tag.objects.select_related("group"), help_text="A tag's id (GET /api/v1/tags/)."
    )


# --- views --------------------------------------------------------------------------------


class StudentList(StaffReadsFrontOfficeWrites):
    pagination_class = CursorPage
    queryset = Student.objects.none()  # for the schema; the viewer's rows come from StudentFilter

    @extend_schema(
        operation_id="students_list",
        summary="Students you see, newest first, filtered as on the board",
        parameters=student_filter_parameters(),
        responses={200: StudentRowSerializer(many=True), **problem_responses(400)},
    )
    def get(self, request: Request) -> Response:
        viewer = viewer_of(request)
        students = student_filter(request, viewer).qs.select_related("campus", "owner", "pipeline")
        page = self.paginate_queryset(students) or []
        context = {"viewer": viewer, "request": request, "guardians": guardians_by_student(page, viewer)}
        return self.get_paginated_response(StudentRowSerializer(page, many=True, context=context).data)

    @extend_schema(
        operation_id="students_create",
        summary="Capture a lead, phone first",
        request=LeadInput,
        responses={201: StudentRecordSerializer, **problem_responses(400, 409, 422)},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        viewer = viewer_of(request)
        values = valid_input(request, LeadInput, viewer=viewer)
        campus = values.pop("campus") or viewer.campus
        if campus is None:
            raise FieldProblem("campus", _("Choose a campus."))
        try:
            captured = services.lead_capture(actor=viewer, campus=campus, **values)
        except services.ExistingFamily as exc:
            fields = django_error_fields(exc)
            return Response(error_body("existing_family", fields["phone"][0]["message"], fields), status=409)
        return Response(student_data(request, viewer, captured.student.pk), status=201)


class StudentDetail(StaffReadsFrontOfficeWrites):
    @extend_schema(
        operation_id="students_retrieve",
        summary="One student",
        responses={200: StudentRecordSerializer, **problem_responses(404)},
    )
    def get(self, request: Request, pk: int) -> Response:
        viewer = viewer_of(request)
        return Response(student_data(request, viewer, pk))

    @extend_schema(
        operation_id="students_partial_update",
        summary="Correct a student's own fields",
        request=StudentChangeInput,
        responses={200: StudentRecordSerializer, **problem_responses(400, 404)},
    )
    def patch(self, request: Request, pk: int) -> Response:
        viewer, student = viewer_and_student(request, pk)
        changes = valid_input(request, StudentChangeInput, viewer=viewer)
        if not changes:
            raise FieldProblem("non_field_errors", _("Send at least one field to change."))
        services.student_update(actor=viewer, student=student, **changes)
        return Response(student_data(request, viewer, pk))


class StudentCloseLost(generics.GenericAPIView):
    permission_classes = [FrontOffice]

    @extend_schema(
        operation_id="students_close_lost",
        summary="Close a lead as lost, with the reason",
        request=CloseLostInput,
        responses={200: StudentRecordSerializer, **problem_responses(400, 404)},
    )
    def post(self, request: Request, pk: int) -> Response:
        viewer, student = viewer_and_student(request, pk)
        reason = valid_input(request, CloseLostInput)["reason"]
        services.lead_close_lost(actor=viewer, student=student, reason=reason)
        return Response(student_data(request, viewer, pk))


class StudentTagAdd(generics.GenericAPIView):
    permission_classes = [FrontOffice]

    @extend_schema(
        operation_id="students_tags_create",
        summary="Tag a student (a tag of an exclusive group replaces the group's tag)",
        request=TagInput,
        responses={201: StudentRecordSerializer, **problem_responses(400, 404, 409, 422)},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        viewer, student = viewer_and_student(request, pk)
        tag = valid_input(request, TagInput)["tag"]
        services.student_tag_add(actor=viewer, student=student, tag=tag, source=TagSource.MANUAL)
        return Response(student_data(request, viewer, pk), status=201)


class StudentTagRemove(generics.GenericAPIView):
    permission_classes = [FrontOffice]

    @extend_schema(
        operation_id="students_tags_destroy",
        summary="Take a tag off a student (a tag they do not hold: nothing to do, 204 too)",
        responses={204: None, **problem_responses(404)},
    )
    def delete(self, request: Request, pk: int, tag_id: int) -> Response:
        viewer, student = viewer_and_student(request, pk)
        tag = Tag.objects.select_related("group").filter(pk=tag_id).first()
        if tag is None:
            raise Http404
        # A retried DELETE finds the tag gone: the same outcome, so the same answer, and nothing written.
        if StudentTag.objects.filter(student=student, tag=tag).exists():
            services.student_tag_remove(actor=viewer, student=student, tag=tag)
        return Response(status=204)


urlpatterns = [
    path("students/", StudentList.as_view(), name="api_student_list"),
    path("students/<int:pk>/", StudentDetail.as_view(), name="api_student_detail"),
    path("students/<int:pk>/close-lost/", StudentCloseLost.as_view(), name="api_student_close_lost"),
    path("students/<int:pk>/tags/", StudentTagAdd.as_view(), name="api_student_tag_add"),
    path("students/<int:pk>/tags/<int:tag_id>/", StudentTagRemove.as_view(), name="api_student_tag_remove"),
]
