"""factory-boy factories for every crm model. Facts made here skip the services on
purpose (fast set-up); tests of behaviour call the services."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.utils import timezone

from crm import models
from crm.roles import role_group


class CampusFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Campus
        django_get_or_create = ("code",)

    name = factory.Sequence(lambda n: f"校区{n}")
    code = factory.Sequence(lambda n: f"campus-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}")
    display_name = factory.Sequence(lambda n: f"员工{n}")
    campus = factory.SubFactory(CampusFactory)
    password = factory.django.Password("pass-1234")
    is_staff = False

    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        if create and extracted:
            self.groups.add(role_group(extracted))
            if extracted in ("front_desk", "manager", "admin"):
                self.is_staff = True
                self.save(update_fields=["is_staff"])


class GuardianFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Guardian

    name = factory.Sequence(lambda n: f"家长{n}")
    phone = factory.Sequence(lambda n: f"+86139{n:08d}")
    relation = "妈妈"


class StudentStageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.StudentStage

    stage = models.Stage.LEAD


class StudentFactory(factory.django.DjangoModelFactory):
    """A student with their StudentStage row (as crm.services creates it); `stage=` and
    `stage_changed_at=` set it, as if the lifecycle engine had decided it."""

    class Meta:
        model = models.Student
        skip_postgeneration_save = True

    class Params:
        stage = models.Stage.LEAD
        stage_changed_at = None

    name = factory.Sequence(lambda n: f"学生{n}")
    campus = factory.SubFactory(CampusFactory)
    channel = models.Channel.DOUYIN
    grade = "三年级"
    pipeline = factory.RelatedFactory(
        StudentStageFactory,
        factory_related_name="student",
        campus=factory.SelfAttribute("..campus"),
        stage=factory.SelfAttribute("..stage"),
        changed_at=factory.SelfAttribute("..stage_changed_at"),
    )

    @factory.post_generation
    def guardians(self, create: bool, extracted: list[models.Guardian] | None, **kwargs: object) -> None:
        if not create:
            return
        if extracted is None:
            extracted = [GuardianFactory()]
        self.guardians.add(*extracted)


class TagGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.TagGroup
        django_get_or_create = ("name",)

    name = "意向"


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Tag
        django_get_or_create = ("group", "name")

    group = factory.SubFactory(TagGroupFactory)
    name = factory.Sequence(lambda n: f"标签{n}")


class CourseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Course

    campus = factory.SubFactory(CampusFactory)
    name = factory.Sequence(lambda n: f"少儿编程{n}")
    subject = "编程"
    level = "L1"
    price_per_hour = Decimal("200.00")


class ConsultationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Consultation

    student = factory.SubFactory(StudentFactory)
    consultant = factory.SubFactory(UserFactory)
    channel = models.ConsultationChannel.PHONE
    content = "了解课程"
    intent = models.Intent.MEDIUM
    consulted_at = factory.LazyFunction(timezone.now)


class TrialLessonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.TrialLesson

    student = factory.SubFactory(StudentFactory)
    course = factory.SubFactory(CourseFactory)
    teacher = factory.SubFactory(UserFactory)
    scheduled_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(days=1))


class ContractFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Contract

    student = factory.SubFactory(StudentFactory)
    course = factory.SubFactory(CourseFactory)
    hours_bought = Decimal("40")
    amount = Decimal("8000")
    paid_amount = Decimal("8000")
    signed_at = factory.LazyFunction(timezone.now)


class LessonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Lesson

    course = factory.SubFactory(CourseFactory)
    teacher = factory.SubFactory(UserFactory)
    starts_at = factory.LazyFunction(timezone.now)


class AttendanceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Attendance

    student = factory.SubFactory(StudentFactory)
    contract = factory.SubFactory(ContractFactory)
    lesson_at = factory.LazyFunction(timezone.now)
    hours = Decimal("1")
    teacher = factory.SubFactory(UserFactory)


class StudentProfileFactory(factory.django.DjangoModelFactory):
    """A kept persona profile, as if the personas engine had computed it (a high-value regular)."""

    class Meta:
        model = "personas.StudentProfile"

    student = factory.SubFactory(StudentFactory)
    campus = factory.SelfAttribute("student.campus")
    recency_at = factory.LazyFunction(timezone.now)
    frequency = 2
    monetary = Decimal("16000")
    r_score, f_score, m_score = 5, 4, 5
    rfm_segment = "champions"
    value_tier = "high"
    lessons_scheduled_90 = 20
    lessons_present_90 = 18
    attendance_rate = Decimal("0.9000")
    preferred_weekday = 6
    preferred_slot = "morning"
    subjects = factory.LazyFunction(lambda: ["编程"])
    avg_rating = Decimal("4.50")
    ratings = 2
    first_signed_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=200))
    remaining_hours = Decimal("12")
    last_touch_at = factory.LazyFunction(timezone.now)
    computed_at = factory.LazyFunction(timezone.now)


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "personas.Segment"

    name = factory.Sequence(lambda n: f"分群{n}")
    campus = factory.SubFactory(CampusFactory)
    conditions = factory.LazyFunction(lambda: {"all": [{"field": "stage", "op": "in", "value": ["lead"]}]})
