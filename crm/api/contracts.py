"""Contracts under /api/v1/: the campus's contracts (the front office and managers, as on
the pages), signing one (`contract_sign`) and refunding one (`contract_refund`, managers).

Amounts and hours are sent as decimal strings ("40.5"); how many digits they may have, and
the signing and validity windows, are the service's to say, as for the page's form.
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
from crm.api.permissions import staff_roles
from crm.api.records import NamedRef, RecordAction, RecordListCreate, ScopedPk, decimal_input
from crm.filters import ContractFilter
from crm.models import Contract, Course, Role, Student, User
from crm.selectors import contracts_visible_to, courses_visible_to, students_visible_to
from crm.services import contract_refund, contract_sign
from crm.views.access import FRONT_OFFICE


class SignedContractSerializer(serializers.ModelSerializer):
    student = NamedRef()
    course = NamedRef()
    hours_remaining = serializers.DecimalField(max_digits=7, decimal_places=1, read_only=True)

    class Meta:
        model = Contract
        fields = [
            "id",
            "student",
            "course",
            "hours_bought",
            "hours_consumed",
            "hours_remaining",
            "amount",
            "paid_amount",
            "signed_at",
            "valid_until",
            "status",
            "refund_amount",
            "refund_reason",
            "refunded_at",
            "created_at",
        ]
        read_only_fields = fields


class ContractInput(serializers.Serializer):
    student = ScopedPk(queryset=Student.objects.all(), scope=students_visible_to)
    course = ScopedPk(queryset=Course.objects.all(), scope=courses_visible_to)
    hours_bought = decimal_input()
    amount = decimal_input()
    paid_amount = decimal_input()
    signed_at = DateTimeInput(required=False, allow_null=True, default=None, help_text="Now if left out.")
    valid_until = serializers.DateField(required=False, allow_null=True, default=None)


class ContractRefundInput(serializers.Serializer):
    amount = decimal_input(help_text="At most what was paid.")
    reason = serializers.CharField(allow_blank=True, trim_whitespace=False)


def _contracts(viewer: User) -> QuerySet[Contract]:
    return contracts_visible_to(viewer).select_related("student", "course")


@extend_schema_view(
    get=extend_schema(operation_id="contract_list", summary="Contracts, the latest signed first"),
    post=extend_schema(
        operation_id="contract_create",
        summary="Sign a contract",
        request=ContractInput,
        responses={201: SignedContractSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    ),
)
class ContractList(RecordListCreate):
    pagination_class = CursorPage  # grows without bound: never a COUNT of the table
    read_roles = write_roles = FRONT_OFFICE
    serializer_class = SignedContractSerializer
    filterset_class = ContractFilter
    input_class = ContractInput

    def rows(self, viewer: User) -> QuerySet[Contract]:
        return _contracts(viewer).order_by("-signed_at", "-pk")

    def record(self, viewer: User, data: dict[str, Any]) -> Contract:
        return contract_sign(actor=viewer, **data)


@extend_schema_view(
    post=extend_schema(
        operation_id="contract_refund",
        summary="Refund an active contract",
        request=ContractRefundInput,
        responses={200: SignedContractSerializer},
    )
)
class ContractRefund(RecordAction):
    permission_classes = [staff_roles(Role.MANAGER, Role.ADMIN)]
    input_class = ContractRefundInput
    output_class = SignedContractSerializer

    def rows(self, viewer: User) -> QuerySet[Contract]:
        return _contracts(viewer)

    def act(self, viewer: User, row: Contract, data: dict[str, Any]) -> Contract:
        return contract_refund(actor=viewer, contract=row, **data)


urlpatterns = [
    path("contracts/", ContractList.as_view(), name="api_contract_list"),
    path("contracts/<int:pk>/refund/", ContractRefund.as_view(), name="api_contract_refund"),
]
