"""The lead pool page (/pool/), claiming and giving back through it, and the manager's
escalated follow-ups on /followups/: flows, denials and constant query counts."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crm.models import Campus, Stage, Student, User
from lifecycle.models import LifecycleSettings
from lifecycle.services.pool import pool_sweep
from tests import factories

pytestmark = pytest.mark.django_db


def login(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def pool_lead(campus: Campus, **fields: Any) -> Student:
    return factories.StudentFactory(campus=campus, stage=fields.pop("stage", Stage.CONSULTING), **fields)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def pool_section(client: Client) -> str:
    """The pool's table, without the "give a lead back" form listing the viewer's own leads."""
    html = client.get(reverse("pool")).content.decode()
    return html.split('data-section="pool"')[1].split('data-section="give-back"')[0]


def count_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


class TestPoolPage:
    def test_lists_the_campus_pool_with_where_each_lead_came_from(
        self, client: Client, front_desk: User, manager: User, campus_a: Campus, campus_b: Campus
    ) -> None:
        released = pool_lead(campus_a, name="王小明", owner=manager)
        factories.ConsultationFactory(student=released, consultant=manager, content="想学编程，周末有空")
        # Released by the sweep, a month on.
        assert pool_sweep(now=timezone.now() + dt.timedelta(days=30)) == [released.pk]
        pool_lead(campus_a, name="李新人")  # never owned
        pool_lead(campus_a, name="赵有主", owner=front_desk)  # owned: not in the pool
        pool_lead(campus_a, name="钱已报", stage=Stage.ACTIVE)  # signed: never in the pool
        pool_lead(campus_b, name="孙别校")  # another campus

        login(client, front_desk)
        html = pool_section(client)
        assert "王小明" in html and "李新人" in html
        for hidden in ("赵有主", "钱已报", "孙别校"):
            assert hidden not in html
        assert "张校长" in html  # the former owner
        assert "想学编程" in html  # the last consultation
        assert "抖音" in html or "Douyin" in html  # the channel
        assert 'data-claims="0/10"' in client.get(reverse("pool")).content.decode()

    def test_claim_from_the_page(self, client: Client, front_desk: User, campus_a: Campus) -> None:
        student = pool_lead(campus_a, name="王小明")
        login(client, front_desk)
        response = client.post(reverse("pool_claim", args=[student.pk]), {"page": "1"})
        assert response.status_code == 302 and response["Location"] == reverse("pool") + "?page=1"
        assert any("王小明" in m for m in messages_of(response))
        student.refresh_from_db()
        assert student.owner == front_desk
        # On the claimer's follow-ups for today, and gone from the pool.
        followups = client.get(reverse("followups")).content.decode()
        assert "王小明" in followups
        assert "王小明" not in pool_section(client)

    def test_a_refused_claim_says_why(self, client: Client, front_desk: User, manager: User, campus_a: Campus) -> None:
        LifecycleSettings.objects.create(campus=campus_a, pool_daily_claim_limit=1)
        first, second = pool_lead(campus_a), pool_lead(campus_a)
        login(client, front_desk)
        client.post(reverse("pool_claim", args=[first.pk]))
        response = client.post(reverse("pool_claim", args=[second.pk]), follow=True)
        html = response.content.decode()
        assert 'class="msg error"' in html and "Try again tomorrow" in html
        assert Student.objects.get(pk=second.pk).owner is None
        # Someone was faster: named in the message.
        login(client, manager)
        response = client.post(reverse("pool_claim", args=[first.pk]), follow=True)
        assert "前台小李" in response.content.decode()

    def test_give_a_lead_back(self, client: Client, front_desk: User, campus_a: Campus) -> None:
        student = pool_lead(campus_a, name="王小明", owner=front_desk)
        login(client, front_desk)
        assert "give-back" in client.get(reverse("pool")).content.decode()
        response = client.post(reverse("pool_release"), {"student": student.pk, "reason": "家长暂不考虑"}, follow=True)
        assert "王小明" in response.content.decode()
        assert Student.objects.get(pk=student.pk).owner is None
        response = client.post(reverse("pool_claim", args=[student.pk]), follow=True)
        assert "may claim them again from" in response.content.decode()

    def test_giving_back_needs_a_reason(self, client: Client, front_desk: User, campus_a: Campus) -> None:
        student = pool_lead(campus_a, owner=front_desk)
        login(client, front_desk)
        response = client.post(reverse("pool_release"), {"student": student.pk, "reason": ""}, follow=True)
        assert 'class="msg error"' in response.content.decode()
        assert Student.objects.get(pk=student.pk).owner == front_desk

    def test_teacher_is_refused(self, client: Client, teacher: User, campus_a: Campus) -> None:
        student = pool_lead(campus_a)
        login(client, teacher)
        assert client.get(reverse("pool")).status_code == 403
        assert client.post(reverse("pool_claim", args=[student.pk])).status_code == 403
        assert client.post(reverse("pool_release"), {"student": student.pk, "reason": "x"}).status_code == 403
        assert Student.objects.get(pk=student.pk).owner is None

    def test_another_campus_lead_cannot_be_claimed(
        self, client: Client, front_desk: User, manager: User, campus_b: Campus, front_desk_b: User
    ) -> None:
        other = pool_lead(campus_b)
        owned = pool_lead(campus_b, owner=front_desk_b)
        for user in (front_desk, manager):
            login(client, user)
            assert client.post(reverse("pool_claim", args=[other.pk])).status_code == 404
            assert client.post(reverse("pool_release"), {"student": owned.pk, "reason": "x"}).status_code == 404
        assert Student.objects.get(pk=other.pk).owner is None
        assert Student.objects.get(pk=owned.pk).owner == front_desk_b

    def test_login_required(self, client: Client) -> None:
        response = client.get(reverse("pool"))
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))

    def test_nav_link_for_front_office_only(self, client: Client, front_desk: User, teacher: User) -> None:
        login(client, front_desk)
        assert f'href="{reverse("pool")}"' in client.get(reverse("followups")).content.decode()
        login(client, teacher)
        assert f'href="{reverse("pool")}"' not in client.get(reverse("teacher_today")).content.decode()

    def test_paginated(self, client: Client, front_desk: User, campus_a: Campus) -> None:
        for i in range(30):
            pool_lead(campus_a, name=f"池中{i:02d}")
        login(client, front_desk)
        first = client.get(reverse("pool")).content.decode()
        second = client.get(reverse("pool") + "?page=2").content.decode()
        assert first.count("data-claim=") == 25 and second.count("data-claim=") == 5

    def test_constant_query_count(self, client: Client, front_desk: User, manager: User, campus_a: Campus) -> None:
        def grow(n: int) -> None:
            for _ in range(n):
                student = pool_lead(campus_a, owner=factories.UserFactory(campus=campus_a, role="front_desk"))
                factories.ConsultationFactory(student=student, consultant=manager)
                pool_lead(campus_a, owner=front_desk)  # one of "my leads" to give back
            Student.objects.filter(campus=campus_a).update(created_at=timezone.now() - dt.timedelta(days=30))
            pool_sweep(now=timezone.now() + dt.timedelta(days=1))

        login(client, front_desk)
        grow(2)
        small = count_queries(client, reverse("pool"))
        grow(10)
        assert count_queries(client, reverse("pool")) == small


class TestEscalation:
    def overdue(self, campus: Campus, owner: User | None, hours: float, name: str) -> Student:
        due = timezone.now() - dt.timedelta(hours=hours)
        return factories.StudentFactory(campus=campus, owner=owner, next_follow_up_at=due, name=name)

    def test_manager_sees_escalated_follow_ups_of_the_campus(
        self, client: Client, front_desk: User, manager: User, campus_a: Campus, campus_b: Campus
    ) -> None:
        colleague = factories.UserFactory(campus=campus_a, role="front_desk", display_name="前台小王")
        self.overdue(campus_a, front_desk, 24 * 3 + 1, "拖了三天")
        self.overdue(campus_a, colleague, 30, "拖了一天多")
        self.overdue(campus_b, None, 24 * 5, "别校拖延")
        login(client, manager)
        html = client.get(reverse("followups")).content.decode()
        section = html.split('data-section="escalated"')[1].split("</section>")[0]
        assert "拖了三天" in section and "拖了一天多" in section and "别校拖延" not in html
        assert "前台小李" in section and "前台小王" in section  # the owners
        # How long overdue ("3 days, 1 hour", in the page's language).
        assert "data-overdue-for>3" in section and "data-overdue-for>1" in section
        # Not listed twice.
        overdue_section = html.split('data-section="overdue"')[1].split("</section>")[0]
        assert "拖了三天" not in overdue_section

    # Due before today began but less than a day ago: at 23:45 local, fifteen minutes before a
    # day is up, a follow-up due at 23:50 yesterday is overdue, not yet escalated.
    @time_machine.travel(dt.datetime(2026, 12, 2, 23, 45, tzinfo=ZoneInfo("Asia/Shanghai")), tick=False)
    def test_recently_overdue_is_not_escalated(
        self, client: Client, manager: User, front_desk: User, campus_a: Campus
    ) -> None:
        self.overdue(campus_a, front_desk, 23 + 55 / 60, "刚过期")
        login(client, manager)
        html = client.get(reverse("followups")).content.decode()
        escalated = html.split('data-section="escalated"')[1].split("</section>")[0]
        overdue = html.split('data-section="overdue"')[1].split("</section>")[0]
        assert "刚过期" not in escalated and "刚过期" in overdue

    def test_consultant_sees_their_overdue_marked_escalated(
        self, client: Client, front_desk: User, campus_a: Campus
    ) -> None:
        self.overdue(campus_a, front_desk, 48, "拖了两天")
        login(client, front_desk)
        html = client.get(reverse("followups")).content.decode()
        assert 'data-section="escalated"' not in html
        overdue = html.split('data-section="overdue"')[1].split("</section>")[0]
        assert "拖了两天" in overdue and "data-escalated" in overdue

    def test_manager_page_query_count_is_constant(self, client: Client, manager: User, campus_a: Campus) -> None:
        def grow(n: int) -> None:
            for _ in range(n):
                owner = factories.UserFactory(campus=campus_a, role="front_desk")
                student = self.overdue(campus_a, owner, 72, "x")
                factories.ConsultationFactory(student=student, consultant=owner)
                student.student_tags.create(tag=factories.TagFactory())

        login(client, manager)
        grow(2)
        small = count_queries(client, reverse("followups"))
        grow(10)
        assert count_queries(client, reverse("followups")) == small


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_claim_in_the_browser_on_a_tablet(live_server: Any, page: Any, front_desk: User, campus_a: Campus) -> None:
    from playwright.sync_api import expect

    from tests.browser import log_in, snapshot

    manager = factories.UserFactory(campus=campus_a, role="manager", display_name="张校长")
    for i, name in enumerate(["王小明", "李小红", "赵小刚"]):
        student = pool_lead(campus_a, name=name, owner=manager, channel=["douyin", "referral", "website"][i])
        factories.ConsultationFactory(student=student, consultant=manager, content="家长关注编程思维，周末有空")
    Student.objects.update(created_at=timezone.now() - dt.timedelta(days=30))
    pool_sweep(now=timezone.now() + dt.timedelta(days=10))
    pool_lead(campus_a, name="新线索")

    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/pool/")
    expect(page.locator("[data-section=pool] tbody tr")).to_have_count(4)
    snapshot(page, "pool")
    # Every column fits a tablet's width: no horizontal scrolling.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    claimed = Student.objects.get(name="李小红")
    page.click(f"[data-claim='{claimed.pk}']")
    expect(page.locator(".msg.success")).to_contain_text("李小红")
    expect(page.locator("[data-section=pool] tbody tr")).to_have_count(3)
    snapshot(page, "pool_claimed")
    page.goto(f"{live_server.url}/followups/")
    expect(page.locator("[data-section=today]")).to_contain_text("李小红")
