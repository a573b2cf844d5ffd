"""The messages' admin: read-only, managers see their campus's messages, other roles none."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from campaigns.models import Message


def _message(campus, key: str) -> Message:  # type: ignore[no-untyped-def]
    return Message.objects.create(
        category="marketing", channel="sms", campus=campus, recipient="+8613800138000", text="hi", idempotency_key=key
    )


def _client(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_a_manager_sees_their_campus_messages_only(campus_a, campus_b, manager, admin_user) -> None:
    mine, theirs = _message(campus_a, "a"), _message(campus_b, "b")
    login_code = _message(None, "c")
    client = _client(manager)
    listing = client.get(reverse("admin:campaigns_message_changelist"))
    assert listing.status_code == 200
    assert list(listing.context["cl"].queryset) == [mine]
    assert client.get(reverse("admin:campaigns_message_change", args=[mine.pk])).status_code == 200
    for other in (theirs, login_code):
        # Another campus's message, or one of no campus, is not there for a manager.
        response = client.get(reverse("admin:campaigns_message_change", args=[other.pk]))
        assert (response.status_code, response["Location"]) == (302, reverse("admin:index"))
    everything = _client(admin_user).get(reverse("admin:campaigns_message_changelist"))
    assert set(everything.context["cl"].queryset) == {mine, theirs, login_code}


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["front_desk", "teacher"])
def test_other_roles_never_see_messages(request, campus_a, role: str) -> None:
    message = _message(campus_a, "a")
    client = _client(request.getfixturevalue(role))
    assert client.get(reverse("admin:campaigns_message_changelist")).status_code in (302, 403)
    assert client.get(reverse("admin:campaigns_message_change", args=[message.pk])).status_code in (302, 403)


@pytest.mark.django_db
def test_nobody_writes_a_message_in_the_admin(campus_a, admin_user) -> None:
    message = _message(campus_a, "a")
    client = _client(admin_user)
    assert client.get(reverse("admin:campaigns_message_add")).status_code == 403
    client.post(reverse("admin:campaigns_message_change", args=[message.pk]), {"text": "changed"})
    message.refresh_from_db()
    assert message.text == "hi"
    assert client.get(reverse("admin:campaigns_message_delete", args=[message.pk])).status_code == 403


@pytest.mark.django_db
def test_campaigns_and_calls_are_listed_per_campus_and_never_written_there(
    campus_a, campus_b, manager, manager_b, front_desk
) -> None:
    from campaigns.models import CallTask, Campaign
    from tests import factories

    campaign = Campaign.objects.create(
        campus=campus_a,
        name="唤醒",
        goal="win_back",
        segment=factories.SegmentFactory(campus=campus_a),
        channels=["call"],
    )
    task = CallTask.objects.create(
        campaign=campaign, student=factories.StudentFactory(campus=campus_a), consultant=front_desk, script="问候"
    )
    mine = _client(manager)
    assert list(mine.get(reverse("admin:campaigns_campaign_changelist")).context["cl"].queryset) == [campaign]
    assert (
        reverse("campaign_detail", args=[campaign.pk])
        in mine.get(reverse("admin:campaigns_campaign_changelist")).content.decode()
    )
    assert list(_client(front_desk).get(reverse("admin:campaigns_calltask_changelist")).context["cl"].queryset) == [
        task
    ]
    theirs = _client(manager_b)
    assert list(theirs.get(reverse("admin:campaigns_campaign_changelist")).context["cl"].queryset) == []
    assert list(theirs.get(reverse("admin:campaigns_calltask_changelist")).context["cl"].queryset) == []
    assert mine.get(reverse("admin:campaigns_campaign_add")).status_code == 403
    mine.post(reverse("admin:campaigns_campaign_change", args=[campaign.pk]), {"name": "改名", "status": "done"})
    campaign.refresh_from_db()
    assert (campaign.name, campaign.status) == ("唤醒", "draft")
