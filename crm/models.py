"""The CRM's facts: campuses, staff, families, and what happened to each student.

Models hold fields, constraints and small properties only. Every write goes through
`crm.services`; a student's stage and flags (`StudentStage`) are written only by the
lifecycle engine.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.db.models import Q
from django.utils.timezone import localtime
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from crm import text
from crm.phones import phone_display


class Role(models.TextChoices):
    FRONT_DESK = "front_desk", _("Front desk")
    TEACHER = "teacher", _("Teacher")
    MANAGER = "manager", _("Manager")
    ADMIN = "admin", _("Administrator")


class Campus(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    code = models.SlugField(_("code"), max_length=30, unique=True)
    address = models.CharField(_("address"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("campus")
        verbose_name_plural = _("campuses")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A staff member. The role is the Django group of the same name (see Role)."""

    campus = models.ForeignKey(
        Campus, verbose_name=_("campus"), on_delete=models.PROTECT, null=True, blank=True, related_name="staff"
    )
    display_name = models.CharField(_("display name"), max_length=50, blank=True)

    class Meta:
        verbose_name = _("staff member")
        verbose_name_plural = _("staff")

    def __str__(self) -> str:
        return self.display_name or self.get_full_name() or self.username

    @property
    def role(self) -> str | None:
        """The first role group the user is in; cached per instance."""
        cached = getattr(self, "_role_cache", False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        if self.is_superuser:
            role: str | None = Role.ADMIN
        else:
            # Through the prefetch cache when a list of users was read with prefetch_related("groups").
            names = {group.name for group in self.groups.all()}
            role = next((r.value for r in Role if r.value in names), None)
        self._role_cache = role
        return role


class Channel(models.TextChoices):
    DOUYIN = "douyin", _("Douyin")
    XIAOHONGSHU = "xiaohongshu", _("Xiaohongshu")
    FLYER = "flyer", _("Street promotion")
    REFERRAL = "referral", _("Referral")
    WEBSITE = "website", _("Website")
    WALK_IN = "walk_in", _("Walk-in")
    WECHAT = "wechat", _("WeChat")
    OTHER = "other", _("Other")


class Gender(models.TextChoices):
    FEMALE = "female", _("Female")
    MALE = "male", _("Male")
    UNKNOWN = "", _("Unknown")


class Relation(models.TextChoices):
    """What the pages offer for a guardian's relation. The column stays free text: imports and
    older rows keep whatever words the school used."""

    MOTHER = "母亲", _("Mother")
    FATHER = "父亲", _("Father")
    GRANDFATHER_PATERNAL = "爷爷", _("Grandfather (father's side)")
    GRANDMOTHER_PATERNAL = "奶奶", _("Grandmother (father's side)")
    GRANDFATHER_MATERNAL = "外公", _("Grandfather (mother's side)")
    GRANDMOTHER_MATERNAL = "外婆", _("Grandmother (mother's side)")
    OTHER = "其他", _("Other relative")


class Grade(models.TextChoices):
    """What the pages offer for a student's grade; free text in the column, as for Relation."""

    KINDERGARTEN_JUNIOR = "幼儿园小班", _("Kindergarten, junior class")
    KINDERGARTEN_MIDDLE = "幼儿园中班", _("Kindergarten, middle class")
    KINDERGARTEN_SENIOR = "幼儿园大班", _("Kindergarten, senior class")
    PRIMARY_1 = "一年级", _("Primary grade 1")
    PRIMARY_2 = "二年级", _("Primary grade 2")
    PRIMARY_3 = "三年级", _("Primary grade 3")
    PRIMARY_4 = "四年级", _("Primary grade 4")
    PRIMARY_5 = "五年级", _("Primary grade 5")
    PRIMARY_6 = "六年级", _("Primary grade 6")
    JUNIOR_1 = "初一", _("Junior middle year 1")
    JUNIOR_2 = "初二", _("Junior middle year 2")
    JUNIOR_3 = "初三", _("Junior middle year 3")
    SENIOR_1 = "高一", _("Senior high year 1")
    SENIOR_2 = "高二", _("Senior high year 2")
    SENIOR_3 = "高三", _("Senior high year 3")
    ADULT = "成人", _("Adult")


class Stage(models.TextChoices):
    LEAD = "lead", _("Lead")
    CONSULTING = "consulting", _("Consulting")
    TRIAL = "trial", _("Trial")
    ENROLLED = "enrolled", _("Enrolled")
    ACTIVE = "active", _("Active")
    DORMANT = "dormant", _("Dormant")
    CHURNED = "churned", _("Churned")
    LOST = "lost", _("Lost")


class Guardian(models.Model):
    """A parent. Their phone identifies the family: it is unique and stored in E.164."""

    name = models.CharField(_("name"), max_length=text.NAME, blank=True)
    phone = models.CharField(_("phone"), max_length=20, unique=True)
    relation = models.CharField(_("relation"), max_length=text.SHORT, blank=True)
    # Stored as crm.services.families.guardian_email_clean leaves it (the domain in lower case).
    email = models.EmailField(_("email"), blank=True)
    wechat_openid = models.CharField(_("WeChat openid"), max_length=64, null=True, blank=True, unique=True)
    wechat_unionid = models.CharField(_("WeChat unionid"), max_length=64, null=True, blank=True, unique=True)
    # The parent's personal referral code, given on first need by
    # crm.services.referrals.guardian_invite_code; the unique index decides a race.
    invite_code = models.CharField(_("invite code"), max_length=8, null=True, blank=True, unique=True, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("guardian")
        verbose_name_plural = _("guardians")
        constraints = [
            models.CheckConstraint(condition=Q(phone__regex=r"^\+[1-9][0-9]{6,14}$"), name="guardian_phone_e164"),
        ]

    def __str__(self) -> str:
        return f"{self.name or _('Guardian')} {phone_display(self.phone)}"


class Student(models.Model):
    name = models.CharField(_("name"), max_length=text.NAME)
    gender = models.CharField(_("gender"), max_length=10, choices=Gender.choices, blank=True)
    birth_date = models.DateField(_("birth date"), null=True, blank=True)
    grade = models.CharField(_("grade"), max_length=text.SHORT, blank=True)
    school = models.CharField(_("school"), max_length=text.TITLE, blank=True)
    # No single-column indexes on campus, owner or created_by (and a partial one on referrer):
    # the composite indexes below lead with campus and owner, staff are deactivated rather than
    # deleted, and every index on this table is written again whenever the lifecycle engine
    # moves a student's stage (hundreds of thousands of rows in a big nightly run).
    campus = models.ForeignKey(
        Campus, verbose_name=_("campus"), on_delete=models.PROTECT, related_name="students", db_index=False
    )
    channel = models.CharField(_("source channel"), max_length=20, choices=Channel.choices, default=Channel.WALK_IN)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_students",
        db_index=False,
    )
    referrer = models.ForeignKey(
        "self",
        verbose_name=_("referred by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="referrals",
        db_index=False,
    )
    # The parent whose invite code brought this lead (the referrer above is their child).
    referred_by = models.ForeignKey(
        Guardian,
        verbose_name=_("invited by parent"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="referred_students",
        db_index=False,
    )
    notes = models.TextField(_("notes"), max_length=text.LONG, blank=True)
    guardians = models.ManyToManyField(
        Guardian, through="StudentGuardian", verbose_name=_("guardians"), related_name="students", blank=True
    )
    tags: models.ManyToManyField[Tag, StudentTag] = models.ManyToManyField(
        "Tag", through="StudentTag", verbose_name=_("tags"), related_name="students", blank=True
    )
    # The open follow-up of the latest consultation; written by consultation_log.
    next_follow_up_at = models.DateTimeField(_("next follow-up"), null=True, blank=True)
    # "Close as lost": a fact a person records, with a reason.
    lost_at = models.DateTimeField(_("closed as lost at"), null=True, blank=True)
    lost_reason = models.CharField(_("lost reason"), max_length=text.LINE, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("student")
        verbose_name_plural = _("students")
        indexes = [
            models.Index(fields=["owner", "next_follow_up_at"]),
            models.Index(fields=["campus", "next_follow_up_at"]),
            models.Index(fields=["name"]),
            # Few students are referred: a partial index keeps the referral lookups cheap.
            models.Index(fields=["referrer"], condition=models.Q(referrer__isnull=False), name="student_referrer"),
            models.Index(
                fields=["referred_by"], condition=models.Q(referred_by__isnull=False), name="student_referred_by"
            ),
        ]
        constraints = [text.length_constraint("student", "notes", text.LONG)]

    def __str__(self) -> str:
        return self.name

    # The stage lives in StudentStage (see there); these read it through `pipeline`, which every
    # list selects with its students (select_related), so a page reads it with no extra query.
    # A student written outside the services has no row until the engine's next run: read as
    # the row they will get.
    def stage_row(self) -> StudentStage:
        try:
            return self.pipeline
        except ObjectDoesNotExist:
            return StudentStage.first_for(student_id=self.pk, campus_id=self.campus_id)

    @property
    def stage(self) -> str:
        return self.stage_row().stage

    @property
    def stage_changed_at(self) -> datetime.datetime | None:
        return self.stage_row().changed_at

    def get_stage_display(self) -> str:
        return self.stage_row().get_stage_display()

    def days_in_stage(self, now: datetime.datetime) -> int:
        """Whole days since the facts put the student in their stage (the engine's start; their
        creation until it has decided), as the board, the student page and the history read it."""
        since = self.stage_changed_at or self.created_at
        return max((now - since).days, 0) if since else 0


class StudentGuardian(models.Model):
    """A child's link to a parent. Declared (on the table Django created for the plain
    many-to-many) so the admin and the delete page name it in words, not as a row number."""

    student = models.ForeignKey(Student, verbose_name=_("student"), on_delete=models.CASCADE)
    guardian = models.ForeignKey(Guardian, verbose_name=_("guardian"), on_delete=models.CASCADE)

    class Meta:
        db_table = "crm_student_guardians"
        verbose_name = _("family link")
        verbose_name_plural = _("family links")
        unique_together = [("student", "guardian")]

    def __str__(self) -> str:
        return _("%(student)s, child of %(guardian)s") % {"student": self.student, "guardian": self.guardian}


class StudentStage(models.Model):
    """A student's lifecycle stage and flags: what the lifecycle engine last decided from their
    facts. Written only by `lifecycle.services` (crm.services creates the row, as a lead, with
    the student).

    A narrow table of its own, because a nightly run rewrites hundreds of thousands of these
    rows: on the student's wide row every index (name, follow-ups, ...) would be written again
    for each move. Here a stage change writes the board's index, and a change of the flags'
    numbers or of `recheck_at` alone touches no index at all, so PostgreSQL rewrites the row in
    place (a HOT update, helped by the free space each page keeps, see migration 0007).
    """

    student = models.OneToOneField(
        Student, verbose_name=_("student"), on_delete=models.CASCADE, primary_key=True, related_name="pipeline"
    )
    # The student's campus, copied for the board's index: a student never changes campus.
    campus = models.ForeignKey(
        Campus, verbose_name=_("campus"), on_delete=models.CASCADE, related_name="+", db_index=False
    )
    stage = models.CharField(_("stage"), max_length=20, choices=Stage.choices, default=Stage.LEAD)
    changed_at = models.DateTimeField(_("stage changed at"), null=True, blank=True)
    # Flags beside the stage, with the numbers their reasons are worded from.
    at_risk = models.BooleanField(_("at risk"), default=False)
    risk_recent = models.PositiveIntegerField(_("lessons attended in the recent window"), default=0)
    risk_before = models.PositiveIntegerField(_("lessons attended in the window before"), default=0)
    renewal_due = models.BooleanField(_("renewal due"), default=False)
    # When the decision may next change with no new fact (lifecycle.rules.NEVER if never);
    # NULL when the facts changed since the last decision. The nightly run decides only the
    # students whose recheck_at has come (or is NULL), found with a scan of this narrow table.
    recheck_at = models.DateTimeField(_("recheck at"), null=True, blank=True)

    class Meta:
        verbose_name = _("student stage")
        verbose_name_plural = _("student stages")
        indexes = [
            # The board: each column's newest arrivals in a campus are a short range scan. One index
            # only (a board over every campus unions its campuses' ranges): each is written again
            # for every stage change of a big nightly run.
            models.Index(fields=["campus", "stage", "-changed_at", "-student"], name="stage_board_campus"),
            # Flags change far less often than the numbers beside them: small partial indexes.
            models.Index(fields=["student"], condition=Q(at_risk=True), name="stage_at_risk"),
            models.Index(fields=["student"], condition=Q(renewal_due=True), name="stage_renewal_due"),
        ]

    def __str__(self) -> str:
        return f"{self.student_id}: {self.get_stage_display()}"

    @classmethod
    def first_for(cls, *, student_id: int, campus_id: int) -> StudentStage:
        """A student's first row, before the engine has decided anything: a lead with no start
        yet. The engine's first decision gives the start the facts say (the creation for a lead,
        the signing for a contract imported with the student...), even when the stage stays a
        lead. Written only by `crm.services.leads.stages_open`."""
        return cls(student_id=student_id, campus_id=campus_id, stage=Stage.LEAD, changed_at=None)


class TagGroup(models.Model):
    name = models.CharField(_("name"), max_length=text.NAME, unique=True)
    exclusive = models.BooleanField(_("one tag per student"), default=False)

    class Meta:
        verbose_name = _("tag group")
        verbose_name_plural = _("tag groups")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    group = models.ForeignKey(TagGroup, verbose_name=_("group"), on_delete=models.PROTECT, related_name="tags")
    name = models.CharField(_("name"), max_length=text.NAME)

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ["group__name", "name"]
        constraints = [models.UniqueConstraint(fields=["group", "name"], name="tag_unique_in_group")]

    def __str__(self) -> str:
        return f"{self.group.name}:{self.name}"


class TagSource(models.TextChoices):
    MANUAL = "manual", _("Manual")
    RULE = "rule", _("Rule")
    IMPORT = "import", _("Import")


class StudentTag(models.Model):
    student = models.ForeignKey(
        Student, verbose_name=_("student"), on_delete=models.CASCADE, related_name="student_tags"
    )
    tag = models.ForeignKey(Tag, verbose_name=_("tag"), on_delete=models.PROTECT, related_name="student_tags")
    source = models.CharField(_("source"), max_length=10, choices=TagSource.choices, default=TagSource.MANUAL)
    rule = models.CharField(_("rule"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("tagged by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("tagged at"), auto_now_add=True)

    class Meta:
        verbose_name = _("student tag")
        verbose_name_plural = _("student tags")
        constraints = [models.UniqueConstraint(fields=["student", "tag"], name="student_tag_unique")]

    def __str__(self) -> str:
        return f"{self.student_id}: {self.tag_id}"


class Course(models.Model):
    campus = models.ForeignKey(Campus, verbose_name=_("campus"), on_delete=models.PROTECT, related_name="courses")
    name = models.CharField(_("name"), max_length=text.TITLE)
    subject = models.CharField(_("subject"), max_length=text.LABEL)
    level = models.CharField(_("level"), max_length=text.LABEL, blank=True)
    price_per_hour = models.DecimalField(_("price per hour"), max_digits=10, decimal_places=2)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("course")
        verbose_name_plural = _("courses")
        ordering = ["campus", "subject", "name"]
        constraints = [
            models.UniqueConstraint(fields=["campus", "name"], name="course_unique_name_in_campus"),
            models.CheckConstraint(condition=Q(price_per_hour__gte=0), name="course_price_non_negative"),
        ]

    def __str__(self) -> str:
        return self.name


class ConsultationChannel(models.TextChoices):
    PHONE = "phone", _("Phone")
    VISIT = "visit", _("Visit")
    WECHAT = "wechat", _("WeChat")
    ONLINE = "online", _("Online")


class Intent(models.TextChoices):
    HIGH = "high", _("High")
    MEDIUM = "medium", _("Medium")
    LOW = "low", _("Low")


class Consultation(models.Model):
    student = models.ForeignKey(
        Student, verbose_name=_("student"), on_delete=models.CASCADE, related_name="consultations"
    )
    consultant = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("consultant"), on_delete=models.PROTECT, related_name="consultations"
    )
    channel = models.CharField(_("channel"), max_length=10, choices=ConsultationChannel.choices)
    content = models.TextField(_("content"), max_length=text.LONG)
    intent = models.CharField(_("intent"), max_length=10, choices=Intent.choices, default=Intent.MEDIUM)
    outcome = models.CharField(_("outcome"), max_length=text.LINE, blank=True)
    next_follow_up_at = models.DateTimeField(_("next follow-up"), null=True, blank=True)
    consulted_at = models.DateTimeField(_("consulted at"), db_index=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("consultation")
        verbose_name_plural = _("consultations")
        ordering = ["-consulted_at"]
        indexes = [models.Index(fields=["student", "consulted_at"])]
        constraints = [text.length_constraint("consultation", "content", text.LONG)]

    def __str__(self) -> str:
        return f"{self.student} @ {localtime(self.consulted_at):%Y-%m-%d}"


class TrialStatus(models.TextChoices):
    BOOKED = "booked", _("Booked")
    ATTENDED = "attended", _("Attended")
    NO_SHOW = "no_show", _("No show")
    CANCELLED = "cancelled", _("Cancelled")


class TrialLesson(models.Model):
    student = models.ForeignKey(Student, verbose_name=_("student"), on_delete=models.CASCADE, related_name="trials")
    course = models.ForeignKey(Course, verbose_name=_("course"), on_delete=models.PROTECT, related_name="trials")
    teacher = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("teacher"), on_delete=models.PROTECT, related_name="trials"
    )
    scheduled_at = models.DateTimeField(_("scheduled at"))
    duration_minutes = models.PositiveSmallIntegerField(_("duration (minutes)"), default=60)
    status = models.CharField(_("status"), max_length=10, choices=TrialStatus.choices, default=TrialStatus.BOOKED)
    rating = models.PositiveSmallIntegerField(_("rating"), null=True, blank=True)
    comment = models.TextField(_("teacher's comment"), max_length=text.LONG, blank=True)
    recommended_level = models.CharField(_("recommended level"), max_length=text.LABEL, blank=True)
    feedback_at = models.DateTimeField(_("feedback at"), null=True, blank=True)
    booked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("booked by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("trial lesson")
        verbose_name_plural = _("trial lessons")
        ordering = ["-scheduled_at"]
        indexes = [models.Index(fields=["teacher", "scheduled_at"]), models.Index(fields=["student", "scheduled_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(rating__isnull=True) | Q(rating__gte=1, rating__lte=5), name="trial_rating_1_to_5"
            ),
            models.CheckConstraint(condition=Q(duration_minutes__gt=0), name="trial_duration_positive"),
            text.length_constraint("trial", "comment", text.LONG),
            # The service checks overlaps under a lock; this holds the exact slot even without it.
            models.UniqueConstraint(
                fields=["teacher", "scheduled_at"],
                condition=Q(status__in=["booked", "attended"]),
                name="trial_teacher_slot_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.student} / {self.course} @ {localtime(self.scheduled_at):%Y-%m-%d %H:%M}"


class ContractStatus(models.TextChoices):
    ACTIVE = "active", pgettext_lazy("contract status", "Active")
    COMPLETED = "completed", _("Completed")
    REFUNDED = "refunded", _("Refunded")
    CANCELLED = "cancelled", _("Cancelled")


class Contract(models.Model):
    student = models.ForeignKey(Student, verbose_name=_("student"), on_delete=models.CASCADE, related_name="contracts")
    course = models.ForeignKey(Course, verbose_name=_("course"), on_delete=models.PROTECT, related_name="contracts")
    hours_bought = models.DecimalField(_("hours bought"), max_digits=7, decimal_places=1)
    # Kept by attendance_record under a row lock; never above hours_bought.
    hours_consumed = models.DecimalField(_("hours consumed"), max_digits=7, decimal_places=1, default=Decimal("0"))
    amount = models.DecimalField(_("amount"), max_digits=12, decimal_places=2)
    paid_amount = models.DecimalField(_("paid amount"), max_digits=12, decimal_places=2)
    signed_at = models.DateTimeField(_("signed at"), db_index=True)
    valid_until = models.DateField(_("valid until"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=ContractStatus.choices, default=ContractStatus.ACTIVE)
    refund_amount = models.DecimalField(_("refund amount"), max_digits=12, decimal_places=2, default=Decimal("0"))
    refund_reason = models.CharField(_("refund reason"), max_length=text.LINE, blank=True)
    refunded_at = models.DateTimeField(_("refunded at"), null=True, blank=True)
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("signed by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("contract")
        verbose_name_plural = _("contracts")
        ordering = ["-signed_at"]
        indexes = [models.Index(fields=["student", "status"])]
        constraints = [
            models.CheckConstraint(condition=Q(hours_bought__gt=0), name="contract_hours_bought_positive"),
            models.CheckConstraint(condition=Q(hours_consumed__gte=0), name="contract_hours_consumed_non_negative"),
            models.CheckConstraint(
                condition=Q(hours_consumed__lte=models.F("hours_bought")), name="contract_hours_within_bought"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="contract_amount_non_negative"),
            models.CheckConstraint(
                condition=Q(paid_amount__gte=0, paid_amount__lte=models.F("amount")), name="contract_paid_within_amount"
            ),
            models.CheckConstraint(
                condition=Q(refund_amount__gte=0, refund_amount__lte=models.F("paid_amount")),
                name="contract_refund_within_paid",
            ),
        ]

    def __str__(self) -> str:
        return _("%(student)s / %(course)s (%(hours)s hours)") % {
            "student": self.student,
            "course": self.course,
            "hours": self.hours_bought,
        }

    @property
    def hours_remaining(self) -> Decimal:
        return self.hours_bought - self.hours_consumed


class Lesson(models.Model):
    """A scheduled class: a teacher, a course, a time and the students on its roster."""

    course = models.ForeignKey(Course, verbose_name=_("course"), on_delete=models.PROTECT, related_name="lessons")
    teacher = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("teacher"), on_delete=models.PROTECT, related_name="lessons"
    )
    starts_at = models.DateTimeField(_("starts at"))
    duration_minutes = models.PositiveSmallIntegerField(_("duration (minutes)"), default=60)
    hours = models.DecimalField(_("hours per student"), max_digits=4, decimal_places=1, default=Decimal("1"))
    students = models.ManyToManyField(Student, verbose_name=_("students"), related_name="lessons", blank=True)

    class Meta:
        verbose_name = _("lesson")
        verbose_name_plural = _("lessons")
        ordering = ["starts_at"]
        indexes = [models.Index(fields=["teacher", "starts_at"])]
        constraints = [models.CheckConstraint(condition=Q(hours__gt=0), name="lesson_hours_positive")]

    def __str__(self) -> str:
        return f"{self.course} @ {localtime(self.starts_at):%Y-%m-%d %H:%M}"


class AttendanceStatus(models.TextChoices):
    PRESENT = "present", _("Present")
    ABSENT = "absent", _("Absent")
    LEAVE = "leave", _("On leave")


class Attendance(models.Model):
    student = models.ForeignKey(
        Student, verbose_name=_("student"), on_delete=models.CASCADE, related_name="attendances"
    )
    contract = models.ForeignKey(
        Contract, verbose_name=_("contract"), on_delete=models.PROTECT, related_name="attendances"
    )
    lesson = models.ForeignKey(
        Lesson, verbose_name=_("lesson"), on_delete=models.SET_NULL, null=True, blank=True, related_name="attendances"
    )
    lesson_at = models.DateTimeField(_("lesson time"))
    status = models.CharField(
        _("status"), max_length=10, choices=AttendanceStatus.choices, default=AttendanceStatus.PRESENT
    )
    hours = models.DecimalField(_("hours consumed"), max_digits=4, decimal_places=1)
    teacher = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("teacher"), on_delete=models.PROTECT, related_name="attendances"
    )
    feedback = models.TextField(_("feedback"), max_length=text.LONG, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("recorded by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("attendance")
        verbose_name_plural = _("attendance")
        ordering = ["-lesson_at"]
        indexes = [models.Index(fields=["student", "lesson_at"])]
        constraints = [
            models.CheckConstraint(condition=Q(hours__gte=0), name="attendance_hours_non_negative"),
            text.length_constraint("attendance", "feedback", text.LONG),
            models.UniqueConstraint(
                fields=["lesson", "student"], condition=Q(lesson__isnull=False), name="attendance_once_per_lesson"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.student} @ {localtime(self.lesson_at):%Y-%m-%d %H:%M}"


class AuditAction(models.TextChoices):
    """Every kind of audit entry: the services write these, the admin filters and the API reads them."""

    LEAD_CAPTURE = "lead_capture", _("Lead captured")
    GUARDIAN_ADD = "guardian_add", _("Guardian added")
    GUARDIAN_UPDATE = "guardian_update", _("Guardian edited")
    STUDENT_UPDATE = "student_update", _("Student edited")
    LEAD_CLOSE_LOST = "lead_close_lost", _("Lead closed as lost")
    STUDENT_TAG_ADD = "student_tag_add", _("Tag added")
    STUDENT_TAG_REMOVE = "student_tag_remove", _("Tag removed")
    CONSULTATION_LOG = "consultation_log", _("Consultation logged")
    TRIAL_BOOK = "trial_book", _("Trial lesson booked")
    TRIAL_FEEDBACK_RECORD = "trial_feedback_record", _("Trial feedback recorded")
    TRIAL_CANCEL = "trial_cancel", _("Trial lesson cancelled")
    CONTRACT_SIGN = "contract_sign", _("Contract signed")
    CONTRACT_REFUND = "contract_refund", _("Contract refunded")
    ATTENDANCE_RECORD = "attendance_record", _("Attendance recorded")
    ATTENDANCE_CORRECT = "attendance_correct", _("Attendance corrected")
    IMPORT_STUDENTS = "import_students", _("Students imported")
    IMPORT_CONSULTATIONS = "import_consultations", _("Consultations imported")
    IMPORT_CONTRACTS = "import_contracts", _("Contracts imported")
    POOL_CLAIM = "pool_claim", _("Lead claimed from the pool")
    POOL_RELEASE = "pool_release", _("Lead given back to the pool")
    POOL_SWEEP = "pool_sweep", _("Neglected leads released to the pool")
    THRESHOLDS_UPDATE = "thresholds_update", _("Lifecycle thresholds changed")
    CAMPUS_CREATE = "campus_create", _("Campus created")
    TAG_RULE_CREATE = "tag_rule_create", _("Tag rule created")
    TAG_RULE_UPDATE = "tag_rule_update", _("Tag rule changed")
    TAG_RULE_DELETE = "tag_rule_delete", _("Tag rule deleted")
    PERSONA_SETTINGS_UPDATE = "persona_settings_update", _("Value tier cut-offs changed")
    SEGMENT_CREATE = "segment_create", _("Segment created")
    SEGMENT_UPDATE = "segment_update", _("Segment changed")
    SEGMENT_DELETE = "segment_delete", _("Segment deleted")
    MARKETING_SETTINGS_UPDATE = "marketing_settings_update", _("Marketing rules changed")
    CAMPAIGN_CREATE = "campaign_create", _("Campaign created")
    CAMPAIGN_UPDATE = "campaign_update", _("Campaign changed")
    CAMPAIGN_LAUNCH = "campaign_launch", _("Campaign launched")
    CAMPAIGN_PAUSE = "campaign_pause", _("Campaign paused")
    CAMPAIGN_RESUME = "campaign_resume", _("Campaign resumed")
    CAMPAIGN_CANCEL = "campaign_cancel", _("Campaign cancelled")
    PARENT_LOGIN = "parent_login", _("Parent logged in")
    PARENT_LOGOUT = "parent_logout", _("Parent logged out")
    PARENT_WECHAT_BIND = "parent_wechat_bind", _("Parent linked their WeChat")
    PARENT_DATA_EXPORT = "parent_data_export", _("Parent downloaded their data")
    PARENT_CONSENT = "parent_consent", _("Parent changed message preferences")
    PARENT_SETTINGS_UPDATE = "parent_settings_update", _("Parent app rules changed")
    TRIAL_REQUEST = "trial_request", _("Trial requested by a parent")
    TRIAL_REQUEST_CLOSE = "trial_request_close", _("Trial request handled")
    SATISFACTION_ANSWER = "satisfaction_answer", _("Satisfaction answered")
    CARE_TASK_CLOSE = "care_task_close", _("Care task done")
    REFERRAL_LEAD = "referral_lead", _("Referred lead captured")
    REFERRAL_REWARD = "referral_reward", _("Referral reward applied")


class AuditEntry(models.Model):
    """Who did what, written only by `crm.services.audit`."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("by"), on_delete=models.SET_NULL, null=True, related_name="+"
    )
    # A parent's own writes (through the parent API) name the guardian instead of a staff member.
    guardian = models.ForeignKey(
        Guardian,
        verbose_name=_("by guardian"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    action = models.CharField(_("action"), max_length=50, choices=AuditAction.choices)
    student = models.ForeignKey(
        Student, verbose_name=_("student"), on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit log")
        ordering = ["-at"]

    def __str__(self) -> str:
        return _("%(action)s by %(actor)s @ %(at)s") % {
            "action": self.action,
            "actor": self.actor,
            "at": f"{localtime(self.at):%Y-%m-%d %H:%M}",
        }


class ImportJob(models.Model):
    """One spreadsheet import: previewed, then committed (in the background when large)."""

    class Kind(models.TextChoices):
        STUDENTS = "students", _("Students")
        CONSULTATIONS = "consultations", _("Consultations")
        CONTRACTS = "contracts", _("Contracts")

    class Status(models.TextChoices):
        PREVIEWED = "previewed", _("Previewed")
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    campus = models.ForeignKey(
        Campus, verbose_name=_("campus"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    file = models.FileField(_("file"), upload_to="imports/%Y/%m/")
    original_name = models.CharField(_("file name"), max_length=200)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PREVIEWED)
    total_rows = models.PositiveIntegerField(_("rows"), default=0)
    processed_rows = models.PositiveIntegerField(_("rows processed"), default=0)
    report = models.JSONField(_("report"), default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("created by"), on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("import job")
        verbose_name_plural = _("import jobs")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.original_name}"


class IdempotencyRecord(models.Model):
    """A creating POST sent with an `Idempotency-Key`: its answer, replayed when the same caller
    sends the same key again (mobile networks retry). Written only by `crm.api.idempotency`."""

    caller = models.CharField(_("caller"), max_length=40)
    key = models.CharField(_("key"), max_length=255)
    fingerprint = models.CharField(_("request fingerprint"), max_length=64)
    status_code = models.PositiveSmallIntegerField(_("status"), null=True, blank=True)
    body = models.JSONField(_("answer"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("idempotency key")
        verbose_name_plural = _("idempotency keys")
        constraints = [models.UniqueConstraint(fields=["caller", "key"], name="idempotency_once_per_caller")]

    def __str__(self) -> str:
        return f"{self.caller} {self.key}"
