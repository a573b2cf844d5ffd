"""The messaging layer's records: every message the product sends, whatever the channel.

A message is written once (`campaigns.services.messages.message_queue`), then moved through its
statuses only by conditional updates in `campaigns.services.messages`: a worker claims a queued
row, calls the channel's provider (`campaigns.messaging`) and records what the provider said.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from crm.models import Campus, Guardian


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


class Message(models.Model):
    category = models.CharField(_("category"), max_length=20, choices=MessageCategory.choices)
    channel = models.CharField(_("channel"), max_length=10, choices=MessageChannel.choices)
    campus = models.ForeignKey(
        Campus, verbose_name=_("campus"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    guardian = models.ForeignKey(
        Guardian, verbose_name=_("guardian"), on_delete=models.SET_NULL, null=True, blank=True, related_name="messages"
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
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(recipient=""), name="message_has_recipient"),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {self.recipient} ({self.get_status_display()})"
