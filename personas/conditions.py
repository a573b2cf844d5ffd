"""What a condition on students means: the one definition that segments, auto-tag rules, the
board's and the admin's filters and the API share.

A condition tree is JSON, as a person builds it in the segment builder or a tag rule's page:

    {"all": [node, ...]}                       every node holds
    {"any": [node, ...]}                       at least one node holds
    {"field": "stage", "op": "in", "value": ["dormant", "churned"]}

`compile_tree(tree, viewer=...)` checks the whole tree (known fields, each field's operators
and value types, depth and size, fields the viewer may filter on) and turns it into one `Q`
over `crm.Student`; it raises `ConditionError` with a message a person can act on, and the
path of the offending node, for anything else. It never touches the database beyond checking
that a tag, course or owner named in a value exists for the viewer.

`FIELDS` is the catalogue: each field's kind decides its operators and value type, and its
`q` the rows it selects. Fields of the profile read `personas.StudentProfile` (a student
without a profile row matches no positive condition on it).
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import reduce
from typing import Any

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.models import (
    Campus,
    Channel,
    Contract,
    ContractStatus,
    Course,
    Gender,
    Grade,
    Role,
    Stage,
    Student,
    StudentTag,
    Tag,
    TrialLesson,
    TrialStatus,
    User,
)
from crm.roles import OWNER_ROLES, sees_all_campuses
from crm.selectors import campuses_visible_to, in_viewers_campuses
from personas.models import RfmSegment, TimeSlot, ValueTier

# A tree deeper or bigger than a person would build is refused (and cannot exhaust the server).
MAX_DEPTH = 4
MAX_CONDITIONS = 30
MAX_CHOICES = 100
MAX_TEXT = 50


class Kind:
    CHOICE = "choice"  # in / not_in a list of keys
    NUMBER = "number"  # eq / gte / lte / between
    DATE = "date"  # before / after / between (ISO dates) / within_days / over_days_ago
    BOOL = "bool"  # is true / false
    REF = "ref"  # has / has_not one row (a tag, a course), by id
    TEXT = "text"  # contains


OPS: dict[str, tuple[str, ...]] = {
    Kind.CHOICE: ("in", "not_in"),
    Kind.NUMBER: ("eq", "gte", "lte", "between"),
    Kind.DATE: ("before", "after", "between", "within_days", "over_days_ago"),
    Kind.BOOL: ("is",),
    Kind.REF: ("has", "has_not"),
    Kind.TEXT: ("contains",),
}

OP_LABELS = {
    "in": _("is one of"),
    "not_in": _("is none of"),
    "eq": _("equals"),
    "gte": _("at least"),
    "lte": _("at most"),
    "between": _("between"),
    "before": _("before"),
    "after": _("on or after"),
    "within_days": _("within the last (days)"),
    "over_days_ago": _("more than (days) ago"),
    "is": _("is"),
    "has": _("has"),
    "has_not": _("has not"),
    "contains": _("contains"),
}


class ConditionError(ValueError):
    """A tree that cannot be used: `message` says why, `path` where ("1.0" = second node's first)."""

    def __init__(self, message: Any, path: str = "") -> None:
        super().__init__(str(message))
        self.message = str(message)
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: Any  # lazy text
    kind: str
    # The student column (or lookup) the value is compared with, for plain comparisons.
    lookup: str = ""
    choices: Sequence[tuple[str, Any]] = ()
    # Builds the Q for (op, checked value) where a plain lookup does not say it (REF, dates of rows).
    build: Callable[[str, Any, User], Q] | None = None
    # Who may filter on this field (default: anyone who may build segments).
    allowed: Callable[[User], bool] = field(default=lambda viewer: True)
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    # A number shown to people in percent and stored as a fraction (attendance rate).
    percent: bool = False
    group: Any = ""


def _has_tag(op: str, tag: Tag, viewer: User) -> Q:
    return Q(Exists(StudentTag.objects.filter(student_id=OuterRef("pk"), tag=tag)))


def _has_course(op: str, course: Course, viewer: User) -> Q:
    signed = Contract.objects.filter(student_id=OuterRef("pk"), course=course).exclude(status=ContractStatus.CANCELLED)
    return Q(Exists(signed))


def _dated_rows(rows: Callable[[], Any], column: str) -> Callable[[str, Any, User], Q]:
    """A date condition met by any of the student's rows (a trial, a contract) in the range."""

    def build(op: str, value: Any, viewer: User) -> Q:
        return Q(Exists(rows().filter(student_id=OuterRef("pk")).filter(_date_q(column, op, value))))

    return build


WEEKDAYS = [
    ("1", _("Monday")),
    ("2", _("Tuesday")),
    ("3", _("Wednesday")),
    ("4", _("Thursday")),
    ("5", _("Friday")),
    ("6", _("Saturday")),
    ("7", _("Sunday")),
]

_STUDENT = _("Student")
_LIFECYCLE = _("Stage and flags")
_PROFILE = _("Profile")
_FACTS = _("Courses and dates")

FIELDS: dict[str, FieldSpec] = {
    spec.name: spec
    for spec in (
        # The student.
        FieldSpec("grade", _("Grade"), Kind.CHOICE, "grade", Grade.choices, group=_STUDENT),
        FieldSpec("channel", _("Source channel"), Kind.CHOICE, "channel", Channel.choices, group=_STUDENT),
        FieldSpec("gender", _("Gender"), Kind.CHOICE, "gender", Gender.choices, group=_STUDENT),
        FieldSpec("school", _("School"), Kind.TEXT, "school", group=_STUDENT),
        FieldSpec("created_at", _("Created"), Kind.DATE, "created_at", group=_STUDENT),
        FieldSpec("owner", _("Owner"), Kind.REF, group=_STUDENT),
        FieldSpec("campus", _("Campus"), Kind.REF, allowed=sees_all_campuses, group=_STUDENT),
        # Stage and flags (the lifecycle engine's decision).
        FieldSpec("stage", _("Stage"), Kind.CHOICE, "pipeline__stage", Stage.choices, group=_LIFECYCLE),
        FieldSpec("stage_since", _("In this stage since"), Kind.DATE, "pipeline__changed_at", group=_LIFECYCLE),
        FieldSpec("at_risk", _("At risk"), Kind.BOOL, "pipeline__at_risk", group=_LIFECYCLE),
        FieldSpec("renewal_due", _("Renewal due"), Kind.BOOL, "pipeline__renewal_due", group=_LIFECYCLE),
        FieldSpec("tag", _("Tag"), Kind.REF, build=_has_tag, group=_LIFECYCLE),
        # The profile.
        FieldSpec("rfm_segment", _("RFM segment"), Kind.CHOICE, "profile__rfm_segment", RfmSegment.choices,
                  group=_PROFILE),
        FieldSpec("value_tier", _("Value tier"), Kind.CHOICE, "profile__value_tier", ValueTier.choices, group=_PROFILE),
        *(
            FieldSpec(f"{letter}_score", label, Kind.NUMBER, f"profile__{letter}_score", minimum=Decimal(1),
                      maximum=Decimal(5), group=_PROFILE)
            for letter, label in (("r", _("R score")), ("f", _("F score")), ("m", _("M score")))
        ),
        FieldSpec("frequency", _("Contracts"), Kind.NUMBER, "profile__frequency", minimum=Decimal(0), group=_PROFILE),
        FieldSpec("lifetime_value", _("Lifetime value"), Kind.NUMBER, "profile__monetary", group=_PROFILE),
        FieldSpec("attendance_rate", _("Attendance rate (%)"), Kind.NUMBER, "profile__attendance_rate",
                  minimum=Decimal(0), maximum=Decimal(100), percent=True, group=_PROFILE),
        FieldSpec("remaining_hours", _("Hours left"), Kind.NUMBER, "profile__remaining_hours", group=_PROFILE),
        FieldSpec("avg_rating", _("Average teacher rating"), Kind.NUMBER, "profile__avg_rating",
                  minimum=Decimal(0), maximum=Decimal(5), group=_PROFILE),
        FieldSpec("preferred_weekday", _("Preferred weekday"), Kind.CHOICE, "profile__preferred_weekday", WEEKDAYS,
                  group=_PROFILE),
        FieldSpec("preferred_slot", _("Preferred time slot"), Kind.CHOICE, "profile__preferred_slot",
                  TimeSlot.choices, group=_PROFILE),
        FieldSpec("last_touch", _("Last touch"), Kind.DATE, "profile__last_touch_at", group=_PROFILE),
        FieldSpec("last_attended_or_signed", _("Last attended or signed"), Kind.DATE, "profile__recency_at",
                  group=_PROFILE),
        FieldSpec("first_signed", _("First signed"), Kind.DATE, "profile__first_signed_at", group=_PROFILE),
        # Courses and dated facts.
        FieldSpec("course", _("Course signed"), Kind.REF, build=_has_course, group=_FACTS),
        # The profile's subjects: of contracts and trials not cancelled (docs/personas.md).
        FieldSpec("subject", _("Subject (signed or tried)"), Kind.TEXT, "profile__subject_list", group=_FACTS),
        FieldSpec("trial_date", _("Trial lesson on"), Kind.DATE,
                  build=_dated_rows(lambda: TrialLesson.objects.exclude(status=TrialStatus.CANCELLED), "scheduled_at"),
                  group=_FACTS),
        FieldSpec("contract_date", _("Contract signed on"), Kind.DATE,
                  build=_dated_rows(lambda: Contract.objects.exclude(status=ContractStatus.CANCELLED), "signed_at"),
                  group=_FACTS),
    )
}  # fmt: skip


def fields_for(viewer: User) -> list[FieldSpec]:
    return [spec for spec in FIELDS.values() if spec.allowed(viewer)]


# --- checking values -------------------------------------------------------------------------


def _number(value: Any, spec: FieldSpec, path: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ConditionError(_("“%(field)s” needs a number.") % {"field": spec.label}, path)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ConditionError(_("“%(field)s” needs a number.") % {"field": spec.label}, path) from None
    if not number.is_finite() or abs(number) >= Decimal("1e12"):
        raise ConditionError(_("“%(field)s” needs a number.") % {"field": spec.label}, path)
    if (spec.minimum is not None and number < spec.minimum) or (spec.maximum is not None and number > spec.maximum):
        raise ConditionError(
            _("“%(field)s” must be between %(low)s and %(high)s.")
            % {"field": spec.label, "low": spec.minimum, "high": spec.maximum},
            path,
        )
    # Four places are more than any figure holds; a value like 1e-2000 would be refused by the
    # database at every run of a saved rule.
    return (number / 100 if spec.percent else number).quantize(Decimal("0.000001"))


def _date(value: Any, spec: FieldSpec, path: str) -> dt.date:
    if isinstance(value, str):
        try:
            day = dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            if dt.date(1900, 1, 1) <= day <= dt.date(2200, 1, 1):
                return day
    raise ConditionError(_("“%(field)s” needs a date such as 2026-09-01.") % {"field": spec.label}, path)


def _days(value: Any, spec: FieldSpec, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConditionError(_("“%(field)s” needs a whole number of days.") % {"field": spec.label}, path)
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConditionError(_("“%(field)s” needs a whole number of days.") % {"field": spec.label}, path) from None
    if not 0 <= number <= 36500:
        raise ConditionError(_("“%(field)s” needs a whole number of days.") % {"field": spec.label}, path)
    return number


def _pair(value: Any, spec: FieldSpec, path: str) -> list[Any]:
    if not isinstance(value, list) or len(value) != 2:
        raise ConditionError(_("“%(field)s” needs two values: from and to.") % {"field": spec.label}, path)
    return value


def _ref_rows(spec: FieldSpec, viewer: User) -> Any:
    """The rows a REF condition may name for this viewer: tags are shared by every campus;
    courses, owners and campuses are the viewer's own."""
    if spec.name == "tag":
        return Tag.objects.select_related("group")
    if spec.name == "course":
        return in_viewers_campuses(Course.objects.all(), viewer)
    if spec.name == "owner":
        return in_viewers_campuses(User.objects.all(), viewer)
    return campuses_visible_to(viewer)


def ref_choices(spec: FieldSpec, viewer: User, *, limit: int = 500) -> list[tuple[str, str]]:
    """What the builder offers for a REF field: exactly the rows `compile_tree` accepts from this
    viewer (a picker never offers a value the server would refuse)."""
    rows = _ref_rows(spec, viewer)
    if spec.name == "owner":
        # Staff who follow up students; a former owner stays valid in a saved tree by id.
        rows = rows.filter(is_active=True, groups__name__in=OWNER_ROLES).distinct().order_by("display_name", "pk")
    elif spec.name in ("course", "campus"):
        rows = rows.order_by("name", "pk")
    return [(str(row.pk), str(row)) for row in rows[:limit]]


def _ref(spec: FieldSpec, value: Any, viewer: User, path: str) -> Any:
    """The row a REF condition names, among those the viewer may name."""
    # isdecimal, not isdigit: "²" is a digit that int() refuses.
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdecimal():
        raise ConditionError(_("Choose a value for “%(field)s”.") % {"field": spec.label}, path)
    pk = int(str(value).strip())
    row = _ref_rows(spec, viewer).filter(pk=pk).first() if pk < 2**63 else None
    if row is None:
        raise ConditionError(_("“%(field)s”: no such value.") % {"field": spec.label}, path)
    return row


def _checked_value(spec: FieldSpec, op: str, value: Any, viewer: User, path: str) -> Any:
    if spec.kind == Kind.CHOICE:
        keys = {str(key) for key, _label in spec.choices}
        if not isinstance(value, list) or not value or len(value) > MAX_CHOICES:
            raise ConditionError(_("Choose at least one value for “%(field)s”.") % {"field": spec.label}, path)
        if any(not isinstance(v, str | int) or isinstance(v, bool) or str(v) not in keys for v in value):
            raise ConditionError(_("“%(field)s”: no such value.") % {"field": spec.label}, path)
        return sorted({str(v) for v in value})
    if spec.kind == Kind.NUMBER:
        if op == "between":
            low, high = (_number(v, spec, path) for v in _pair(value, spec, path))
            return (min(low, high), max(low, high))
        return _number(value, spec, path)
    if spec.kind == Kind.DATE:
        if op in ("within_days", "over_days_ago"):
            return _days(value, spec, path)
        if op == "between":
            first, last = (_date(v, spec, path) for v in _pair(value, spec, path))
            return (min(first, last), max(first, last))
        return _date(value, spec, path)
    if spec.kind == Kind.BOOL:
        if not isinstance(value, bool):
            raise ConditionError(_("“%(field)s” needs yes or no.") % {"field": spec.label}, path)
        return value
    if spec.kind == Kind.REF:
        return _ref(spec, value, viewer, path)
    text = value.strip() if isinstance(value, str) else ""
    # Control characters (a NUL the database cannot store in a saved tree among them) are refused.
    if not text or len(text) > MAX_TEXT or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConditionError(
            _("“%(field)s” needs a text of 1 to %(max)d characters.") % {"field": spec.label, "max": MAX_TEXT}, path
        )
    return text


# --- turning a checked condition into rows -------------------------------------------------------


def _local_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(0)))


def _date_q(column: str, op: str, value: Any) -> Q:
    """Dates are whole campus-local days; day counts are measured back from now."""
    now = timezone.now()
    if op == "before":
        return Q(**{f"{column}__lt": _local_start(value)})
    if op == "after":
        return Q(**{f"{column}__gte": _local_start(value)})
    if op == "between":
        return Q(
            **{f"{column}__gte": _local_start(value[0]), f"{column}__lt": _local_start(value[1]) + dt.timedelta(days=1)}
        )
    if op == "within_days":
        return Q(**{f"{column}__gte": now - dt.timedelta(days=value), f"{column}__lte": now})
    return Q(**{f"{column}__lt": now - dt.timedelta(days=value)})


def _related_row(lookup: str, values: list[Any]) -> Q:
    """The student has a related row (their profile, their stage row) whose column is one of
    `values`, said with EXISTS. A negated condition must not be a negated join: combined with a
    positive condition on the same relation in an "any" group, Django's join handling dropped the
    students who have no such row (no profile yet) from "RFM segment is none of ..."."""
    relation, _, column = lookup.partition("__")
    link = Student._meta.get_field(relation)
    rows = link.related_model._default_manager.filter(  # type: ignore[union-attr]
        **{link.field.name: OuterRef("pk"), f"{column}__in": values}  # type: ignore[union-attr]
    )
    return Q(Exists(rows))


def _leaf_q(spec: FieldSpec, op: str, value: Any, viewer: User) -> Q:
    if spec.build is not None:
        q = spec.build(op, value, viewer)
        return ~q if op == "has_not" else q
    if spec.kind == Kind.CHOICE:
        values = [int(v) for v in value] if spec.name == "preferred_weekday" else value
        if op == "not_in" and "__" in spec.lookup:
            return ~_related_row(spec.lookup, values)
        q = Q(**{f"{spec.lookup}__in": values})
        return ~q if op == "not_in" else q
    if spec.kind == Kind.NUMBER:
        if op == "between":
            return Q(**{f"{spec.lookup}__gte": value[0], f"{spec.lookup}__lte": value[1]})
        return Q(**{f"{spec.lookup}__{'exact' if op == 'eq' else op}": value})
    if spec.kind == Kind.DATE:
        return _date_q(spec.lookup, op, value)
    if spec.kind == Kind.BOOL:
        return Q(**{spec.lookup: value})
    if spec.kind == Kind.REF:
        q = Q(owner=value) if spec.name == "owner" else Q(campus=value)
        return ~q if op == "has_not" else q
    return Q(**{f"{spec.lookup}__icontains": value})


# The narrow tables beside the student that keep a copy of its campus (the stage's, the profile's).
CAMPUS_COPIES = ("pipeline", "profile")


def _said_on_its_table(q: Q, spec: FieldSpec, op: str, viewer: User) -> Q:
    """A positive condition on the stage or the profile also names the viewer's campus on that
    table, as the board's filters do: the planner then reads one campus's range of the table's
    campus index instead of every campus's rows (each holds the student's campus, kept with it)."""
    table = spec.lookup.split("__", 1)[0] if "__" in spec.lookup else ""
    if table not in CAMPUS_COPIES or op == "not_in" or sees_all_campuses(viewer) or viewer.campus_id is None:
        return q
    return q & Q(**{f"{table}__campus_id": viewer.campus_id})


def leaf_q(name: Any, op: Any, value: Any, *, viewer: User, path: str = "") -> Q:
    """One condition, checked: the rows it selects."""
    spec = FIELDS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ConditionError(_("Unknown field “%(field)s”.") % {"field": str(name)[:MAX_TEXT]}, path)
    if not spec.allowed(viewer):
        raise ConditionError(_("You may not filter on “%(field)s”.") % {"field": spec.label}, path)
    if op not in OPS[spec.kind]:
        raise ConditionError(
            _("“%(field)s” cannot be compared with “%(op)s”.") % {"field": spec.label, "op": str(op)[:MAX_TEXT]}, path
        )
    return _said_on_its_table(
        _leaf_q(spec, op, _checked_value(spec, op, value, viewer, path), viewer), spec, op, viewer
    )


def campus_viewer(campus_id: int) -> User:
    """Who a campus's own rules (tag rules) are compiled as: a viewer of exactly that campus.

    Nobody signs in as it and it is never saved: it only gives `compile_tree` the campus a rule
    may reach (its courses and staff, not another campus's, and no `campus` field), as a manager
    of that campus would. People are always compiled as themselves."""
    viewer = User(username=f"campus-{campus_id}-rules", campus_id=campus_id, is_active=False)
    viewer._role_cache = Role.MANAGER
    return viewer


def compile_tree(tree: Any, *, viewer: User) -> Q:
    """The rows a whole tree selects; ConditionError for anything malformed, hostile or not allowed."""
    counter = [0]
    return _compile(tree, viewer, depth=1, path="", counter=counter)


def _compile(node: Any, viewer: User, *, depth: int, path: str, counter: list[int]) -> Q:
    if depth > MAX_DEPTH:
        raise ConditionError(_("Groups may be nested at most %(max)d deep.") % {"max": MAX_DEPTH}, path)
    if not isinstance(node, dict):
        raise ConditionError(_("A condition must be a group or a field comparison."), path)
    if "field" in node:
        if set(node) - {"field", "op", "value"}:
            raise ConditionError(_("A condition has a field, a comparison and a value."), path)
        counter[0] += 1
        if counter[0] > MAX_CONDITIONS:
            raise ConditionError(_("At most %(max)d conditions.") % {"max": MAX_CONDITIONS}, path)
        return leaf_q(node.get("field"), node.get("op"), node.get("value"), viewer=viewer, path=path)
    if len(node) != 1 or next(iter(node)) not in ("all", "any"):
        raise ConditionError(_("A group is “all” or “any” of its conditions."), path)
    mode, children = next(iter(node.items()))
    if not isinstance(children, list):
        raise ConditionError(_("A group is “all” or “any” of its conditions."), path)
    if len(children) > MAX_CONDITIONS:
        raise ConditionError(_("At most %(max)d conditions.") % {"max": MAX_CONDITIONS}, path)
    parts = [
        _compile(child, viewer, depth=depth + 1, path=f"{path}.{index}" if path else str(index), counter=counter)
        for index, child in enumerate(children)
    ]
    # An empty Q() holds for everyone (an empty "all"); Django drops it from `|` rather than let it
    # hold for everyone, so "any" says it outright. An empty "any" holds for no one.
    if mode == "all":
        return reduce(operator.and_, parts, Q())
    if not parts:
        return Q(pk__in=[])
    if any(not part for part in parts):
        return Q()
    return reduce(operator.or_, parts)


def _leaves(tree: Any) -> list[dict[str, Any]]:
    if not isinstance(tree, dict):
        return []
    if "field" in tree:
        return [tree]
    children: Any = next(iter(tree.values()), []) if len(tree) == 1 else []
    return [leaf for child in (children if isinstance(children, list) else []) for leaf in _leaves(child)]


def ref_names(trees: Sequence[Any]) -> dict[tuple[str, str], str]:
    """The names of the tags, courses, owners and campuses the trees name by id, for `describe`:
    one query per kind of row, however many trees."""
    wanted: dict[str, set[int]] = {}
    for tree in trees:
        for leaf in _leaves(tree):
            field_name = leaf.get("field")
            spec = FIELDS.get(field_name) if isinstance(field_name, str) else None
            value = str(leaf.get("value", ""))
            if spec is not None and spec.kind == Kind.REF and value.isdigit() and int(value) < 2**63:
                wanted.setdefault(spec.name, set()).add(int(value))
    models: dict[str, Any] = {
        "tag": Tag.objects.select_related("group"),
        "course": Course.objects.all(),
        "owner": User.objects.all(),
        "campus": Campus.objects.all(),
    }
    return {(name, str(row.pk)): str(row) for name, ids in wanted.items() for row in models[name].filter(pk__in=ids)}


def describe(tree: Any, *, names: dict[tuple[str, str], str] | None = None) -> str:
    """The tree in words, for lists and the tag a rule leaves ("等级 是 五年级 且 ...").

    `names` (from `ref_names`) puts a tag's or a course's name where the tree holds its id."""
    names = names or {}
    if not isinstance(tree, dict) or not tree:
        return ""
    if "field" in tree:
        spec = FIELDS.get(tree.get("field", "")) if isinstance(tree.get("field"), str) else None
        if spec is None:
            return str(tree.get("field"))
        value = tree.get("value")
        labels = {str(k): v for k, v in spec.choices}
        labels.update({key: label for (field_name, key), label in names.items() if field_name == spec.name})
        if spec.kind == Kind.BOOL:
            shown = str(_("yes") if value is True else _("no"))
        elif isinstance(value, list):
            joiner = "、" if spec.kind == Kind.CHOICE else " ~ "
            shown = joiner.join(str(labels.get(str(v), v)) for v in value)
        else:
            shown = str(labels.get(str(value), value))
        return f"{spec.label} {OP_LABELS.get(tree.get('op', ''), tree.get('op'))} {shown}"
    mode, children = next(iter(tree.items()))
    if not isinstance(children, list):
        return ""
    joiner = f" {_('and') if mode == 'all' else _('or')} "
    parts = [describe(child, names=names) for child in children]
    return joiner.join(f"({p})" if len(parts) > 1 and isinstance(c, dict) and "field" not in c else p
                       for p, c in zip(parts, children, strict=False))  # fmt: skip
