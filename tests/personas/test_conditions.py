"""What a condition means (personas.conditions), proven against hand-written queries.

On generated students (every field varied, some without a profile, contracts and trials some
of them cancelled, two campuses), each condition type - every field with every operator - selects
exactly the students a hand-written ORM query selects, and a tree of all/any groups selects what
the set algebra of its conditions says (intersection, union; an empty "all" is everyone, an
empty "any" no one). Negative operators ("is none of", "has not") are checked as the
complement of the positive query within the viewer's students, so students with no profile row
or a NULL column are where a person expects them.

Malformed and hostile trees get a ConditionError naming the node, and never a 500 at any door.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable, Iterator
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
import time_machine
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.models import (
    Channel,
    Contract,
    ContractStatus,
    Gender,
    Grade,
    Stage,
    Student,
    StudentStage,
    StudentTag,
    TrialLesson,
    TrialStatus,
    User,
)
from personas.conditions import (
    FIELDS,
    MAX_CONDITIONS,
    MAX_DEPTH,
    OPS,
    ConditionError,
    Kind,
    compile_tree,
    describe,
    ref_choices,
    ref_names,
)
from personas.models import RfmSegment, Segment, StudentProfile, TimeSlot, ValueTier
from tests import factories

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 6, 15, 10, 30, tzinfo=dt.UTC)
SCHOOLS = ["实验小学", "第一中学", "朝阳实验学校", "", "外国语学校"]
SUBJECTS = ["编程", "美术", "数学思维"]


@pytest.fixture
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def _moment(rng: random.Random, *, days_back: int = 700, days_ahead: int = 0) -> dt.datetime:
    return NOW + dt.timedelta(days=rng.randint(-days_back, days_ahead), minutes=rng.randint(0, 24 * 60 - 1))


@pytest.fixture
def world(frozen: None, campus_a, campus_b, front_desk, manager, front_desk_b, teacher, admin_user) -> SimpleNamespace:
    """Generated students (a seeded draw, so a failure can be replayed) in two campuses."""
    rng = random.Random(20261202)
    tags = [factories.TagFactory(name=name) for name in ("高意向", "升学型", "积极性下降")]
    courses_a = [factories.CourseFactory(campus=campus_a, subject=s, name=f"{s}课") for s in SUBJECTS]
    course_b = factories.CourseFactory(campus=campus_b, subject="编程", name="编程 B")
    slot = iter(range(10_000))
    for index in range(26):
        campus = campus_a if index < 20 else campus_b
        owners = [front_desk, manager, None] if campus == campus_a else [front_desk_b, None]
        student = factories.StudentFactory(
            campus=campus,
            grade=rng.choice([Grade.PRIMARY_3, Grade.PRIMARY_5, Grade.JUNIOR_1, ""]),
            channel=rng.choice(Channel.values),
            gender=rng.choice(Gender.values),
            school=rng.choice(SCHOOLS),
            owner=rng.choice(owners),
            stage=rng.choice(Stage.values),
            stage_changed_at=rng.choice([None, _moment(rng, days_back=200)]),
        )
        Student.objects.filter(pk=student.pk).update(created_at=_moment(rng))
        StudentStage.objects.filter(student=student).update(at_risk=rng.random() < 0.4, renewal_due=rng.random() < 0.3)
        for tag in rng.sample(tags, rng.randint(0, 2)):
            StudentTag.objects.create(student=student, tag=tag)
        courses = courses_a if campus == campus_a else [course_b]
        for _ in range(rng.randint(0, 2)):
            factories.ContractFactory(
                student=student,
                course=rng.choice(courses),
                signed_at=_moment(rng),
                status=rng.choice([ContractStatus.ACTIVE, ContractStatus.CANCELLED, ContractStatus.COMPLETED]),
            )
        for _ in range(rng.randint(0, 2)):
            factories.TrialLessonFactory(
                student=student,
                course=rng.choice(courses),
                teacher=teacher,
                scheduled_at=_moment(rng, days_back=300, days_ahead=30) + dt.timedelta(seconds=next(slot)),
                status=rng.choice(TrialStatus.values),
            )
        if rng.random() < 0.75:
            has_rfm = rng.random() < 0.8
            subjects = sorted(rng.sample(SUBJECTS, rng.randint(0, 2)))
            factories.StudentProfileFactory(
                student=student,
                recency_at=rng.choice([None, _moment(rng)]),
                frequency=rng.randint(0, 4),
                monetary=Decimal(rng.randint(0, 30_000)) / 2,
                r_score=rng.randint(1, 5) if has_rfm else None,
                f_score=rng.randint(1, 5) if has_rfm else None,
                m_score=rng.randint(1, 5) if has_rfm else None,
                rfm_segment=rng.choice(RfmSegment.values) if has_rfm else "",
                value_tier=rng.choice(ValueTier.values) if has_rfm else "",
                attendance_rate=rng.choice([None, Decimal(rng.randint(0, 10_000)) / 10_000]),
                preferred_weekday=rng.choice([None, *range(1, 8)]),
                preferred_slot=rng.choice(["", *TimeSlot.values]),
                avg_rating=rng.choice([None, Decimal(rng.randint(100, 500)) / 100]),
                remaining_hours=Decimal(rng.randint(0, 80)) / 2,
                last_touch_at=rng.choice([None, _moment(rng)]),
                first_signed_at=rng.choice([None, _moment(rng)]),
                subjects=subjects,
                subject_list="\n".join(subjects),
            )
    return SimpleNamespace(
        tags=tags, courses_a=courses_a, course_b=course_b, manager=manager, admin=admin_user, campus_b=campus_b
    )


# --- the hand-written queries ---------------------------------------------------------------------


def ids(rows: QuerySet[Any], column: str = "pk") -> set[int]:
    return set(rows.values_list(column, flat=True))


def local_midnight(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(0)))


def date_filter(column: str, op: str, value: Any) -> dict[str, Any]:
    """The range of a date condition, written out: whole local days; day counts back from now."""
    now = timezone.now()
    if op == "before":
        return {f"{column}__lt": local_midnight(dt.date.fromisoformat(value))}
    if op == "after":
        return {f"{column}__gte": local_midnight(dt.date.fromisoformat(value))}
    if op == "between":
        first, last = sorted(dt.date.fromisoformat(v) for v in value)
        return {f"{column}__gte": local_midnight(first), f"{column}__lt": local_midnight(last + dt.timedelta(days=1))}
    if op == "within_days":
        return {f"{column}__gte": now - dt.timedelta(days=int(value)), f"{column}__lte": now}
    return {f"{column}__lt": now - dt.timedelta(days=int(value))}


def number_filter(column: str, op: str, value: Any, scale: Decimal = Decimal(1)) -> dict[str, Any]:
    if op == "between":
        low, high = sorted(Decimal(str(v)) / scale for v in value)
        return {f"{column}__gte": low, f"{column}__lte": high}
    lookup = {"eq": "exact", "gte": "gte", "lte": "lte"}[op]
    return {f"{column}__{lookup}": Decimal(str(value)) / scale}


def not_cancelled_contracts() -> QuerySet[Contract]:
    return Contract.objects.exclude(status=ContractStatus.CANCELLED)


def not_cancelled_trials() -> QuerySet[TrialLesson]:
    return TrialLesson.objects.exclude(status=TrialStatus.CANCELLED)


PROFILE_COLUMNS = {
    "rfm_segment": "rfm_segment",
    "value_tier": "value_tier",
    "preferred_slot": "preferred_slot",
    "r_score": "r_score",
    "f_score": "f_score",
    "m_score": "m_score",
    "frequency": "frequency",
    "lifetime_value": "monetary",
    "attendance_rate": "attendance_rate",
    "remaining_hours": "remaining_hours",
    "avg_rating": "avg_rating",
    "last_touch": "last_touch_at",
    "last_attended_or_signed": "recency_at",
    "first_signed": "first_signed_at",
}


def positive(field: str, op: str, value: Any) -> set[int]:
    """The students (of any campus) a condition's positive form selects, queried by hand."""
    if field in ("grade", "channel", "gender"):
        return ids(Student.objects.filter(**{f"{field}__in": value}))
    if field == "school":
        return ids(Student.objects.filter(school__icontains=value.strip()))
    if field == "created_at":
        return ids(Student.objects.filter(**date_filter("created_at", op, value)))
    if field == "owner":
        return ids(Student.objects.filter(owner_id=int(value)))
    if field == "campus":
        return ids(Student.objects.filter(campus_id=int(value)))
    if field == "stage":
        return ids(StudentStage.objects.filter(stage__in=value), "student_id")
    if field == "stage_since":
        return ids(StudentStage.objects.filter(**date_filter("changed_at", op, value)), "student_id")
    if field in ("at_risk", "renewal_due"):
        return ids(StudentStage.objects.filter(**{field: value}), "student_id")
    if field == "tag":
        return ids(StudentTag.objects.filter(tag_id=int(value)), "student_id")
    if field == "preferred_weekday":
        return ids(StudentProfile.objects.filter(preferred_weekday__in=[int(v) for v in value]), "student_id")
    if field in PROFILE_COLUMNS:
        column = PROFILE_COLUMNS[field]
        spec = FIELDS[field]
        if spec.kind == Kind.CHOICE:
            rows = StudentProfile.objects.filter(**{f"{column}__in": value})
        elif spec.kind == Kind.NUMBER:
            rows = StudentProfile.objects.filter(
                **number_filter(column, op, value, Decimal(100) if spec.percent else Decimal(1))
            )
        else:
            rows = StudentProfile.objects.filter(**date_filter(column, op, value))
        return ids(rows, "student_id")
    if field == "course":
        return ids(not_cancelled_contracts().filter(course_id=int(value)), "student_id")
    if field == "subject":
        # The profile keeps the subjects of the contracts and trials not cancelled, one a line.
        return ids(StudentProfile.objects.filter(subject_list__icontains=value.strip()), "student_id")
    if field == "trial_date":
        return ids(not_cancelled_trials().filter(**date_filter("scheduled_at", op, value)), "student_id")
    if field == "contract_date":
        return ids(not_cancelled_contracts().filter(**date_filter("signed_at", op, value)), "student_id")
    raise AssertionError(f"no hand-written query for {field}")


