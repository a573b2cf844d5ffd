"""A parent's message preferences (marketing consent per channel, with proof) and unsubscribe."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns.models import MessageChannel
from parents.api.family import guardian_of
from parents.api.permissions import IsParent
from parents.services.preferences import preference_wording, preferences_of, preferences_set, unsubscribe_all


class ChannelPreference(serializers.Serializer):
    channel = serializers.ChoiceField(choices=MessageChannel.choices)
    label = serializers.CharField()  # type: ignore[assignment]  # a "label" key, not the caption
    granted = serializers.BooleanField(help_text="Offers and news by this channel.")
    wording = serializers.CharField(help_text="The words shown beside the switch: the proof records them.")


class PreferencesSerializer(serializers.Serializer):
    channels = ChannelPreference(many=True)
    note = serializers.CharField(help_text="Login codes and lesson notices are sent whatever these say.")


class PreferencesInput(serializers.Serializer):
    sms = serializers.BooleanField(required=False)
    email = serializers.BooleanField(required=False)
    wechat = serializers.BooleanField(required=False)


def preferences_body(choices: dict[str, bool]) -> dict[str, Any]:
    return PreferencesSerializer(
        {
            "channels": [
                {
                    "channel": channel,
                    "label": MessageChannel(channel).label,
                    "granted": granted,
                    "wording": preference_wording(channel, not granted),
                }
                for channel, granted in choices.items()
            ],
            "note": _("Login codes and notices about your child's lessons are sent whatever you choose here."),
        }
    ).data


def _evidence(request: Request) -> str:
    return f"parent app, session {request.auth.pk}" if request.auth is not None else "parent app"


class PreferencesView(APIView):
    permission_classes = [IsParent]

    @extend_schema(operation_id="parent_preferences", summary="My message preferences", responses=PreferencesSerializer)
    def get(self, request: Request) -> Response:
        return Response(preferences_body(preferences_of(guardian_of(request))))

    @extend_schema(
        operation_id="parent_preferences_update",
        summary="Change my message preferences",
        request=PreferencesInput,
        responses=PreferencesSerializer,
    )
    def patch(self, request: Request) -> Response:
        data = PreferencesInput(data=request.data)
        data.is_valid(raise_exception=True)
        choices = preferences_set(
            guardian=guardian_of(request), choices=dict(data.validated_data), evidence=_evidence(request)
        )
        return Response(preferences_body(choices))


class UnsubscribeView(APIView):
    permission_classes = [IsParent]

    @extend_schema(
        operation_id="parent_unsubscribe",
        summary="No more offers or news by any channel",
        request=None,
        responses=PreferencesSerializer,
    )
    def post(self, request: Request) -> Response:
        return Response(preferences_body(unsubscribe_all(guardian=guardian_of(request), evidence=_evidence(request))))
