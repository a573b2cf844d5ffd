"""Reads of the campaigns pages: campaigns as the viewer may see them, a preview of the texts for
real families, the results against the holdout, and the call tasks of the follow-up list. Each in
a constant number of queries, whatever the audience's size."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import (
    CallTask,
    CallTaskStatus,
    Campaign,
    CampaignGroup,
    CampaignMember,
    CampaignTemplate,
    ConsentRecord,
    Message,
    MessageStatus,
    SuppressionReason,
)
from campaigns.rules import Uplift, render, uplift_for
from crm.models import Attendance, AttendanceStatus, Contract, ContractStatus, Role, Student, TrialLesson, User
from crm.roles import sees_all_campuses
from crm.selectors import in_viewers_campuses
from lifecycle.models import StageChange
from personas.conditions import campus_viewer
from personas.models import StudentProfile
from personas.selectors import segment_members

REACHED = (MessageStatus.SENT, MessageStatus.DELIVERED)


def campaigns_visible_to(viewer: User) -> QuerySet[Campaign]:
    """Managers see their campus's campaigns, administrators every campus's; nobody else any."""
    if viewer.role not in (Role.MANAGER, Role.ADMIN) and not sees_all_campuses(viewer):
        return Campaign.objects.none()
    return in_viewers_campuses(Campaign.objects.all(), viewer)


def campaign_get(*, viewer: User, campaign_id: int) -> Campaign:
    """The campaign, or a 404 for one the viewer may not see (another campus's is not there)."""
    campaign = campaigns_visible_to(viewer).select_related("segment", "campus", "launched_by").filter(pk=campaign_id)
    found = campaign.first()
    if found is None:
        raise Http404
    return found


def recipient_values(student: Student, guardian_name: str, hours_left: Decimal | None) -> dict[str, str]:
    """What a template may say about one family (`campaigns.rules.TEMPLATE_VARIABLES`)."""
    return {
        "student": student.name,
        "guardian": guardian_name,
        "hours_left": f"{hours_left.normalize():f}" if hours_left is not None else "0",
        "consultant": str(student.owner) if student.owner else "",
    }


@dataclass(frozen=True)
class PreviewRow:
    student: Student
    guardian: str
    texts: list[tuple[CampaignTemplate, str, str]]  # template, subject, text


def campaign_preview(campaign: Campaign, *, limit: int = 3) -> list[PreviewRow]:
    """The campaign's texts filled in for its first few members, as they would read them."""
    members = segment_members(viewer=campus_viewer(campaign.campus_id), segment=campaign.segment)
    students = list(members.select_related("owner").prefetch_related("guardians").order_by("pk")[:limit])
    hours = dict(StudentProfile.objects.filter(student__in=students).values_list("student_id", "remaining_hours"))
    templates = list(campaign.templates.order_by("variant", "channel"))
    rows = []
    for student in students:
        guardians = list(student.guardians.all())
        guardian = guardians[0].name if guardians else ""
        values = recipient_values(student, guardian, hours.get(student.pk))
        texts = [(t, render(t.subject, values), render(t.text, values)) for t in templates]
        rows.append(PreviewRow(student=student, guardian=guardian, texts=texts))
    return rows


@dataclass
class GroupResult:
    group: str
    label: Any
    members: int = 0
    reached: int = 0
    converted: int = 0
    won_back: int = 0
    uplift: Uplift | None = None

    @property
    def rate(self) -> float | None:
        return self.converted / self.members if self.members else None


@dataclass
class ChannelResult:
    channel: str
    label: Any
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    waiting: int = 0
    unknown: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)

    @property
    def held(self) -> list[tuple[str, int]]:
        """The suppressions in words, by reason."""
        labels = dict(SuppressionReason.choices)
        return [(str(labels.get(reason, reason)), n) for reason, n in sorted(self.suppressed.items())]