NEGATIVE = {"not_in", "has_not"}


def expected(viewer: User, tree: Any) -> set[int]:
    everyone = ids(Student.objects.all() if viewer.campus_id is None else Student.objects.filter(campus=viewer.campus))
    return _expected(tree, everyone)


def _expected(node: dict[str, Any], everyone: set[int]) -> set[int]:
    if "field" in node:
        op = node["op"]
        pos_op = {"not_in": "in", "has_not": "has"}.get(op, op)
        hit = positive(node["field"], pos_op, node["value"]) & everyone
        return everyone - hit if op in NEGATIVE else hit
    if "all" in node:
        result = set(everyone)
        for child in node["all"]:
            result &= _expected(child, everyone)
        return result
    result = set()
    for child in node["any"]:
        result |= _expected(child, everyone)
    return result


def selected(viewer: User, tree: Any) -> set[int]:
    from crm.selectors import students_visible_to

    return ids(students_visible_to(viewer).filter(compile_tree(tree, viewer=viewer)))


# --- generated conditions ---------------------------------------------------------------------------


DATES = st.dates(dt.date(2024, 1, 1), dt.date(2027, 1, 1)).map(dt.date.isoformat)


def number_values(field: str) -> st.SearchStrategy[Any]:
    spec = FIELDS[field]
    low = int(spec.minimum) if spec.minimum is not None else 0
    high = int(spec.maximum) if spec.maximum is not None else 20_000
    whole = st.integers(low, high)
    halves = st.integers(low * 2, high * 2).map(lambda n: n / 2)
    return st.one_of(whole, halves, whole.map(str))


