"""A campaign's life: drafted, launched, sent, paused, resumed, cancelled. Every door (the page,
the admin, the API, the beat) calls these, and every state change is one conditional UPDATE on
the campaign's status, so two managers pressing two buttons at once leave one answer.

draft -> scheduled (a send time ahead) -> sending -> done, with pause (scheduled or sending ->
paused), resume (paused -> sending, or scheduled while its time is ahead) and cancel (anything
not done). The audience is resolved once, when sending first starts (`resolve_audience`);
launching a finished campaign again, like resuming, only sends what was never sent: there is
nothing left, so nothing goes.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from campaigns.models import (
    Campaign,
    CampaignChannel,
    CampaignGoal,
    CampaignStatus,
    CampaignTemplate,
    Message,
    MessageStatus,
)
from campaigns.rules import template_problem, variable_names, wechat_fields
from campaigns.services.audience import DryRun, dry_run_counts, resolve_audience
from campaigns.services.messages import due
from crm import text
from crm.models import AuditAction, Campus, Role, User
from crm.roles import require_campus, require_role
from crm.services.audit import audit
from personas.models import Segment
from personas.selectors import segments_visible_to

SMS_MAX_LENGTH = 300


@dataclass(frozen=True)
class TemplateInput:
    channel: str
    text: str
    variant: str = "A"
    subject: str = ""
    template_code: str = ""


@dataclass
class CampaignInput:
    name: str
    goal: str
    segment: Segment | None
    channels: list[str]
    templates: list[TemplateInput]
    holdout_pct: int = 0
    split_a_pct: int = 50
    attribution_days: int = 14
    scheduled_at: dt.datetime | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)


def _require_manager(actor: User, campus_id: int) -> None:
    require_role(actor, Role.MANAGER)
    require_campus(actor, campus_id)


def _template_errors(template: TemplateInput) -> list[str]:
    label = f"{CampaignChannel(template.channel).label} {template.variant}"
    problems = []
    if not template.text.strip():
        problems.append(_("%(template)s: write the text.") % {"template": label})
    for part in (template.text, template.subject):
        bad = template_problem(part)
        if bad:
            problems.append(
                _("%(template)s: {%(name)s} is not a variable; use %(known)s.")
                % {
                    "template": label,
                    "name": bad,
                    "known": ", ".join(variable_names(chinese=translation.get_language().startswith("zh"))),
                }
            )
    if template.channel == CampaignChannel.SMS and len(template.text) > SMS_MAX_LENGTH:
        problems.append(_("%(template)s: at most %(n)s characters.") % {"template": label, "n": SMS_MAX_LENGTH})
    if template.channel == CampaignChannel.EMAIL and not template.subject.strip():
        problems.append(_("%(template)s: an email needs a subject.") % {"template": label})
    if len(template.subject) > 200:
        problems.append(_("%(template)s: the subject is too long.") % {"template": label})
    if template.channel == CampaignChannel.WECHAT:
        if not template.template_code.strip():
            problems.append(_("%(template)s: WeChat needs the subscription template's id.") % {"template": label})
        if template.text.strip() and wechat_fields(template.text) is None:
            problems.append(
                _("%(template)s: write one line per field of the WeChat template, like thing1={学员}.")
                % {"template": label}
            )
    return problems


def campaign_validate(*, actor: User, campus: Campus, data: CampaignInput) -> None:
    """Every problem of a campaign as a person wrote it, as one ValidationError by field."""
    errors: dict[str, list[str]] = {}
    if not data.name.strip():
        errors.setdefault("name", []).append(_("Give the campaign a name."))
    elif len(data.name) > text.NAME:
        errors.setdefault("name", []).append(_("The name is too long."))
    if data.goal not in CampaignGoal.values:
        errors.setdefault("goal", []).append(_("Choose a goal."))
    if data.segment is None or not (
        data.segment.campus_id in (None, campus.pk) and segments_visible_to(actor).filter(pk=data.segment.pk).exists()
    ):
        errors.setdefault("segment", []).append(_("Choose one of your campus's segments."))
    unknown = [c for c in data.channels if c not in CampaignChannel.values]
    if not data.channels or unknown or len(set(data.channels)) != len(data.channels):
        errors.setdefault("channels", []).append(_("Choose at least one channel."))
    if not 0 <= data.holdout_pct <= 90:
        errors.setdefault("holdout_pct", []).append(_("The holdout is between 0 and 90%."))
    if not 1 <= data.split_a_pct <= 99:
        errors.setdefault("split_a_pct", []).append(_("Variant A's share is between 1 and 99%."))
    if not 1 <= data.attribution_days <= 90:
        errors.setdefault("attribution_days", []).append(_("The attribution window is 1 to 90 days."))
    if data.scheduled_at is not None and data.scheduled_at < timezone.now() - dt.timedelta(minutes=5):
        errors.setdefault("scheduled_at", []).append(_("The send time has passed."))
    given = {(t.variant, t.channel) for t in data.templates}
    variants = {t.variant for t in data.templates}
    problems: list[str] = []
    if not variants <= {"A", "B"}:
        problems.append(_("A campaign has variants A and B only."))
    for channel in data.channels if not unknown else []:
        for variant in sorted(variants | {"A"}):
            if (variant, channel) not in given:
                problems.append(
                    _("%(channel)s needs a text for variant %(variant)s.")
                    % {"channel": CampaignChannel(channel).label, "variant": variant}
                )
    for template in data.templates:
        if template.channel not in data.channels:
            problems.append(_("A text for a channel the campaign does not use."))
        elif template.variant in ("A", "B"):
            problems += _template_errors(template)
    if problems:
        errors["templates"] = problems
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def campaign_save(*, actor: User, campus: Campus, data: CampaignInput, campaign: Campaign | None = None) -> Campaign:
    """Create a draft, or change one (a launched campaign is never changed: its results would no
    longer say what was sent)."""
    _require_manager(actor, campus.pk)
    if campaign is not None:
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        _require_manager(actor, campaign.campus_id)
        if campaign.status != CampaignStatus.DRAFT:
            raise ValidationError(_("Only a draft can be changed."))
    campaign_validate(actor=actor, campus=campus, data=data)
    fields = {
        "name": data.name.strip(),
        "goal": data.goal,
        "segment": data.segment,
        "channels": list(data.channels),
        "holdout_pct": data.holdout_pct,
        "split_a_pct": data.split_a_pct,
        "attribution_days": data.attribution_days,
        "scheduled_at": data.scheduled_at,
    }
    if campaign is None:
        campaign = Campaign.objects.create(campus=campus, created_by=actor, seed=secrets.randbelow(2**31), **fields)
        action = AuditAction.CAMPAIGN_CREATE
    else:
        for name, value in fields.items():
            setattr(campaign, name, value)
        campaign.save()
        campaign.templates.all().delete()
        action = AuditAction.CAMPAIGN_UPDATE
    CampaignTemplate.objects.bulk_create(
        CampaignTemplate(
            campaign=campaign,
            variant=t.variant,
            channel=t.channel,
            text=t.text.strip(),
            subject=t.subject.strip(),
            template_code=t.template_code.strip(),
        )
        for t in data.templates
    )
    audit(actor=actor, action=action, campaign=campaign.pk, name=campaign.name)
    return campaign


def _move(campaign: Campaign, *, sources: tuple[str, ...], target: str, **fields: object) -> bool:
    """One conditional UPDATE: True when the campaign was in one of `sources` and is now `target`."""
    moved = Campaign.objects.filter(pk=campaign.pk, status__in=sources).update(
        status=target, updated_at=timezone.now(), **fields
    )
    return bool(moved)


def _start_after_commit(campaign_id: int) -> None:
    from campaigns.tasks import start_campaign

    transaction.on_commit(lambda: start_campaign.delay(campaign_id))


@transaction.atomic
def campaign_launch(*, actor: User, campaign: Campaign, now: dt.datetime | None = None) -> Campaign:
    """A manager launches a draft (sent now, or scheduled), or a finished campaign again, which
    sends only what was never sent."""
    _require_manager(actor, campaign.campus_id)
    now = now or timezone.now()
    ahead = campaign.scheduled_at is not None and campaign.scheduled_at > now
    target = CampaignStatus.SCHEDULED if ahead and campaign.resolved_at is None else CampaignStatus.SENDING
    sources = (CampaignStatus.DRAFT, CampaignStatus.DONE)
    if not _move(campaign, sources=sources, target=target, launched_by=actor, launched_at=now, finished_at=None):
        raise ValidationError(_("Only a draft or a finished campaign can be launched."))
    audit(actor=actor, action=AuditAction.CAMPAIGN_LAUNCH, campaign=campaign.pk, name=campaign.name)
    if target == CampaignStatus.SENDING:
        _start_after_commit(campaign.pk)
    campaign.refresh_from_db()
    return campaign


@transaction.atomic
def campaign_pause(*, actor: User, campaign: Campaign) -> Campaign:
    _require_manager(actor, campaign.campus_id)
    if not _move(campaign, sources=(CampaignStatus.SCHEDULED, CampaignStatus.SENDING), target=CampaignStatus.PAUSED):
        raise ValidationError(_("Only a scheduled or sending campaign can be paused."))
    audit(actor=actor, action=AuditAction.CAMPAIGN_PAUSE, campaign=campaign.pk, name=campaign.name)
    campaign.refresh_from_db()
    return campaign


@transaction.atomic
def campaign_resume(*, actor: User, campaign: Campaign, now: dt.datetime | None = None) -> Campaign:
    """Back to work: only what was not sent yet goes out (sent rows are never claimed again)."""
    _require_manager(actor, campaign.campus_id)
    now = now or timezone.now()
    ahead = campaign.resolved_at is None and campaign.scheduled_at is not None and campaign.scheduled_at > now
    target = CampaignStatus.SCHEDULED if ahead else CampaignStatus.SENDING
    if not _move(campaign, sources=(CampaignStatus.PAUSED,), target=target):
        raise ValidationError(_("Only a paused campaign can be resumed."))
    audit(actor=actor, action=AuditAction.CAMPAIGN_RESUME, campaign=campaign.pk, name=campaign.name)
    if target == CampaignStatus.SENDING:
        _start_after_commit(campaign.pk)
    campaign.refresh_from_db()
    return campaign


@transaction.atomic
def campaign_cancel(*, actor: User, campaign: Campaign) -> Campaign:
    """Stop for good: what was not sent stays unsent (the rows stay, for the record)."""
    _require_manager(actor, campaign.campus_id)
    open_states = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED)
    if not _move(campaign, sources=open_states, target=CampaignStatus.CANCELLED, finished_at=timezone.now()):
        raise ValidationError(_("A finished campaign cannot be cancelled."))
    audit(actor=actor, action=AuditAction.CAMPAIGN_CANCEL, campaign=campaign.pk, name=campaign.name)
    campaign.refresh_from_db()
    return campaign


def campaign_dry_run(*, actor: User, campaign: Campaign, now: dt.datetime | None = None) -> DryRun:
    """How many a launch now would reach, and hold back by reason, per channel; writes nothing."""
    _require_manager(actor, campaign.campus_id)
    if campaign.resolved_at is not None:
        raise ValidationError(_("This campaign's audience is already fixed; its results show who was reached."))
    return dry_run_counts(campaign, now=now or timezone.now())


def campaign_resolve(campaign_id: int, *, now: dt.datetime | None = None) -> bool:
    """The audience, once, when the campaign first sends (the task `campaigns.start_campaign`).
    True when the campaign is sending and resolved; False when it is not sending."""
    now = now or timezone.now()
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
        if campaign is None or campaign.status != CampaignStatus.SENDING:
            return False
        if campaign.resolved_at is None:
            resolve_audience(campaign, now=now)
            campaign.resolved_at = now
            campaign.save(update_fields=["resolved_at", "updated_at"])
    return True


def campaign_finish_if_sent(campaign_id: int) -> bool:
    """sending -> done once nothing is left queued or mid-send."""
    pending = Message.objects.filter(campaign_id=campaign_id, status__in=(MessageStatus.QUEUED, MessageStatus.SENDING))
    if pending.exists():
        return False
    return bool(
        Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.SENDING).update(
            status=CampaignStatus.DONE, finished_at=timezone.now(), updated_at=timezone.now()
        )
    )


def campaigns_start_due(*, now: dt.datetime | None = None) -> list[int]:
    """Scheduled campaigns whose time has come start sending (the beat, every minute)."""
    now = now or timezone.now()
    due = list(
        Campaign.objects.filter(status=CampaignStatus.SCHEDULED, scheduled_at__lte=now).values_list("pk", flat=True)
    )
    started = []
    for campaign_id in due:
        if Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.SCHEDULED).update(
            status=CampaignStatus.SENDING, updated_at=now
        ):
            started.append(campaign_id)
    return started


def campaigns_idle(*, now: dt.datetime | None = None) -> list[int]:
    """Sending campaigns with due rows that no worker has taken a batch of for
    `settings.CAMPAIGN_IDLE_SECONDS`: their tasks were lost."""
    now = now or timezone.now()
    idle_after = dt.timedelta(seconds=settings.CAMPAIGN_IDLE_SECONDS)
    due_rows = Message.objects.filter(due(now), campaign_id=OuterRef("pk"))
    return list(
        Campaign.objects.filter(status=CampaignStatus.SENDING, resolved_at__isnull=False)
        .filter(Q(last_batch_at__isnull=True) | Q(last_batch_at__lt=now - idle_after))
        .filter(Exists(due_rows))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
