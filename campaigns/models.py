"""The messaging layer's records: every message the product sends, whatever the channel.

A message is written once (`campaigns.services.messages.message_queue`), then moved through its
statuses only by conditional updates in `campaigns.services.messages`: a worker claims a queued
row, calls the channel's provider (`campaigns.messaging`) and records what the provider said.
"""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm import text
from crm.models import Campus, Guardian, User


class MessageChannel(models.TextChoices):
    SMS = "sms", _("SMS")
    EMAIL = "email", _("Email")
    WECHAT = "wechat", _("WeChat")


class MessageCategory(models.TextChoices):
    """Transactional messages (login codes, reminders) go out whatever the marketing rules say."""

    TRANSACTIONAL = "transactional", _("Transactional")
    MARKETING = "marketing", _("Marketing")


class MessageStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")
    # The provider may or may not have taken it (a worker died mid-send with a provider that does
    # not deduplicate): a person checks, the product never sends it blindly again.
    UNKNOWN = "unknown", _("Unknown")
    # A marketing message the rules held back (`suppressed_reason` says which rule).
    SUPPRESSED = "suppressed", _("Suppressed")


class SuppressionReason(models.TextChoices):
    """Why a marketing message was not sent: the writer, the results page and the admin filter."""

    NO_CONSENT = "no_consent", _("No consent for the channel")
    OPTED_OUT = "opted_out", _("Opted out")
    FREQUENCY_CAP = "frequency_cap", _("Frequency cap")
    NO_ADDRESS = "no_address", _("No address for the channel")


class CampaignGoal(models.TextChoices):
    WIN_BACK = "win_back", _("Win back")
    RENEWAL = "renewal", _("Renewal")
    REACTIVATION = "reactivation", _("Reactivation")


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SCHEDULED = "scheduled", _("Scheduled")
    SENDING = "sending", _("Sending")
    PAUSED = "paused", _("Paused")
    DONE = "done", _("Done")
    CANCELLED = "cancelled", _("Cancelled")


class CampaignChannel(models.TextChoices):
    """A message channel, or a personal call handed to the student's consultant."""

    SMS = "sms", _("SMS")
    EMAIL = "email", _("Email")
    WECHAT = "wechat", _("WeChat")
    CALL = "call", _("Call task")


class CampaignGroup(models.TextChoices):
    """A member's side of the experiment: a variant reached, or the holdout left alone."""

    A = "A", _("Variant A")
    B = "B", _("Variant B")
    HOLDOUT = "holdout", _("Holdout")


