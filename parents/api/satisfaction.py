"""The parents' satisfaction question: which children it is due for, and the answer.

GET  /api/v1/parent/satisfaction/                 the children the question is due for
POST /api/v1/parent/children/<pk>/satisfaction/   {score: 0-10, reason}: 201

When it is due is the campus's rule (personas.rules.satisfaction_due, settings on PersonaSettings);
`personas.services.satisfaction.satisfaction_answer` checks it again under a lock, so a second tap
is a 400 that says when we will ask again. Another family's child is a 404.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm import text
from crm.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from crm.api.pagination import PageNumberPage
from crm.models import Guardian
from parents.api.permissions import IsParent
from parents.selectors import child_get
from personas.models import NpsCategory, SatisfactionAnswer
from personas.selectors import SatisfactionDue, satisfaction_due_for
from personas.services.satisfaction import SCORE_MAX, SCORE_MIN, satisfaction_answer


def _guardian(request: Request) -> Guardian:
    return request.user.guardian  # type: ignore[union-attr]


class SatisfactionChildSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    name = serializers.CharField()


class SatisfactionQuestionSerializer(serializers.Serializer):
    student = SatisfactionChildSerializer()
    campus = serializers.CharField(source="student.campus.name")
    lessons_attended = serializers.IntegerField()
    last_answered_at = serializers.DateTimeField(allow_null=True)
    question = serializers.SerializerMethodField()
    reason_prompt = serializers.SerializerMethodField()
    score_min = serializers.SerializerMethodField()
    score_max = serializers.SerializerMethodField()

    def get_question(self, due: SatisfactionDue) -> str:
        return _("How likely are you to recommend %(campus)s to a friend or relative? (0 = not at all, 10 = very)") % {
            "campus": due.student.campus.name
        }

    def get_reason_prompt(self, due: SatisfactionDue) -> str:
        return _("What is the main reason for your score?")

    def get_score_min(self, due: SatisfactionDue) -> int:
        return SCORE_MIN

    def get_score_max(self, due: SatisfactionDue) -> int:
        return SCORE_MAX


class SatisfactionInput(serializers.Serializer):
    score = serializers.IntegerField(min_value=SCORE_MIN, max_value=SCORE_MAX)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=text.LONG)


class SatisfactionAnswerSerializer(serializers.ModelSerializer):
    category = serializers.ChoiceField(
        choices=NpsCategory.choices, help_text="promoter 9-10, passive 7-8, detractor 0-6"
    )

    class Meta:
        model = SatisfactionAnswer
        fields = ["id", "student", "score", "category", "reason", "answered_at"]


class SatisfactionDueList(generics.ListAPIView):
    """The guardian's children whose satisfaction question is open now, with its text."""

    permission_classes = [IsParent]
    serializer_class = SatisfactionQuestionSerializer
    pagination_class = PageNumberPage
    filter_backends: list[Any] = []

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no parent
            return []
        return satisfaction_due_for(guardian=_guardian(self.request), now=timezone.now())

    @extend_schema(operation_id="parent_satisfaction_due", summary="Children whose satisfaction question is due")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class SatisfactionAnswerCreate(APIView):
    permission_classes = [IsParent]

    @extend_schema(
        operation_id="parent_satisfaction_answer",
        summary="Answer the satisfaction question about a child",
        request=SatisfactionInput,
        responses={201: SatisfactionAnswerSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        guardian = _guardian(request)
        # Another family's child is a 404 whatever the body says.
        child = child_get(guardian=guardian, student_id=pk)
        data = SatisfactionInput(data=request.data)
        data.is_valid(raise_exception=True)
        answer = satisfaction_answer(guardian=guardian, student=child, **data.validated_data)
        return Response(SatisfactionAnswerSerializer(answer).data, status=201)
