"""Webhooks the providers call: the SMS gateway's signed delivery receipts and parents' replies.

Not a person's session: the gateway signs each request (`sms_gateway.verify`: HMAC-SHA256 of the
method, path, timestamp, nonce and body under the shared secret, the timestamp at most five
minutes old). An unsigned or badly signed request is a 403; a malformed body a 400 in the API's
one error shape; a receipt for a message we do not know is acknowledged and changes nothing (the
gateway would otherwise send it again forever).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from django.conf import settings
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns.messaging.sms_gateway import SmsGatewayProvider, verify
from campaigns.services.consent import consent_opt_out_by_reply
from campaigns.services.messages import RECEIPT_STATUSES, message_receipt


def check_gateway_signature(request: Request) -> None:
    """403 unless the SMS gateway signed this request with our shared secret."""
    secret = settings.SMS_GATEWAY_SECRET
    headers = request.headers
    signed = bool(secret) and verify(
        secret=secret,
        method=request.method or "",
        path=request.path,
        timestamp=headers.get("X-Timestamp", ""),
        nonce=headers.get("X-Nonce", ""),
        body=request.body,
        signature=headers.get("X-Signature", ""),
        now=time.time(),
    )
    if not signed:
        raise PermissionDenied(_("The request is not signed by the SMS gateway."))


class ReceiptSerializer(serializers.Serializer):
    message_id = serializers.CharField(max_length=100)
    status = serializers.ChoiceField(choices=sorted(RECEIPT_STATUSES))
    # Unix seconds, as the gateway reports when the phone took the message.
    reported_at = serializers.IntegerField(min_value=0, max_value=2**31)
    code = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


def _unix_time(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=timezone.get_current_timezone())


class GatewayWebhook(APIView):
    """A list of items the gateway signed: each applied by `apply`, the count answered as `counted`."""

    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]
    parser_classes = [JSONParser]
    serializer_class: type[serializers.Serializer]
    counted: str

    def apply(self, item: dict[str, Any]) -> bool:
        raise NotImplementedError

    def post(self, request: Request) -> Response:
        check_gateway_signature(request)
        items = self.serializer_class(data=request.data, many=True)
        items.is_valid(raise_exception=True)
        return Response({self.counted: sum(self.apply(item) for item in items.validated_data)})


@extend_schema(
    request=ReceiptSerializer(many=True),
    responses=inline_serializer("ReceiptsApplied", {"applied": serializers.IntegerField()}),
)
class SmsReceiptsView(GatewayWebhook):
    """POST a list of delivery receipts, signed by the gateway."""

    serializer_class = ReceiptSerializer
    counted = "applied"

    def apply(self, item: dict[str, Any]) -> bool:
        return message_receipt(
            provider=SmsGatewayProvider.name,
            provider_message_id=item["message_id"],
            outcome=item["status"],
            at=_unix_time(item["reported_at"]),
            code=item["code"],
        )


class InboundSmsSerializer(serializers.Serializer):
    phone = serializers.CharField(max_length=32)
    text = serializers.CharField(max_length=1000, allow_blank=True, trim_whitespace=False)
    received_at = serializers.IntegerField(min_value=0, max_value=2**31)


@extend_schema(
    request=InboundSmsSerializer(many=True),
    responses=inline_serializer("RepliesApplied", {"opted_out": serializers.IntegerField()}),
)
class SmsInboundView(GatewayWebhook):
    """POST a list of SMS replies from parents, signed by the gateway. A reply that is an
    unsubscribe keyword (TD, T, 退订, N) withdraws that family's consent to marketing SMS, with
    the reply kept as proof; any other reply is acknowledged and changes nothing."""

    serializer_class = InboundSmsSerializer
    counted = "opted_out"

    def apply(self, item: dict[str, Any]) -> bool:
        return consent_opt_out_by_reply(phone=item["phone"], reply=item["text"], at=_unix_time(item["received_at"]))


urlpatterns = [
    path("messaging/sms/receipts/", SmsReceiptsView.as_view(), name="api_sms_receipts"),
    path("messaging/sms/inbound/", SmsInboundView.as_view(), name="api_sms_inbound"),
]
