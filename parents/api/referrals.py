"""Referrals (转介绍) in the parent API.

For a logged-in parent: referral/ (their invite code and link, the campus's reward rule in words,
how many they invited and the hours they earned) and referral/invitations/ (the children they
invited: given name, stage, reward). For anyone with a parent's link, no login: invites/<code>/
(the landing page: the campus and the inviter's surname, never a phone) and invites/<code>/lead/
(leave a lead, throttled per address; a phone that is already a family is answered alike and
creates nothing, so the link never tells a stranger who is a family here)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import QuerySet, Sum
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm import text
from crm.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from crm.models import Campus, Student
from crm.services import referral_lead_capture
from crm.services.referrals import guardian_invite_code, invite_home_campus_id
from parents.api.permissions import IsParent
from parents.api.throttles import InviteIpThrottle
from parents.auth import Parent
from parents.models import ReferralReward
from parents.selectors import given_name, invitations_of, invite_landing
from parents.services.referrals import reward_hours_for, reward_rule_text


def invite_link(code: str) -> str:
    """The link a parent shares: the H5 app's landing page for their code."""
    return f"{settings.SITE_URL.rstrip('/')}/m/#/invite/{code}"


class ReferralSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="The parent's personal invite code.")
    link = serializers.CharField(help_text="The link to share: the landing page of the code.")
    campus = serializers.CharField(allow_null=True, help_text="Where invited families are welcomed.")
    reward_hours = serializers.DecimalField(max_digits=4, decimal_places=1, help_text="0: no reward now.")
    rule = serializers.CharField(help_text="The campus's reward rule in words.")
    invited = serializers.IntegerField(help_text="Children invited so far.")
    hours_earned = serializers.DecimalField(max_digits=7, decimal_places=1, help_text="Bonus hours given so far.")


class ReferralView(APIView):
    permission_classes = [IsParent]

    @extend_schema(
        operation_id="parent_referral",
        summary="My invite code, link and reward rule",
        responses={200: ReferralSerializer},
    )
    def get(self, request: Request) -> Response:
        parent: Parent = request.user  # type: ignore[assignment]
        guardian = parent.guardian
        code = guardian_invite_code(guardian)
        campus_id = invite_home_campus_id(guardian)
        campus = Campus.objects.filter(pk=campus_id).values_list("name", flat=True).first() if campus_id else None
        hours = reward_hours_for(campus_id) if campus_id else Decimal(0)
        earned = ReferralReward.objects.filter(guardian=guardian, status=ReferralReward.Status.APPLIED).aggregate(
            hours=Sum("hours")
        )["hours"]
        body = {
            "code": code,
            "link": invite_link(code),
            "campus": campus,
            "reward_hours": hours,
            "rule": reward_rule_text(hours),
            "invited": Student.objects.filter(referred_by=guardian).count(),
            "hours_earned": earned or Decimal(0),
        }
        return Response(ReferralSerializer(body).data)


class InvitationSerializer(serializers.Serializer):
    name = serializers.SerializerMethodField(help_text="The child's given name only.")
    stage = serializers.SerializerMethodField(help_text="Where the child is, in words.")
    signed = serializers.BooleanField(help_text="Whether the child has signed up.")
    invited_at = serializers.DateTimeField(source="created_at")
    reward_status = serializers.SerializerMethodField(help_text="applied, owed, or null (no reward yet).")
    reward_status_display = serializers.SerializerMethodField()
    reward_hours = serializers.SerializerMethodField()

    def get_name(self, child: Student) -> str:
        return given_name(child.name)

    def get_stage(self, child: Student) -> str:
        return child.get_stage_display()

    def _reward(self, child: Student) -> ReferralReward | None:
        return getattr(child, "referral_reward", None)

    @extend_schema_field(serializers.ChoiceField(choices=ReferralReward.Status.choices, allow_null=True))
    def get_reward_status(self, child: Student) -> str | None:
        reward = self._reward(child)
        return reward.status if reward else None

    def get_reward_status_display(self, child: Student) -> str:
        reward = self._reward(child)
        return reward.get_status_display() if reward else ""

    @extend_schema_field(serializers.DecimalField(max_digits=4, decimal_places=1, allow_null=True))
    def get_reward_hours(self, child: Student) -> str | None:
        reward = self._reward(child)
        return f"{reward.hours:.1f}" if reward else None


class InvitationsView(generics.ListAPIView):
    """The children this parent invited, newest first."""

    permission_classes = [IsParent]
    serializer_class = InvitationSerializer

    def get_queryset(self) -> QuerySet[Student]:
        if getattr(self, "swagger_fake_view", False):
            return Student.objects.none()
        parent: Parent = self.request.user  # type: ignore[assignment]
        return invitations_of(parent.guardian)

    @extend_schema(operation_id="parent_referral_invitations", summary="The children I invited")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class InviteSerializer(serializers.Serializer):
    code = serializers.CharField()
    campus = serializers.CharField(help_text="The campus the invited family is welcomed at.")
    inviter = serializers.CharField(help_text="The inviting parent as a stranger may see them: a surname.")


class InviteView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="parent_invite",
        summary="An invite link's landing page",
        description="No login. An unknown code is a 404.",
        responses={200: InviteSerializer},
    )
    def get(self, request: Request, code: str) -> Response:
        landing = invite_landing(code)
        body = {
            "code": landing.inviter.invite_code,
            "campus": landing.campus.name,
            "inviter": landing.inviter_display,
        }
        return Response(InviteSerializer(body).data)


class InviteLeadInput(serializers.Serializer):
    phone = serializers.CharField(max_length=40, help_text="The parent's phone, as they type it.")
    student_name = serializers.CharField(max_length=text.NAME, help_text="The child's name.")
    guardian_name = serializers.CharField(max_length=text.NAME, required=False, allow_blank=True, default="")
    note = serializers.CharField(max_length=text.LONG, required=False, allow_blank=True, default="")


class ThanksSerializer(serializers.Serializer):
    detail = serializers.CharField()


class InviteLeadView(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [InviteIpThrottle]

    @extend_schema(
        operation_id="parent_invite_lead",
        summary="Leave a lead through a parent's invite link",
        description=(
            "No login; limited per address. Answered alike whether or not the phone is already a "
            "family's (then nothing is created). An unknown code is a 404."
        ),
        request=InviteLeadInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: ThanksSerializer},
    )
    @idempotent
    def post(self, request: Request, code: str) -> Response:
        landing = invite_landing(code)
        data = InviteLeadInput(data=request.data)
        data.is_valid(raise_exception=True)
        referral_lead_capture(
            inviter=landing.inviter,
            phone=data.validated_data["phone"],
            student_name=data.validated_data["student_name"],
            guardian_name=data.validated_data["guardian_name"],
            notes=data.validated_data["note"],
        )
        thanks = _("Thank you! %(campus)s will call you soon.") % {"campus": landing.campus.name}
        return Response(ThanksSerializer({"detail": thanks}).data, status=status.HTTP_201_CREATED)
