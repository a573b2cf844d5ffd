"""The campaigns API (campaigns/api/campaigns.py): the pages' doors (managers of the campus and
administrators, other roles 403, another campus 404), the same dry run and the same launch as
the page, the refused buttons as a 400 in the one shape, audit entries, constant query counts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from campaigns.models import Campaign, CampaignMember, CampaignStatus, Message
from crm.models import AuditAction, AuditEntry, Campus, User
from personas.models import Segment
from tests import factories
from tests.campaigns.gateway import Gateway
from tests.campaigns.test_pages import AFTERNOON, DORMANT, draft, families

pytestmark = pytest.mark.django_db(transaction=True)

ACTIONS = ("launch", "pause", "resume", "cancel")


@pytest.fixture(autouse=True)
def afternoon() -> Iterator[None]:
    # Outside quiet hours, whatever the hour the suite runs at (as the pages' tests).
    with time_machine.travel(AFTERNOON, tick=True):
        yield


@pytest.fixture
def segment(campus_a: Campus) -> Segment:
    return factories.SegmentFactory(campus=campus_a, name="沉睡学员", conditions=DORMANT)


def api(user: User | None) -> Client:
    """A client calling as an integration does: `Authorization: Token <key>` (none: a stranger)."""
    if user is None:
        return Client()
    return Client(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")


def endpoints(campaign: Campaign) -> list[tuple[str, str]]:
    return [
        ("get", reverse("api_campaign_list")),
        ("get", reverse("api_campaign_detail", args=[campaign.pk])),
        ("post", reverse("api_campaign_dry_run", args=[campaign.pk])),
        *[("post", reverse(f"api_campaign_{action}", args=[campaign.pk])) for action in ACTIONS],
    ]


class TestAccess:
    @pytest.mark.parametrize("who", ["front_desk", "teacher", None])
    def test_other_roles_and_strangers_are_refused(
        self, request: pytest.FixtureRequest, who: str | None, manager: User, segment: Segment
    ) -> None:
        campaign = draft(manager, segment)
        client = api(request.getfixturevalue(who) if who else None)
        for method, url in endpoints(campaign):
            response = getattr(client, method)(url)
            assert response.status_code == (403 if who else 401), url
            assert response.json()["code"] == ("permission_denied" if who else "not_authenticated")
        assert Campaign.objects.get().status == CampaignStatus.DRAFT
        assert not AuditEntry.objects.filter(action=AuditAction.CAMPAIGN_LAUNCH).exists()

    def test_a_parent_token_is_refused(self, manager: User, segment: Segment) -> None:
        from parents.services.sessions import session_open

        campaign = draft(manager, segment)
        tokens = session_open(guardian=factories.GuardianFactory(), via="sms")
        client = Client(HTTP_AUTHORIZATION=f"Bearer {tokens.access}")
        for method, url in endpoints(campaign):
            assert getattr(client, method)(url).status_code == 403, url

    def test_another_campus_campaign_is_not_there(self, manager: User, manager_b: User, segment: Segment) -> None:
        campaign = draft(manager, segment)
        client = api(manager_b)
        assert client.get(reverse("api_campaign_list")).json()["results"] == []
        for method, url in endpoints(campaign)[1:]:
            response = getattr(client, method)(url)
            assert response.status_code == 404, url
            assert response.json()["code"] == "not_found"
        assert Campaign.objects.get().status == CampaignStatus.DRAFT

    def test_an_administrator_sees_and_works_every_campus(
        self, admin_user: User, manager: User, manager_b: User, segment: Segment, campus_b: Campus
    ) -> None:
        ours = draft(manager, segment)
        theirs = draft(manager_b, factories.SegmentFactory(campus=campus_b, conditions=DORMANT), name="B的活动")
        client = api(admin_user)
        listed = {row["id"] for row in client.get(reverse("api_campaign_list")).json()["results"]}
        assert listed == {ours.pk, theirs.pk}
        response = client.post(reverse("api_campaign_cancel", args=[theirs.pk]))
        assert response.status_code == 200 and response.json()["status"] == "cancelled"


class TestRead:
    def test_the_list_is_paged_and_filtered(self, manager: User, segment: Segment) -> None:
        first = draft(manager, segment, name="一")
        second = draft(manager, segment, name="二")
        api(manager).post(reverse("api_campaign_cancel", args=[first.pk]))
        client = api(manager)
        body = client.get(reverse("api_campaign_list")).json()
        assert body["count"] == 2 and [row["name"] for row in body["results"]] == ["二", "一"]
        row = body["results"][0]
        assert row["segment"] == {"id": segment.pk, "name": "沉睡学员"}
        assert (row["status"], row["goal"], row["channels"]) == ("draft", "win_back", ["sms"])
        drafts = client.get(reverse("api_campaign_list"), {"status": "draft"}).json()["results"]
        assert [row["id"] for row in drafts] == [second.pk]
        assert len(client.get(reverse("api_campaign_list"), {"page_size": 1}).json()["results"]) == 1

    def test_a_bad_filter_is_a_400_in_the_one_shape(self, manager: User) -> None:
        response = api(manager).get(reverse("api_campaign_list"), {"status": "exploded"})
        assert response.status_code == 400
        problem = response.json()
        assert problem["code"] == "invalid" and problem["fields"]["status"][0]["message"]

    def test_a_draft_has_its_templates_and_no_results(self, manager: User, segment: Segment) -> None:
        campaign = draft(manager, segment, channels=["sms", "call"])
        body = api(manager).get(reverse("api_campaign_detail", args=[campaign.pk])).json()
        assert body["status"] == "draft" and body["results"] is None
        assert body["segment"]["id"] == segment.pk
        assert [(t["variant"], t["channel"]) for t in body["templates"]] == [("A", "call"), ("A", "sms")]
        assert body["templates"][1]["text"] == "{guardian}您好，{student}想念你"


class TestDryRunAndLaunch:
    def test_the_dry_run_counts_like_the_page_and_writes_nothing(
        self, manager: User, front_desk: User, segment: Segment
    ) -> None:
        families(manager.campus, front_desk, 3)
        campaign = draft(manager, segment)
        audit_before = AuditEntry.objects.count()
        response = api(manager).post(reverse("api_campaign_dry_run", args=[campaign.pk]))
        assert response.status_code == 200
        body = response.json()
        assert (body["audience"], body["holdout"], body["total_reached"]) == (3, 0, 3)
        assert body["channels"] == [{"channel": "sms", "label": "SMS", "reached": 3, "held": []}]
        assert not CampaignMember.objects.exists() and not Message.objects.exists()
        assert AuditEntry.objects.count() == audit_before
        assert Campaign.objects.get().status == CampaignStatus.DRAFT

    def test_the_dry_run_holds_back_a_family_without_consent(
        self, manager: User, front_desk: User, segment: Segment
    ) -> None:
        families(manager.campus, front_desk, 2)
        factories.StudentFactory(
            campus=manager.campus, stage="dormant", owner=front_desk, guardians=[factories.GuardianFactory()]
        )
        body = api(manager).post(reverse("api_campaign_dry_run", args=[draft(manager, segment).pk])).json()
        [sms] = body["channels"]
        assert sms["reached"] == 2
        assert [(held["reason"], held["count"]) for held in sms["held"]] == [("no_consent", 1)]

    def test_the_dry_run_of_a_resolved_campaign_is_refused(
        self, sms_gateway_server: Gateway, manager: User, front_desk: User, segment: Segment
    ) -> None:
        families(manager.campus, front_desk, 1)
        campaign = draft(manager, segment)
        client = api(manager)
        client.post(reverse("api_campaign_launch", args=[campaign.pk]))
        response = client.post(reverse("api_campaign_dry_run", args=[campaign.pk]))
        assert response.status_code == 400
        assert "already fixed" in response.json()["message"]

    def test_a_launch_sends_like_the_page_and_shows_the_results(
        self, sms_gateway_server: Gateway, manager: User, front_desk: User, segment: Segment
    ) -> None:
        students = families(manager.campus, front_desk, 3)
        campaign = draft(manager, segment)
        response = api(manager).post(reverse("api_campaign_launch", args=[campaign.pk]))
        assert response.status_code == 200
        assert sms_gateway_server.sent_count == 3
        texts = sorted(m["content"] for m in sms_gateway_server.delivered.values())
        assert any(f"{students[0].name}想念你" in text for text in texts)
        body = api(manager).get(reverse("api_campaign_detail", args=[campaign.pk])).json()
        assert body["status"] == "done" and body["resolved_at"] is not None
        results = body["results"]
        assert [(g["group"], g["members"], g["reached"]) for g in results["groups"]] == [("A", 3, 3)]
        assert results["channels"][0] == {
            "channel": "sms",
            "label": "SMS",
            "sent": 3,
            "delivered": 0,
            "failed": 0,
            "waiting": 0,
            "unknown": 0,
            "held": [],
        }
        entry = AuditEntry.objects.get(action=AuditAction.CAMPAIGN_LAUNCH)
        assert entry.actor == manager and entry.detail["campaign"] == str(campaign.pk)

    def test_results_compare_each_variant_with_the_holdout(
        self, sms_gateway_server: Gateway, manager: User, front_desk: User, segment: Segment
    ) -> None:
        families(manager.campus, front_desk, 12)
        campaign = draft(manager, segment, holdout_pct=50)
        api(manager).post(reverse("api_campaign_launch", args=[campaign.pk]))
        groups = {
            g["group"]: g
            for g in api(manager).get(reverse("api_campaign_detail", args=[campaign.pk])).json()["results"]["groups"]
        }
        assert groups["A"]["members"] + groups["holdout"]["members"] == 12
        assert groups["holdout"]["members"] > 0 and groups["holdout"]["reached"] == 0
        uplift = groups["A"]["uplift"]
        assert uplift["treated_rate"] == 0 and uplift["holdout_rate"] == 0 and uplift["uplift"] == 0
        assert groups["holdout"]["uplift"] is None

    def test_pause_resume_and_cancel_a_scheduled_campaign(self, manager: User, segment: Segment) -> None:
        campaign = draft(manager, segment, scheduled_at=timezone.now() + dt.timedelta(days=1))
        client = api(manager)
        for action, status in (
            ("launch", "scheduled"),
            ("pause", "paused"),
            ("resume", "scheduled"),
            ("cancel", "cancelled"),
        ):
            response = client.post(reverse(f"api_campaign_{action}", args=[campaign.pk]))
            assert response.status_code == 200, (action, response.json())
            assert response.json()["status"] == status
            assert AuditEntry.objects.filter(action=f"campaign_{action}", actor=manager).count() == 1
        assert not Message.objects.exists()

    @pytest.mark.parametrize(
        ("action", "message"),
        [
            ("resume", "Only a paused campaign can be resumed."),
            ("pause", "Only a scheduled or sending campaign can be paused."),
        ],
    )
    def test_a_refused_button_is_a_400_that_says_why(
        self, manager: User, segment: Segment, action: str, message: str
    ) -> None:
        campaign = draft(manager, segment)
        response = api(manager).post(reverse(f"api_campaign_{action}", args=[campaign.pk]))
        assert response.status_code == 400
        assert response.json() == {
            "code": "invalid",
            "message": message,
            "fields": {"non_field_errors": [{"message": message, "path": ""}]},
        }
        assert Campaign.objects.get().status == CampaignStatus.DRAFT
        assert not AuditEntry.objects.filter(action=f"campaign_{action}").exists()


def count_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


class TestQueryCounts:
    def test_list_and_detail_read_the_same_whatever_the_size(
        self, sms_gateway_server: Gateway, manager: User, front_desk: User, segment: Segment
    ) -> None:
        client = api(manager)
        families(manager.campus, front_desk, 2)
        small = draft(manager, segment, channels=["sms", "call"], holdout_pct=20)
        client.post(reverse("api_campaign_launch", args=[small.pk]))
        draft(manager, segment)
        list_small = count_queries(client, reverse("api_campaign_list"))
        detail_small = count_queries(client, reverse("api_campaign_detail", args=[small.pk]))
        families(manager.campus, front_desk, 18)
        big = draft(manager, segment, channels=["sms", "call"], holdout_pct=20)
        client.post(reverse("api_campaign_launch", args=[big.pk]))
        for _ in range(17):
            draft(manager, segment)
        assert Campaign.objects.count() == 20 and CampaignMember.objects.filter(campaign=big).count() == 20
        assert count_queries(client, reverse("api_campaign_list")) == list_small
        assert count_queries(client, reverse("api_campaign_detail", args=[big.pk])) == detail_small
