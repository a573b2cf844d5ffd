"""The campaigns API under /api/v1/campaigns/: the list, a campaign with its templates, segment,
status and results (per group, with the uplift against the holdout), the dry run, and the
buttons of the page (launch, pause, resume, cancel).

The same doors as the pages at /campaigns/ (campaigns/views/campaigns.py): managers of the
campus and administrators; other roles a 403, another campus's campaign a 404. Reads through
`campaigns.selectors`, every change through `campaigns.services.campaigns` (which audits); a
change the campaign's status refuses is a 400 in the one error shape (config/api_errors.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.urls import path
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns.models import (
    Campaign,
    CampaignChannel,
    CampaignGoal,
    CampaignGroup,
    CampaignStatus,
    CampaignTemplate,
    SuppressionReason,
)
from campaigns.selectors import (
    ChannelResult,
    Results,
    campaign_get,
    campaign_results,
    campaigns_visible_to,
)
from campaigns.services.audience import DryRun
from campaigns.services.campaigns import (
    campaign_cancel,
    campaign_dry_run,
    campaign_launch,
    campaign_pause,
    campaign_resume,
)
from crm.api.permissions import staff_roles
from crm.models import Role, User

# As the pages: managers (of their campus) and administrators.
UsesCampaigns = staff_roles(Role.MANAGER, Role.ADMIN)


class CampaignRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class CampaignSerializer(serializers.ModelSerializer):
    campus = CampaignRefSerializer()
    segment = CampaignRefSerializer(allow_null=True)
    goal_label = serializers.CharField(source="get_goal_display")
    status_label = serializers.CharField(source="get_status_display")
    channels = serializers.ListField(child=serializers.ChoiceField(choices=CampaignChannel.choices))

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "campus",
            "goal",
            "goal_label",
            "status",
            "status_label",
            "segment",
            "channels",
            "holdout_pct",
            "split_a_pct",
            "attribution_days",
            "scheduled_at",
            "launched_at",
            "resolved_at",
            "finished_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class TemplateSerializer(serializers.ModelSerializer):
    class Meta:
        model = CampaignTemplate
        fields = ["variant", "channel", "subject", "text", "template_code"]
        read_only_fields = fields


class UpliftSerializer(serializers.Serializer):
    """In rate units (0.05 is five percentage points); null where a group is empty."""

    treated_rate = serializers.FloatField(allow_null=True)
    holdout_rate = serializers.FloatField(allow_null=True)
    uplift = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True, help_text="The 95% interval's lower end.")
    high = serializers.FloatField(allow_null=True, help_text="The 95% interval's upper end.")


class GroupResultSerializer(serializers.Serializer):
    group = serializers.ChoiceField(choices=CampaignGroup.choices)
    label = serializers.CharField()  # type: ignore[assignment]  # a "label" key, not the caption
    members = serializers.IntegerField()
    reached = serializers.IntegerField()
    converted = serializers.IntegerField(help_text="Booked a trial, signed or attended within the window.")
    won_back = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True, help_text="converted / members")
    uplift = UpliftSerializer(allow_null=True, help_text="Against the holdout; null for the holdout itself.")


class HeldSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(choices=SuppressionReason.choices)
    label = serializers.CharField()  # type: ignore[assignment]  # a "label" key, not the caption
    count = serializers.IntegerField()


def _held(suppressed: dict[str, int]) -> list[dict[str, Any]]:
    labels = dict(SuppressionReason.choices)
    return [
        {"reason": reason, "label": str(labels.get(reason, reason)), "count": n}
        for reason, n in sorted(suppressed.items())
    ]


class ChannelResultSerializer(serializers.Serializer):
    channel = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # a "label" key, not the caption
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    failed = serializers.IntegerField()
    waiting = serializers.IntegerField()
    unknown = serializers.IntegerField()
    held = serializers.SerializerMethodField(help_text="Held back (suppressed), by reason.")

    @extend_schema_field(HeldSerializer(many=True))
    def get_held(self, result: ChannelResult) -> list[dict[str, Any]]:
        return _held(result.suppressed)


class ResultsSerializer(serializers.Serializer):
    window_start = serializers.DateTimeField(allow_null=True)
    window_end = serializers.DateTimeField(allow_null=True)
    groups = GroupResultSerializer(many=True)
    channels = ChannelResultSerializer(many=True)
    opted_out = serializers.IntegerField()
    calls_open = serializers.IntegerField()
    calls_done = serializers.IntegerField()


class CampaignDetailSerializer(CampaignSerializer):
    templates = serializers.SerializerMethodField(help_text="One per variant and channel.")
    results = serializers.SerializerMethodField(help_text="null until the audience is resolved (the first send).")

    class Meta(CampaignSerializer.Meta):
        fields = [*CampaignSerializer.Meta.fields, "templates", "results"]
        read_only_fields = fields

    @extend_schema_field(TemplateSerializer(many=True))
    def get_templates(self, campaign: Campaign) -> list[dict[str, Any]]:
        return TemplateSerializer(campaign.templates.order_by("variant", "channel"), many=True).data  # type: ignore[return-value]

    @extend_schema_field(ResultsSerializer(allow_null=True))
    def get_results(self, campaign: Campaign) -> dict[str, Any] | None:
        results: Results | None = self.context.get("results")
        return ResultsSerializer(results).data if results is not None else None


class DryRunChannelSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=CampaignChannel.choices)
    label = serializers.CharField()  # type: ignore[assignment]  # a "label" key, not the caption
    reached = serializers.IntegerField()
    held = HeldSerializer(many=True)


class DryRunSerializer(serializers.Serializer):
    audience = serializers.IntegerField(help_text="Members the launch would resolve, the holdout included.")
    holdout = serializers.IntegerField()
    calls = serializers.IntegerField(help_text="Call tasks it would hand to consultants.")
    total_reached = serializers.IntegerField()
    channels = serializers.SerializerMethodField()

    @extend_schema_field(DryRunChannelSerializer(many=True))
    def get_channels(self, dry: DryRun) -> list[dict[str, Any]]:
        labels = dict(CampaignChannel.choices)
        return [
            {
                "channel": channel,
                "label": str(labels.get(channel, channel)),
                "reached": reached,
                "held": _held(dry.suppressed.get(channel, {})),
            }
            for channel, reached in dry.reached.items()
        ]


class CampaignFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=CampaignStatus.choices)
    goal = filters.ChoiceFilter(choices=CampaignGoal.choices)

    class Meta:
        model = Campaign
        fields = ["status", "goal"]


def _viewer(request: Request) -> User:
    return request.user  # type: ignore[return-value]


def detail_response(request: Request, campaign_id: int) -> Response:
    """A campaign as the detail answers it (read again after a change): its templates, and its
    results once the audience is resolved."""
    campaign = campaign_get(viewer=_viewer(request), campaign_id=campaign_id)
    results = campaign_results(campaign) if campaign.resolved_at is not None else None
    return Response(CampaignDetailSerializer(campaign, context={"request": request, "results": results}).data)


class CampaignList(generics.ListAPIView):
    """The campaigns the viewer may see, newest first."""

    permission_classes = [UsesCampaigns]
    serializer_class = CampaignSerializer
    filterset_class = CampaignFilter

    def get_queryset(self) -> QuerySet[Campaign]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no viewer
            return Campaign.objects.none()
        return (
            campaigns_visible_to(_viewer(self.request))
            .select_related("segment", "campus")
            .order_by("-created_at", "-pk")
        )

    @extend_schema(operation_id="campaign_list", summary="Campaigns")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class CampaignDetail(APIView):
    permission_classes = [UsesCampaigns]

    @extend_schema(
        operation_id="campaign_detail",
        summary="A campaign with its templates, segment, status and results",
        responses=CampaignDetailSerializer,
    )
    def get(self, request: Request, pk: int) -> Response:
        return detail_response(request, pk)


class CampaignDryRun(APIView):
    """What a launch now would reach, and hold back by reason, per channel; writes nothing."""

    permission_classes = [UsesCampaigns]

    @extend_schema(
        operation_id="campaign_dry_run",
        summary="Dry run: what a launch now would do",
        request=None,
        responses=DryRunSerializer,
    )
    def post(self, request: Request, pk: int) -> Response:
        viewer = _viewer(request)
        campaign = campaign_get(viewer=viewer, campaign_id=pk)
        return Response(DryRunSerializer(campaign_dry_run(actor=viewer, campaign=campaign)).data)


Service = Callable[..., Campaign]


def action_view(name: str, service: Service, summary: str) -> type[APIView]:
    """A button of the campaign's page: one service call, answered with the campaign."""

    class CampaignAction(APIView):
        permission_classes = [UsesCampaigns]

        @extend_schema(
            operation_id=f"campaign_{name}",
            summary=summary,
            request=None,
            responses=CampaignDetailSerializer,
        )
        def post(self, request: Request, pk: int) -> Response:
            viewer = _viewer(request)
            campaign = campaign_get(viewer=viewer, campaign_id=pk)
            service(actor=viewer, campaign=campaign)
            return detail_response(request, campaign.pk)

    CampaignAction.__name__ = CampaignAction.__qualname__ = f"Campaign{name.title()}"
    return CampaignAction


ACTIONS = {
    "launch": action_view(
        "launch", campaign_launch, "Launch a draft (now, or at its send time), or a finished campaign again"
    ),
    "pause": action_view("pause", campaign_pause, "Pause a scheduled or sending campaign"),
    "resume": action_view("resume", campaign_resume, "Resume a paused campaign: only what was not sent goes out"),
    "cancel": action_view("cancel", campaign_cancel, "Cancel: nothing more goes out"),
}

urlpatterns = [
    path("campaigns/", CampaignList.as_view(), name="api_campaign_list"),
    path("campaigns/<int:pk>/", CampaignDetail.as_view(), name="api_campaign_detail"),
    path("campaigns/<int:pk>/dry-run/", CampaignDryRun.as_view(), name="api_campaign_dry_run"),
    *[
        path(f"campaigns/<int:pk>/{name}/", view.as_view(), name=f"api_campaign_{name}")
        for name, view in ACTIONS.items()
    ],
]
