"""The lifecycle engine's own tables: thresholds per campus, kept per-student aggregates of
their facts, stage history and the lead pool.

What the engine decides (stage and flags) lives in `crm.StudentStage` (every list of crm and
lifecycle filters by it) and is written only by `lifecycle.services`.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from crm.models import Campus, Stage, Student


class LifecycleSettings(models.Model):
    """Thresholds per campus; DESIGN.md §4's defaults."""

    campus = models.OneToOneField(
        Campus, verbose_name=_("campus"), on_delete=models.CASCADE, related_name="lifecycle_settings"
    )
    active_days = models.PositiveSmallIntegerField(_("active: attended within (days)"), default=21)
    churn_days = models.PositiveSmallIntegerField(_("churned: no attendance for more than (days)"), default=60)
    ended_grace_days = models.PositiveSmallIntegerField(_("dormant: last contract ended within (days)"), default=30)
    stale_lead_days = models.PositiveSmallIntegerField(_("lost: lead untouched for (days)"), default=90)
    risk_window_days = models.PositiveSmallIntegerField(_("at risk: window (days)"), default=28)
    risk_drop_pct = models.PositiveSmallIntegerField(_("at risk: attendance drop (%)"), default=30)
    risk_consecutive_absences = models.PositiveSmallIntegerField(_("at risk: missed lessons in a row"), default=2)
    renewal_hours = models.DecimalField(
        _("renewal due: hours left at most"), max_digits=5, decimal_places=1, default=Decimal("4")
    )
    renewal_days = models.PositiveSmallIntegerField(_("renewal due: contract ends within (days)"), default=30)
    pool_follow_up_days = models.PositiveSmallIntegerField(
        _("lead pool: owner must follow up within (days)"), default=7
    )
    pool_daily_claim_limit = models.PositiveSmallIntegerField(_("lead pool: claims per consultant per day"), default=10)
    pool_reclaim_wait_days = models.PositiveSmallIntegerField(
        _("lead pool: a former owner waits (days) to reclaim"), default=7
    )

    class Meta:
        verbose_name = _("lifecycle settings")
        verbose_name_plural = _("lifecycle settings")
        constraints = [
            models.CheckConstraint(condition=Q(active_days__gt=0), name="lifecycle_active_days_positive"),
            models.CheckConstraint(
                condition=Q(churn_days__gt=models.F("active_days")), name="lifecycle_churn_after_active"
            ),
            models.CheckConstraint(condition=Q(risk_window_days__gt=0), name="lifecycle_risk_window_positive"),
            models.CheckConstraint(
                condition=Q(risk_drop_pct__gt=0, risk_drop_pct__lte=100), name="lifecycle_risk_drop_pct_range"
            ),
        ]

    def __str__(self) -> str:
        return str(self.campus)


class StudentActivity(models.Model):
    """Kept per-student aggregates of the facts, refreshed by lifecycle.services after every
    fact change: everything the rules read, so a nightly run reads this narrow row and the
    student's StudentStage, never the wide student row. One row per student."""

    student = models.OneToOneField(
        Student, verbose_name=_("student"), on_delete=models.CASCADE, primary_key=True, related_name="activity"
    )
    # Copied from the student: when they were created, and closed as lost (a person's fact).
    created_at = models.DateTimeField(_("created at"), null=True, blank=True)
    lost_at = models.DateTimeField(_("closed as lost at"), null=True, blank=True)
    last_touch_at = models.DateTimeField(_("last contact at"), null=True, blank=True)
    has_consultation = models.BooleanField(_("has a consultation"), default=False)
    has_trial = models.BooleanField(_("has a trial lesson"), default=False)
    ever_contracted = models.BooleanField(_("ever signed a contract"), default=False)
    last_active_signed_at = models.DateTimeField(_("latest active contract signed at"), null=True, blank=True)
    active_until = models.DateField(_("active contract valid until"), null=True, blank=True)
    active_hours_remaining = models.DecimalField(
        _("hours left on active contracts"), max_digits=8, decimal_places=1, null=True, blank=True
    )
    last_ended_at = models.DateTimeField(_("last contract ended at"), null=True, blank=True)
    last_ended_refunded = models.BooleanField(_("last contract refunded"), default=False)
    # The latest attendance with status present, and the absences recorded after it.
    last_present_at = models.DateTimeField(_("last present at"), null=True, blank=True)
    consecutive_absences = models.PositiveSmallIntegerField(_("absences in a row"), default=0)

    class Meta:
        verbose_name = _("student activity")
        verbose_name_plural = _("student activity")

    def __str__(self) -> str:
        return str(self.student_id)


class StageSource(models.TextChoices):
    EVENT = "event", _("Event")
    NIGHTLY = "nightly", _("Nightly run")
    PERSON = "person", _("Person")


class StageChange(models.Model):
    """One row per real stage change, never on a rerun that changes nothing."""

    # No database foreign keys (student, actor): a big nightly run appends hundreds of thousands of
    # rows, and each foreign key queues a deferred check per row for COMMIT, even for a NULL actor
    # (seconds for the student, 80 ms per half of a million-student run for the actor). The history
    # is written only by the engine, for students it has just read and actors it was handed;
    # Django's collector deletes it with its student and clears the actor of a deleted user.
    student = models.ForeignKey(
        Student,
        verbose_name=_("student"),
        on_delete=models.CASCADE,
        related_name="stage_changes",
        db_index=False,
        db_constraint=False,
    )
    from_stage = models.CharField(_("from"), max_length=20, choices=Stage.choices, blank=True)
    to_stage = models.CharField(_("to"), max_length=20, choices=Stage.choices)
    # When the new stage began (rules.Decision.since), which can be earlier than the run that wrote
    # the row: days for a change noticed late, months for an imported history. No b-tree on it
    # alone: rows are appended roughly in time order, so on PostgreSQL a tiny BRIN index
    # (migration 0007) serves time ranges, and lists order by the key, which follows the writing.
    changed_at = models.DateTimeField(_("changed at"))
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    source = models.CharField(_("source"), max_length=10, choices=StageSource.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    won_back = models.BooleanField(_("won back"), default=False)

    class Meta:
        verbose_name = _("stage change")
        verbose_name_plural = _("stage history")
        ordering = ["-changed_at", "-pk"]
        indexes = [
            models.Index(fields=["student", "changed_at"]),
            models.Index(fields=["actor"], condition=Q(actor__isnull=False), name="stagechange_actor"),
        ]

    def __str__(self) -> str:
        return f"{self.student_id}: {self.get_from_stage_display()} → {self.get_to_stage_display()}"


class PoolEvent(models.Model):
    """The lead pool's history: a lead released to the campus pool, or claimed from it."""

    class Kind(models.TextChoices):
        RELEASED = "released", _("Returned to the pool")
        CLAIMED = "claimed", _("Claimed")

    student = models.ForeignKey(
        Student, verbose_name=_("student"), on_delete=models.CASCADE, related_name="pool_events"
    )
    kind = models.CharField(_("event"), max_length=10, choices=Kind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("staff member"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("The former owner for a release, the claimer for a claim."),
    )
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    at = models.DateTimeField(_("time"), db_index=True)

    class Meta:
        verbose_name = _("lead pool event")
        verbose_name_plural = _("lead pool events")
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["user", "kind", "at"]), models.Index(fields=["student", "kind", "at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.student_id}"
