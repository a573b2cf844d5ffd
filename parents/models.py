"""The parents' side: their logins and sessions (and, built on them, trial requests,
satisfaction, referrals). A parent is a `crm.Guardian`, known by their phone."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from crm.models import Guardian


class LoginCode(models.Model):
    """A one-time code sent by SMS to log in. Only its hash is kept."""

    phone = models.CharField(_("phone"), max_length=20)
    code_hash = models.CharField(_("code hash"), max_length=64)
    ip = models.GenericIPAddressField(_("address"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"))
    expires_at = models.DateTimeField(_("expires at"))
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)
    # Wrong codes typed against it; past the limit it can no longer be used.
    failures = models.PositiveSmallIntegerField(_("wrong attempts"), default=0)

    class Meta:
        verbose_name = _("login code")
        verbose_name_plural = _("login codes")
        indexes = [models.Index(fields=["phone", "-created_at"], name="login_code_phone_recent")]

    def __str__(self) -> str:
        return f"{self.phone} @ {self.created_at:%Y-%m-%d %H:%M}"


class ParentSession(models.Model):
    """One logged-in device: an access token (short) and a refresh token (long), hashed.

    Logout revokes the row, so both tokens stop working at once."""

    guardian = models.ForeignKey(
        Guardian, verbose_name=_("guardian"), on_delete=models.CASCADE, related_name="parent_sessions"
    )
    access_hash = models.CharField(_("access token hash"), max_length=64, unique=True)
    refresh_hash = models.CharField(_("refresh token hash"), max_length=64, unique=True)
    access_expires_at = models.DateTimeField(_("access expires at"))
    refresh_expires_at = models.DateTimeField(_("refresh expires at"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    via = models.CharField(_("logged in by"), max_length=10, choices=[("sms", _("SMS code")), ("wechat", "WeChat")])

    class Meta:
        verbose_name = _("parent session")
        verbose_name_plural = _("parent sessions")
        constraints = [
            models.CheckConstraint(
                condition=Q(access_expires_at__lte=models.F("refresh_expires_at")), name="parent_session_expiry_order"
            )
        ]

    def __str__(self) -> str:
        return f"{self.guardian} ({self.via})"


class TrialRequest(models.Model):
    """A parent asks for a trial lesson for their child; the campus's front desk sees it in the
    follow-up list and books (or declines) it."""

    class Status(models.TextChoices):
        OPEN = "open", _("Waiting")
        BOOKED = "booked", _("Booked")
        CLOSED = "closed", _("Closed")

    guardian = models.ForeignKey(
        Guardian, verbose_name=_("guardian"), on_delete=models.CASCADE, related_name="trial_requests"
    )
    student = models.ForeignKey(
        "crm.Student", verbose_name=_("student"), on_delete=models.CASCADE, related_name="trial_requests"
    )
    campus = models.ForeignKey("crm.Campus", verbose_name=_("campus"), on_delete=models.PROTECT, related_name="+")
    course = models.ForeignKey(
        "crm.Course", verbose_name=_("course"), on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    subject = models.CharField(_("subject wished"), max_length=50, blank=True)
    wished_at = models.DateTimeField(_("time wished"))
    note = models.TextField(_("note"), max_length=500, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    handled_by = models.ForeignKey(
        "crm.User", verbose_name=_("handled by"), on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    handled_at = models.DateTimeField(_("handled at"), null=True, blank=True)

    class Meta:
        verbose_name = _("trial request")
        verbose_name_plural = _("trial requests")
        indexes = [
            models.Index(
                fields=["campus", "created_at"], condition=Q(status="open"), name="trial_request_open_by_campus"
            )
        ]

    def __str__(self) -> str:
        return f"{self.student} @ {self.wished_at:%Y-%m-%d %H:%M}"


class ReferralSettings(models.Model):
    """A campus's referral reward: the bonus hours an inviting parent gets when the child they
    referred signs. Written only by `parents.services.referrals.referral_settings_update`."""

    campus = models.OneToOneField(
        "crm.Campus", verbose_name=_("campus"), on_delete=models.CASCADE, related_name="referral_settings"
    )
    # 0 means the campus gives no reward.
    reward_hours = models.DecimalField(
        _("reward hours"),
        max_digits=4,
        decimal_places=1,
        default=Decimal("2.0"),
        help_text=_("Bonus hours for the inviting parent when the referred child signs; 0 gives no reward."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("referral rule")
        verbose_name_plural = _("referral rules")
        constraints = [
            models.CheckConstraint(
                condition=Q(reward_hours__gte=0, reward_hours__lte=100), name="referral_reward_hours_range"
            )
        ]

    def __str__(self) -> str:
        return str(self.campus)


class ReferralReward(models.Model):
    """The one reward a referred student ever earns their inviter (the unique student makes it
    once, even when two workers apply it at the same time). Owed while the inviter's family has
    no active contract to credit; applied when hours were added to one."""

    class Status(models.TextChoices):
        APPLIED = "applied", _("Given")
        OWED = "owed", _("Owed")

    student = models.OneToOneField(
        "crm.Student", verbose_name=_("referred student"), on_delete=models.CASCADE, related_name="referral_reward"
    )
    guardian = models.ForeignKey(
        Guardian, verbose_name=_("inviting parent"), on_delete=models.CASCADE, related_name="referral_rewards"
    )
    contract = models.ForeignKey(
        "crm.Contract",
        verbose_name=_("contract credited"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    hours = models.DecimalField(_("bonus hours"), max_digits=4, decimal_places=1)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    applied_at = models.DateTimeField(_("applied at"), null=True, blank=True)

    class Meta:
        verbose_name = _("referral reward")
        verbose_name_plural = _("referral rewards")
        indexes = [models.Index(fields=["guardian"], condition=Q(status="owed"), name="referral_reward_owed")]
        constraints = [
            models.CheckConstraint(condition=Q(hours__gt=0), name="referral_reward_hours_positive"),
            models.CheckConstraint(
                condition=Q(status="owed") | Q(applied_at__isnull=False), name="referral_reward_applied_when"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.student} → {self.guardian}"
