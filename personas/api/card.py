"""The persona card as one API resource: GET /api/v1/students/<id>/persona/.

The same read as the page (personas.selectors.persona_card): another campus's student is a 404,
teachers get masked phones, the timeline is paged (`?page=`, 20 touches a page, newest first).
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.models import Contract, Guardian, Student, StudentTag, User
from crm.phones import mask_phone, phone_display
from crm.roles import sees_full_phones
from crm.views.access import ANY_STAFF
from lifecycle.filters import Flag
from personas.models import NpsCategory, StudentProfile
from personas.next_action import NextActionCode
from personas.selectors import MAX_TIMELINE_PAGE, TIMELINE_PAGE_SIZE, PersonaCard, TimelineEntry, persona_card


class IsStaff(permissions.BasePermission):
    """Staff with a role; a signed-in account without one (a parent, later) is refused."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user: User = request.user  # type: ignore[assignment]
        return bool(user and user.is_authenticated and user.role in ANY_STAFF)


class RefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class StudentSerializer(serializers.ModelSerializer):
    campus = serializers.CharField(source="campus.name")
    owner = serializers.SerializerMethodField()
    referrer = serializers.SerializerMethodField()

    class Meta:
        model = Student
        fields = [
            "id",
            "name",
            "gender",
            "birth_date",
            "grade",
            "school",
            "campus",
            "channel",
            "owner",
            "referrer",
            "notes",
            "next_follow_up_at",
            "lost_at",
            "lost_reason",
            "created_at",
        ]

    @extend_schema_field(RefSerializer(allow_null=True))
    def get_owner(self, student: Student) -> dict[str, Any] | None:
        return {"id": student.owner_id, "name": str(student.owner)} if student.owner else None

    @extend_schema_field(RefSerializer(allow_null=True))
    def get_referrer(self, student: Student) -> dict[str, Any] | None:
        return {"id": student.referrer_id, "name": student.referrer.name} if student.referrer else None


class GuardianSerializer(serializers.ModelSerializer):
    phone = serializers.SerializerMethodField(help_text="As people dial it; masked (138 **** 8000) for teachers.")

    class Meta:
        model = Guardian
        fields = ["id", "name", "relation", "phone"]

    def get_phone(self, guardian: Guardian) -> str:
        viewer = self.context["viewer"]
        return phone_display(guardian.phone) if sees_full_phones(viewer) else mask_phone(guardian.phone)


class SiblingSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    name = serializers.CharField()
    stage = serializers.CharField()


class FlagSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=Flag.choices)
    label = serializers.CharField()  # type: ignore[assignment]  # a "label" key, not the caption


class StageSerializer(serializers.Serializer):
    stage = serializers.CharField(source="student.stage")
    label = serializers.CharField(source="student.get_stage_display")  # type: ignore[assignment]  # a "label" key, not the caption
    days_in_stage = serializers.IntegerField()
    reason = serializers.CharField(source="stage_reason")
    flags = FlagSerializer(many=True)
    flag_reasons = serializers.ListField(child=serializers.CharField())
    risk_recent = serializers.IntegerField(source="student.stage_row.risk_recent")
    risk_before = serializers.IntegerField(source="student.stage_row.risk_before")


class TagSerializer(serializers.ModelSerializer):
    group = serializers.CharField(source="tag.group.name")
    name = serializers.CharField(source="tag.name")

    class Meta:
        model = StudentTag
        fields = ["group", "name", "source", "rule"]


class ProfileSerializer(serializers.ModelSerializer):
    segment_label = serializers.CharField(source="get_rfm_segment_display")
    value_tier_label = serializers.CharField(source="get_value_tier_display")
    preferred_slot_label = serializers.CharField(source="get_preferred_slot_display")

    class Meta:
        model = StudentProfile
        fields = [
            "recency_at",
            "frequency",
            "monetary",
            "r_score",
            "f_score",
            "m_score",
            "rfm_segment",
            "segment_label",
            "value_tier",
            "value_tier_label",
            "lessons_scheduled_90",
            "lessons_present_90",
            "attendance_rate",
            "preferred_weekday",
            "preferred_slot",
            "preferred_slot_label",
            "subjects",
            "avg_rating",
            "ratings",
            "first_signed_at",
            "remaining_hours",
            "last_touch_at",
            "computed_at",
        ]


class AttendanceWeekSerializer(serializers.Serializer):
    week = serializers.DateField(help_text="The week's Monday.")
    present = serializers.IntegerField()
    absent = serializers.IntegerField()
    leave = serializers.IntegerField()


class JourneyStepSerializer(serializers.Serializer):
    code = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # a "label" key, not the caption
    at = serializers.DateTimeField(allow_null=True)
    days_after_previous = serializers.IntegerField(allow_null=True)


class ContractSerializer(serializers.ModelSerializer):
    course = serializers.CharField(source="course.name")

    class Meta:
        model = Contract
        fields = [
            "id",
            "course",
            "hours_bought",
            "hours_consumed",
            "amount",
            "paid_amount",
            "signed_at",
            "valid_until",
            "status",
            "refund_amount",
            "refunded_at",
        ]


class NextActionSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=NextActionCode.choices)
    label = serializers.CharField()  # type: ignore[assignment]  # a "label" key, not the caption
    form = serializers.CharField(help_text="The record form that carries it out: consultation or trial.")
    reason = serializers.CharField()
    suggestion = serializers.CharField()


class LatestSatisfactionSerializer(serializers.Serializer):
    score = serializers.IntegerField(min_value=0, max_value=10)
    category = serializers.ChoiceField(choices=NpsCategory.choices)
    reason = serializers.CharField()
    answered_at = serializers.DateTimeField()


class CardSatisfactionSerializer(serializers.Serializer):
    """The parents' side of the feedback dimension (the teachers' is the profile's avg_rating)."""

    latest = LatestSatisfactionSerializer(allow_null=True)
    count = serializers.IntegerField()
    average = serializers.DecimalField(max_digits=3, decimal_places=1, allow_null=True)
    nps = serializers.IntegerField(allow_null=True, help_text="% promoters minus % detractors, -100 to 100.")


def _touch(entry: TimelineEntry) -> dict[str, Any]:
    """What each kind of touch says, in a few fields."""
    o = entry.obj
    kind = entry.kind
    if kind == "consultation":
        return {
            "channel": o.channel,
            "intent": o.intent,
            "content": o.content,
            "outcome": o.outcome,
            "by": str(o.consultant) if o.consultant else None,
        }
    if kind == "trial":
        return {
            "course": o.course.name,
            "teacher": str(o.teacher),
            "status": o.status,
            "rating": o.rating,
            "comment": o.comment,
        }
    if kind == "contract":
        return {"course": o.course.name, "hours_bought": str(o.hours_bought), "paid_amount": str(o.paid_amount)}
    if kind == "refund":
        return {"course": o.course.name, "refund_amount": str(o.refund_amount), "reason": o.refund_reason}
    if kind == "attendance":
        return {
            "course": o.contract.course.name,
            "status": o.status,
            "hours": str(o.hours),
            "teacher": str(o.teacher),
            "feedback": o.feedback,
        }
    if kind == "stage":
        return {"from": o.from_stage, "to": o.to_stage, "reason": o.reason_label}
    if kind == "lost":
        return {"reason": o.lost_reason}
    return {"channel": o.channel}  # created


class TouchSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = serializers.CharField(help_text="consultation, trial, contract, refund, attendance, stage, created, lost")
    id = serializers.IntegerField(source="obj.pk")
    detail = serializers.SerializerMethodField()

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_detail(self, entry: TimelineEntry) -> dict[str, Any]:
        return _touch(entry)


class TimelineSerializer(serializers.Serializer):
    page = serializers.IntegerField(source="number")
    next_page = serializers.IntegerField(source="older", allow_null=True)
    page_size = serializers.SerializerMethodField()
    results = TouchSerializer(source="entries", many=True)

    def get_page_size(self, _page: Any) -> int:
        return TIMELINE_PAGE_SIZE


class PersonaCardSerializer(serializers.Serializer):
    student = StudentSerializer()
    guardians = GuardianSerializer(many=True)
    siblings = SiblingSerializer(many=True)
    stage = serializers.SerializerMethodField()
    tags = TagSerializer(many=True)
    profile = ProfileSerializer(allow_null=True, help_text="null until the personas engine has computed it")
    attendance_weeks = AttendanceWeekSerializer(many=True)
    journey = JourneyStepSerializer(many=True)
    journey_now = serializers.CharField(source="journey_now.code", allow_null=True, default=None)
    contracts = ContractSerializer(many=True)
    hours_left = serializers.DecimalField(max_digits=9, decimal_places=1)
    next_action = NextActionSerializer(allow_null=True)
    satisfaction = CardSatisfactionSerializer()
    timeline = TimelineSerializer()

    @extend_schema_field(StageSerializer)
    def get_stage(self, card: PersonaCard) -> dict[str, Any]:
        return StageSerializer(card).data


class PersonaCardView(APIView):
    permission_classes = [permissions.IsAuthenticated, IsStaff]

    @extend_schema(
        operation_id="student_persona",
        summary="A student's persona card",
        parameters=[
            OpenApiParameter(
                "page",
                OpenApiTypes.INT,
                description=f"Timeline page, 1 (newest) to {MAX_TIMELINE_PAGE}; {TIMELINE_PAGE_SIZE} touches a page.",
            )
        ],
        responses=PersonaCardSerializer,
    )
    def get(self, request: Request, pk: int) -> Response:
        viewer: User = request.user  # type: ignore[assignment]
        try:
            page = max(int(request.query_params.get("page") or 1), 1)
        except ValueError as exc:
            raise serializers.ValidationError({"page": _("A whole number from 1.")}) from exc
        card = persona_card(viewer=viewer, student_id=pk, page=page)
        return Response(PersonaCardSerializer(card, context={"viewer": viewer, "request": request}).data)
