"""Campaigns from draft to done through the services, against the real local SMS gateway: the
audience resolved once, the holdout fixed, every family reached once, pause and resume, the
marketing rules, and the campus boundary."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError

from campaigns.models import (
    CallTask,
    Campaign,
    CampaignMember,
    CampaignStatus,
    Message,
    MessageStatus,
    SuppressionReason,
)
from campaigns.rules import SMS_OPT_OUT_WORDING, group_for
from campaigns.services.campaigns import (
    CampaignInput,
    TemplateInput,
    campaign_cancel,
    campaign_dry_run,
    campaign_launch,
    campaign_pause,
    campaign_resume,
    campaign_save,
    campaigns_idle,
)
from campaigns.services.consent import consent_opt_out_by_reply, consent_record
from campaigns.services.outbox import outbox_send_batch
from campaigns.tasks import campaigns_tick
from crm.models import Campus, Guardian, Student, User
from personas.models import Segment
from tests import factories
from tests.campaigns.gateway import Gateway

pytestmark = pytest.mark.django_db(transaction=True)

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
DORMANT = {"all": [{"field": "stage", "op": "in", "value": ["dormant"]}]}
OFFER = "【SCRM】{guardian}您好，{student}还有{hours_left}课时，{consultant}老师为您留了体验名额。"


def shanghai(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture
def clock() -> Iterator[Any]:
    with time_machine.travel(shanghai(3, 14), tick=False) as traveller:
        yield traveller


@pytest.fixture
def dormant_segment(campus_a: Campus) -> Segment:
    return factories.SegmentFactory(campus=campus_a, name="沉睡学员", conditions=DORMANT)


def dormant_families(campus: Campus | None, actor: User, n: int, *, consent: bool = True) -> list[Any]:
    assert campus is not None
    students = []
    for _ in range(n):
        guardian = factories.GuardianFactory()
        students.append(factories.StudentFactory(campus=campus, stage="dormant", owner=actor, guardians=[guardian]))
        if consent:
            consent_record(guardian=guardian, channel="sms", granted=True, source="staff", wording="同意", actor=actor)
    return students


def sms_campaign(manager: User, segment: Segment, **changes: object) -> Campaign:
    values: dict[str, object] = {
        "name": "沉睡唤醒",
        "goal": "win_back",
        "segment": segment,
        "channels": ["sms"],
        "templates": [TemplateInput(channel="sms", text=OFFER)],
    }
    values.update(changes)
    assert manager.campus is not None
    return campaign_save(actor=manager, campus=manager.campus, data=CampaignInput(**values))  # type: ignore[arg-type]


class TestDrafts:
    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"name": " "}, "name"),
            ({"goal": "world_peace"}, "goal"),
            ({"channels": []}, "channels"),
            ({"channels": ["fax"]}, "channels"),
            ({"holdout_pct": 95}, "holdout_pct"),
            ({"templates": [TemplateInput(channel="sms", text="{student.__class__}")]}, "templates"),
            ({"templates": [TemplateInput(channel="sms", text="{studnet}好")]}, "templates"),
            ({"templates": [TemplateInput(channel="sms", text="长" * 301)]}, "templates"),
            ({"templates": []}, "templates"),
            ({"channels": ["sms", "email"]}, "templates"),
            (
                {"channels": ["email"], "templates": [TemplateInput(channel="email", text="好久不见")]},
                "templates",
            ),
        ],
    )
    def test_a_bad_draft_says_what_is_wrong_and_writes_nothing(
        self, manager: User, dormant_segment: Segment, changes: dict[str, object], field: str
    ) -> None:
        with pytest.raises(ValidationError) as caught:
            sms_campaign(manager, dormant_segment, **changes)
        assert field in caught.value.message_dict
        assert not Campaign.objects.exists()

    def test_another_campus_segment_is_not_an_audience(self, manager: User, campus_b: Campus) -> None:
        theirs = factories.SegmentFactory(campus=campus_b, conditions=DORMANT)
        with pytest.raises(ValidationError) as caught:
            sms_campaign(manager, theirs)
        assert "segment" in caught.value.message_dict

    @pytest.mark.parametrize("who", ["front_desk", "teacher", "manager_b"])
    def test_only_the_campus_manager_drafts_and_launches(
        self, manager: User, dormant_segment: Segment, who: str, request: pytest.FixtureRequest
    ) -> None:
        campaign = sms_campaign(manager, dormant_segment)
        actor = request.getfixturevalue(who)
        with pytest.raises(PermissionDenied):
            campaign_save(
                actor=actor,
                campus=campaign.campus,
                campaign=campaign,
                data=CampaignInput(name="x", goal="win_back", segment=dormant_segment, channels=["sms"], templates=[]),
            )
        for action in (campaign_launch, campaign_pause, campaign_cancel, campaign_dry_run):
            with pytest.raises(PermissionDenied):
                action(actor=actor, campaign=campaign)
        campaign.refresh_from_db()
        assert campaign.status == CampaignStatus.DRAFT


class TestSending:
    def test_launch_reaches_every_consenting_family_once_with_their_own_words(
        self, clock, sms_gateway_server: Gateway, manager: User, front_desk: User, dormant_segment: Segment
    ) -> None:
        students = dormant_families(manager.campus, front_desk, 5)
        factories.StudentFactory(campus=manager.campus, stage="active")  # not in the segment
        campaign = campaign_launch(actor=manager, campaign=sms_campaign(manager, dormant_segment))
        campaign.refresh_from_db()
        assert campaign.status == CampaignStatus.DONE
        assert sms_gateway_server.sent_count == 5
        texts = sorted(request["body"]["content"] for request in sms_gateway_server.requests)
        assert all(text.endswith(SMS_OPT_OUT_WORDING) for text in texts)
        assert any(f"{students[0].name}还有0课时，前台小李老师" in text for text in texts)
        assert Message.objects.filter(campaign=campaign, status=MessageStatus.SENT).count() == 5

    def test_relaunching_a_finished_campaign_sends_nothing_again(
        self, clock, sms_gateway_server: Gateway, manager: User, front_desk: User, dormant_segment: Segment
    ) -> None:
        dormant_families(manager.campus, front_desk, 3)
        campaign = campaign_launch(actor=manager, campaign=sms_campaign(manager, dormant_segment))
        dormant_families(manager.campus, front_desk, 1)  # joined the segment since: not reached
        campaign_launch(actor=manager, campaign=Campaign.objects.get(pk=campaign.pk))
        assert sms_gateway_server.sent_count == 3
        assert len(sms_gateway_server.requests) == 3
        assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.DONE

    def test_the_holdout_is_drawn_by_the_rule_and_never_reached(
        self, clock, sms_gateway_server: Gateway, manager: User, front_desk: User, dormant_segment: Segment
    ) -> None:
        dormant_families(manager.campus, front_desk, 30)
        campaign = sms_campaign(
            manager,
            dormant_segment,
            holdout_pct=30,
            templates=[
                TemplateInput(channel="sms", text=OFFER),
                TemplateInput(channel="sms", variant="B", text="B：{student}"),
            ],
        )
        campaign_launch(actor=manager, campaign=campaign)
        members = list(CampaignMember.objects.filter(campaign=campaign))
        assert len(members) == 30
        for member in members:
            expected = group_for(
                seed=campaign.seed, student_id=member.student_id, holdout_pct=30, split_a_pct=50, has_b=True
            )
            assert member.group == expected
            assert member.stage_at_launch == "dormant"
        reached = {m.student_id for m in Message.objects.filter(campaign=campaign, status=MessageStatus.SENT)}
        assert reached == {m.student_id for m in members if m.group != "holdout"}
        variants = {m.variant for m in Message.objects.filter(campaign=campaign)}
        assert variants <= {"A", "B"}

    def test_families_without_consent_or_opted_out_are_suppressed_by_reason(
        self, clock, sms_gateway_server: Gateway, manager: User, front_desk: User, dormant_segment: Segment
    ) -> None:
        dormant_families(manager.campus, front_desk, 2)
        never_asked = dormant_families(manager.campus, front_desk, 1, consent=False)
        campaign = sms_campaign(manager, dormant_segment)
        opted = dormant_families(manager.campus, front_desk, 1)
        consent_opt_out_by_reply(phone=opted[0].guardians.get().phone, reply="TD", at=shanghai(3, 14))
        dry = campaign_dry_run(actor=manager, campaign=campaign)
        assert (dry.audience, dry.reached, dry.suppressed) == (
            4,
            {"sms": 2},
            {"sms": {SuppressionReason.NO_CONSENT: 1, SuppressionReason.OPTED_OUT: 1}},
        )
        assert not CampaignMember.objects.exists() and not Message.objects.exists()  # a dry run writes nothing
        campaign_launch(actor=manager, campaign=campaign)
        assert sms_gateway_server.sent_count == 2
        held = Message.objects.get(campaign=campaign, student=never_asked[0])
        assert (held.status, held.suppressed_reason) == (MessageStatus.SUPPRESSED, SuppressionReason.NO_CONSENT)

    def test_an_opt_out_between_launch_and_send_is_honoured(
        self, clock, sms_gateway_server: Gateway, manager: User, front_desk: User, dormant_segment: Segment
    ) -> None:
        students = dormant_families(manager.campus, front_desk, 2)
        clock.move_to(shanghai(3, 22))
        campaign = campaign_launch(actor=manager, campaign=sms_campaign(manager, dormant_segment))
        assert sms_gateway_server.requests == []  # quiet hours: waiting
        assert Message.objects.filter(campaign=campaign, status=MessageStatus.QUEUED).count() == 2
        consent_opt_out_by_reply(phone=students[0].guardians.get().phone, reply="退订", at=shanghai(3, 23))
        clock.move_to(shanghai(4, 9, 1))
        assert campaigns_tick() == 1
        assert sms_gateway_server.sent_count == 1
        held = Message.objects.get(campaign=campaign, student=students[0])
        assert held.suppressed_reason == SuppressionReason.OPTED_OUT
        assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.DONE

    def test_the_cap_holds_across_two_overlapping_campaigns(
        self, clock, sms_gateway_server: Gateway, manager: User, front_desk: User, dormant_segment: Segment
    ) -> None:
        dormant_families(manager.campus, front_desk, 3)
        first = sms_campaign(manager, dormant_segment)
        second = sms_campaign(manager, dormant_segment, name="续费提醒", goal="renewal")
        clock.move_to(shanghai(3, 22))  # both launched in quiet hours: both resolved, nothing sent
        campaign_launch(actor=manager, campaign=first)
        campaign_launch(actor=manager, campaign=second)
        clock.move_to(shanghai(4, 9, 1))
        campaigns_tick()
        assert sms_gateway_server.sent_count == 3
        capped = Message.objects.filter(suppressed_reason=SuppressionReason.FREQUENCY_CAP)
        assert capped.count() == 3
        assert {m.campaign_id for m in capped} == {second.pk}

    def test_a_pause_mid_send_stops_after_the_batch_and_resume_sends_each_family_once(
        self, clock, sms_gateway_server: Gateway, manager: User, front_desk: User, dormant_segment: Segment
    ) -> None:
        dormant_families(manager.campus, front_desk, 5)
        clock.move_to(shanghai(3, 22))  # launched in quiet hours: resolved, waiting
        campaign = campaign_launch(actor=manager, campaign=sms_campaign(manager, dormant_segment))
        clock.move_to(shanghai(4, 9, 1))
        assert outbox_send_batch(campaign.pk, size=2).sent == 2  # a worker's first batch
        campaign_pause(actor=manager, campaign=campaign)
        assert outbox_send_batch(campaign.pk, size=2).stopped  # the next batch sees the pause
        assert campaigns_tick() == 0
        assert sms_gateway_server.sent_count == 2
        campaign_resume(actor=manager, campaign=Campaign.objects.get(pk=campaign.pk))
        assert sms_gateway_server.sent_count == 5
        assert len(sms_gateway_server.requests) == 5  # nobody's message was sent a second time
        assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.DONE

    def test_pause_stops_and_resume_sends_only_the_rest(
        self, clock, sms_gateway_server: Gateway, manager: User, front_desk: User, dormant_segment: Segment, settings
    ) -> None:
        settings.CAMPAIGN_BATCH_SIZE = 2
        dormant_families(manager.campus, front_desk, 5)
        campaign = sms_campaign(manager, dormant_segment, scheduled_at=shanghai(3, 15))
        campaign_launch(actor=manager, campaign=campaign)
        assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SCHEDULED
        campaign_pause(actor=manager, campaign=campaign)
        clock.move_to(shanghai(3, 15, 1))
        campaigns_tick()
        assert sms_gateway_server.requests == []  # paused: the schedule does not start it
        campaign_resume(actor=manager, campaign=Campaign.objects.get(pk=campaign.pk))
        assert sms_gateway_server.sent_count == 5
        for action in (campaign_resume, campaign_pause):
            with pytest.raises(ValidationError):
                action(actor=manager, campaign=Campaign.objects.get(pk=campaign.pk))
        assert len(sms_gateway_server.requests) == 5

    def test_cancel_leaves_the_rest_unsent(
        self, clock, sms_gateway_server: Gateway, manager: User, front_desk: User, dormant_segment: Segment
    ) -> None:
        dormant_families(manager.campus, front_desk, 2)
        clock.move_to(shanghai(3, 22))
        campaign = campaign_launch(actor=manager, campaign=sms_campaign(manager, dormant_segment))
        campaign_cancel(actor=manager, campaign=campaign)
        clock.move_to(shanghai(4, 9, 1))
        campaigns_tick()
        assert sms_gateway_server.requests == []
        assert campaigns_idle() == []
        with pytest.raises(ValidationError):
            campaign_launch(actor=manager, campaign=Campaign.objects.get(pk=campaign.pk))

    def test_an_unreachable_rate_limiter_sends_nothing_and_loses_nothing(
        self, clock, sms_gateway_server: Gateway, manager: User, front_desk: User, dormant_segment: Segment, settings
    ) -> None:
        """The limit's counters live in Redis: while it restarts nobody knows how many went out
        this second, so nothing goes, and every row is back in the queue, unsent, no attempt spent."""
        dormant_families(manager.campus, front_desk, 3)
        settings.MESSAGING_RATE_LIMITS = {**settings.MESSAGING_RATE_LIMITS, "sms": 100}
        redis_down = "redis://127.0.0.1:1/0"  # nothing listens on port 1
        settings.CACHES = {
            "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_down}
        }
        campaign = campaign_launch(actor=manager, campaign=sms_campaign(manager, dormant_segment))
        assert sms_gateway_server.requests == []
        rows = Message.objects.filter(campaign=campaign)
        assert {(m.status, m.attempts, m.error_code) for m in rows} == {(MessageStatus.QUEUED, 0, "rate_limiter")}
        assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENDING
        # Redis is back; the beat gives the campaign workers again once it has been idle.
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
        clock.shift(settings.CAMPAIGN_IDLE_SECONDS + 1)
        campaigns_tick()
        assert sms_gateway_server.sent_count == 3
        assert {(m.status, m.attempts) for m in rows.all()} == {(MessageStatus.SENT, 1)}
        assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.DONE

    def test_a_call_task_goes_to_each_students_consultant(
        self, clock, sms_gateway_server: Gateway, manager: User, front_desk: User, dormant_segment: Segment
    ) -> None:
        students = dormant_families(manager.campus, front_desk, 2)
        campaign = sms_campaign(
            manager,
            dormant_segment,
            channels=["call"],
            templates=[TemplateInput(channel="call", text="问候{guardian}，了解{student}近况，邀请回来上课。")],
        )
        campaign_launch(actor=manager, campaign=campaign)
        tasks = CallTask.objects.filter(campaign=campaign)
        assert {(t.student_id, t.consultant_id, t.status) for t in tasks} == {
            (s.pk, front_desk.pk, "open") for s in students
        }
        assert sms_gateway_server.requests == []


def guardians_of(students: list[Student]) -> list[Guardian]:
    return [s.guardians.get() for s in students]
