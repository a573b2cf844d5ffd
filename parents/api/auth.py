"""Parent login: POST auth/code/ (an SMS code), auth/login/ (phone and code -> tokens),
auth/wechat/ (a WeChat login code, and the first time a phone code -> tokens),
auth/refresh/ (a refresh token -> new tokens), auth/logout/ (this session ends)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
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
from parents.services.wechat_login import WeChatLoginOff, WeChatLoginRefused, WeChatUnavailable, wechat_login


class PhoneInput(serializers.Serializer):
    phone = serializers.CharField(max_length=40, help_text="The phone as the parent types it.")


class LoginInput(PhoneInput):
    code = serializers.CharField(max_length=12)


class WeChatLoginInput(serializers.Serializer):
    code = serializers.CharField(max_length=128, help_text="The code of the mini program's wx.login().")
    phone_code = serializers.CharField(
        max_length=128,
        required=False,
        allow_blank=True,
        help_text="The code of the getPhoneNumber button, when the answer was phone_required.",
    )


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


class WeChatLoginErrorSerializer(serializers.Serializer):
    """The one error shape (config/api_errors.py), with WeChat login's codes."""

    code = serializers.CharField(
        help_text=(
            "400: invalid (the body), invalid_code (the login code is unknown or expired), code_used, "
            "phone_required (no family is linked to this WeChat yet: ask WeChat for the phone and call "
            "again with phone_code), phone_code_invalid, no_family (no family has that phone: the "
            "campus must add it), wechat_bound_elsewhere, wechat_refused. 404: not_enabled. "
            "429: throttled. 503: wechat_unavailable."
        )
    )
    message = serializers.CharField(help_text="For the parent, in their language.")
    # The metaclass takes declared fields out of the class, so this does not shadow `Serializer.fields`.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.DictField(child=serializers.CharField())),
        help_text="Each field's problems (for code invalid).",
    )


class WeChatLoginProblem(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST


class WeChatLoginNotEnabled(exceptions.APIException):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_enabled"


class WeChatDown(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "wechat_unavailable"
    # Retry-After (DRF's handler sends it for `wait`).
    wait = 5


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


class WeChatLoginView(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [AuthIpThrottle]

    @extend_schema(
        operation_id="parent_auth_wechat",
        summary="Log in with WeChat (code2session; the first time, the phone WeChat vouches for)",
        description=(
            "`code` is wx.login()'s code. A family already linked to the WeChat account is logged in. "
            "Otherwise the answer is 400 phone_required: the mini program asks WeChat for the phone "
            "(getPhoneNumber) and calls again with a new `code` and the `phone_code`; the family with that "
            "phone is linked to the WeChat account and logged in (400 no_family when no family has it). "
            "Off (404 not_enabled) unless the server has WECHAT_APPID and WECHAT_SECRET. A busy or "
            "unreachable WeChat is a 503 with Retry-After."
        ),
        request=WeChatLoginInput,
        responses={
            200: TokensSerializer,
            400: OpenApiResponse(WeChatLoginErrorSerializer, description="The login cannot go on: see `code`."),
            404: OpenApiResponse(WeChatLoginErrorSerializer, description="WeChat login is not enabled."),
            429: OpenApiResponse(WeChatLoginErrorSerializer, description="Too many logins: see Retry-After."),
            503: OpenApiResponse(WeChatLoginErrorSerializer, description="WeChat is busy or cannot be reached."),
        },
    )
    def post(self, request: Request) -> Response:
        data = WeChatLoginInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            tokens = wechat_login(
                js_code=data.validated_data["code"], phone_code=data.validated_data.get("phone_code", "")
            )
        except WeChatLoginRefused as exc:
            raise WeChatLoginProblem(detail=exc.message, code=exc.code) from exc
        except WeChatLoginOff as exc:
            raise WeChatLoginNotEnabled(detail=str(exc)) from exc
        except WeChatUnavailable as exc:
            raise WeChatDown(detail=str(exc)) from exc
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