def value_strategy(field: str, op: str, refs: dict[str, list[str]]) -> st.SearchStrategy[Any]:
    spec = FIELDS[field]
    if spec.kind == Kind.CHOICE:
        return st.lists(st.sampled_from([str(k) for k, _ in spec.choices]), min_size=1, max_size=3, unique=True)
    if spec.kind == Kind.NUMBER:
        one = number_values(field)
        return st.lists(one, min_size=2, max_size=2) if op == "between" else one
    if spec.kind == Kind.DATE:
        if op in ("within_days", "over_days_ago"):
            return st.integers(0, 800)
        return st.lists(DATES, min_size=2, max_size=2) if op == "between" else DATES
    if spec.kind == Kind.BOOL:
        return st.booleans()
    if spec.kind == Kind.REF:
        return st.sampled_from(refs[field])
    return st.sampled_from(["实验", "中学", "编程", "美", "数学", "  小学 ", "x"])


def leaf_strategy(fields: list[str], refs: dict[str, list[str]]) -> st.SearchStrategy[dict[str, Any]]:
    def for_field(field: str) -> st.SearchStrategy[dict[str, Any]]:
        return st.sampled_from(OPS[FIELDS[field].kind]).flatmap(
            lambda op: value_strategy(field, op, refs).map(lambda value: {"field": field, "op": op, "value": value})
        )

    return st.sampled_from(fields).flatmap(for_field)


