"""Consultations under /api/v1/: the campus's log (GET, newest first, by cursor) and logging
one (POST), through `crm.services.consultations.consultation_log` as the student page does.

The front office and managers only, as on the pages (teachers keep no consultations); another
campus's student is "does not exist".
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers

from crm.api.fields import DateTimeInput
from crm.api.idempotency import IDEMPOTENCY_PARAMETER
from crm.api.pagination import CursorPage
from crm.api.records import NamedRef, RecordListCreate, ScopedPk
from crm.filters import ConsultationFilter
from crm.models import Consultation, ConsultationChannel, Intent, Student, User
from crm.selectors import consultations_visible_to, students_visible_to
from crm.services import consultation_log
from crm.views.access import FRONT_OFFICE


class ConsultationSerializer(serializers.ModelSerializer):
    student = NamedRef()
    consultant = NamedRef(allow_null=True)

    class Meta:
        model = Consultation
        fields = [
            "id",
            "student",
            "consultant",
            "channel",
            "content",
            "intent",
            "outcome",
            "next_follow_up_at",
            "consulted_at",
            "created_at",
        ]
        read_only_fields = fields


class ConsultationInput(serializers.Serializer):
    """What a client sends; lengths, the follow-up's and the date's windows are the service's."""

    student = ScopedPk(queryset=Student.objects.all(), scope=students_visible_to)
    channel = serializers.ChoiceField(choices=ConsultationChannel.choices)
    content = serializers.CharField(allow_blank=True, trim_whitespace=False)
    intent = serializers.ChoiceField(choices=Intent.choices, default=Intent.MEDIUM)
    outcome = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    next_follow_up_at = DateTimeInput(required=False, allow_null=True, default=None)
    consulted_at = DateTimeInput(
        required=False, allow_null=True, default=None, help_text="When it happened; now if left out."
    )


@extend_schema_view(
    get=extend_schema(operation_id="consultation_list", summary="The campus's consultations, newest first"),
    post=extend_schema(
        operation_id="consultation_create",
        summary="Log a consultation",
        request=ConsultationInput,
        responses={201: ConsultationSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    ),
)
class ConsultationList(RecordListCreate):
    read_roles = write_roles = FRONT_OFFICE
    serializer_class = ConsultationSerializer
    pagination_class = CursorPage
    filterset_class = ConsultationFilter
    input_class = ConsultationInput

    def rows(self, viewer: User) -> QuerySet[Consultation]:
        return consultations_visible_to(viewer).select_related("student", "consultant")

    def record(self, viewer: User, data: dict[str, Any]) -> Consultation:
        return consultation_log(actor=viewer, **data)


urlpatterns = [
    path("consultations/", ConsultationList.as_view(), name="api_consultation_list"),
]
