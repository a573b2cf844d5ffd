"""The demo institution's campaigns side (`manage.py seed_demo`): families' SMS consent with its
proof, a segment of dormant and churned students and a draft win-back campaign per campus, ready to preview,
dry-run and launch. Written through the services, as a person would."""

from __future__ import annotations

from dataclasses import dataclass

from campaigns.models import Campaign, CampaignGroup, MessageChannel
from campaigns.rules import HASH_RANGE, group_for
from campaigns.services.campaigns import CampaignInput, TemplateInput, campaign_save
from campaigns.services.consent import consent_record
from crm.management.demo import DEMO_PARENT_PHONE
from crm.models import Campus, Guardian, Role, User
from crm.phones import normalize_phone
from personas.conditions import campus_viewer
from personas.models import Segment
from personas.selectors import segment_members
from personas.services.segments import segment_create

CONSENT_WORDING = "本人同意接收{campus}的课程通知与优惠短信，可随时回复TD退订。"
# Every fifth family never gave consent: a dry run shows them held back.
NO_CONSENT_EVERY = 5
DEMO_HOLDOUT_PCT = 10
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


@dataclass(frozen=True)
class Showcase:
    """Two families of the demo campaign's audience, each with the member it is reached about:
    one that never gave consent (a dry run holds it back) and one that did (it is reached)."""

    held_back: tuple[int, int] | None  # (student, guardian)
    reached: tuple[int, int] | None


def showcase_families(campus: Campus, segment: Segment, *, consented_phone: str) -> Showcase:
    """The first family of the segment's members (not the one of `consented_phone`, which gave
    consent), and the first other one: found in the segment as a launch resolves it, so whatever
    the stages of the day, they are members."""
    members = segment_members(viewer=campus_viewer(campus.pk), segment=segment)
    rows = list(
        Guardian.objects.filter(students__in=members)
        .exclude(phone="")
        .order_by("students__pk", "pk")
        .values_list("students__pk", "pk", "phone")
    )
    held_back = next(((student, guardian) for student, guardian, phone in rows if phone != consented_phone), None)
    reached = next(
        ((student, guardian) for student, guardian, _ in rows if held_back is None or guardian != held_back[1]), None
    )
    return Showcase(held_back=held_back, reached=reached)


def seed_outside_holdout(campaign: Campaign, students: list[int]) -> int:
    """A seed that puts these students outside the campaign's holdout.

    A campaign draws its seed at random, and the audience of the demo campaign is a few
    students: the holdout would often take the only family without consent or every family
    with it, and a dry run would then show nobody held back, or nobody reached. A step of one
    hundredth of the hash range moves every student's bucket by one; each student is in the
    holdout for at most `holdout_pct + 1` of the 50 steps a seed can take, so two always find one."""
    has_b = campaign.templates.filter(variant="B").exists()
    return next(
        seed
        for seed in range(0, 2**31, HASH_RANGE // 100)
        if all(
            group_for(
                seed=seed,
                student_id=student,
                holdout_pct=campaign.holdout_pct,
                split_a_pct=campaign.split_a_pct,
                has_b=has_b,
            )
            != CampaignGroup.HOLDOUT
            for student in students
        )
    )


def seed_campaigns() -> DemoCampaigns:
    consents = 0
    campaigns = 0
    for campus in Campus.objects.order_by("pk"):
        manager = User.objects.filter(campus=campus, groups__name=Role.MANAGER).order_by("pk").first()
        desk = User.objects.filter(campus=campus, groups__name=Role.FRONT_DESK).order_by("pk").first()
        if manager is None or desk is None:
            continue
        segment = Segment.objects.filter(campus=campus, name=DORMANT_SEGMENT).first() or segment_create(
            actor=manager,
            name=DORMANT_SEGMENT,
            description="最近没来上课或已流失的学员",
            conditions={"all": [{"field": "stage", "op": "in", "value": ["dormant", "churned"]}]},
            campus=campus,
        )
        # A dry run of the demo campaign always shows a family held back for no consent and one
        # reached: the first family of the audience never gave consent, the next one did, and
        # both are outside the holdout. Of the other families, every fifth never gave consent.
        # The demo parent said yes at the front desk, so the parent app has a switch to turn off.
        demo_parent = normalize_phone(DEMO_PARENT_PHONE)
        showcase = showcase_families(campus, segment, consented_phone=demo_parent)
        held_back = showcase.held_back[1] if showcase.held_back else None
        reached = showcase.reached[1] if showcase.reached else None
        families = list(Guardian.objects.filter(students__campus=campus).distinct().order_by("pk"))
        for index, guardian in enumerate(families):
            always = guardian.pk == reached or guardian.phone == demo_parent
            if guardian.pk == held_back or (index % NO_CONSENT_EVERY == 0 and not always):
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
        campaign = Campaign.objects.filter(campus=campus, name=DEMO_CAMPAIGN).first()
        if campaign is None:
            campaign = campaign_save(
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
                    holdout_pct=DEMO_HOLDOUT_PCT,
                ),
            )
            campaigns += 1
        if campaign.resolved_at is None:
            # Set past the service: nobody picks a campaign's seed, but the demo must show both.
            shown = [pair[0] for pair in (showcase.held_back, showcase.reached) if pair is not None]
            Campaign.objects.filter(pk=campaign.pk).update(seed=seed_outside_holdout(campaign, shown))
    return DemoCampaigns(consents=consents, campaigns=campaigns)