class Campaign(models.Model):
    """A manager's campaign over a segment. Written only by `campaigns.services.campaigns`."""

    campus = models.ForeignKey(Campus, verbose_name=_("campus"), on_delete=models.PROTECT, related_name="+")
    name = models.CharField(_("campaign name"), max_length=text.NAME)
    goal = models.CharField(_("goal"), max_length=20, choices=CampaignGoal.choices)
    segment = models.ForeignKey(
        "personas.Segment", verbose_name=_("audience"), on_delete=models.PROTECT, related_name="+"
    )
    channels = models.JSONField(_("channels"), default=list)
    # Percent of the audience kept out as the control group; percent of the rest given variant A
    # when the campaign has a variant B.
    holdout_pct = models.PositiveSmallIntegerField(_("holdout (%)"), default=0)
    split_a_pct = models.PositiveSmallIntegerField(_("variant A's share (%)"), default=50)
    # Fixes who falls in the holdout and in each variant (`campaigns.rules.group_for`).
    seed = models.PositiveIntegerField(_("random seed"), default=0)
    scheduled_at = models.DateTimeField(_("send at"), null=True, blank=True)
    attribution_days = models.PositiveSmallIntegerField(_("attribution window (days)"), default=14)
    status = models.CharField(
        _("status"), max_length=20, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT, db_index=True
    )
    created_by = models.ForeignKey(
        User, verbose_name=_("created by"), on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    launched_by = models.ForeignKey(
        User, verbose_name=_("launched by"), on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    launched_at = models.DateTimeField(_("launched at"), null=True, blank=True)
    # When the audience was resolved into members and outbox rows: once, ever.
    resolved_at = models.DateTimeField(_("audience resolved at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    # When a worker last took a batch: the beat hands a sending campaign to new workers when
    # nobody has for a while (the workers' tasks were lost, the broker restarted).
    last_batch_at = models.DateTimeField(_("last batch at"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(holdout_pct__lte=90), name="campaign_holdout_pct"),
            models.CheckConstraint(condition=Q(split_a_pct__gte=1, split_a_pct__lte=99), name="campaign_split_pct"),
            models.CheckConstraint(condition=Q(attribution_days__gte=1), name="campaign_attribution_days"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def channel_labels(self) -> list[str]:
        labels = dict(CampaignChannel.choices)
        return [str(labels.get(channel, channel)) for channel in self.channels]


class CampaignTemplate(models.Model):
    """What one variant says on one channel; `{student}`, `{guardian}`, `{hours_left}` and
    `{consultant}` are filled per recipient (`campaigns.rules.render`)."""

    campaign = models.ForeignKey(
        Campaign, verbose_name=_("campaign"), on_delete=models.CASCADE, related_name="templates"
    )
    variant = models.CharField(_("variant"), max_length=1, choices=[("A", "A"), ("B", "B")], default="A")
    channel = models.CharField(_("message channel"), max_length=10, choices=CampaignChannel.choices)
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    text = models.TextField(_("text"))
    # The SMS cloud's registered template and WeChat's subscription template, where they need one.
    template_code = models.CharField(_("template code"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("campaign template")
        verbose_name_plural = _("campaign templates")
        constraints = [
            models.UniqueConstraint(fields=["campaign", "variant", "channel"], name="campaign_template_one_per_channel")
        ]

    def __str__(self) -> str:
        return f"{self.campaign} {self.variant} {self.channel}"


class CampaignMember(models.Model):
    """A student of the audience as resolved at launch, with their group: kept, never re-drawn, so
    results compare the same people and a relaunch reaches nobody new."""

    campaign = models.ForeignKey(Campaign, verbose_name=_("campaign"), on_delete=models.CASCADE, related_name="members")
    student = models.ForeignKey("crm.Student", verbose_name=_("student"), on_delete=models.CASCADE, related_name="+")
    group = models.CharField(_("group"), max_length=10, choices=CampaignGroup.choices, db_column="group_name")
    # The student's stage at launch: a win-back is a return from dormant or churned.
    stage_at_launch = models.CharField(_("stage at launch"), max_length=20, blank=True)

    class Meta:
        verbose_name = _("campaign member")
        verbose_name_plural = _("campaign members")
        constraints = [models.UniqueConstraint(fields=["campaign", "student"], name="campaign_member_once")]

    def __str__(self) -> str:
        return f"{self.campaign} {self.student_id} {self.group}"


class CallTaskStatus(models.TextChoices):
    OPEN = "open", _("To call")
    DONE = "done", _("Called")
    CANCELLED = "cancelled", _("Cancelled")


class CallTask(models.Model):
    """A personal call a campaign hands to the student's consultant: it shows in their follow-ups
    with the script, and is done when they record the call as a consultation."""

    campaign = models.ForeignKey(
        Campaign, verbose_name=_("campaign"), on_delete=models.CASCADE, related_name="call_tasks"
    )
    student = models.ForeignKey("crm.Student", verbose_name=_("student"), on_delete=models.CASCADE, related_name="+")
    consultant = models.ForeignKey(
        User, verbose_name=_("consultant"), on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    variant = models.CharField(_("variant"), max_length=1, default="A")
    script = models.TextField(_("call script"))
    status = models.CharField(_("status"), max_length=10, choices=CallTaskStatus.choices, default=CallTaskStatus.OPEN)
    consultation = models.OneToOneField(
        "crm.Consultation",
        verbose_name=_("call record"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    done_at = models.DateTimeField(_("called at"), null=True, blank=True)

    class Meta:
        verbose_name = _("call task")
        verbose_name_plural = _("call tasks")
        constraints = [models.UniqueConstraint(fields=["campaign", "student"], name="call_task_once")]
        indexes = [models.Index(fields=["consultant", "status"], name="call_task_open")]

    def __str__(self) -> str:
        return f"{self.campaign}: {self.student_id}"


# Messages whose text is a secret for its recipient alone (a login code): sent, then never shown
# to staff (the admin) nor kept in a family's data download.
LOGIN_CODE_TEMPLATE = "login_code"
SECRET_TEMPLATES = frozenset({LOGIN_CODE_TEMPLATE})


class Message(models.Model):
    category = models.CharField(_("category"), max_length=20, choices=MessageCategory.choices)
    channel = models.CharField(_("message channel"), max_length=10, choices=MessageChannel.choices)
    campus = models.ForeignKey(
        Campus, verbose_name=_("campus"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    guardian = models.ForeignKey(
        Guardian, verbose_name=_("guardian"), on_delete=models.SET_NULL, null=True, blank=True, related_name="messages"
    )
    # A campaign's outbox row: one per (campaign, guardian, channel), about one of its students.
    campaign = models.ForeignKey(
        Campaign, verbose_name=_("campaign"), on_delete=models.PROTECT, null=True, blank=True, related_name="messages"
    )
    variant = models.CharField(_("variant"), max_length=1, blank=True)
    student = models.ForeignKey(
        "crm.Student", verbose_name=_("student"), on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # A phone in E.164, an email address or a WeChat openid.
    recipient = models.CharField(_("recipient"), max_length=254)
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    text = models.TextField(_("text"))
    html = models.TextField(_("HTML"), blank=True)
    # The provider's template and its parameters (SMS clouds and WeChat send templates, not text).
    template_code = models.CharField(_("template code"), max_length=64, blank=True)
    params = models.JSONField(_("template parameters"), default=dict, blank=True)
    # Sent to providers that deduplicate: a retried send of one message is one message.
    idempotency_key = models.CharField(_("idempotency key"), max_length=64, unique=True)
    status = models.CharField(_("status"), max_length=20, choices=MessageStatus.choices, default=MessageStatus.QUEUED)
    provider = models.CharField(_("provider"), max_length=30, blank=True)
    provider_message_id = models.CharField(_("provider's message id"), max_length=100, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # Quiet hours: a marketing message waits until then (deferred, never dropped).
    not_before = models.DateTimeField(_("not before"), null=True, blank=True)
    suppressed_reason = models.CharField(
        _("suppressed because"), max_length=20, choices=SuppressionReason.choices, blank=True
    )
    error_code = models.CharField(_("error code"), max_length=100, blank=True)
    error = models.CharField(_("error"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["-created_at"]
        indexes = [
            # Delivery receipts find their message by the provider's id.
            models.Index(
                fields=["provider", "provider_message_id"],
                name="message_provider_id",
                condition=~Q(provider_message_id=""),
            ),
            models.Index(fields=["guardian", "-created_at"], name="message_guardian_recent"),
            # Workers claim a campaign's due rows in id order.
            models.Index(
                fields=["campaign", "id"], name="message_campaign_queued", condition=Q(status=MessageStatus.QUEUED)
            ),
        ]
        constraints = [
            # Only a row held back for having no address (no email, no openid) has no recipient.
            models.CheckConstraint(
                condition=~Q(recipient="") | Q(status="suppressed", suppressed_reason="no_address"),
                name="message_has_recipient",
            ),
            # Effectively once: a campaign reaches a family on a channel at most once, whatever retries.
            models.UniqueConstraint(
                fields=["campaign", "guardian", "channel"],
                name="message_once_per_campaign",
                condition=Q(campaign__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {self.recipient} ({self.get_status_display()})"

    @property
    def holds_secret(self) -> bool:
        return self.template_code in SECRET_TEMPLATES


class ConsentSource(models.TextChoices):
    """How a consent or an opt-out reached us: part of its proof."""

    STAFF = "staff", _("Recorded by staff")
    IMPORT = "import", _("Imported")
    PARENT_APP = "parent_app", _("Parent app")
    SMS_REPLY = "sms_reply", _("SMS reply")
    EMAIL_LINK = "email_link", _("Unsubscribe link")


class ConsentRecord(models.Model):
    """Proof of one decision of a guardian about one channel's marketing messages: when, how, by
    whom, and the words shown to them (or the words they sent). Appended, never changed, by
    `campaigns.services.consent.consent_record`; the latest one per channel is `Consent`."""

    guardian = models.ForeignKey(
        Guardian, verbose_name=_("guardian"), on_delete=models.CASCADE, related_name="consent_records"
    )
    channel = models.CharField(_("message channel"), max_length=10, choices=MessageChannel.choices)
    granted = models.BooleanField(_("consents"))
    source = models.CharField(_("how"), max_length=20, choices=ConsentSource.choices)
    wording = models.TextField(_("words shown or received"))
    evidence = models.CharField(_("evidence"), max_length=200, blank=True)
    recorded_by = models.ForeignKey(
        User, verbose_name=_("recorded by"), on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    recorded_at = models.DateTimeField(_("recorded at"), default=timezone.now)

    class Meta:
        verbose_name = _("consent record")
        verbose_name_plural = _("consent records")
        ordering = ["-recorded_at", "-pk"]
        indexes = [models.Index(fields=["guardian", "channel", "-recorded_at"], name="consent_record_latest")]

    def __str__(self) -> str:
        verb = _("consents to") if self.granted else _("opted out of")
        return f"{self.guardian} {verb} {self.get_channel_display()}"


class Consent(models.Model):
    """A guardian's standing decision per channel: the latest ConsentRecord, kept as one row so an
    audience of 100,000 is checked by one join. No row: never asked, so no marketing."""

    guardian = models.ForeignKey(Guardian, verbose_name=_("guardian"), on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(_("message channel"), max_length=10, choices=MessageChannel.choices)
    granted = models.BooleanField(_("consents"))
    record = models.ForeignKey(ConsentRecord, verbose_name=_("proof"), on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
        constraints = [models.UniqueConstraint(fields=["guardian", "channel"], name="consent_one_per_channel")]

    def __str__(self) -> str:
        return f"{self.guardian} {self.get_channel_display()}: {self.granted}"


class MarketingSettings(models.Model):
    """Per campus: when marketing messages may go out and how often a family may get one."""

    campus = models.OneToOneField(
        Campus, verbose_name=_("campus"), on_delete=models.CASCADE, related_name="marketing_settings"
    )
    time_zone = models.CharField(_("time zone"), max_length=50, default="Asia/Shanghai")
    quiet_from = models.TimeField(_("quiet hours from"), default=dt.time(21, 0))
    quiet_until = models.TimeField(_("quiet hours until"), default=dt.time(9, 0))
    cap_days = models.PositiveSmallIntegerField(
        _("at most one marketing message per guardian in this many days"), default=7
    )

    class Meta:
        verbose_name = _("marketing settings")
        verbose_name_plural = _("marketing settings")

    def __str__(self) -> str:
        return str(self.campus)


class MarketingContact(models.Model):
    """The frequency cap's ledger: when a guardian was last reached by marketing, and by what.
    Claimed by one conditional upsert (`campaigns.services.marketing.cap_claim`), so two workers
    sending two campaigns never both reach the same family inside the window."""

    guardian = models.OneToOneField(
        Guardian, verbose_name=_("guardian"), on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    last_at = models.DateTimeField(_("last marketing message at"))
    # What reached them: "campaign:<id>" (its channels count as one contact) or "message:<id>".
    last_by = models.CharField(_("last marketing message by"), max_length=40)

    class Meta:
        verbose_name = _("marketing contact")
        verbose_name_plural = _("marketing contacts")

    def __str__(self) -> str:
        return f"{self.guardian_id} @ {self.last_at:%Y-%m-%d %H:%M} ({self.last_by})"
