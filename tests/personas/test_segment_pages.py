"""The segment pages: who may open them, building and saving, the live count and preview, the
export, and constant query counts."""

from __future__ import annotations

import io
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from openpyxl import load_workbook

from crm.models import Stage
from personas.models import RfmSegment, Segment, ValueTier
from tests import factories

pytestmark = pytest.mark.django_db

DORMANT = {"all": [{"field": "stage", "op": "in", "value": ["dormant"]}]}


def login(client, user):
    client.force_login(user)
    return client


def post_count(client, conditions, segment=None):
    url = reverse("segment_count") + (f"?segment={segment.pk}" if segment else "")
    return client.post(url, json.dumps({"conditions": conditions}), content_type="application/json")


@pytest.fixture
def segment_a(campus_a, manager):
    return factories.SegmentFactory(campus=campus_a, name="沉睡学员", conditions=DORMANT, created_by=manager)


def urls(segment):
    return [
        ("get", reverse("segment_list")),
        ("get", reverse("segment_new")),
        ("get", reverse("segment_detail", args=[segment.pk])),
        ("get", reverse("segment_export", args=[segment.pk])),
        ("post", reverse("segment_count")),
        ("post", reverse("segment_delete", args=[segment.pk])),
    ]


@pytest.mark.parametrize("role", ["front_desk", "teacher", "front_desk_b", "teacher_b"])
def test_front_desk_and_teachers_are_refused(client, request, role, segment_a):
    login(client, request.getfixturevalue(role))
    for method, url in urls(segment_a):
        assert getattr(client, method)(url).status_code == 403, url
    assert Segment.objects.filter(pk=segment_a.pk).exists()


def test_the_other_campus_manager_gets_not_found(client, manager_b, segment_a):
    login(client, manager_b)
    for method, url in urls(segment_a)[2:]:
        if url == reverse("segment_count"):
            url += f"?segment={segment_a.pk}"
        assert getattr(client, method)(url).status_code == 404, url
    assert segment_a.name not in client.get(reverse("segment_list")).content.decode()
    assert Segment.objects.filter(pk=segment_a.pk).exists()


def test_anonymous_is_sent_to_log_in(client, segment_a):
    for method, url in urls(segment_a):
        response = getattr(client, method)(url)
        assert response.status_code == 302 and "/accounts/login/" in response.url


def test_the_list_shows_words_and_counts(client, manager, campus_a, campus_b, segment_a, admin_user):
    factories.StudentFactory(campus=campus_a, stage=Stage.DORMANT)
    factories.StudentFactory(campus=campus_a, stage=Stage.DORMANT)
    factories.StudentFactory(campus=campus_b, stage=Stage.DORMANT)
    factories.SegmentFactory(campus=None, name="共享分群", conditions=DORMANT)
    html = login(client, manager).get(reverse("segment_list")).content.decode()
    assert "沉睡学员" in html and "Stage is one of Dormant" in html
    assert f'data-count="{segment_a.pk}"><strong>2</strong>' in html
    assert "共享分群" in html and "Shared" in html

    html = login(client, admin_user).get(reverse("segment_list")).content.decode()
    shared = Segment.objects.get(name="共享分群")
    assert f'data-count="{shared.pk}"><strong>3</strong>' in html


def test_a_manager_builds_and_saves_a_segment(client, manager, campus_a):
    login(client, manager)
    page = client.get(reverse("segment_new")).content.decode()
    assert "data-condition-builder" in page and "js/conditions.js" in page
    conditions = {
        "all": [
            {"field": "grade", "op": "in", "value": ["五年级"]},
            {
                "any": [
                    {"field": "at_risk", "op": "is", "value": True},
                    {"field": "stage", "op": "in", "value": ["trial"]},
                ]
            },
        ]
    }
    response = client.post(
        reverse("segment_new"), {"name": "五年级待跟进", "description": "", "conditions": json.dumps(conditions)}
    )
    segment = Segment.objects.get()
    assert response.status_code == 302 and response.url == reverse("segment_detail", args=[segment.pk])
    assert (segment.campus, segment.conditions) == (campus_a, conditions)

    response = client.post(
        reverse("segment_detail", args=[segment.pk]),
        {"name": "五年级", "description": "改名", "conditions": json.dumps(DORMANT)},
    )
    assert response.status_code == 302
    segment.refresh_from_db()
    assert (segment.name, segment.conditions) == ("五年级", DORMANT)

    assert client.post(reverse("segment_delete", args=[segment.pk])).status_code == 302
    assert not Segment.objects.exists()


@pytest.mark.parametrize(
    "posted",
    [
        "not json",
        "[1, 2]",
        json.dumps({"all": [{"field": "campus", "op": "has", "value": 1}]}),
        json.dumps({"all": [{"field": "lifetime_value", "op": "gte", "value": "NaN"}]}),
        json.dumps({"all": [{"field": "grade", "op": "in", "value": "五年级"}]}),
    ],
)
def test_bad_conditions_show_a_message_on_the_page(client, manager, posted):
    response = login(client, manager).post(reverse("segment_new"), {"name": "x", "conditions": posted})
    assert response.status_code == 422
    assert 'class="errorlist"' in response.content.decode()
    assert not Segment.objects.exists()