@dataclass
class Results:
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    groups: list[GroupResult]
    channels: list[ChannelResult]
    opted_out: int
    calls_open: int
    calls_done: int

    @property
    def chart(self) -> dict[str, Any]:
        return {
            "groups": [str(g.label) for g in self.groups],
            "rates": [round(g.rate * 100, 1) if g.rate is not None else None for g in self.groups],
            "channels": [str(c.label) for c in self.channels],
            "sent": [c.sent - c.delivered for c in self.channels],
            "delivered": [c.delivered for c in self.channels],
            "failed": [c.failed for c in self.channels],
            "suppressed": [sum(c.suppressed.values()) for c in self.channels],
            "names": {
                "rate": _("Conversion rate (%)"),
                "delivered": _("Delivered"),
                "sent": _("Sent, not yet confirmed"),
                "failed": _("Failed"),
                "suppressed": _("Held back"),
            },
        }


def converted_q(start: dt.datetime, end: dt.datetime) -> Q:
    """A member converted: booked a trial, signed a contract or attended a lesson within the window."""
    student = OuterRef("student_id")
    trial = TrialLesson.objects.filter(student_id=student, created_at__gte=start, created_at__lt=end)
    contract = Contract.objects.filter(student_id=student, signed_at__gte=start, signed_at__lt=end).exclude(
        status=ContractStatus.CANCELLED
    )
    attended = Attendance.objects.filter(
        student_id=student, lesson_at__gte=start, lesson_at__lt=end, status=AttendanceStatus.PRESENT
    )
    return Q(Exists(trial)) | Q(Exists(contract)) | Q(Exists(attended))


def won_back_q(campaign: Campaign, start: dt.datetime, end: dt.datetime) -> Q:
    """A member won back within the window (the lifecycle engine's transition) whom this campaign
    was the last to reach before it: the credit goes to the last campaign that reached them."""
    student = OuterRef("student_id")
    last_reach = (
        Message.objects.filter(
            student_id=OuterRef("student_id"),
            campaign__isnull=False,
            status__in=REACHED,
            sent_at__lte=OuterRef("changed_at"),
        )
        .order_by("-sent_at", "-pk")
        .values("campaign_id")[:1]
    )
    transitions = (
        StageChange.objects.filter(student_id=student, won_back=True, changed_at__gte=start, changed_at__lt=end)
        .annotate(credited=Subquery(last_reach))
        .filter(credited=campaign.pk)
    )
    return Q(Exists(transitions))


