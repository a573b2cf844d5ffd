"""Parent login: POST auth/code/ (an SMS code), auth/login/ (phone and code -> tokens),
auth/refresh/ (a refresh token -> new tokens), auth/logout/ (this session ends)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.phones import phone_display
from parents.api.permissions import IsParent
from parents.api.throttles import AuthIpThrottle, AuthPhoneThrottle
from parents.auth import Parent
from parents.services.login import TooManyAttempts, login_code_send, login_code_verify
from parents.services.sessions import Tokens, session_refresh, session_revoke


class PhoneInput(serializers.Serializer):
    phone = serializers.CharField(max_length=40, help_text="The phone as the parent types it.")


class LoginInput(PhoneInput):
    code = serializers.CharField(max_length=12)


class RefreshInput(serializers.Serializer):
    refresh = serializers.CharField(max_length=200)


class CodeSentSerializer(serializers.Serializer):
    phone = serializers.CharField(help_text="As people dial it.")
    expires_in = serializers.IntegerField(help_text="Seconds the code stays valid.")
    resend_in = serializers.IntegerField(help_text="Seconds before another code may be asked for.")


class TokensSerializer(serializers.Serializer):
    token_type = serializers.CharField(default="Bearer")
    access = serializers.CharField()
    refresh = serializers.CharField()
    access_expires_at = serializers.DateTimeField()
    refresh_expires_at = serializers.DateTimeField()


def tokens_body(tokens: Tokens) -> dict[str, Any]:
    return TokensSerializer(
        {
            "token_type": "Bearer",
            "access": tokens.access,
            "refresh": tokens.refresh,
            "access_expires_at": tokens.access_expires_at,
            "refresh_expires_at": tokens.refresh_expires_at,
        }
    ).data


def throttled(exc: TooManyAttempts) -> exceptions.Throttled:
    return exceptions.Throttled(wait=exc.wait_seconds, detail=exc.message)


class LoginCodeView(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [AuthIpThrottle, AuthPhoneThrottle]

    @extend_schema(
        operation_id="parent_auth_code",
        summary="Send a login code by SMS",
        description="Answered alike whether or not the phone is a family's; only a family's phone gets a code.",
        request=PhoneInput,
        responses={202: CodeSentSerializer},
    )
    def post(self, request: Request) -> Response:
        data = PhoneInput(data=request.data)
        data.is_valid(raise_exception=True)
        ip = self.throttle_classes[0]().get_ident(request)
        try:
            sent = login_code_send(phone=data.validated_data["phone"], ip=ip)
        except TooManyAttempts as exc:
            raise throttled(exc) from exc
        body = {"phone": phone_display(sent.phone), "expires_in": sent.expires_in, "resend_in": sent.resend_in}
        return Response(CodeSentSerializer(body).data, status=status.HTTP_202_ACCEPTED)


class LoginView(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [AuthIpThrottle]

    @extend_schema(
        operation_id="parent_auth_login",
        summary="Log in with the phone and its code",
        request=LoginInput,
        responses={200: TokensSerializer},
    )
    def post(self, request: Request) -> Response:
        data = LoginInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            tokens = login_code_verify(phone=data.validated_data["phone"], code=data.validated_data["code"])
        except TooManyAttempts as exc:
            raise throttled(exc) from exc
        return Response(tokens_body(tokens))


class RefreshView(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [AuthIpThrottle]

    @extend_schema(
        operation_id="parent_auth_refresh",
        summary="New tokens for a refresh token (which is then used up)",
        request=RefreshInput,
        responses={200: TokensSerializer},
    )
    def post(self, request: Request) -> Response:
        data = RefreshInput(data=request.data)
        data.is_valid(raise_exception=True)
        tokens = session_refresh(refresh=data.validated_data["refresh"])
        if tokens is None:
            raise exceptions.AuthenticationFailed(_("The login has expired or was ended. Log in again."))
        return Response(tokens_body(tokens))


class LogoutView(APIView):
    permission_classes = [IsParent]

    @extend_schema(
        operation_id="parent_auth_logout",
        summary="End this session: its access and refresh tokens stop working",
        request=None,
        responses={204: None},
    )
    def post(self, request: Request) -> Response:
        parent: Parent = request.user  # type: ignore[assignment]
        session_revoke(session=parent.session)
        return Response(status=status.HTTP_204_NO_CONTENT)
