"""The teacher's day: today's trials and lessons, feedback and attendance."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from crm import services
from crm.forms import AttendanceForm, TrialFeedbackForm, apply_service_errors
from crm.models import AttendanceStatus, Lesson, Role, TrialLesson, User
from crm.selectors import students_visible_to, teacher_day, teachers_of
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


def _render_day(request: HttpRequest, day: dt.date, teacher: User, bound: dict[str, object] | None = None, status=200):
    viewer: User = request.user  # type: ignore[assignment]
    plan = teacher_day(viewer=viewer, teacher=teacher, day=day)
    bound = bound or {}
    trial_forms = [(t, bound.get(f"trial-{t.pk}") or TrialFeedbackForm(prefix=f"f{t.pk}")) for t in plan.trials]
    lessons = []
    for lesson_day in plan.lessons:
        rows = []
        for entry in lesson_day.roster:
            key = f"att-{lesson_day.lesson.pk}-{entry.student.pk}"
            form = bound.get(key) or AttendanceForm(
                prefix=f"a{lesson_day.lesson.pk}-{entry.student.pk}",
                initial={
                    "student": entry.student.pk,
                    "status": AttendanceStatus.PRESENT,
                    "hours": lesson_day.lesson.hours,
                },
            )
            rows.append((entry, form))
        lessons.append((lesson_day.lesson, rows))
    return render(
        request,
        "crm/teacher_today.html",
        {
            "plan": plan,
            "trial_forms": trial_forms,
            "lessons": lessons,
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
def lesson_attendance(request: HttpRequest, pk: int, student_id: int) -> HttpResponse:
    viewer: User = request.user  # type: ignore[assignment]
    lesson = Lesson.objects.select_related("course", "teacher").filter(pk=pk).first()
    student = students_visible_to(viewer).filter(pk=student_id, lessons=pk).first()
    if lesson is None or student is None:
        raise Http404
    day = timezone.localdate(lesson.starts_at)
    form = AttendanceForm(request.POST, prefix=f"a{lesson.pk}-{student.pk}")
    if form.is_valid():
        data = form.cleaned_data
        hours = data["hours"] if data["status"] == AttendanceStatus.PRESENT else Decimal("0")
        try:
            services.attendance_record(
                actor=viewer,
                student=student,
                lesson=lesson,
                hours=hours,
                status=data["status"],
                feedback=data["feedback"],
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, _("Attendance for %(name)s saved.") % {"name": student.name})
            return _back_to_day(day, lesson.teacher, f"lesson-{lesson.pk}")
    return _render_day(request, day, lesson.teacher, {f"att-{lesson.pk}-{student.pk}": form}, status=400)
