"""Webhooks the providers call: the SMS gateway's signed delivery receipts.

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


class SmsReceiptsView(APIView):
    """POST a list of delivery receipts, signed by the gateway."""

    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]
    parser_classes = [JSONParser]

    @extend_schema(
        request=ReceiptSerializer(many=True),
        responses=inline_serializer("ReceiptsApplied", {"applied": serializers.IntegerField()}),
    )
    def post(self, request: Request) -> Response:
        check_gateway_signature(request)
        receipts = ReceiptSerializer(data=request.data, many=True)
        receipts.is_valid(raise_exception=True)
        applied = 0
        for receipt in receipts.validated_data:
            applied += message_receipt(
                provider=SmsGatewayProvider.name,
                provider_message_id=receipt["message_id"],
                outcome=receipt["status"],
                at=dt.datetime.fromtimestamp(receipt["reported_at"], tz=timezone.get_current_timezone()),
                code=receipt["code"],
            )
        return Response({"applied": applied})


urlpatterns = [path("messaging/sms/receipts/", SmsReceiptsView.as_view(), name="api_sms_receipts")]
