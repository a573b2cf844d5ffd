"""The campaigns pages: who may open what, the builder's errors, the dry run, the buttons, the
results, the call tasks in the follow-up list; constant query counts."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from campaigns.models import CallTask, Campaign, CampaignStatus, Message, MessageStatus
from campaigns.services.campaigns import CampaignInput, TemplateInput, campaign_launch, campaign_save
from campaigns.services.consent import consent_record
from crm.models import Campus, Consultation, User
from personas.models import Segment
from tests import factories
from tests.campaigns.gateway import Gateway

pytestmark = pytest.mark.django_db(transaction=True)

# A weekday afternoon in the campus's zone: what the pages send does not wait for quiet hours
# (tests/campaigns/test_marketing.py tests them), whatever the hour the suite runs at.
AFTERNOON = dt.datetime(2026, 12, 3, 14, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))


@pytest.fixture(autouse=True)
def afternoon() -> Iterator[None]:
    with time_machine.travel(AFTERNOON, tick=True):
        yield


DORMANT = {"all": [{"field": "stage", "op": "in", "value": ["dormant"]}]}


@pytest.fixture
def segment(campus_a: Campus) -> Segment:
    return factories.SegmentFactory(campus=campus_a, name="沉睡学员", conditions=DORMANT)


def families(campus: Campus | None, owner: User, n: int) -> list[Any]:
    assert campus is not None
    students = []
    for _ in range(n):
        guardian = factories.GuardianFactory()
        student = factories.StudentFactory(campus=campus, stage="dormant", owner=owner, guardians=[guardian])
        consent_record(guardian=guardian, channel="sms", granted=True, source="staff", wording="同意", actor=owner)
        students.append(student)
    return students


def draft(manager: User, segment: Segment, channels: list[str] | None = None, **changes: object) -> Campaign:
    channels = channels or ["sms"]
    templates = [TemplateInput(channel=c, text="{guardian}您好，{student}想念你") for c in channels]
    data = CampaignInput(name="唤醒", goal="win_back", segment=segment, channels=channels, templates=templates)
    for name, value in changes.items():
        setattr(data, name, value)
    assert manager.campus is not None
    return campaign_save(actor=manager, campus=manager.campus, data=data)


def form_data(audience: Segment, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "寒假唤醒",
        "goal": "win_back",
        "segment": audience.pk,
        "channels": ["sms", "call"],
        "holdout_pct": "10",
        "split_a_pct": "50",
        "attribution_days": "14",
        "sms_a_text": "{guardian}您好，{student}还有{hours_left}课时未上。",
        "call_a_text": "问候{guardian}，邀请{student}回来上课。",
    }
    data.update(changes)
    return data


class TestAccess:
    @pytest.mark.parametrize("who", ["front_desk", "teacher"])
    def test_other_roles_are_refused(self, client: Client, who: str, request: pytest.FixtureRequest) -> None:
        client.force_login(request.getfixturevalue(who))
        for name in ("campaign_list", "campaign_new"):
            assert client.get(reverse(name)).status_code == 403

    def test_anonymous_goes_to_log_in(self, client: Client) -> None:
        response = client.get(reverse("campaign_list"))
        assert response.status_code == 302 and "/login" in response["Location"]

    def test_another_campus_campaign_is_not_there(
        self, client: Client, manager: User, manager_b: User, segment: Segment
    ) -> None:
        campaign = draft(manager, segment)
        client.force_login(manager_b)
        assert "唤醒" not in client.get(reverse("campaign_list")).content.decode()
        for name in ("campaign_detail", "campaign_edit"):
            assert client.get(reverse(name, args=[campaign.pk])).status_code == 404
        assert client.post(reverse("campaign_dry_run", args=[campaign.pk])).status_code == 404
        assert client.post(reverse("campaign_action", args=[campaign.pk, "launch"])).status_code == 404
        assert Campaign.objects.get().status == CampaignStatus.DRAFT


class TestBuilder:
    def test_a_manager_builds_a_draft(self, client: Client, manager: User, segment: Segment) -> None:
        client.force_login(manager)
        response = client.post(reverse("campaign_new"), form_data(segment))
        campaign = Campaign.objects.get()
        assert response.status_code == 302 and response["Location"] == reverse("campaign_detail", args=[campaign.pk])
        assert (campaign.channels, campaign.holdout_pct, campaign.status) == (["sms", "call"], 10, "draft")
        assert {(t.channel, t.variant) for t in campaign.templates.all()} == {("sms", "A"), ("call", "A")}

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"sms_a_text": ""}, "SMS A: write the text."),
            ({"sms_a_text": "{student.__class__}"}, "is not a variable"),
            ({"channels": []}, "This field is required."),
            ({"holdout_pct": "95"}, "Ensure this value is less than or equal to 90."),
            ({"with_b": "on"}, "SMS B: write the text."),
        ],
    )
    def test_a_bad_draft_is_shown_again_with_the_reason(
        self, client: Client, manager: User, segment: Segment, changes: dict[str, object], message: str
    ) -> None:
        client.force_login(manager)
        response = client.post(reverse("campaign_new"), form_data(segment, **changes))
        assert response.status_code == 422
        assert message in response.content.decode()
        assert not Campaign.objects.exists()

    def test_another_campus_segment_is_not_offered(
        self, client: Client, manager: User, campus_b: Campus, segment: Segment
    ) -> None:
        theirs = factories.SegmentFactory(campus=campus_b, name="别人的分群", conditions=DORMANT)
        client.force_login(manager)
        assert "别人的分群" not in client.get(reverse("campaign_new")).content.decode()
        response = client.post(reverse("campaign_new"), form_data(segment, segment=theirs.pk))
        assert response.status_code == 422
        assert not Campaign.objects.exists()

    def test_a_launched_campaign_is_not_edited(
        self, client: Client, sms_gateway_server: Gateway, manager: User, segment: Segment
    ) -> None:
        campaign = campaign_launch(actor=manager, campaign=draft(manager, segment))
        client.force_login(manager)
        response = client.post(reverse("campaign_edit", args=[campaign.pk]), form_data(segment, name="改名"))
        assert response.status_code == 302
        assert Campaign.objects.get().name == "唤醒"


class TestDetail:
    def test_preview_dry_run_launch_and_results(
        self, client: Client, sms_gateway_server: Gateway, manager: User, front_desk: User, segment: Segment
    ) -> None:
        students = families(manager.campus, front_desk, 3)
        campaign = draft(manager, segment)
        client.force_login(manager)
        page = client.get(reverse("campaign_detail", args=[campaign.pk])).content.decode()
        assert f"{students[0].name}想念你" in page
        dry = client.post(reverse("campaign_dry_run", args=[campaign.pk])).content.decode()
        assert "data-dry-run" in dry and "<td data-reached>3</td>" in dry
        response = client.post(reverse("campaign_action", args=[campaign.pk, "launch"]))
        assert response.status_code == 302
        assert sms_gateway_server.sent_count == 3
        page = client.get(reverse("campaign_detail", args=[campaign.pk])).content.decode()
        assert 'data-status="done"' in page
        assert "<td data-sent>3</td>" in page
        assert "campaign-chart-data" in page

    def test_an_unknown_action_is_a_404(self, client: Client, manager: User, segment: Segment) -> None:
        campaign = draft(manager, segment)
        client.force_login(manager)
        assert client.post(reverse("campaign_action", args=[campaign.pk, "explode"])).status_code == 404

    def test_a_refused_action_says_why(self, client: Client, manager: User, segment: Segment) -> None:
        campaign = draft(manager, segment)
        client.force_login(manager)
        response = client.post(reverse("campaign_action", args=[campaign.pk, "resume"]), follow=True)
        assert "Only a paused campaign can be resumed." in response.content.decode()


class TestCalls:
    def launch_calls(self, manager: User, segment: Segment) -> Campaign:
        campaign = draft(manager, segment, channels=["call"])
        return campaign_launch(actor=manager, campaign=campaign)

    def test_the_consultant_sees_the_call_and_records_it(
        self, client: Client, manager: User, front_desk: User, segment: Segment
    ) -> None:
        [student] = families(manager.campus, front_desk, 1)
        self.launch_calls(manager, segment)
        task = CallTask.objects.get()
        client.force_login(front_desk)
        page = client.get(reverse("followups")).content.decode()
        assert f'data-call-task="{task.pk}"' in page and f"{student.name}想念你" in page
        response = client.post(
            reverse("call_task_record", args=[task.pk]), {"content": "家长说下周回来上课", "intent": "high"}
        )
        assert response.status_code == 302
        task.refresh_from_db()
        assert task.status == "done" and task.consultation is not None
        assert Consultation.objects.get().content == "家长说下周回来上课"
        assert f'data-call-task="{task.pk}"' not in client.get(reverse("followups")).content.decode()

    def test_an_empty_call_record_is_refused_and_the_task_stays_open(
        self, client: Client, manager: User, front_desk: User, segment: Segment
    ) -> None:
        families(manager.campus, front_desk, 1)
        self.launch_calls(manager, segment)
        task = CallTask.objects.get()
        client.force_login(front_desk)
        response = client.post(reverse("call_task_record", args=[task.pk]), {"content": "", "intent": "high"})
        assert response.status_code == 422
        task.refresh_from_db()
        assert task.status == "open" and not Consultation.objects.exists()

    def test_other_consultants_and_campuses_cannot_record_it(
        self, client: Client, manager: User, front_desk: User, front_desk_b: User, campus_a: Campus, segment: Segment
    ) -> None:
        families(manager.campus, front_desk, 1)
        self.launch_calls(manager, segment)
        task = CallTask.objects.get()
        colleague = factories.UserFactory(username="carl", campus=campus_a, role="front_desk")
        for actor, status in ((colleague, 403), (front_desk_b, 404)):
            client.force_login(actor)
            response = client.post(reverse("call_task_record", args=[task.pk]), {"content": "x", "intent": "high"})
            assert response.status_code == status
        assert CallTask.objects.get().status == "open"


def count_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


class TestQueryCounts:
    def test_list_and_results_read_the_same_whatever_the_size(
        self, client: Client, sms_gateway_server: Gateway, manager: User, front_desk: User, segment: Segment
    ) -> None:
        families(manager.campus, front_desk, 2)
        small = campaign_launch(actor=manager, campaign=draft(manager, segment, channels=["sms", "call"]))
        client.force_login(manager)
        list_small = count_queries(client, reverse("campaign_list"))
        detail_small = count_queries(client, reverse("campaign_detail", args=[small.pk]))
        followups_small = count_queries(client, reverse("followups"))
        families(manager.campus, front_desk, 8)
        big = campaign_launch(actor=manager, campaign=draft(manager, segment, channels=["sms", "call"]))
        draft(manager, segment)
        assert count_queries(client, reverse("campaign_list")) == list_small
        assert count_queries(client, reverse("campaign_detail", args=[big.pk])) == detail_small
        assert count_queries(client, reverse("followups")) == followups_small
        assert Message.objects.filter(campaign=big, status=MessageStatus.SENT).count() == 10 - 2  # capped: 2 had one
