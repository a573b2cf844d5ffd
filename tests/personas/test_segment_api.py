"""The segments API under /api/v1/ (personas/api/segments.py): scoped like the pages, written through the same service,
errors in the one JSON shape."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from crm.models import AuditAction, AuditEntry, Stage
from personas.models import RfmSegment, Segment, ValueTier
from tests import factories

pytestmark = pytest.mark.django_db

DORMANT = {"all": [{"field": "stage", "op": "in", "value": ["dormant"]}]}


def login(client, user):
    client.force_login(user)
    return client


def post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def patch(client, url, body):
    return client.patch(url, json.dumps(body), content_type="application/json")


@pytest.fixture
def segment_a(campus_a):
    return factories.SegmentFactory(campus=campus_a, name="沉睡学员", conditions=DORMANT)


def endpoints(segment):
    return [
        ("get", reverse("api_segment_list"), None),
        ("post", reverse("api_segment_list"), {"name": "x", "conditions": DORMANT}),
        ("get", reverse("api_segment_detail", args=[segment.pk]), None),
        ("patch", reverse("api_segment_detail", args=[segment.pk]), {"name": "y"}),
        ("get", reverse("api_segment_members", args=[segment.pk]), None),
        ("post", reverse("api_segment_count"), {"conditions": DORMANT}),
    ]


def call(client, method, url, body):
    if method == "get":
        return client.get(url)
    return (post if method == "post" else patch)(client, url, body)


@pytest.mark.parametrize("role", ["front_desk", "teacher", "front_desk_b", "teacher_b", None])
def test_other_roles_and_strangers_are_refused(client, request, role, segment_a):
    if role:
        login(client, request.getfixturevalue(role))
    for method, url, body in endpoints(segment_a):
        response = call(client, method, url, body)
        # A stranger is asked to log in (401); staff of another role are refused (403).
        assert response.status_code == (403 if role else 401), (role, url)
        problem = response.json()
        assert problem["code"] == ("permission_denied" if role else "not_authenticated") and problem["message"]
    assert Segment.objects.get().name == "沉睡学员"


def test_the_other_campus_manager_gets_not_found(client, manager_b, segment_a):
    login(client, manager_b)
    for method, url, body in endpoints(segment_a)[2:5]:
        response = call(client, method, url, body)
        assert response.status_code == 404, url
        assert response.json()["code"] == "not_found"
    assert segment_a.pk not in [row["id"] for row in client.get(reverse("api_segment_list")).json()["results"]]


def test_a_manager_creates_reads_and_updates(client, manager, campus_a, campus_b):
    login(client, manager)
    tag = factories.TagFactory(name="高意向")
    conditions = {"any": [DORMANT, {"field": "tag", "op": "has", "value": tag.pk}]}
    created = post(client, reverse("api_segment_list"), {"name": "挽回", "conditions": conditions})
    assert created.status_code == 201
    body = created.json()
    assert body["campus"] == campus_a.pk and body["conditions"] == conditions
    assert body["in_words"] == "(Stage is one of Dormant) or Tag has 意向:高意向"
    assert AuditEntry.objects.filter(action=AuditAction.SEGMENT_CREATE).count() == 1

    url = reverse("api_segment_detail", args=[body["id"]])
    assert client.get(url).json()["name"] == "挽回"
    updated = patch(client, url, {"description": "沉睡或高意向"})
    assert updated.status_code == 200 and updated.json()["description"] == "沉睡或高意向"
    assert updated.json()["conditions"] == conditions

    # Another campus is not the manager's to choose.
    refused = post(client, reverse("api_segment_list"), {"name": "别校", "campus": campus_b.pk, "conditions": DORMANT})
    assert refused.status_code == 400 and "campus" in refused.json()["fields"]


def test_errors_come_in_one_shape_with_the_conditions_path(client, manager):
    login(client, manager)
    bad = {"all": [DORMANT, {"any": [{"field": "lifetime_value", "op": "gte", "value": "lots"}]}]}
    response = post(client, reverse("api_segment_list"), {"name": "", "conditions": bad})
    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "invalid"
    assert problem["fields"]["conditions"] == [{"message": "“Lifetime value” needs a number.", "path": "1.0"}]
    assert problem["fields"]["name"][0]["message"]
    assert not Segment.objects.exists()

    counted = post(client, reverse("api_segment_count"), {"conditions": bad})
    assert counted.status_code == 400
    assert counted.json() == {
        "code": "invalid",
        "message": "“Lifetime value” needs a number.",
        "fields": {"conditions": [{"message": "“Lifetime value” needs a number.", "path": "1.0"}]},
    }
    missing = post(client, reverse("api_segment_count"), {"tree": DORMANT})
    assert missing.status_code == 400 and missing.json()["fields"]["conditions"]


def test_count_and_members_are_the_viewers_students(client, manager, admin_user, campus_a, campus_b):
    mine = factories.StudentFactory(campus=campus_a, stage=Stage.DORMANT, name="沉睡甲")
    factories.StudentFactory(campus=campus_b, stage=Stage.DORMANT)
    factories.StudentProfileFactory(student=mine, rfm_segment=RfmSegment.LOST, value_tier=ValueTier.LOW)
    shared = factories.SegmentFactory(campus=None, conditions=DORMANT)
    login(client, manager)
    assert post(client, reverse("api_segment_count"), {"conditions": DORMANT}).json() == {"count": 1}
    members = client.get(reverse("api_segment_members", args=[shared.pk])).json()
    assert members["count"] == 1
    row = members["results"][0]
    assert (row["name"], row["stage"], row["rfm_segment"], row["value_tier"]) == ("沉睡甲", "dormant", "lost", "low")
    login(client, admin_user)
    assert client.get(reverse("api_segment_members", args=[shared.pk])).json()["count"] == 2
