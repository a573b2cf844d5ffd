"""The overview at /personas/: its figures on a hand-built campus (snapshot and live alike), who may
read and refresh it, the other campus's figures never shown, and a constant number of queries."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm.models import Campus
from personas.models import CampusOverview, OverviewGroup
from personas.selectors import Overview, OverviewRow, overview_for
from personas.services.overview import overview_refresh
from tests import factories

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 5, 13, 10, 0, tzinfo=dt.UTC)
URL = "/personas/"


def student(campus: Campus, name: str, stage: str, grade: str, channel: str, profile: dict | None = None):
    s = factories.StudentFactory(campus=campus, name=name, stage=stage, grade=grade, channel=channel, guardians=[])
    if profile is not None:
        factories.StudentProfileFactory(student=s, **profile)
    return s


def profile(tier: str, segment: str, value: str, rate: str | None, subjects: list[str]) -> dict:
    return {
        "value_tier": tier,
        "rfm_segment": segment,
        "monetary": Decimal(value),
        "attendance_rate": Decimal(rate) if rate is not None else None,
        "subjects": subjects,
    }


@pytest.fixture
def school(campus_a, campus_b):
    """Campus A: three active students, a lead with no profile, a dormant champion; campus B: one."""
    return {
        "amy": student(
            campus_a,
            "王一",
            "active",
            "五年级",
            "douyin",
            profile("high", "champions", "10000", "0.9", ["数学", "英语"]),
        ),
        "bo": student(
            campus_a, "王二", "active", "五年级", "referral", profile("medium", "loyal", "4000", "0.5", ["数学"])
        ),
        "cai": student(
            campus_a, "王三", "active", "三年级", "referral", profile("low", "at_risk", "1000", None, ["英语"])
        ),
        "dan": student(campus_a, "王四", "lead", "三年级", "douyin"),
        "eve": student(
            campus_a, "王五", "dormant", "初一", "website", profile("high", "champions", "12000", "0.25", ["美术"])
        ),
        "zed": student(
            campus_b, "赵六", "active", "高一", "wechat", profile("high", "champions", "99999", "1", ["物理"])
        ),
    }


def row(overview: Overview, dimension: str, key: str) -> OverviewRow:
    table = next(t for t in overview.tables if t.dimension == dimension)
    return next(r for r in table.rows if r.key == key)


def check_campus_a(o: Overview, school: dict) -> None:
    assert o.students == 5
    active = row(o, "stage", "active")
    assert (active.students, active.share) == (3, Decimal("60.0"))
    # 五年级 twice; 数学 and 英语 twice each, the tie to the smaller (数 before 英); 转介绍 twice.
    assert (active.top_grade, active.top_subject, active.top_channel) == ("五年级", "数学", "Referral")
    assert (active.median_value, active.median_attendance) == (Decimal("4000.00"), Decimal("0.7000"))
    assert (active.representative_id, active.representative_name) == (school["bo"].pk, "王二")
    lead = row(o, "stage", "lead")
    assert (lead.students, lead.top_subject, lead.median_value, lead.median_attendance) == (1, "", Decimal(0), None)
    assert lead.representative_id == school["dan"].pk
    assert row(o, "stage", "churned").students == 0
    # Two high-value students, 10,000 and 12,000: the median 11,000 is as close to both; the newer.
    high = row(o, "tier", "high")
    assert (high.students, high.median_value, high.median_attendance) == (2, Decimal("11000.00"), Decimal("0.5750"))
    assert high.representative_id == school["eve"].pk
    assert row(o, "segment", "champions").representative_id == school["eve"].pk
    assert (row(o, "tier", "").students, row(o, "segment", "").students) == (1, 1)
    assert sum(r.students for t in o.tables for r in t.rows) == 15  # every student once per dimension
    assert o.chart["tier"] == [
        {"name": "High value", "value": 2},
        {"name": "Medium value", "value": 1},
        {"name": "Low value", "value": 1},
        {"name": "No RFM yet", "value": 1},
    ]


@time_machine.travel(NOW, tick=False)
def test_the_snapshot_on_a_hand_built_campus(school, manager):
    assert overview_refresh() > 0
    assert CampusOverview.objects.get(campus=school["amy"].campus).students == 5
    o = overview_for(viewer=manager)
    assert o.as_of == NOW
    check_campus_a(o, school)


def test_a_campus_without_a_snapshot_is_computed_live(school, manager):
    o = overview_for(viewer=manager)
    assert o.as_of is None
    assert not OverviewGroup.objects.exists()
    check_campus_a(o, school)


def test_refreshing_one_campus_leaves_the_others(school, campus_a, campus_b):
    overview_refresh([campus_b.pk])
    assert set(OverviewGroup.objects.values_list("campus_id", flat=True)) == {campus_b.pk}
    overview_refresh([campus_a.pk])
    overview_refresh([campus_a.pk])  # idempotent: replaced, not added
    assert OverviewGroup.objects.filter(campus=campus_a, dimension="stage").count() == 3


def test_a_deleted_representative_shows_no_link(school, manager):
    overview_refresh()
    school["bo"].delete()
    active = row(overview_for(viewer=manager), "stage", "active")
    assert (active.students, active.representative_id) == (3, None)  # until the next refresh


def test_the_page_in_chinese(client, school, manager):
    overview_refresh()
    client.force_login(manager)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    html = client.get(URL).content.decode()
    for words in ("学员概览", "重要价值", "高价值", "在读", "转介绍", "¥4000", "70%", "王二", "立即刷新"):
        assert words in html, words
    assert reverse("student_detail", args=[school["bo"].pk]) in html
    assert "赵六" not in html


def test_the_manager_refreshes_now(client, school, manager, django_capture_on_commit_callbacks):
    client.force_login(manager)
    assert b"data-as-of" in client.get(URL).content and not CampusOverview.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("personas_overview_refresh"), {"campus": manager.campus_id})
    assert response.status_code == 302
    assert CampusOverview.objects.filter(campus=manager.campus).exists()
    assert not CampusOverview.objects.exclude(campus=manager.campus).exists()


def test_the_front_desk_reads_without_refreshing(client, school, front_desk):
    client.force_login(front_desk)
    response = client.get(URL)
    assert response.status_code == 200
    assert b"data-refresh" not in response.content
    assert client.post(reverse("personas_overview_refresh"), {"campus": front_desk.campus_id}).status_code == 403


@pytest.mark.parametrize("role", ["teacher", "teacher_b"])
def test_teachers_may_not(client, school, role, request):
    user = request.getfixturevalue(role)
    client.force_login(user)
    assert client.get(URL).status_code == 403
    assert client.post(reverse("personas_overview_refresh"), {"campus": user.campus_id}).status_code == 403


def test_anonymous_goes_to_log_in(client):
    assert client.get(URL).status_code == 302


def test_campus_b_never_sees_campus_a(client, school, manager_b, front_desk_b, campus_a, campus_b):
    overview_refresh()
    for user in (manager_b, front_desk_b):
        client.force_login(user)
        html = client.get(URL).content.decode()
        assert "赵六" in html and "王二" not in html
        assert 'id="campus-picker"' not in html
        assert client.get(URL, {"campus": campus_a.pk}).status_code == 404
    client.force_login(manager_b)
    assert client.post(reverse("personas_overview_refresh"), {"campus": campus_a.pk}).status_code == 404
    o = overview_for(viewer=manager_b)
    assert (o.campus, o.students) == (campus_b, 1)


def test_the_admin_picks_a_campus(client, school, admin_user, campus_a, campus_b, django_capture_on_commit_callbacks):
    client.force_login(admin_user)
    response = client.get(URL)
    assert response.status_code == 200
    assert response.context["overview"].campus == Campus.objects.order_by("name").first()
    html = client.get(URL, {"campus": campus_a.pk}).content.decode()
    assert 'id="campus-picker"' in html and "王二" in html and "赵六" not in html
    assert client.get(URL, {"campus": 999999}).status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(reverse("personas_overview_refresh"), {"campus": campus_b.pk}).status_code == 302
    assert list(CampusOverview.objects.values_list("campus_id", flat=True)) == [campus_b.pk]


@pytest.mark.parametrize("snapshot", [True, False], ids=["snapshot", "live"])
def test_as_many_queries_for_20_students_as_for_2(client, manager, campus_a, snapshot):
    def add(n: int) -> None:
        for i in range(n):
            s = factories.StudentFactory(campus=campus_a, stage=["active", "lead", "trial"][i % 3], guardians=[])
            factories.StudentProfileFactory(student=s, subjects=[["数学", "英语", "美术"][i % 3]])

    def count() -> int:
        if snapshot:
            overview_refresh()
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(URL).status_code == 200
        return len(ctx.captured_queries)

    client.force_login(manager)
    add(2)
    small = count()
    add(18)
    assert count() == small
    # The session and user, the campuses, the snapshot's header and its groups; computed live, the
    # statement in its transaction with its settings, then the representatives' names.
    assert small <= (8 if snapshot else 13)


def test_the_nightly_snapshot_follows_the_profiles(settings, school, campus_a, campus_b):
    from celery.schedules import crontab

    from personas.tasks import nightly_overview, refresh_overview

    schedule = settings.CELERY_BEAT_SCHEDULE
    profiles, overview = schedule["personas-nightly-profiles"], schedule["personas-nightly-overview"]
    assert overview["task"] == "personas.nightly_overview"
    assert isinstance(overview["schedule"], crontab)
    assert (overview["schedule"].hour, overview["schedule"].minute) == ({2}, {40})
    assert min(profiles["schedule"].minute) < min(overview["schedule"].minute)
    assert refresh_overview.delay([campus_b.pk]).result > 0
    assert list(CampusOverview.objects.values_list("campus_id", flat=True)) == [campus_b.pk]
    assert nightly_overview.delay().result > 0
    assert CampusOverview.objects.count() == 2
