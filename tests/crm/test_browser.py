"""The front desk's and the teacher's day in a real browser (headless Chromium)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, ViewportSize, expect

from crm.models import Attendance, AttendanceStatus, Contract, Student, TrialLesson, TrialStatus
from tests import factories
from tests.browser import log_in, snapshot

# An iPad Pro in portrait: the width of the usual tablet, the height of the longest sheet.
TABLET_TALL: ViewportSize = {"width": 1024, "height": 1366}

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_front_desk_captures_a_lead_logs_a_consultation_and_books_a_trial(
    live_server, page: Page, front_desk, teacher, course_a, campus_a
):
    existing = factories.GuardianFactory(phone="+8613900139000", name="李爸爸")
    factories.StudentFactory(name="李小龙", campus=campus_a, guardians=[existing])
    log_in(page, live_server.url, "alice")
    expect(page).to_have_url(f"{live_server.url}/followups/")
    snapshot(page, "followups")

    page.goto(f"{live_server.url}/leads/new/")
    # The live check finds the existing family whatever the format typed.
    page.fill("#id_phone", "139-0013-9000")
    expect(page.locator("[data-family=existing]")).to_contain_text("李小龙")
    page.fill("#id_phone", "+86 138 0013 8000")
    expect(page.locator("[data-family=new]")).to_be_visible()
    page.fill("#id_guardian_name", "王妈妈")
    page.select_option("#id_relation", "母亲")
    page.fill("#id_student_name", "王小明")
    page.select_option("#id_grade", "三年级")
    expect(page.locator("#id_channel")).to_have_value("")  # nobody chose a source yet
    page.select_option("#id_channel", "douyin")
    snapshot(page, "lead_capture")
    page.click("button[type=submit]")

    student = Student.objects.get(name="王小明")
    assert (student.grade, student.guardians.get().relation, student.channel) == ("三年级", "母亲", "douyin")
    expect(page).to_have_url(f"{live_server.url}/students/{student.pk}/")
    expect(page.locator("#family")).to_contain_text("138 0013 8000")

    follow_up = timezone.localtime() + dt.timedelta(days=1)
    page.select_option("#id_c-channel", "visit")
    page.select_option("#id_c-intent", "high")
    page.fill("#id_c-content", "家长关注编程思维，周末有空")
    page.fill("#id_c-next_follow_up_at", follow_up.strftime("%Y-%m-%dT%H:%M"))
    page.click("#consultation button")
    expect(page.locator(".msg.success")).to_be_visible()
    expect(page.locator("[data-kind=consultation]")).to_contain_text("家长关注编程思维")

    # The collapsible sections read as something to tap: a caret, a pointer, a hover state.
    summary = page.locator("#trial summary")
    look = (
        "(e) => [getComputedStyle(e).cursor, getComputedStyle(e, '::before').borderRightWidth,"
        " getComputedStyle(e).backgroundColor]"
    )
    cursor, caret, background = summary.evaluate(look)
    assert (cursor, caret) == ("pointer", "2px")
    summary.hover()
    assert summary.evaluate(look)[2] != background

    when = (timezone.localtime() + dt.timedelta(days=2)).replace(hour=16, minute=0)
    page.click("#trial summary")
    page.select_option("#id_t-course", str(course_a.pk))
    page.select_option("#id_t-teacher", str(teacher.pk))
    page.fill("#id_t-scheduled_at", when.strftime("%Y-%m-%dT%H:%M"))
    page.click("#trial button")
    expect(page.locator(".msg.success")).to_contain_text("Trial booked")
    expect(page.locator("[data-kind=trial]")).to_contain_text(course_a.name)
    snapshot(page, "student_detail")

    trial = TrialLesson.objects.get(student=student)
    assert (trial.teacher, trial.status) == (teacher, TrialStatus.BOOKED)
    assert student.consultations.count() == 1


def test_teacher_records_trial_feedback(live_server, page: Page, teacher, course_a, campus_a):
    guardian = factories.GuardianFactory(phone="+8613800135678")
    student = factories.StudentFactory(name="张小花", campus=campus_a, guardians=[guardian])
    now = timezone.localtime()
    start = now.replace(hour=9, minute=0, second=0, microsecond=0)
    trial = factories.TrialLessonFactory(student=student, course=course_a, teacher=teacher, scheduled_at=start)
    log_in(page, live_server.url, "tom")
    expect(page).to_have_url(f"{live_server.url}/teacher/today/")
    card = page.locator(f"[data-trial='{trial.pk}']")
    expect(card).to_contain_text("张小花")
    expect(card).to_contain_text("138 **** 5678")
    snapshot(page, "teacher_today")

    card.locator("input[value='1']").check()
    card.locator("select").select_option("5")
    card.locator("textarea").fill("逻辑清晰，建议从 L2 开始")
    card.locator("input[name$=recommended_level]").fill("L2")
    card.locator("button").click()
    expect(page.locator(".msg.success")).to_be_visible()
    expect(page.locator(f"[data-trial='{trial.pk}']")).to_contain_text("逻辑清晰")
    snapshot(page, "teacher_today_after")

    trial.refresh_from_db()
    assert (trial.status, trial.rating, trial.recommended_level) == (TrialStatus.ATTENDED, 5, "L2")


def test_teacher_records_a_whole_lesson_in_one_save_and_corrects_a_row(
    live_server, page: Page, teacher, course_a, campus_a
):
    page.set_viewport_size(TABLET_TALL)
    start = timezone.localtime().replace(hour=15, minute=0, second=0, microsecond=0)
    lesson = factories.LessonFactory(course=course_a, teacher=teacher, starts_at=start, hours=Decimal("2"))
    students = []
    for name in ("陈一一", "林二二", "周三三"):
        student = factories.StudentFactory(name=name, campus=campus_a)
        factories.ContractFactory(student=student, course=course_a, hours_bought=Decimal("10"))
        lesson.students.add(student)
        students.append(student)
    present, absent, _other = students

    log_in(page, live_server.url, "tom")
    expect(page).to_have_url(f"{live_server.url}/teacher/today/")
    sheet = page.locator(f"[data-lesson='{lesson.pk}']")
    for student in students:  # everyone present until marked otherwise
        expect(sheet.locator(f"[data-student='{student.pk}'] input[value=present]")).to_be_checked()
    snapshot(page, "attendance_sheet")

    sheet.locator(f"[data-student='{absent.pk}'] .seg-absent").click()
    expect(sheet.locator(f"[data-student='{absent.pk}'] input[value=absent]")).to_be_checked()
    sheet.locator("button[type=submit]").click()

    expect(page.locator(".msg.success")).to_be_visible()
    sheet = page.locator(f"[data-lesson='{lesson.pk}']")
    expect(sheet.locator("[data-recorded]")).to_have_count(3)
    absent_row = sheet.locator(f"[data-student='{absent.pk}']")
    expect(absent_row).to_have_attribute("data-recorded", "absent")
    expect(absent_row.locator(".hours-left")).to_have_text("8")  # an absence costs the lesson's 2 hours
    expect(sheet.locator(f"[data-student='{present.pk}'] .hours-left")).to_have_text("8")
    expect(sheet.locator("button[type=submit]")).to_have_count(0)  # nobody left to record
    snapshot(page, "attendance_saved")
    assert sorted(Attendance.objects.values_list("status", flat=True)) == ["absent", "present", "present"]

    # The parents had asked for leave: the teacher corrects the row the same day.
    absent_row.locator("details.correct summary").click()
    absent_row.locator("select[name$=status]").select_option(AttendanceStatus.LEAVE)
    absent_row.locator("input[name$=reason]").fill("家长提前请过假")
    snapshot(page, "attendance_correcting")
    absent_row.locator("details.correct button").click()
    expect(page.locator(".msg.success")).to_be_visible()
    absent_row = page.locator(f"[data-lesson='{lesson.pk}'] [data-student='{absent.pk}']")
    expect(absent_row).to_have_attribute("data-recorded", "leave")
    expect(absent_row.locator(".hours-left")).to_have_text("10")  # the 2 hours given back
    snapshot(page, "attendance_corrected")
    assert Contract.objects.get(student=absent).hours_consumed == 0
