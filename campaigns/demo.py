"""The demo institution's campaigns side (`manage.py seed_demo`): families' SMS consent with its
proof, a segment of dormant and churned students and a draft win-back campaign per campus, ready to preview,
dry-run and launch. Written through the services, as a person would."""

from __future__ import annotations

from dataclasses import dataclass

from campaigns.models import Campaign, MessageChannel
from campaigns.services.campaigns import CampaignInput, TemplateInput, campaign_save
from campaigns.services.consent import consent_record
from crm.management.demo import DEMO_PARENT_PHONE
from crm.models import Campus, Guardian, Role, User
from crm.phones import normalize_phone
from personas.models import Segment
from personas.services.segments import segment_create

CONSENT_WORDING = "本人同意接收{campus}的课程通知与优惠短信，可随时回复TD退订。"
# Every fifth family never gave consent: a dry run shows them held back.
NO_CONSENT_EVERY = 5
DEMO_CAMPAIGN = "寒假沉睡学员唤醒"
DORMANT_SEGMENT = "沉睡与流失学员"
SMS_TEXT = (
    "【{campus}】{{家长}}您好，{{学员}}好久没来上课了，还有{{剩余课时}}课时等着TA。寒假班本周开放体验，回复1预约。"
)
CALL_SCRIPT = "问候{家长}，关心{学员}近况；说明还剩{剩余课时}课时，邀请寒假回来体验一节，约好时间后登记。"


@dataclass(frozen=True)
class DemoCampaigns:
    consents: int
    campaigns: int


def seed_campaigns() -> DemoCampaigns:
    consents = 0
    campaigns = 0
    for campus in Campus.objects.order_by("pk"):
        manager = User.objects.filter(campus=campus, groups__name=Role.MANAGER).order_by("pk").first()
        desk = User.objects.filter(campus=campus, groups__name=Role.FRONT_DESK).order_by("pk").first()
        if manager is None or desk is None:
            continue
        families = list(Guardian.objects.filter(students__campus=campus).distinct().order_by("pk"))
        # Every fifth family, and the first family of a dormant or churned student (so a dry run of
        # the demo campaign always shows someone held back), never gave consent.
        first_silent = (
            Guardian.objects.filter(students__campus=campus, students__pipeline__stage__in=["dormant", "churned"])
            .order_by("pk")
            .values_list("pk", flat=True)
            .first()
        )
        demo_parent = normalize_phone(DEMO_PARENT_PHONE)
        for index, guardian in enumerate(families):
            # The demo parent said yes at the front desk, so the parent app has a switch to turn off.
            skipped = index % NO_CONSENT_EVERY == 0 and guardian.phone != demo_parent
            if skipped or guardian.pk == first_silent:
                continue
            consent_record(
                guardian=guardian,
                channel=MessageChannel.SMS,
                granted=True,
                source="staff",
                wording=CONSENT_WORDING.format(campus=campus.name),
                evidence="入学登记表",
                actor=desk,
                at=guardian.created_at,
            )
            consents += 1
        segment = Segment.objects.filter(campus=campus, name=DORMANT_SEGMENT).first() or segment_create(
            actor=manager,
            name=DORMANT_SEGMENT,
            description="最近没来上课或已流失的学员",
            conditions={"all": [{"field": "stage", "op": "in", "value": ["dormant", "churned"]}]},
            campus=campus,
        )
        if not Campaign.objects.filter(campus=campus, name=DEMO_CAMPAIGN).exists():
            campaign_save(
                actor=manager,
                campus=campus,
                data=CampaignInput(
                    name=DEMO_CAMPAIGN,
                    goal="win_back",
                    segment=segment,
                    channels=["sms", "call"],
                    templates=[
                        TemplateInput(channel="sms", text=SMS_TEXT.format(campus=campus.name)),
                        TemplateInput(channel="call", text=CALL_SCRIPT),
                    ],
                    holdout_pct=10,
                ),
            )
            campaigns += 1
    return DemoCampaigns(consents=consents, campaigns=campaigns)
