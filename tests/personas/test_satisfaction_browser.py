"""A detractor's care task in a real browser, on a tablet in Chinese: the consultant finds it in
the follow-up list with the parent's score and reason, the table fits the screen, and marking it
done with a note takes it off the list; the card shows the answer in its feedback dimension."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from crm.models import Campus, Course, User
from personas.models import CareTask, CareTaskStatus
from personas.services.satisfaction import satisfaction_answer
from tests import factories
from tests.browser import log_in, snapshot
from tests.personas.test_satisfaction import attended

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_consultant_calls_back_an_unhappy_parent(
    live_server, chinese_tablet: Page, front_desk: User, teacher: User, campus_a: Campus, course_a: Course
) -> None:
    page = chinese_tablet
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    guardian = factories.GuardianFactory(name="王妈妈")
    student = factories.StudentFactory(name="王小明", campus=campus_a, owner=front_desk, guardians=[guardian])
    attended(student, course_a, teacher, 8)
    satisfaction_answer(
        guardian=guardian, student=student, score=3, reason="最近换了老师，孩子不太适应，上课时间也经常调整。"
    )

    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/followups/")
    care = page.locator('[data-section="care"]')
    expect(care.locator("h2")).to_contain_text("需回访的不满意家长")
    expect(care).to_contain_text("王小明")
    expect(care).to_contain_text("王妈妈")
    expect(care.locator("[data-score]")).to_have_text("3 / 10 分")
    expect(care).to_contain_text("最近换了老师")
    # The section fits a tablet's width: nothing to scroll sideways.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    snapshot(page, "followups_care_task")

    care.locator("input[name=note]").fill("已电话沟通，下周起固定周六上午上课")
    care.locator("button").click()
    expect(page.locator(".msg.success")).to_contain_text("王小明的关怀任务已标记为完成")
    expect(page.locator('[data-section="care"]')).to_contain_text("暂无需回访的不满意家长")
    task = CareTask.objects.get()
    assert (task.status, task.note) == (CareTaskStatus.DONE, "已电话沟通，下周起固定周六上午上课")

    page.goto(f"{live_server.url}/students/{student.pk}/")
    feedback = page.locator("#feedback")
    expect(feedback).to_contain_text("家长满意度")
    expect(feedback).to_contain_text("3 / 10 分 · 贬损者")
    expect(feedback).to_contain_text("共 1 次评价，平均 3.0 分，NPS -100")
    snapshot(page, "card_feedback")
    assert errors == []
