"""Build a realistic institution with a year of history, through the crm services.

Every fact a service accepts (a lead, a consultation in the past, a contract signed on a
past date, attendance at a past lesson, a refund, a lead closed as lost, a trial's
feedback) is recorded by calling that service with the staff member who would have
done it, so the demo exercises the one write path. Where a service refuses history
(trial_book refuses the past, and there is no service for scheduling lessons yet),
rows are created with the model directly; each place says so. Services stamp "now"
on a few fields (created_at, refunded_at, lost_at, feedback_at); those are moved back
to when the fact happened right after the call.

Everything is drawn from one seeded random generator, so the same seed gives the same
institution (relative to today's date). On each campus the first student of a kind whose
stage depends on elapsed time is an anchor (`anchors`), placed from the campus's lifecycle
thresholds so that every stage and flag is in the demo whatever today's date is.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import TypeVar

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from crm import services
from crm.management.demo import anchors
from crm.management.demo import catalogue as cat
from crm.models import (
    Attendance,
    AttendanceStatus,
    Campus,
    Consultation,
    ConsultationChannel,
    Contract,
    ContractStatus,
    Course,
    Guardian,
    Intent,
    Lesson,
    Relation,
    Role,
    Student,
    Tag,
    TagGroup,
    TrialLesson,
    TrialStatus,
    User,
)
from crm.roles import role_group

T = TypeVar("T")

# The kinds of history a student can have, with their share of the students. Each campus
# gets at least the minimum, so a small demo still has every kind (and a trial today for
# each of its three teachers).
ARCHETYPES: dict[str, tuple[float, int]] = {
    "lead": (0.10, 1),  # captured, never consulted
    "consulting": (0.17, 3),  # consulted, follow-ups due today / overdue / later
    "trial": (0.12, 5),  # trial today, booked for later, or taken with feedback
    "lost": (0.06, 1),  # closed as lost with a reason
    "enrolled": (0.05, 1),  # signed in the last two weeks, not attending yet
    "active": (0.29, 4),  # attending weekly, renewing as hours run out
    "at_risk": (0.04, 1),  # attended weekly, then only once in the last four weeks
    "silent": (0.07, 1),  # no attendance for one to three months
    "refunded": (0.04, 1),  # contract refunded
    "churned": (0.06, 1),  # contract used up long ago, never renewed
}
# Two campuses of 20: the smallest demo in which every campus has every kind.
MIN_STUDENTS = 40
RENEWING = {"active", "at_risk", "silent"}

TRIAL_HOURS_TODAY = (10, 11, 14, 15)
LESSON_HOURS_TODAY = ((16, 0), (18, 0))
WEEKDAY_SLOTS = ((18, 30),)
WEEKEND_SLOTS = ((9, 0), (10, 30), (14, 0), (16, 0))


@dataclass(frozen=True)
class DemoAccount:
    role: str
    username: str
    name: str
    campus: str


@dataclass
class DemoSummary:
    students: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    # Each campus's core, (campus code, kind) -> student id: what each one is, anchors.CORE says.
    core: dict[tuple[str, str], int] = field(default_factory=dict)


def demo_account_specs() -> list[DemoAccount]:
    accounts = []
    for campus in cat.CAMPUSES:
        for spec in cat.STAFF[campus.code]:
            accounts.append(DemoAccount(spec.role, f"{campus.prefix}_{spec.key}", spec.name, campus.name))
    accounts.append(DemoAccount(Role.ADMIN, cat.ADMIN_USERNAME, cat.ADMIN_NAME, "全部校区"))
    return accounts


@dataclass
class CampusWorld:
    campus: Campus
    spec: cat.CampusSpec
    consultants: list[User]
    teachers: list[User]
    manager: User
    courses: list[tuple[Course, cat.CourseSpec]]
    teacher_by_subject: dict[str, User]
    families: list[tuple[Guardian, str, str]] = field(default_factory=list)  # guardian, surname, national phone
    active_students: list[Student] = field(default_factory=list)
    kinds_done: Counter[str] = field(default_factory=Counter)
    thresholds: anchors.StageThresholds | None = None

    def courses_of(self, teacher: User) -> list[tuple[Course, cat.CourseSpec]]:
        return [(c, s) for c, s in self.courses if self.teacher_by_subject[s.subject] == teacher]


@dataclass
class Child:
    name: str
    surname: str
    gender: str
    grade: str
    birth_date: dt.date
    school: str


class DemoBuilder:
    def __init__(
        self, *, students: int, seed: int, thresholds_for: Callable[[Campus], anchors.StageThresholds]
    ) -> None:
        if students < MIN_STUDENTS:
            raise ValueError(f"the demo needs at least {MIN_STUDENTS} students to show every kind of history")
        self.total = students
        # Each campus's lifecycle thresholds, which place the anchor students (crm cannot ask lifecycle).
        self.thresholds_for = thresholds_for
        self.rng = random.Random(seed)
        self.now = timezone.now()
        self.today = timezone.localdate(self.now)
        self.tz = timezone.get_current_timezone()
        # Trial slots already taken (by an earlier seed, with --force): a teacher is never double-booked.
        self.used_slots: set[tuple[int, dt.datetime]] = set(
            TrialLesson.objects.filter(status__in=(TrialStatus.BOOKED, TrialStatus.ATTENDED)).values_list(
                "teacher_id", "scheduled_at"
            )
        )
        self.phones: set[str] = {
            phone.removeprefix("+86") for phone in Guardian.objects.values_list("phone", flat=True)
        }
        # The demo parent's family (`cat.DEMO_PARENT_PHONE`), once its first child is captured;
        # not again when an earlier seed made it (--force).
        self.demo_family: tuple[Guardian, str, str] | None = None
        self.demo_family_wanted = cat.DEMO_PARENT_PHONE not in self.phones
        self.phones.add(cat.DEMO_PARENT_PHONE)
        self.tags: dict[tuple[str, str], Tag] = {}
        self.summary = DemoSummary()
        self.last_captured: Student | None = None
        self.password_hash = make_password(cat.DEMO_PASSWORD)

    # --- time ---------------------------------------------------------------

    def at(self, day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=self.tz)

    def days_ago(self, days: int, hour: int | None = None, minute: int = 0) -> dt.datetime:
        hour = self.rng.randint(9, 20) if hour is None else hour
        return self.at(self.today - dt.timedelta(days=days), hour, minute)

    def between(self, start: dt.datetime, end: dt.datetime) -> dt.datetime:
        """A random working-hours moment between start and end (end if they are too close)."""
        if end <= start:
            return end
        moment = start + (end - start) * self.rng.random()
        local = timezone.localtime(moment, self.tz)
        hour = min(max(local.hour, 9), 20)
        moment = local.replace(hour=hour, minute=self.rng.choice((0, 10, 20, 30, 40, 50)), second=0, microsecond=0)
        return min(max(moment, start), end)

    # --- reference data -----------------------------------------------------

    def build_reference(self, campuses: Sequence[cat.CampusSpec] = cat.CAMPUSES) -> list[CampusWorld]:
        # role_group re-creates a role group that is missing (a flushed database).
        groups = {role.value: role_group(role) for role in Role}
        worlds = []
        for campus_spec in campuses:
            campus, _ = Campus.objects.update_or_create(
                code=campus_spec.code, defaults={"name": campus_spec.name, "address": campus_spec.address}
            )
            users = {
                spec.key: self.staff_member(f"{campus_spec.prefix}_{spec.key}", spec.name, spec.role, campus, groups)
                for spec in cat.STAFF[campus_spec.code]
            }
            specs = cat.STAFF[campus_spec.code]
            teachers = [users[s.key] for s in specs if s.role == Role.TEACHER]
            teacher_by_subject = {
                subject: users[s.key] for s in specs if s.role == Role.TEACHER for subject in s.subjects
            }
            courses = []
            for course_spec in cat.COURSES:
                course, _ = Course.objects.update_or_create(
                    campus=campus,
                    name=course_spec.name,
                    defaults={
                        "subject": course_spec.subject,
                        "level": course_spec.level,
                        "price_per_hour": course_spec.price_per_hour,
                        "active": True,
                    },
                )
                courses.append((course, course_spec))
            worlds.append(
                CampusWorld(
                    campus=campus,
                    spec=campus_spec,
                    consultants=[users[s.key] for s in specs if s.role == Role.FRONT_DESK],
                    teachers=teachers,
                    manager=next(users[s.key] for s in specs if s.role == Role.MANAGER),
                    courses=courses,
                    teacher_by_subject=teacher_by_subject,
                )
            )
        self.staff_member(cat.ADMIN_USERNAME, cat.ADMIN_NAME, Role.ADMIN, None, groups, superuser=True)
        for group_name, (exclusive, names) in cat.TAG_GROUPS.items():
            group, _ = TagGroup.objects.update_or_create(name=group_name, defaults={"exclusive": exclusive})
            for name in names:
                self.tags[(group_name, name)] = Tag.objects.get_or_create(group=group, name=name)[0]
        return worlds

    def staff_member(
        self,
        username: str,
        name: str,
        role: str,
        campus: Campus | None,
        groups: dict[str, Group],
        superuser: bool = False,
    ) -> User:
        user, _ = User.objects.update_or_create(
            username=username,
            defaults={
                "display_name": name,
                "last_name": name[0],
                "first_name": name[1:],
                "campus": campus,
                "is_staff": role != Role.TEACHER,
                "is_superuser": superuser,
                "is_active": True,
            },
        )
        # One hash for every demo account: hashing is deliberately slow, and they share the password.
        user.password = self.password_hash
        user.save(update_fields=["password"])
        user.groups.set([groups[role]])
        return user

    # --- people -------------------------------------------------------------

    def child(self, world: CampusWorld, surname: str | None = None) -> Child:
        rng = self.rng
        surname = surname or rng.choice(cat.SURNAMES)
        gender = rng.choice(("male", "female"))
        given = rng.choice(cat.BOY_NAMES if gender == "male" else cat.GIRL_NAMES)
        grade, age = rng.choice(cat.GRADES)
        # Born between September and August of the school year that makes them this age.
        year = self.today.year - age - (1 if self.today.month < 9 else 0)
        birth = dt.date(year, 9, 1) + dt.timedelta(days=rng.randrange(365))
        return Child(surname + given, surname, gender, grade, birth, rng.choice(world.spec.schools))

    def new_phone(self) -> str:
        while True:
            phone = self.rng.choice(cat.MOBILE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"
            if phone not in self.phones:
                self.phones.add(phone)
                return phone

    def typed(self, phone: str) -> str:
        """The phone as a consultant would type it: the services normalise every format."""
        style = self.rng.randrange(4)
        if style == 0:
            return phone
        if style == 1:
            return f"{phone[:3]}-{phone[3:7]}-{phone[7:]}"
        if style == 2:
            return f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}"
        return f"{phone[:3]} {phone[3:7]} {phone[7:]}"

    def guardian_identity(self, surname: str) -> tuple[str, str]:
        roll = self.rng.random()
        if roll < 0.6:
            return self.rng.choice(cat.SURNAMES) + self.rng.choice(cat.MOTHER_NAMES), Relation.MOTHER.value
        if roll < 0.9:
            return surname + self.rng.choice(cat.FATHER_NAMES), Relation.FATHER.value
        relation = self.rng.choice(
            (Relation.GRANDMOTHER_PATERNAL, Relation.GRANDMOTHER_MATERNAL, Relation.GRANDFATHER_PATERNAL)
        )
        return surname + relation.value, relation.value

    def pick(self, items: Sequence[T]) -> T:
        return self.rng.choice(items)

    def channel(self) -> str:
        names, weights = zip(*cat.CHANNEL_WEIGHTS, strict=True)
        return self.rng.choices(names, weights=weights)[0]

    # --- the plan -----------------------------------------------------------

    def plan(self, count: int) -> list[str]:
        """The kinds of history for one campus's `count` students: one of each kind first
        (the campus's core, whose anchors hold every stage whatever the date), then the
        rest shuffled."""
        counts = {
            kind: max(minimum, round(share * count))
            for kind, (share, minimum) in ARCHETYPES.items()
            if kind != "active"
        }
        # The active students take whatever rounding left over.
        counts["active"] = count - sum(counts.values())
        if counts["active"] < ARCHETYPES["active"][1]:
            raise ValueError(f"the demo needs at least {MIN_STUDENTS} students to show every kind of history")
        rest = [kind for kind, n in counts.items() for _ in range(n - 1)]
        self.rng.shuffle(rest)
        return [*ARCHETYPES, *rest]

    def build(self, *, core_only: bool = False) -> DemoSummary:
        """The demo. `core_only`: only the first campus and its core (`anchors.CORE`), the part
        that holds every stage and flag whatever the date, drawn as in the full demo (what the
        date-spread test builds; the other campus's core is placed by the same code)."""
        started = timezone.now()
        with transaction.atomic():
            worlds = self.build_reference(cat.CAMPUSES[:1] if core_only else cat.CAMPUSES)
            for world in worlds:
                world.thresholds = self.thresholds_for(world.campus)
            # Shares of the whole demo even for the core alone, so its random draws match the full demo's.
            campuses = len(cat.CAMPUSES)
            per_campus = [self.total // campuses + (1 if i < self.total % campuses else 0) for i in range(campuses)]
            for world, count in zip(worlds, per_campus[: len(worlds)], strict=True):
                kinds = self.plan(count)
                if core_only:
                    kinds = [kind for kind in kinds[: len(ARCHETYPES)] if kind in anchors.CORE]
                for index, kind in enumerate(kinds):
                    self.student(world, kind, index)
            for world in worlds:
                self.todays_lessons(world)
            self.backdate_bookkeeping()
        self.summary.seconds = (timezone.now() - started).total_seconds()
        return self.summary

    def student(self, world: CampusWorld, kind: str, index: int) -> None:
        flows: dict[str, Callable[[CampusWorld, int], None]] = {
            "lead": self.flow_lead,
            "consulting": self.flow_consulting,
            "trial": self.flow_trial,
            "lost": self.flow_lost,
        }
        flow = flows.get(kind)
        if flow is not None:
            flow(world, index)
        else:
            self.flow_signed(world, kind, index)
        if kind in anchors.CORE and not world.kinds_done[kind]:
            assert self.last_captured is not None
            self.summary.core[(world.campus.code, kind)] = self.last_captured.pk
        world.kinds_done[kind] += 1
        self.summary.kinds[kind] += 1
        self.summary.students += 1

    # --- the facts, through the services -----------------------------------

    def capture(
        self,
        world: CampusWorld,
        index: int,
        captured_at: dt.datetime,
        actor: User,
        course_spec: cat.CourseSpec | None = None,
        demo_parent: bool = False,
    ) -> Student:
        # Every twelfth child (from the sixth) is a sibling: same family, same phone,
        # typed in whatever format the consultant uses that day.
        sibling_of = None
        if demo_parent:
            sibling_of = self.demo_family  # the demo parent's second child, at another campus
        elif index % 12 == 5 and world.families:
            sibling_of = self.pick(world.families)
        if demo_parent and sibling_of is None:
            child = self.child(world, cat.DEMO_PARENT_SURNAME)
            phone = cat.DEMO_PARENT_PHONE
            channel = self.channel()
            guardian_name, relation = cat.DEMO_PARENT_NAME, Relation.MOTHER.value
        elif sibling_of is not None:
            guardian, surname, phone = sibling_of
            child = self.child(world, surname)
            while guardian.students.filter(name=child.name).exists():
                child = self.child(world, surname)
            channel = guardian.students.values_list("channel", flat=True).first() or self.channel()
            guardian_name, relation = guardian.name, guardian.relation
        else:
            child = self.child(world)
            phone = self.new_phone()
            channel = self.channel()
            guardian_name, relation = self.guardian_identity(child.surname)
        referrer = None
        if channel == "referral" and world.active_students:
            referrer = self.pick(world.active_students)
        captured = services.lead_capture(
            actor=actor,
            campus=world.campus,
            phone=self.typed(phone),
            student_name=child.name,
            guardian_name=guardian_name,
            relation=relation,
            channel=channel,
            grade=child.grade,
            school=child.school,
            gender=child.gender,
            birth_date=child.birth_date,
            notes=self.pick(cat.NOTES),
            referrer=referrer,
            add_to_family=sibling_of is not None,
        )
        student = captured.student
        self.last_captured = student
        # lead_capture stamps now; the lead came in at captured_at.
        Student.objects.filter(pk=student.pk).update(created_at=captured_at)
        if captured.new_family:
            Guardian.objects.filter(pk=captured.guardian.pk).update(created_at=captured_at)
            world.families.append((captured.guardian, child.surname, phone))
            if demo_parent:
                self.demo_family = (captured.guardian, child.surname, phone)
        if course_spec is not None:
            self.tag(student, actor, cat.INTEREST_GROUP, course_spec.subject)
            if self.rng.random() < 0.3:
                self.tag(student, actor, cat.INTEREST_GROUP, self.pick(cat.SUBJECTS))
            exam_driven = course_spec.subject in ("数学", "英语", "编程") and self.rng.random() < 0.6
            self.tag(student, actor, cat.GOAL_GROUP, cat.GOAL_EXAM if exam_driven else cat.GOAL_INTEREST)
        return student

    def tag(self, student: Student, actor: User, group: str, name: str) -> None:
        services.student_tag_add(actor=actor, student=student, tag=self.tags[(group, name)])

    def consult(
        self,
        world: CampusWorld,
        student: Student,
        actor: User,
        at: dt.datetime,
        course: Course,
        intent: str,
        next_follow_up_at: dt.datetime | None,
        content: str | None = None,
    ) -> None:
        text = content or self.pick(cat.CONSULTATION_CONTENT).format(
            subject=course.subject,
            grade=student.grade,
            course=course.name,
            channel=cat.CHANNEL_WORDS.get(student.channel, "朋友"),
        )
        services.consultation_log(
            actor=actor,
            student=student,
            channel=self.pick(ConsultationChannel.values),
            content=text,
            intent=intent,
            outcome=self.pick(cat.OUTCOMES),
            next_follow_up_at=next_follow_up_at,
            consulted_at=at,
        )

    def consult_series(
        self,
        world: CampusWorld,
        student: Student,
        actor: User,
        start: dt.datetime,
        last: dt.datetime,
        course: Course,
        intent: str,
        final_follow_up: dt.datetime | None,
        count: int | None = None,
    ) -> None:
        """`count` consultations from start to last, each setting the next follow-up."""
        count = count or self.rng.randint(1, 3)
        moments = [*sorted(self.between(start, last) for _ in range(count - 1)), last]
        for i, moment in enumerate(moments):
            follow_up = final_follow_up if i == len(moments) - 1 else moments[i + 1]
            if follow_up is not None and follow_up < moment:
                follow_up = moment + dt.timedelta(days=1)
            self.consult(world, student, actor, moment, course, intent, follow_up)
        self.tag(student, actor, cat.INTENT_GROUP, cat.INTENT_TAGS[intent])

    def free_slot(self, teacher: User, day: dt.date, hours: Sequence[int]) -> dt.datetime:
        """A start time on `day` when the teacher has no other trial (hour slots, 60 min)."""
        options = list(hours)
        self.rng.shuffle(options)
        for hour in options:
            moment = self.at(day, hour)
            if (teacher.pk, moment) not in self.used_slots:
                self.used_slots.add((teacher.pk, moment))
                return moment
        return self.free_slot(teacher, day + dt.timedelta(days=1), hours)

    def past_trial(
        self, world: CampusWorld, student: Student, actor: User, course: Course, teacher: User, day: dt.date, came: bool
    ) -> TrialLesson:
        scheduled_at = self.free_slot(teacher, day, range(9, 20))
        # trial_book refuses the past (as it should for a person); history is written directly.
        trial = TrialLesson.objects.create(
            student=student, course=course, teacher=teacher, scheduled_at=scheduled_at, booked_by=actor
        )
        spec_level = course.level or "L1"
        services.trial_feedback_record(
            actor=teacher,
            trial=trial,
            attended=came,
            rating=self.rng.choice((3, 4, 4, 5, 5)) if came else None,
            comment=self.pick(cat.TRIAL_COMMENTS).format(level=spec_level) if came else "",
            recommended_level=spec_level if came else "",
        )
        # The service stamps now; the teacher wrote it the evening of the trial.
        TrialLesson.objects.filter(pk=trial.pk).update(feedback_at=scheduled_at + dt.timedelta(hours=2))
        return trial

    def book_trial(
        self, student: Student, actor: User, course: Course, teacher: User, scheduled_at: dt.datetime
    ) -> TrialLesson:
        if scheduled_at > self.now + dt.timedelta(minutes=1):
            return services.trial_book(
                actor=actor, student=student, course=course, teacher=teacher, scheduled_at=scheduled_at
            )
        # Earlier today: trial_book refuses a time already gone, but this trial was booked
        # days ago and is waiting for the teacher's feedback on the teacher's day page.
        return TrialLesson.objects.create(
            student=student, course=course, teacher=teacher, scheduled_at=scheduled_at, booked_by=actor
        )

    def follow_up_kind(self, world: CampusWorld, kind: str) -> str:
        return ("today", "overdue", "later")[world.kinds_done[kind] % 3]

    def follow_up_moment(self, which: str) -> dt.datetime:
        if which == "today":
            return self.at(self.today, self.rng.randint(9, 20), self.pick((0, 30)))
        if which == "overdue":
            return self.days_ago(self.rng.randint(1, 10))
        return self.days_ago(-self.rng.randint(1, 10))

    def course_for(self, world: CampusWorld, teacher: User | None = None) -> tuple[Course, cat.CourseSpec]:
        options = world.courses_of(teacher) if teacher is not None else world.courses
        return self.pick(options)

    def consultant(self, world: CampusWorld, index: int) -> User:
        return world.consultants[index % len(world.consultants)]

    def anchor_thresholds(self, world: CampusWorld, kind: str) -> anchors.StageThresholds | None:
        """The campus's thresholds when this student is its anchor of the kind, else None."""
        if kind not in anchors.ANCHORED_KINDS or world.kinds_done[kind]:
            return None
        return world.thresholds

    def lessons_on(self, days_ago: Sequence[int]) -> list[dt.datetime]:
        """Lessons on these days before today, at one usual hour per weekday (a weekly class keeps its slot)."""
        slots: dict[int, tuple[int, int]] = {}
        lessons = []
        for d in days_ago:
            day = self.today - dt.timedelta(days=d)
            if day.weekday() not in slots:
                slots[day.weekday()] = self.pick(WEEKEND_SLOTS if day.weekday() >= 5 else WEEKDAY_SLOTS)
            lessons.append(self.at(day, *slots[day.weekday()]))
        return lessons

    # --- the flows, one per kind of history --------------------------------

    def flow_lead(self, world: CampusWorld, index: int) -> None:
        # Some leads come in through the manager (a fair, a phone call) and wait in the
        # campus pool with no owner.
        actor = world.manager if world.kinds_done["lead"] % 5 == 4 else self.consultant(world, index)
        course_spec = self.pick(cat.COURSES) if self.rng.random() < 0.5 else None
        anchor = self.anchor_thresholds(world, "lead")
        days = anchors.lead_captured_days_ago(anchor) if anchor else self.rng.randint(0, 45)
        # A working hour today may still be ahead (seeded early in the morning): then it came in just now.
        self.capture(world, index, min(self.days_ago(days), self.now), actor, course_spec)

    def flow_consulting(self, world: CampusWorld, index: int) -> None:
        actor = self.consultant(world, index)
        course, spec = self.course_for(world)
        which = self.follow_up_kind(world, "consulting")
        follow_up = self.follow_up_moment(which)
        if which == "today":
            last = self.now - dt.timedelta(days=self.rng.randint(1, 7), hours=self.rng.randint(0, 5))
        elif which == "overdue":
            last = follow_up - dt.timedelta(days=self.rng.randint(2, 7))
        else:
            last = self.now - dt.timedelta(days=self.rng.randint(0, 5), hours=self.rng.randint(1, 5))
        captured = last - dt.timedelta(days=self.rng.randint(1, 60))
        student = self.capture(world, index, captured, actor, spec)
        intent = self.pick((Intent.HIGH, Intent.MEDIUM, Intent.MEDIUM, Intent.LOW))
        self.consult_series(world, student, actor, captured + dt.timedelta(hours=2), last, course, intent, follow_up)

    def flow_trial(self, world: CampusWorld, index: int) -> None:
        actor = self.consultant(world, index)
        done = world.kinds_done["trial"]
        if done < len(world.teachers):
            which = "today"
            teacher = world.teachers[done]
        else:
            which = ("later", "past")[done % 2]
            teacher = None
        course, spec = self.course_for(world, teacher)
        teacher = teacher or world.teacher_by_subject[spec.subject]
        if which == "today":
            scheduled_at = self.free_slot(teacher, self.today, TRIAL_HOURS_TODAY)
            last = self.now - dt.timedelta(days=self.rng.randint(1, 5))
        elif which == "later":
            scheduled_at = self.free_slot(
                teacher, self.today + dt.timedelta(days=self.rng.randint(1, 7)), (10, 11, 14, 15, 19)
            )
            last = self.now - dt.timedelta(days=self.rng.randint(0, 4), hours=1)
        else:
            trial_day = self.today - dt.timedelta(days=self.rng.randint(2, 14))
            last = self.at(trial_day, 10) - dt.timedelta(days=self.rng.randint(1, 5))
            scheduled_at = None
        captured = last - dt.timedelta(days=self.rng.randint(1, 30))
        student = self.capture(world, index, captured, actor, spec)
        intent = self.pick((Intent.HIGH, Intent.HIGH, Intent.MEDIUM))
        if scheduled_at is not None:
            # The follow-up is the day after the trial, to hear what the family thought.
            follow_up = scheduled_at + dt.timedelta(days=1)
            self.consult_series(
                world, student, actor, captured + dt.timedelta(hours=1), last, course, intent, follow_up
            )
            self.book_trial(student, actor, course, teacher, scheduled_at)
        else:
            self.consult_series(world, student, actor, captured + dt.timedelta(hours=1), last, course, intent, None)
            trial = self.past_trial(world, student, actor, course, teacher, trial_day, came=True)
            after = min(trial.scheduled_at + dt.timedelta(days=1), self.now - dt.timedelta(hours=1))
            follow_up = self.follow_up_moment(self.follow_up_kind(world, "trial"))
            follow_up = max(follow_up, after)
            self.consult(
                world,
                student,
                actor,
                after,
                course,
                intent,
                follow_up,
                content="试听后回访：家长对老师评价不错，还在比较课时包。",
            )

    def flow_lost(self, world: CampusWorld, index: int) -> None:
        actor = self.consultant(world, index)
        course, spec = self.course_for(world)
        teacher = world.teacher_by_subject[spec.subject]
        lost_at = self.days_ago(self.rng.randint(10, 250))
        last = lost_at - dt.timedelta(days=self.rng.randint(3, 20))
        captured = last - dt.timedelta(days=self.rng.randint(5, 40))
        student = self.capture(world, index, captured, actor, spec)
        self.consult_series(
            world,
            student,
            actor,
            captured + dt.timedelta(hours=1),
            last,
            course,
            Intent.LOW,
            last + dt.timedelta(days=3),
        )
        if self.rng.random() < 0.4:
            trial_day = timezone.localdate(last, self.tz) + dt.timedelta(days=1)
            self.past_trial(world, student, actor, course, teacher, trial_day, came=self.rng.random() < 0.5)
        services.lead_close_lost(actor=actor, student=student, reason=self.pick(cat.LOST_REASONS))
        # The service stamps now; the consultant closed it on lost_at.
        Student.objects.filter(pk=student.pk).update(lost_at=lost_at)

    def flow_signed(self, world: CampusWorld, kind: str, index: int) -> None:
        actor = self.consultant(world, index)
        rng = self.rng
        if kind == "active":
            # Spread the active students over the teachers, so every teacher has a class today.
            teacher = world.teachers[world.kinds_done["active"] % len(world.teachers)]
            course, spec = self.course_for(world, teacher)
        else:
            course, spec = self.course_for(world)
            teacher = world.teacher_by_subject[spec.subject]
        per_lesson = spec.hours_per_lesson
        anchor = self.anchor_thresholds(world, kind)
        if anchor is not None:
            signed_at, hours, lessons, renews = self.anchored_contract(kind, anchor, per_lesson)
        else:
            signed_at, hours, lessons = self.random_contract(kind, per_lesson)
            renews = kind in RENEWING
        last_consult = signed_at - dt.timedelta(days=rng.randint(1, 7))
        captured = last_consult - dt.timedelta(days=rng.randint(3, 40))
        # Each campus's second active student (not an anchor) is a child of the demo parent.
        demo_parent = self.demo_family_wanted and kind == "active" and world.kinds_done["active"] == 1
        student = self.capture(world, index, captured, actor, spec, demo_parent=demo_parent)
        self.consult_series(
            world, student, actor, captured + dt.timedelta(hours=1), last_consult, course, Intent.HIGH, signed_at
        )
        if rng.random() < 0.8:
            trial_day = timezone.localdate(last_consult, self.tz)
            self.past_trial(world, student, actor, course, teacher, trial_day, came=True)
        contract = self.sign(student, actor, course, spec, hours, signed_at)
        last_lesson: dt.datetime | None = None
        for lesson_at, status in lessons:
            if contract.hours_remaining < per_lesson:
                if not renews:
                    break
                contract = self.sign(
                    student, actor, course, spec, Decimal(rng.choice((48, 72))), lesson_at - dt.timedelta(days=1)
                )
            attendance = services.attendance_record(
                actor=teacher,
                student=student,
                hours=per_lesson,
                status=status,
                contract=contract,
                lesson_at=lesson_at,
                feedback=self.pick(cat.ATTENDANCE_FEEDBACK) if status == AttendanceStatus.PRESENT else "",
            )
            contract.hours_consumed += attendance.hours
            last_lesson = lesson_at
        if renews and contract.hours_remaining < per_lesson and last_lesson is not None:
            # Renewed right after the last hour was used, so the student stays enrolled.
            renew_at = min(last_lesson + dt.timedelta(days=1), self.now - dt.timedelta(hours=1))
            self.sign(student, actor, course, spec, Decimal(48), renew_at)
        if kind == "refunded":
            self.refund(world, contract, (last_lesson or signed_at) + dt.timedelta(days=rng.randint(5, 20)))
        if kind in ("active", "at_risk"):
            world.active_students.append(student)

    def random_contract(
        self, kind: str, per_lesson: Decimal
    ) -> tuple[dt.datetime, Decimal, list[tuple[dt.datetime, str]]]:
        """When a student of this kind signed, how many hours, and their lessons (with status)."""
        rng = self.rng
        hours = Decimal(rng.choice((48, 72, 96)))
        attend_until: dt.datetime | None
        extra_lesson_at: dt.datetime | None = None
        if kind == "enrolled":
            signed_days_ago, attend_until = rng.randint(1, 12), None
        elif kind == "active":
            signed_days_ago, attend_until = rng.randint(30, 330), self.now - dt.timedelta(days=rng.randint(0, 6))
        elif kind == "at_risk":
            signed_days_ago, attend_until = rng.randint(90, 300), self.now - dt.timedelta(days=29)
            extra_lesson_at = self.days_ago(rng.randint(8, 20), 10)
        elif kind == "silent":
            signed_days_ago, attend_until = rng.randint(120, 330), self.now - dt.timedelta(days=rng.randint(30, 90))
        elif kind == "refunded":
            signed_days_ago = rng.randint(60, 300)
            attend_until = self.days_ago(signed_days_ago - 7 * rng.randint(3, 8))
        else:  # churned: a small package used up 35-150 days ago, never renewed
            hours = Decimal(24)
            lessons = int(hours / per_lesson)
            signed_days_ago = rng.randint(35, 150) + lessons * 8 + 10
            attend_until = self.now - dt.timedelta(days=35)
        signed_at = self.days_ago(signed_days_ago)
        if attend_until is None:
            return signed_at, hours, []
        weekday_slot = self.weekly_slot()
        lesson_at = self.next_weekly(signed_at + dt.timedelta(days=rng.randint(2, 7)), weekday_slot)
        lesson_times = []
        while lesson_at <= attend_until:
            lesson_times.append(lesson_at)
            lesson_at += dt.timedelta(days=7)
        if extra_lesson_at is not None:
            lesson_times.append(extra_lesson_at)
        statuses = rng.choices(
            (AttendanceStatus.PRESENT, AttendanceStatus.LEAVE, AttendanceStatus.ABSENT),
            weights=(90, 7, 3),
            k=len(lesson_times),
        )
        return signed_at, hours, list(zip(lesson_times, statuses, strict=True))

    def anchored_contract(
        self, kind: str, t: anchors.StageThresholds, per_lesson: Decimal
    ) -> tuple[dt.datetime, Decimal, list[tuple[dt.datetime, str]], bool]:
        """The anchor of this kind: its signing, hours, lessons (all attended) and whether it
        renews, placed from the thresholds."""
        if kind == "enrolled":
            return self.days_ago(anchors.enrolled_signed_days_ago(t)), Decimal(self.rng.choice((48, 72))), [], False
        placed = {
            "active": lambda: anchors.active_with_renewal_due(t, per_lesson),
            "at_risk": lambda: anchors.attendance_dropped(t),
            "silent": lambda: anchors.silent_dormant(t, per_lesson),
        }[kind]()
        lessons: list[tuple[dt.datetime, str]] = [
            (at, AttendanceStatus.PRESENT) for at in self.lessons_on(placed.lesson_days_ago)
        ]
        return self.days_ago(placed.signed_days_ago), placed.hours, lessons, placed.renews

    def sign(
        self,
        student: Student,
        actor: User,
        course: Course,
        spec: cat.CourseSpec,
        hours: Decimal,
        signed_at: dt.datetime,
    ) -> Contract:
        discount = {Decimal(96): Decimal("0.85"), Decimal(72): Decimal("0.9"), Decimal(48): Decimal("0.95")}.get(
            hours, Decimal(1)
        )
        amount = (hours * spec.price_per_hour * discount / 10).quantize(Decimal(1), rounding=ROUND_DOWN) * 10
        # One family in seven pays in two instalments.
        paid = amount if self.rng.random() < 6 / 7 else (amount / 2).quantize(Decimal("0.01"))
        return services.contract_sign(
            actor=actor,
            student=student,
            course=course,
            hours_bought=hours,
            amount=amount,
            paid_amount=paid,
            signed_at=signed_at,
            valid_until=timezone.localdate(signed_at, self.tz) + dt.timedelta(days=365),
        )

    def refund(self, world: CampusWorld, contract: Contract, refunded_at: dt.datetime) -> None:
        contract.refresh_from_db()
        share = contract.hours_remaining / contract.hours_bought
        amount = (contract.paid_amount * share).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
        services.contract_refund(
            actor=world.manager, contract=contract, amount=amount, reason=self.pick(cat.REFUND_REASONS)
        )
        # The service stamps now; the manager refunded it on refunded_at.
        refunded_at = min(refunded_at, self.now - dt.timedelta(days=1))
        Contract.objects.filter(pk=contract.pk).update(refunded_at=refunded_at)

    def weekly_slot(self) -> tuple[int, int, int]:
        weekday = self.rng.choice((1, 3, 5, 5, 6, 6))  # mostly weekends, some weekday evenings
        hour, minute = self.pick(WEEKEND_SLOTS if weekday >= 5 else WEEKDAY_SLOTS)
        return weekday, hour, minute

    def next_weekly(self, after: dt.datetime, slot: tuple[int, int, int]) -> dt.datetime:
        weekday, hour, minute = slot
        day = timezone.localdate(after, self.tz)
        day += dt.timedelta(days=(weekday - day.weekday()) % 7)
        return self.at(day, hour, minute)

    # --- today ---------------------------------------------------------------

    def todays_lessons(self, world: CampusWorld) -> None:
        """Each teacher's classes today, with the students whose active contract is for that course.

        There is no service for scheduling lessons yet (managers do it in the admin), so
        they are created with the model directly."""
        for teacher in world.teachers:
            rosters = []
            for course, _spec in world.courses_of(teacher):
                roster = list(
                    Student.objects.filter(
                        campus=world.campus, contracts__course=course, contracts__status=ContractStatus.ACTIVE
                    )
                    .distinct()
                    .order_by("pk")[:8]
                )
                if roster:
                    rosters.append((course, roster))
            rosters.sort(key=lambda item: -len(item[1]))
            for (course, roster), (hour, minute) in zip(rosters, LESSON_HOURS_TODAY, strict=False):
                if Lesson.objects.filter(teacher=teacher, starts_at=self.at(self.today, hour, minute)).exists():
                    continue  # seeded before (--force)
                spec = next(s for c, s in world.courses if c == course)
                lesson = Lesson.objects.create(
                    course=course,
                    teacher=teacher,
                    starts_at=self.at(self.today, hour, minute),
                    duration_minutes=int(spec.hours_per_lesson * 60),
                    hours=spec.hours_per_lesson,
                )
                lesson.students.set(roster)

    def backdate_bookkeeping(self) -> None:
        """created_at of the history rows follows the facts, not the moment of seeding."""
        Consultation.objects.filter(created_at__gte=self.now).update(created_at=F("consulted_at"))
        Contract.objects.filter(created_at__gte=self.now).update(created_at=F("signed_at"))
        Attendance.objects.filter(created_at__gte=self.now).update(created_at=F("lesson_at"))