def campaign_results(campaign: Campaign, *, now: dt.datetime | None = None) -> Results:
    """Reached, delivered, failed, suppressed by reason, opted out, converted and won back, per
    group against the holdout, with the uplift and its 95% interval: five queries."""
    now = now or timezone.now()
    start = campaign.resolved_at
    end = start + dt.timedelta(days=campaign.attribution_days) if start else None
    labels = dict(CampaignGroup.choices)
    groups: dict[str, GroupResult] = {
        str(g): GroupResult(group=str(g), label=labels[g])
        for g in (CampaignGroup.A, CampaignGroup.B, CampaignGroup.HOLDOUT)
    }
    if start is not None and end is not None:
        reached = Message.objects.filter(campaign_id=campaign.pk, student_id=OuterRef("student_id"), status__in=REACHED)
        called = CallTask.objects.filter(
            campaign_id=campaign.pk, student_id=OuterRef("student_id"), status=CallTaskStatus.DONE
        )
        rows = (
            CampaignMember.objects.filter(campaign=campaign)
            .values("group")
            .annotate(
                members=Count("pk"),
                reached=Count("pk", filter=Q(Exists(reached)) | Q(Exists(called))),
                converted=Count("pk", filter=converted_q(start, end)),
                won_back=Count("pk", filter=won_back_q(campaign, start, end)),
            )
        )
        for row in rows:
            result = groups[row["group"]]
            result.members, result.reached = row["members"], row["reached"]
            result.converted, result.won_back = row["converted"], row["won_back"]
    holdout = groups[CampaignGroup.HOLDOUT]
    for group in (groups[CampaignGroup.A], groups[CampaignGroup.B]):
        group.uplift = uplift_for(
            converted=group.converted,
            members=group.members,
            holdout_converted=holdout.converted,
            holdout_members=holdout.members,
        )
    shown = [g for g in groups.values() if g.members or g.group == CampaignGroup.A]
    channels = _channel_results(campaign)
    opted_out = 0
    if start is not None:
        guardians = Message.objects.filter(campaign_id=campaign.pk, status__in=REACHED).values("guardian_id")
        opted_out = (
            ConsentRecord.objects.filter(granted=False, recorded_at__gte=start, recorded_at__lt=end or now)
            .filter(guardian_id__in=guardians)
            .values("guardian_id")
            .distinct()
            .count()
        )
    calls = dict(
        CallTask.objects.filter(campaign=campaign).values("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    return Results(
        window_start=start,
        window_end=end,
        groups=shown,
        channels=channels,
        opted_out=opted_out,
        calls_open=calls.get(CallTaskStatus.OPEN, 0),
        calls_done=calls.get(CallTaskStatus.DONE, 0),
    )


def _channel_results(campaign: Campaign) -> list[ChannelResult]:
    from campaigns.models import MessageChannel

    labels = dict(MessageChannel.choices)
    results = {c: ChannelResult(channel=c, label=labels[c]) for c in campaign.channels if c in labels}
    rows = (
        Message.objects.filter(campaign=campaign)
        .values("channel", "status", "suppressed_reason")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in rows:
        result = results.setdefault(row["channel"], ChannelResult(row["channel"], labels.get(row["channel"], "")))
        status, n = row["status"], row["n"]
        if status == MessageStatus.SENT:
            result.sent += n
        elif status == MessageStatus.DELIVERED:
            result.sent += n
            result.delivered += n
        elif status == MessageStatus.FAILED:
            result.failed += n
        elif status == MessageStatus.SUPPRESSED:
            result.suppressed[row["suppressed_reason"]] = n
        elif status == MessageStatus.UNKNOWN:
            result.unknown += n
        else:
            result.waiting += n
    return list(results.values())


def call_tasks_for(viewer: User) -> QuerySet[CallTask]:
    """Open call tasks in the viewer's follow-ups: their own students' (a consultant), or their
    campus's (a manager, an administrator's every campus), campaigns still running or done."""
    tasks = CallTask.objects.filter(status=CallTaskStatus.OPEN).exclude(campaign__status="cancelled")
    tasks = in_viewers_campuses(tasks, viewer, campus_lookup="campaign__campus_id")
    if viewer.role == Role.FRONT_DESK:
        tasks = tasks.filter(consultant=viewer)
    elif viewer.role not in (Role.MANAGER, Role.ADMIN) and not sees_all_campuses(viewer):
        return tasks.none()
    return (
        tasks.select_related("student__owner", "campaign", "consultant")
        .prefetch_related("student__guardians")
        .order_by("pk")
    )


@dataclass(frozen=True)
class CallRow:
    task: CallTask
    script: str
    phones: list[str]


def call_task_rows(tasks: list[CallTask]) -> list[CallRow]:
    """Call tasks with their scripts filled in for the family and the numbers to ring (one query
    for the hours left, whatever the number of tasks)."""
    hours = dict(
        StudentProfile.objects.filter(student_id__in=[t.student_id for t in tasks]).values_list(
            "student_id", "remaining_hours"
        )
    )
    rows = []
    for task in tasks:
        guardians = list(task.student.guardians.all())
        name = guardians[0].name if guardians else ""
        values = recipient_values(task.student, name, hours.get(task.student_id))
        rows.append(CallRow(task=task, script=render(task.script, values), phones=[g.phone for g in guardians]))
    return rows
