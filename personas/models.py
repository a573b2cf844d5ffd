"""The personas app's tables: each student's kept profile (RFM, value tier, behaviour), the
campus's persona settings, the score cut-points of its last full run, the campus's tag rules, and
the parents' satisfaction answers with the care tasks a detractor's answer opens.

A profile is written only by `personas.services.profiles` (set-based for many students, or one
student after a fact), never by a person; `personas.rules` is its definition in pure Python.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from crm import text
from crm.models import Campus, Guardian, Stage, Student, Tag


class RfmSegment(models.TextChoices):
    """The standard RFM segments (rules.SEGMENT_GRID): English keys in data and API, Chinese names.

    Labelled in their own context: "New", "At risk" and "Lost" mean other things elsewhere (an
    import row, a flag, a stage)."""

    CHAMPIONS = "champions", pgettext_lazy("RFM segment", "Champions")
    LOYAL = "loyal", pgettext_lazy("RFM segment", "Loyal")
    POTENTIAL_LOYALIST = "potential_loyalist", pgettext_lazy("RFM segment", "Potential loyalist")
    NEW = "new", pgettext_lazy("RFM segment", "New")
    PROMISING = "promising", pgettext_lazy("RFM segment", "Promising")
    NEED_ATTENTION = "need_attention", pgettext_lazy("RFM segment", "Need attention")
    ABOUT_TO_SLEEP = "about_to_sleep", pgettext_lazy("RFM segment", "About to sleep")
    AT_RISK = "at_risk", pgettext_lazy("RFM segment", "At risk")
    CANNOT_LOSE_THEM = "cannot_lose_them", pgettext_lazy("RFM segment", "Cannot lose them")
    HIBERNATING = "hibernating", pgettext_lazy("RFM segment", "Hibernating")
    LOST = "lost", pgettext_lazy("RFM segment", "Lost")


class ValueTier(models.TextChoices):
    HIGH = "high", _("High value")
    MEDIUM = "medium", _("Medium value")
    LOW = "low", _("Low value")


class TimeSlot(models.TextChoices):
    """When in the (campus-local) day a lesson starts."""

    MORNING = "morning", _("Morning")
    AFTERNOON = "afternoon", _("Afternoon")
    EVENING = "evening", _("Evening")


class PersonaSettings(models.Model):
    """Per campus: the value tiers' cut-offs on M's cumulative distribution (in percent)."""

    campus = models.OneToOneField(
        Campus, verbose_name=_("campus"), on_delete=models.CASCADE, related_name="persona_settings"
    )
    tier_high_above_pct = models.PositiveSmallIntegerField(_("high value: above this share (%)"), default=80)
    tier_medium_above_pct = models.PositiveSmallIntegerField(_("medium value: above this share (%)"), default=40)
    # When a parent is asked how likely they are to recommend us (personas.rules.satisfaction_due).
    satisfaction_after_lessons = models.PositiveSmallIntegerField(
        _("satisfaction: ask after this many lessons attended"), default=8
    )
    satisfaction_every_days = models.PositiveSmallIntegerField(
        _("satisfaction: ask again after this many days"), default=90
    )

    class Meta:
        verbose_name = _("persona settings")
        verbose_name_plural = _("persona settings")
        constraints = [
            models.CheckConstraint(
                condition=Q(tier_high_above_pct__lt=100, tier_medium_above_pct__lt=models.F("tier_high_above_pct")),
                name="persona_tier_cutoffs_ordered",
            ),
            models.CheckConstraint(
                condition=Q(satisfaction_after_lessons__gte=1, satisfaction_every_days__gte=1),
                name="persona_satisfaction_schedule_positive",
            ),
        ]

    def __str__(self) -> str:
        return str(self.campus)


class StudentProfile(models.Model):
    """One student's persona figures, one row per student, recomputed from the facts.

    RFM is kept for students with at least one contract that is not cancelled; the others have
    no scores, segment or tier. Dates are stored rather than day counts, so the row does not
    change with the passing of days: R (days since `recency_at`) keeps its order, so its score.
    """

    student = models.OneToOneField(
        Student, verbose_name=_("student"), on_delete=models.CASCADE, primary_key=True, related_name="profile"
    )
    # Copied from the student, so a campus's distribution and the overview read this row alone. No
    # index of its own: the (campus, segment) and (campus, tier) indexes serve a campus's rows.
    campus = models.ForeignKey(
        Campus, verbose_name=_("campus"), on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # RFM's inputs: the latest of the last present attendance and the last signing; contracts not
    # cancelled; total paid minus refunds over them (also the lifetime value).
    recency_at = models.DateTimeField(_("last attended or signed at"), null=True, blank=True)
    frequency = models.PositiveIntegerField(_("contracts"), default=0)
    monetary = models.DecimalField(_("lifetime value"), max_digits=14, decimal_places=2, default=0)
    r_score = models.PositiveSmallIntegerField(_("R score"), null=True, blank=True)
    f_score = models.PositiveSmallIntegerField(_("F score"), null=True, blank=True)
    m_score = models.PositiveSmallIntegerField(_("M score"), null=True, blank=True)
    rfm_segment = models.CharField(_("RFM segment"), max_length=20, choices=RfmSegment.choices, blank=True)
    value_tier = models.CharField(_("value tier"), max_length=10, choices=ValueTier.choices, blank=True)
    # Behaviour. Lessons of the last 90 days: every attendance record (present, absent, leave)
    # is a scheduled lesson; the rate is present / scheduled.
    lessons_scheduled_90 = models.PositiveIntegerField(_("lessons scheduled (90 days)"), default=0)
    lessons_present_90 = models.PositiveIntegerField(_("lessons attended (90 days)"), default=0)
    attendance_rate = models.DecimalField(_("attendance rate"), max_digits=5, decimal_places=4, null=True, blank=True)
    # Over every present lesson: the most frequent ISO weekday (1 Monday .. 7 Sunday) and slot.
    preferred_weekday = models.PositiveSmallIntegerField(_("preferred weekday"), null=True, blank=True)
    preferred_slot = models.CharField(_("preferred time slot"), max_length=10, choices=TimeSlot.choices, blank=True)
    subjects = models.JSONField(_("subjects"), default=list, blank=True)
    # The same subjects as one line each: what the subject condition searches, the same way on
    # every database (a JSON column's text differs between PostgreSQL and SQLite).
    subject_list = models.TextField(_("subject list"), blank=True, default="")
    avg_rating = models.DecimalField(_("average teacher rating"), max_digits=3, decimal_places=2, null=True, blank=True)
    ratings = models.PositiveIntegerField(_("ratings"), default=0)
    first_signed_at = models.DateTimeField(_("first signed at"), null=True, blank=True)
    remaining_hours = models.DecimalField(_("hours left"), max_digits=8, decimal_places=1, default=0)
    last_touch_at = models.DateTimeField(_("last touch at"), null=True, blank=True)
    # The lifecycle engine's decision as of this profile's last computation: a night on which the
    # engine changed it computes the student again (and re-applies the tag rules to them).
    stage = models.CharField(_("stage"), max_length=20, choices=Stage.choices, blank=True)
    at_risk = models.BooleanField(_("at risk"), default=False)
    renewal_due = models.BooleanField(_("renewal due"), default=False)
    # The earliest moment the 90-day figures can change with no new fact (NULL: compute again).
    recheck_at = models.DateTimeField(_("recheck at"), null=True, blank=True)
    computed_at = models.DateTimeField(_("computed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("student profile")
        verbose_name_plural = _("student profiles")
        indexes = [
            models.Index(fields=["campus", "rfm_segment"], name="profile_campus_segment"),
            models.Index(fields=["campus", "value_tier"], name="profile_campus_tier"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(r_score__isnull=True, f_score__isnull=True, m_score__isnull=True)
                    | Q(r_score__range=(1, 5), f_score__range=(1, 5), m_score__range=(1, 5))
                ),
                name="profile_scores_1_to_5",
            ),
        ]

    def __str__(self) -> str:
        return str(self.student_id)


class CampusScoreCuts(models.Model):
    """A campus's RFM distribution as of its last full run, so one student's profile after a fact
    is scored against the campus without ranking it again (rules.score_from_cuts).

    Each list holds, for scores 1..4, the largest value (in worse-to-better order) that gets that
    score or less, None where none does (rules.cuts_of). R's values are the campus-local dates of
    `recency_at` (a later date is better), F's contract counts and M's amounts as strings.
    """

    campus = models.OneToOneField(Campus, verbose_name=_("campus"), on_delete=models.CASCADE, related_name="+")
    population = models.PositiveIntegerField(_("students with RFM"), default=0)
    as_of = models.DateTimeField(_("as of"))
    recency_cuts = models.JSONField(_("R cut-points"), default=list)
    frequency_cuts = models.JSONField(_("F cut-points"), default=list)
    monetary_cuts = models.JSONField(_("M cut-points"), default=list)
    tier_high_from = models.DecimalField(_("high value from"), max_digits=14, decimal_places=2, null=True, blank=True)
    tier_medium_from = models.DecimalField(
        _("medium value from"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    # A student's RFM inputs changed after a fact since this scoring: the next nightly run scores
    # the campus again.
    moved = models.BooleanField(_("changed since"), default=False)

    class Meta:
        verbose_name = _("RFM cut-points")
        verbose_name_plural = _("RFM cut-points")

    def __str__(self) -> str:
        return str(self.campus)


class TagRule(models.Model):
    """A campus's auto-tag: the students its conditions select carry its tag, and lose it when the
    conditions stop holding (`personas.services.tag_rules`, the only writer of rule-assigned tags).

    `conditions` is a condition tree (personas.conditions), checked when the rule is written and
    compiled again at every run as a viewer of the rule's campus. One rule per tag and campus: two
    rules giving one tag would have to agree on who loses it.
    """

    campus = models.ForeignKey(Campus, verbose_name=_("campus"), on_delete=models.CASCADE, related_name="tag_rules")
    # PROTECT: a tag that rules give cannot vanish under them; the rule goes first.
    tag = models.ForeignKey(Tag, verbose_name=_("tag"), on_delete=models.PROTECT, related_name="+")
    name = models.CharField(_("rule name"), max_length=100)
    conditions = models.JSONField(_("conditions"), default=dict)
    active = models.BooleanField(_("active"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("tag rule")
        verbose_name_plural = _("tag rules")
        ordering = ["campus", "pk"]
        constraints = [models.UniqueConstraint(fields=["campus", "tag"], name="tag_rule_one_per_campus_and_tag")]

    def __str__(self) -> str:
        return self.name

    @property
    def ref(self) -> str:
        """What a student's tag records of the rule that gave it (StudentTag.rule): its id, which
        says which rule owns the tag, then its name, which the card shows."""
        return f"{self.ref_prefix}{self.name}"

    @property
    def ref_prefix(self) -> str:
        return f"#{self.pk} "


class OverviewDimension(models.TextChoices):
    """The overview's three ways of grouping a campus's students (personas.typical)."""

    STAGE = "stage", _("Stage")
    TIER = "tier", _("Value tier")
    SEGMENT = "segment", _("RFM segment")


class CampusOverview(models.Model):
    """A campus's overview snapshot: when it was taken and over how many students. Its groups are
    `OverviewGroup` rows; both are written only by `personas.services.overview.overview_refresh`,
    so /personas/ reads a few dozen rows for a campus of any size."""

    campus = models.OneToOneField(Campus, verbose_name=_("campus"), on_delete=models.CASCADE, related_name="+")
    students = models.PositiveIntegerField(_("students"), default=0)
    as_of = models.DateTimeField(_("as of"))

    class Meta:
        verbose_name = _("campus overview")
        verbose_name_plural = _("campus overviews")

    def __str__(self) -> str:
        return str(self.campus)


class OverviewGroup(models.Model):
    """One group of one dimension of a campus's snapshot, with its typical profile
    (personas.typical.Typical). A group with no students has no row."""

    campus = models.ForeignKey(Campus, verbose_name=_("campus"), on_delete=models.CASCADE, related_name="+")
    dimension = models.CharField(_("dimension"), max_length=10, choices=OverviewDimension.choices)
    # The stage, tier or segment key; "" for the students with no RFM (tier and segment).
    key = models.CharField(_("group"), max_length=20, blank=True)
    students = models.PositiveIntegerField(_("students"))
    top_grade = models.CharField(_("most common grade"), max_length=50, blank=True)
    top_subject = models.CharField(_("most common subject"), max_length=100, blank=True)
    top_channel = models.CharField(_("most common channel"), max_length=20, blank=True)
    median_value = models.DecimalField(_("median lifetime value"), max_digits=14, decimal_places=2)
    median_attendance = models.DecimalField(
        _("median attendance rate"), max_digits=5, decimal_places=4, null=True, blank=True
    )
    # No database constraint nor index: deleting a student neither waits on nor rewrites the
    # snapshot; its link reads as none (a LEFT JOIN finds no row) until the next refresh.
    representative = models.ForeignKey(
        Student,
        verbose_name=_("representative student"),
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("overview group")
        verbose_name_plural = _("overview groups")
        constraints = [
            models.UniqueConstraint(fields=["campus", "dimension", "key"], name="overview_group_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.campus_id} {self.dimension} {self.key}"


class Segment(models.Model):
    """A saved, named filter over students: a condition tree (personas.conditions) with a name.

    A segment belongs to a campus; an administrator's segment may have no campus and is then
    shared with every campus. Its members are always computed for the person looking
    (`personas.selectors.segment_members`), so a segment never shows anyone a student outside
    their campus, whoever built it. Written only by `personas.services.segments`.
    """

    name = models.CharField(_("segment name"), max_length=text.NAME)
    description = models.CharField(_("description"), max_length=text.LINE, blank=True)
    campus = models.ForeignKey(
        Campus,
        verbose_name=_("campus"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("Empty: shared with every campus (administrators only)."),
    )
    conditions = models.JSONField(_("conditions"), default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        ordering = ["name", "pk"]
        constraints = [
            # One name per campus, and one among the shared segments (NULL campus counts as one).
            models.UniqueConstraint(fields=["campus", "name"], name="segment_name_unique_in_campus",
                                    nulls_distinct=False),
        ]  # fmt: skip

    def __str__(self) -> str:
        return self.name


# Net Promoter Score's bands of a 0-10 answer: 9-10 promoters, 7-8 passives, 0-6 detractors.
NPS_PROMOTER_FROM = 9
NPS_PASSIVE_FROM = 7


class NpsCategory(models.TextChoices):
    """A 0-10 "would you recommend us" answer, as Net Promoter Score counts it."""

    PROMOTER = "promoter", _("Promoter")
    PASSIVE = "passive", _("Passive")
    DETRACTOR = "detractor", _("Detractor")

    @classmethod
    def of(cls, score: int) -> NpsCategory:
        if score >= NPS_PROMOTER_FROM:
            return cls.PROMOTER
        if score >= NPS_PASSIVE_FROM:
            return cls.PASSIVE
        return cls.DETRACTOR


class SatisfactionAnswer(models.Model):
    """A parent's answer to "how likely are you to recommend us" about one child, written only by
    `personas.services.satisfaction.satisfaction_answer` when the question is due for the child."""

    student = models.ForeignKey(
        Student, verbose_name=_("student"), on_delete=models.CASCADE, related_name="satisfaction_answers"
    )
    # SET_NULL: the answer stays in the child's feedback when a parent is unlinked or removed.
    guardian = models.ForeignKey(
        Guardian, verbose_name=_("guardian"), on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    score = models.PositiveSmallIntegerField(_("score (0-10)"))
    reason = models.TextField(_("reason"), max_length=text.LONG, blank=True)
    answered_at = models.DateTimeField(_("answered at"))

    class Meta:
        verbose_name = _("satisfaction answer")
        verbose_name_plural = _("satisfaction answers")
        # The card's figures and the rule's "last answered" read a student's answers newest first.
        indexes = [models.Index(fields=["student", "answered_at"], name="satisfaction_student_time")]
        constraints = [
            models.CheckConstraint(condition=Q(score__gte=0, score__lte=10), name="satisfaction_score_0_to_10"),
            text.length_constraint("satisfaction", "reason", text.LONG),
        ]

    def __str__(self) -> str:
        return f"{self.student_id}: {self.score}"

    @property
    def category(self) -> NpsCategory:
        return NpsCategory.of(self.score)


class CareTaskStatus(models.TextChoices):
    OPEN = "open", _("To do")
    DONE = "done", _("Done")


class CareTask(models.Model):
    """A detractor's answer hands the child's consultant a call to make: it shows in their
    follow-ups (and, with no consultant, in the campus managers') until it is marked done."""

    student = models.ForeignKey(Student, verbose_name=_("student"), on_delete=models.CASCADE, related_name="+")
    # The student's owner when the answer came in; a later change of owner does not move it.
    consultant = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("consultant"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    answer = models.ForeignKey(
        SatisfactionAnswer, verbose_name=_("satisfaction answer"), on_delete=models.CASCADE, related_name="care_tasks"
    )
    status = models.CharField(_("status"), max_length=10, choices=CareTaskStatus.choices, default=CareTaskStatus.OPEN)
    note = models.TextField(_("what was done"), max_length=text.LONG, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("done by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    done_at = models.DateTimeField(_("done at"), null=True, blank=True)

    class Meta:
        verbose_name = _("care task")
        verbose_name_plural = _("care tasks")
        indexes = [models.Index(fields=["consultant", "status"], name="care_task_consultant_status")]
        constraints = [
            models.UniqueConstraint(
                fields=["answer"], condition=Q(status="open"), name="care_task_one_open_per_answer"
            ),
            text.length_constraint("care_task", "note", text.LONG),
        ]

    def __str__(self) -> str:
        return f"{self.student_id}: {self.status}"