def refs_for(viewer: User) -> dict[str, list[str]]:
    return {
        spec.name: [key for key, _label in ref_choices(spec, viewer)] or ["0"]
        for spec in FIELDS.values()
        if spec.kind == Kind.REF
    }


EVERY_CONDITION = [(name, op) for name, spec in FIELDS.items() for op in OPS[spec.kind]]
GENERATED = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def test_every_field_has_a_hand_written_query() -> None:
    covered = {"grade", "channel", "gender", "school", "created_at", "owner", "campus", "stage", "stage_since"}
    covered |= {"at_risk", "renewal_due", "tag", "preferred_weekday", "course", "subject", "trial_date"}
    covered |= {"contract_date", *PROFILE_COLUMNS}
    assert set(FIELDS) == covered


@pytest.mark.parametrize(("field", "op"), EVERY_CONDITION, ids=[f"{f}-{o}" for f, o in EVERY_CONDITION])
@GENERATED
@given(data=st.data())
def test_each_condition_selects_what_the_hand_written_query_selects(world, field, op, data) -> None:
    viewer = world.admin if field == "campus" else world.manager
    value = data.draw(value_strategy(field, op, refs_for(viewer)))
    tree = {"all": [{"field": field, "op": op, "value": value}]}
    assert selected(viewer, tree) == expected(viewer, tree)