def test_the_count_and_preview_follow_the_conditions(client, manager, campus_a, campus_b):
    dormant = factories.StudentFactory(campus=campus_a, stage=Stage.DORMANT, name="沉睡甲")
    factories.StudentFactory(campus=campus_a, stage=Stage.ACTIVE)
    factories.StudentFactory(campus=campus_b, stage=Stage.DORMANT)
    factories.StudentProfileFactory(student=dormant, rfm_segment=RfmSegment.AT_RISK, value_tier=ValueTier.HIGH)
    login(client, manager)
    answer = post_count(client, DORMANT)
    assert answer.status_code == 200
    data = answer.json()
    assert data["count"] == 1
    assert "沉睡甲" in data["html"] and reverse("student_detail", args=[dormant.pk]) in data["html"]
    assert "At risk" in data["html"] and "High value" in data["html"]
    assert post_count(client, {"all": []}).json()["count"] == 2

    bad = post_count(client, {"all": [DORMANT, {"field": "grade", "op": "between", "value": 1}]})
    assert bad.status_code == 400
    problem = bad.json()
    assert problem["code"] == "invalid" and problem["fields"]["conditions"][0]["path"] == "1"
    assert problem["message"] and problem["fields"]["conditions"][0]["message"] == problem["message"]

    nonsense = client.post(reverse("segment_count"), "[]", content_type="application/json")
    assert nonsense.status_code == 400 and nonsense.json()["code"] == "invalid"


def test_export_is_the_viewers_members_with_formulae_escaped(client, manager, campus_a, campus_b, segment_a):
    factories.StudentFactory(campus=campus_a, stage=Stage.DORMANT, name="=HYPERLINK(1)")
    factories.StudentFactory(campus=campus_a, stage=Stage.DORMANT, name="沉睡乙")
    factories.StudentFactory(campus=campus_b, stage=Stage.DORMANT, name="别校")
    response = login(client, manager).get(reverse("segment_export", args=[segment_a.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "Name"
    names = sorted(row[0] for row in rows[1:])
    assert names == ["'=HYPERLINK(1)", "沉睡乙"]


def count_queries(client, method, url, **kwargs):
    with CaptureQueriesContext(connection) as queries:
        response = getattr(client, method)(url, **kwargs)
    assert response.status_code == 200, url
    return len(queries)


class TestQueryCounts:
    """The list, the builder's preview, the count and the members run as many queries for 5
    members as for 50."""

    def grow(self, campus, n):
        course = factories.CourseFactory(campus=campus)
        for _ in range(n):
            student = factories.StudentFactory(campus=campus, stage=Stage.DORMANT, owner=None)
            factories.StudentProfileFactory(student=student, rfm_segment=RfmSegment.LOST, value_tier=ValueTier.LOW)
            factories.ContractFactory(student=student, course=course)

    def test_pages(self, client, manager, campus_a, segment_a):
        tag = factories.TagFactory()
        factories.SegmentFactory(
            campus=campus_a, conditions={"any": [DORMANT, {"field": "tag", "op": "has", "value": tag.pk}]}
        )
        login(client, manager)
        body = json.dumps({"conditions": DORMANT})
        pages = [
            ("get", reverse("segment_list"), {}),
            ("get", reverse("segment_detail", args=[segment_a.pk]), {}),
            ("post", reverse("segment_count"), {"data": body, "content_type": "application/json"}),
            ("get", reverse("api_segment_members", args=[segment_a.pk]), {}),
            ("get", reverse("api_segment_list"), {}),
        ]
        self.grow(campus_a, 5)
        small = [count_queries(client, method, url, **kw) for method, url, kw in pages]
        self.grow(campus_a, 45)
        assert [count_queries(client, method, url, **kw) for method, url, kw in pages] == small


def test_a_shared_segment_naming_another_campus_course_says_so_at_every_door(client, admin_user, manager_b, campus_a):
    course_a = factories.CourseFactory(campus=campus_a)
    shared = factories.SegmentFactory(
        campus=None, name="编程学员", conditions={"all": [{"field": "course", "op": "has", "value": course_a.pk}]}
    )
    login(client, manager_b)
    html = client.get(reverse("segment_list")).content.decode()
    assert "编程学员" in html and "“Course signed”: no such value." in html
    detail = client.get(reverse("segment_detail", args=[shared.pk]))
    assert detail.status_code == 200 and "no such value" in detail.content.decode()
    export = client.get(reverse("segment_export", args=[shared.pk]))
    assert export.status_code == 302
    members = client.get(reverse("api_segment_members", args=[shared.pk]))
    assert members.status_code == 400 and members.json()["fields"]["conditions"]
