"""The teacher's day: today's trials and lessons, feedback and attendance."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.forms import BoundField
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from crm import services
from crm.forms import AttendanceCorrectForm, LessonAttendanceForm, TrialFeedbackForm, apply_service_errors
from crm.models import Attendance, AttendanceStatus, Lesson, Role, TrialLesson, User
from crm.selectors import LessonDay, RosterEntry, lesson_sheet, students_visible_to, teacher_day, teachers_of
from crm.views.access import TEACHING, role_required


def _day_from(request: HttpRequest) -> dt.date:
    try:
        return dt.date.fromisoformat(request.GET.get("date", ""))
    except ValueError:
        return timezone.localdate()


def _teacher_for(request: HttpRequest) -> User:
    """A teacher sees their own day; a manager may look at any teacher of their campus."""
    viewer: User = request.user  # type: ignore[assignment]
    if viewer.role == Role.TEACHER:
        return viewer
    teachers = teachers_of(viewer.campus_id) if viewer.campus_id else User.objects.filter(groups__name=Role.TEACHER)
    wanted = request.GET.get("teacher") or request.POST.get("teacher")
    teacher = teachers.filter(pk=wanted).first() if wanted and wanted.isdigit() else teachers.first()
    if teacher is None:
        raise Http404(_("This campus has no teacher yet."))
    return teacher


@dataclass
class SheetRow:
    """A roster line on the page: the student's record, or their line of the sheet to fill,
    and the correction form when the viewer may still correct the record."""

    entry: RosterEntry
    status: BoundField | None = None
    feedback: BoundField | None = None
    correct_form: AttendanceCorrectForm | None = None
    correct_open: bool = False


@dataclass
class Sheet:
    lesson: Lesson
    rows: list[SheetRow]
    form: LessonAttendanceForm
    pending: int


def _sheet_form(lesson_day: LessonDay, data: QueryDict | None = None) -> LessonAttendanceForm:
    """The sheet lists the students still to record who have hours to take them from."""
    students = [e.student for e in lesson_day.roster if e.attendance is None and e.contract is not None]
    return LessonAttendanceForm(data, prefix=f"l{lesson_day.lesson.pk}", students=students)


def _sheet(viewer: User, lesson_day: LessonDay, bound: dict[str, Any]) -> Sheet:
    form = bound.get(f"lesson-{lesson_day.lesson.pk}") or _sheet_form(lesson_day)
    fields = {s.pk: (status, feedback) for s, status, feedback in form.rows()}
    rows = []
    for entry in lesson_day.roster:
        row = SheetRow(entry)
        if entry.student.pk in fields:
            row.status, row.feedback = fields[entry.student.pk]
        elif entry.attendance is not None:
            att = entry.attendance
            refused = bound.get(f"correct-{att.pk}")  # shown with its errors, whoever sent it
            if refused is not None:
                row.correct_form, row.correct_open = refused, True
            elif services.attendance_correctable_by(viewer, att):
                row.correct_form = AttendanceCorrectForm(prefix=f"c{att.pk}", initial={"status": att.status})
        rows.append(row)
    return Sheet(lesson=lesson_day.lesson, rows=rows, form=form, pending=len(fields))


def _render_day(
    request: HttpRequest, day: dt.date, teacher: User, bound: dict[str, Any] | None = None, status: int = 200
) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    plan = teacher_day(viewer=viewer, teacher=teacher, day=day)
    bound = bound or {}
    trial_forms = [(t, bound.get(f"trial-{t.pk}") or TrialFeedbackForm(prefix=f"f{t.pk}")) for t in plan.trials]
    return render(
        request,
        "crm/teacher_today.html",
        {
            "plan": plan,
            "trial_forms": trial_forms,
            "sheets": [_sheet(viewer, lesson_day, bound) for lesson_day in plan.lessons],
            "teachers": teachers_of(viewer.campus_id) if viewer.role != Role.TEACHER and viewer.campus_id else [],
            "prev_day": day - dt.timedelta(days=1),
            "next_day": day + dt.timedelta(days=1),
            "is_today": day == timezone.localdate(),
            "nav": "teacher",
        },
        status=status,
    )


@role_required(*TEACHING)
def teacher_today(request: HttpRequest) -> HttpResponse:
    return _render_day(request, _day_from(request), _teacher_for(request))


def _back_to_day(day: dt.date, teacher: User, anchor: str) -> HttpResponse:
    return redirect(f"{reverse('teacher_today')}?date={day.isoformat()}&teacher={teacher.pk}#{anchor}")


@require_POST
@role_required(*TEACHING)
def trial_feedback(request: HttpRequest, pk: int) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    trial = (
        TrialLesson.objects.select_related("student", "teacher")
        .filter(pk=pk, student__in=students_visible_to(viewer))
        .first()
    )
    if trial is None:
        raise Http404
    day = timezone.localdate(trial.scheduled_at)
    form = TrialFeedbackForm(request.POST, prefix=f"f{trial.pk}")
    if form.is_valid():
        try:
            services.trial_feedback_record(actor=viewer, trial=trial, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, _("Feedback for %(name)s saved.") % {"name": trial.student.name})
            return _back_to_day(day, trial.teacher, f"trial-{trial.pk}")
    return _render_day(request, day, trial.teacher, {f"trial-{trial.pk}": form}, status=400)


@require_POST
@role_required(*TEACHING)
def lesson_attendance(request: HttpRequest, pk: int) -> HttpResponse:
    """Save a whole lesson's sheet in one go: everyone recorded, or nobody and why."""
    viewer: User = request.user  # type: ignore[assignment]
    lesson_day = lesson_sheet(viewer=viewer, lesson_id=pk)
    if lesson_day is None:
        raise Http404
    lesson = lesson_day.lesson
    day = timezone.localdate(lesson.starts_at)
    form = _sheet_form(lesson_day, request.POST)
    if form.is_valid():
        try:
            recorded = services.lesson_attendance_record(actor=viewer, lesson=lesson, marks=form.marks())
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            counts = Counter(a.status for a in recorded)
            messages.success(
                request,
                _("Attendance saved for %(course)s: %(present)d present, %(absent)d absent, %(leave)d on leave.")
                % {
                    "course": lesson.course,
                    "present": counts[AttendanceStatus.PRESENT],
                    "absent": counts[AttendanceStatus.ABSENT],
                    "leave": counts[AttendanceStatus.LEAVE],
                },
            )
            return _back_to_day(day, lesson.teacher, f"lesson-{lesson.pk}")
    return _render_day(request, day, lesson.teacher, {f"lesson-{lesson.pk}": form}, status=400)


@require_POST
@role_required(*TEACHING)
def attendance_correct(request: HttpRequest, pk: int) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    attendance = (
        Attendance.objects.select_related("student", "lesson", "teacher")
        .filter(pk=pk, student__in=students_visible_to(viewer))
        .first()
    )
    if attendance is None:
        raise Http404
    day = timezone.localdate(attendance.lesson_at)
    form = AttendanceCorrectForm(request.POST, prefix=f"c{attendance.pk}")
    if form.is_valid():
        data = form.cleaned_data
        try:
            corrected = services.attendance_correct(
                actor=viewer, attendance=attendance, status=data["status"], hours=data["hours"], reason=data["reason"]
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(
                request,
                _("Attendance of %(name)s corrected: %(status)s, %(hours)s hours.")
                % {
                    "name": attendance.student.name,
                    "status": corrected.get_status_display(),
                    "hours": f"{corrected.hours:g}",
                },
            )
            return _back_to_day(day, attendance.teacher, f"lesson-{attendance.lesson_id}")
    return _render_day(request, day, attendance.teacher, {f"correct-{attendance.pk}": form}, status=400)