def trees(leaves: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    def groups(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
        return st.builds(
            lambda mode, nodes: {mode: nodes}, st.sampled_from(["all", "any"]), st.lists(children, max_size=3)
        )

    # Root group plus MAX_DEPTH - 1 levels below it: the deepest tree a person can build.
    level: st.SearchStrategy[Any] = leaves
    for _ in range(MAX_DEPTH - 2):
        level = st.one_of(leaves, groups(level))
    return groups(level)


@pytest.mark.parametrize("viewer_name", ["manager", "admin"])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_nested_groups_select_what_the_set_algebra_says(world, viewer_name, data) -> None:
    viewer = getattr(world, viewer_name)
    fields = [name for name, spec in FIELDS.items() if spec.allowed(viewer)]
    tree = data.draw(trees(leaf_strategy(fields, refs_for(viewer))))
    assert selected(viewer, tree) == expected(viewer, tree)


def test_empty_groups(world) -> None:
    manager = world.manager
    everyone = ids(Student.objects.filter(campus=manager.campus))
    assert selected(manager, {"all": []}) == everyone
    assert selected(manager, {"any": []}) == set()
    assert selected(manager, {"all": [{"any": []}]}) == set()
    assert selected(manager, {"any": [{"all": []}]}) == everyone


# --- malformed and hostile trees --------------------------------------------------------------------


def leaf(field: Any, op: Any, value: Any) -> dict[str, Any]:
    return {"all": [{"field": field, "op": op, "value": value}]}


def nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"field": "at_risk", "op": "is", "value": True}
    for _ in range(depth):
        node = {"all": [node]}
    return node


def hostile_cases(world: SimpleNamespace) -> list[tuple[str, Any, str, str]]:
    """(name, tree, words in the message, path of the node)."""
    other_owner = User.objects.filter(campus=world.campus_b).first()
    assert other_owner is not None
    return [
        ("unknown field", leaf("password", "in", ["x"]), "Unknown field", "0"),
        ("field not a string", leaf(["grade"], "in", ["x"]), "Unknown field", "0"),
        ("wrong op", leaf("grade", "gte", 3), "cannot be compared", "0"),
        ("op not a string", leaf("grade", {"$ne": 1}, ["五年级"]), "cannot be compared", "0"),
        ("string where a list is expected", leaf("grade", "in", "五年级"), "at least one value", "0"),
        ("no such choice", leaf("stage", "in", ["dormant", "zombie"]), "no such value", "0"),
        ("empty choice", leaf("stage", "in", []), "at least one value", "0"),
        ("too many choices", leaf("stage", "in", ["lead"] * 101), "at least one value", "0"),
        ("text for a number", leaf("lifetime_value", "gte", "lots"), "needs a number", "0"),
        ("bool for a number", leaf("lifetime_value", "gte", True), "needs a number", "0"),
        ("list for a number", leaf("lifetime_value", "gte", [1]), "needs a number", "0"),
        ("huge number", leaf("lifetime_value", "gte", 10**20), "needs a number", "0"),
        ("huge number text", leaf("lifetime_value", "gte", "1e400"), "needs a number", "0"),
        ("NaN", leaf("lifetime_value", "gte", float("nan")), "needs a number", "0"),
        ("NaN text", leaf("lifetime_value", "gte", "NaN"), "needs a number", "0"),
        ("infinity", leaf("lifetime_value", "lte", float("inf")), "needs a number", "0"),
        ("out of range", leaf("r_score", "eq", 9), "must be between", "0"),
        ("between one value", leaf("frequency", "between", [1]), "two values", "0"),
        ("between a string", leaf("frequency", "between", "1,3"), "two values", "0"),
        ("bad date", leaf("created_at", "before", "2026-13-45"), "needs a date", "0"),
        ("ancient date", leaf("created_at", "after", "0001-01-01"), "needs a date", "0"),
        ("date as a number", leaf("created_at", "after", 20260101), "needs a date", "0"),
        ("negative days", leaf("last_touch", "within_days", -5), "whole number of days", "0"),
        ("fractional days", leaf("last_touch", "within_days", 2.5), "whole number of days", "0"),
        ("text for yes or no", leaf("at_risk", "is", "true"), "yes or no", "0"),
        ("no such tag", leaf("tag", "has", 999_999), "no such value", "0"),
        ("a huge id", leaf("tag", "has", 2**70), "no such value", "0"),
        ("an id that is not one", leaf("tag", "has", "1 OR 1=1"), "Choose a value", "0"),
        ("a digit int() refuses", leaf("tag", "has", "²"), "Choose a value", "0"),
        ("a NUL in a text", leaf("school", "contains", "实验\u0000小学"), "characters", "0"),
        ("a line break in a text", leaf("school", "contains", "实验\n小学"), "characters", "0"),
        ("a course of another campus", leaf("course", "has", world.course_b.pk), "no such value", "0"),
        ("an owner of another campus", leaf("owner", "has", other_owner.pk), "no such value", "0"),
        ("campus for a manager", leaf("campus", "has", world.campus_b.pk), "may not filter", "0"),
        ("empty text", leaf("school", "contains", "   "), "characters", "0"),
        ("long text", leaf("school", "contains", "学" * 51), "characters", "0"),
        ("text not a string", leaf("school", "contains", ["a"]), "characters", "0"),
        ("extra key in a condition", {"all": [{"field": "at_risk", "op": "is", "value": True, "sql": "x"}]},
         "a field", "0"),
        ("a list", [{"field": "at_risk", "op": "is", "value": True}], "group or a field", ""),
        ("a string", "stage = dormant", "group or a field", ""),
        ("a number", 42, "group or a field", ""),
        ("nothing", None, "group or a field", ""),
        ("a group of a string", {"all": "x"}, "“all” or “any”", ""),
        ("a group with two keys", {"all": [], "any": []}, "“all” or “any”", ""),
        ("an unknown group", {"none": []}, "“all” or “any”", ""),
        ("a node not a dict", {"all": [{"any": [3]}]}, "group or a field", "0.0"),
        ("too deep", nested(MAX_DEPTH), "nested at most", "0.0.0.0"),
        ("far too deep", nested(200), "nested at most", "0.0.0.0"),
        ("too many conditions", {"all": [{"field": "at_risk", "op": "is", "value": True}] * (MAX_CONDITIONS + 1)},
         "At most", ""),
        ("too many conditions spread",
         {"any": [{"all": [{"field": "at_risk", "op": "is", "value": True}] * 10} for _ in range(4)]},
         "At most", "3.0"),
        ("the error names the nested node", {"all": [{"field": "at_risk", "op": "is", "value": True},
                                                    {"any": [{"field": "grade", "op": "in", "value": "x"}]}]},
         "at least one value", "1.0"),
    ]  # fmt: skip


def test_a_number_too_fine_for_the_database_is_rounded(world) -> None:
    """1e-2000 is a number, and a saved rule holding it must run every night: it is compared as 0."""
    q = compile_tree(leaf("lifetime_value", "gte", "1e-2000"), viewer=world.manager)
    assert Student.objects.filter(q).count() >= 0  # the database accepts what was compiled


def test_malformed_and_hostile_trees_get_a_clear_message(world) -> None:
    for name, tree, words, path in hostile_cases(world):
        with pytest.raises(ConditionError) as caught:
            compile_tree(tree, viewer=world.manager)
        assert words in caught.value.message, name
        assert caught.value.path == path, name


def test_a_deep_tree_is_refused_before_it_is_walked(world) -> None:
    # 100,000 levels would exhaust Python's stack if the tree were walked first.
    with pytest.raises(ConditionError):
        compile_tree(nested(100_000), viewer=world.manager)


def test_the_admin_may_name_any_campus(world) -> None:
    assert selected(world.admin, leaf("campus", "has", world.campus_b.pk)) == ids(
        Student.objects.filter(campus=world.campus_b)
    )


DOOR_NAMES = ["page", "page count", "api create", "api count", "admin"]


@pytest.mark.parametrize("door", DOOR_NAMES)
def test_no_hostile_tree_is_a_500_at_any_door(world, client, door) -> None:
    client.force_login(world.manager)
    doors: dict[str, Callable[[Any], Any]] = {
        "page": lambda tree: client.post(reverse("segment_new"), {"name": "x", "conditions": json.dumps(tree)}),
        "page count": lambda tree: client.post(
            reverse("segment_count"), json.dumps({"conditions": tree}), content_type="application/json"
        ),
        "api create": lambda tree: client.post(
            reverse("api_segment_list"), json.dumps({"name": "x", "conditions": tree}), content_type="application/json"
        ),
        "api count": lambda tree: client.post(
            reverse("api_segment_count"), json.dumps({"conditions": tree}), content_type="application/json"
        ),
        "admin": lambda tree: client.post(
            reverse("admin:personas_segment_add"), {"name": "x", "conditions": json.dumps(tree)}
        ),
    }
    for name, tree, _words, path in hostile_cases(world):
        response = doors[door](tree)
        assert response.status_code in (200, 400, 422), (door, name, response.status_code)
        body = response.content.decode()
        if door in ("page count", "api count", "api create"):
            problem = response.json()
            if door != "page count" and problem["code"] == "parse_error":
                continue  # NaN and Infinity are not JSON: the API's parser refuses them first
            assert problem["code"] == "invalid", (door, name)
            assert problem["fields"]["conditions"][0]["message"], (door, name)
            if door != "api create":
                assert problem["fields"]["conditions"][0]["path"] == path, (door, name)
        else:
            assert 'class="errorlist' in body, (door, name)
    assert not Segment.objects.exists()


def test_describe_puts_names_for_ids(world) -> None:
    tag = world.tags[0]
    tree = {
        "all": [
            {"field": "stage", "op": "in", "value": ["dormant", "churned"]},
            {"any": [{"field": "tag", "op": "has", "value": tag.pk}, {"field": "at_risk", "op": "is", "value": True}]},
            {"field": "lifetime_value", "op": "between", "value": [100, 500]},
        ]
    }
    words = describe(tree, names=ref_names([tree]))
    assert words == (
        "Stage is one of Dormant、Churned and (Tag has 意向:高意向 or At risk is yes)"
        " and Lifetime value between 100 ~ 500"
    )
    assert describe("nonsense") == "" and describe({"all": "x"}) == ""


def test_json_nested_beyond_the_parsers_stack_is_refused_at_every_door(world, client) -> None:
    client.force_login(world.manager)
    deep = '{"all": [' * 100_000
    answers = [
        client.post(reverse("segment_new"), {"name": "x", "conditions": deep}),
        client.post(reverse("admin:personas_segment_add"), {"name": "x", "conditions": deep}),
        client.post(reverse("segment_count"), '{"conditions": ' + deep, content_type="application/json"),
        client.post(reverse("api_segment_count"), '{"conditions": ' + deep, content_type="application/json"),
        client.post(
            reverse("api_segment_list"), '{"name": "x", "conditions": ' + deep, content_type="application/json"
        ),
    ]
    assert [answer.status_code for answer in answers] == [422, 200, 400, 400, 400]
    assert all(answer.json()["code"] in ("invalid", "parse_error") for answer in answers[2:])
    assert not Segment.objects.exists()


def test_a_negated_profile_condition_keeps_students_without_a_profile_in_any_company(world) -> None:
    """Found by the property test: beside a positive condition on the profile in an "any" group,
    "RFM segment is none of ..." dropped the students who have no profile yet."""
    champions = {"field": "rfm_segment", "op": "in", "value": ["champions"]}
    tree = {
        "any": [
            {"field": "grade", "op": "in", "value": ["幼儿园小班"]},
            {"all": [{"all": [{"field": "grade", "op": "in", "value": ["幼儿园小班"]}, champions]}]},
            {"field": "rfm_segment", "op": "not_in", "value": ["champions"]},
        ]
    }
    without_profile = ids(Student.objects.filter(campus=world.manager.campus, profile__isnull=True))
    assert without_profile and without_profile <= selected(world.manager, tree)
    assert selected(world.manager, tree) == expected(world.manager, tree)
