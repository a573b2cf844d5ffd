"""Tag rules (auto-tags): writing a campus's rules, and applying every rule to its students.

The rules of rule-assigned tags, in one place:

- A rule belongs to one campus and gives one tag to the students of that campus its conditions
  select (a condition tree, compiled as a viewer of the campus: `conditions.campus_viewer`).
- Each tag it gives is a `StudentTag` with source "rule" whose `rule` text starts with the rule's
  id (`TagRule.ref`: "#12 高价值"); that prefix is how a run knows which rows a rule owns.
- A tag whose rule stops holding, or whose rule is switched off or deleted, is removed.
- Tags a person gave (manual or imported) are never touched: a student who holds the rule's tag
  by hand keeps it as it is, and a rule never converts or removes it.
- Exclusive groups, decided from the current facts alone (so a run is deterministic and a second
  run writes nothing): if the student holds a tag of the group given by a person, no rule gives
  them a tag of that group (a person's judgement is never replaced); otherwise, among the
  campus's active rules giving tags of the group, the first written (lowest id) that selects the
  student gives its tag, and a later one does not.

`tag_rules_apply` is set-based whatever the number of students: for whole campuses one statement
for all their rules (APPLY_CAMPUS: the students read once, a boolean per rule), for a list of
students one per rule (APPLY_RULE: a DELETE of the rows it owns that no longer hold and an
INSERT ... SELECT of the students it newly selects), after one read that says which rules are out of
line for a few students.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet
from django.utils.translation import gettext as _

from crm import text
from crm.models import AuditAction, Campus, Role, Student, StudentTag, Tag, TagGroup, TagSource, User
from crm.roles import require_campus, require_role
from crm.services.audit import audit
from personas.conditions import ConditionError, campus_viewer, compile_tree
from personas.default_tag_rules import DEFAULT_RULES
from personas.models import TagRule
from personas.prepared import PREPARED_UP_TO, execute_prepared

logger = logging.getLogger(__name__)

RULE_FIELDS = ("name", "tag", "conditions", "active")


# --- writing rules -------------------------------------------------------------------------------


def _leaf_count(tree: Any) -> int:
    if not isinstance(tree, dict):
        return 0
    if "field" in tree:
        return 1
    return sum(_leaf_count(child) for children in tree.values() if isinstance(children, list) for child in children)


def tag_rule_conditions_problem(*, actor: User, campus: Campus, conditions: Any) -> str | None:
    """Why these conditions cannot be a rule of `campus` written by `actor`, or None.

    They must hold for the actor (a person names only what they may see) and for the campus the
    rule runs as (an administrator cannot hand campus A a rule about campus B's course)."""
    try:
        compile_tree(conditions, viewer=actor)
        compile_tree(conditions, viewer=campus_viewer(campus.pk))
    except ConditionError as exc:
        return exc.message
    if _leaf_count(conditions) == 0:
        return _("Add at least one condition: a rule without one would tag every student.")
    return None


def _checked(*, actor: User, rule: TagRule) -> None:
    errors: dict[str, Any] = {}
    rule.name = text.clean(errors, "name", rule.name, TagRule)
    if not rule.name:
        errors["name"] = _("Give the rule a name.")
    problem = tag_rule_conditions_problem(actor=actor, campus=rule.campus, conditions=rule.conditions)
    if problem:
        errors["conditions"] = problem
    taken = TagRule.objects.filter(campus_id=rule.campus_id, tag_id=rule.tag_id).exclude(pk=rule.pk)
    if "tag" not in errors and taken.exists():
        errors["tag"] = _("This campus already has a rule for this tag.")
    if errors:
        raise ValidationError(errors)


def _saved(rule: TagRule, **kwargs: Any) -> None:
    """Saved, with the unique (campus, tag) backstop said in words (two managers at once)."""
    try:
        with transaction.atomic():
            rule.save(**kwargs)
    except IntegrityError:
        raise ValidationError({"tag": _("This campus already has a rule for this tag.")}) from None


def _owned_by(rule: TagRule) -> QuerySet[StudentTag]:
    """The tags the rule gave (and owns): source "rule", their text starting with its id."""
    return StudentTag.objects.filter(source=TagSource.RULE, rule__startswith=rule.ref_prefix)


def _apply_after_commit(campus_id: int) -> None:
    # The task module imports this one; read it at call time.
    from personas.tasks import tag_rules_apply_campus

    transaction.on_commit(lambda: tag_rules_apply_campus.delay(campus_id))


def _words(rule: TagRule) -> dict[str, Any]:
    return {
        "campus": rule.campus.code,
        "rule": rule.ref,
        "tag": str(rule.tag),
        "conditions": json.dumps(rule.conditions, ensure_ascii=False),
        "active": str(rule.active),
    }


@transaction.atomic
def tag_rule_create(
    *, actor: User, campus: Campus | None, tag: Tag, name: str, conditions: Any, active: bool = True
) -> TagRule:
    """A campus's new rule (its manager, or an administrator); the campus is tagged after commit.
    A manager's rule is their campus's when none is named; an administrator names one."""
    require_role(actor, Role.MANAGER)
    campus = campus or actor.campus
    if campus is None:
        raise ValidationError({"campus": _("Choose a campus.")})
    require_campus(actor, campus.pk)
    rule = TagRule(campus=campus, tag=tag, name=name, conditions=conditions, active=active, created_by=actor)
    _checked(actor=actor, rule=rule)
    _saved(rule)
    audit(actor=actor, action=AuditAction.TAG_RULE_CREATE, **_words(rule))
    _apply_after_commit(campus.pk)
    return rule


@transaction.atomic
def tag_rule_update(*, actor: User, rule: TagRule, **changes: Any) -> TagRule:
    """Change a rule's name, tag, conditions or whether it is on; its campus is tagged again after
    commit (its old tag, or every tag it gave when switched off, is removed there)."""
    require_role(actor, Role.MANAGER)
    require_campus(actor, rule.campus_id)
    unknown = set(changes) - set(RULE_FIELDS)
    if unknown:
        raise ValueError(f"not a rule field: {sorted(unknown)}")
    row = TagRule.objects.select_for_update().select_related("campus", "tag__group").get(pk=rule.pk)
    before = {name: getattr(row, name) for name in changes}
    for name, value in changes.items():
        setattr(row, name, value)
    _checked(actor=actor, rule=row)
    changed = [name for name in changes if getattr(row, name) != before[name]]
    if not changed:
        return row
    _saved(row, update_fields=[*changed, "updated_at"])
    if "tag" in changed:
        # The tag it gave before goes now; the run after commit gives the new one.
        _owned_by(row).exclude(tag_id=row.tag_id).delete()
    audit(actor=actor, action=AuditAction.TAG_RULE_UPDATE, changed=", ".join(changed), **_words(row))
    _apply_after_commit(row.campus_id)
    return row


@transaction.atomic
def tag_rule_delete(*, actor: User, rule: TagRule) -> int:
    """Delete a rule and, with it, every tag it gave; the number of tags removed."""
    require_role(actor, Role.MANAGER)
    require_campus(actor, rule.campus_id)
    row = TagRule.objects.select_for_update().select_related("campus", "tag__group").get(pk=rule.pk)
    removed, _counts = _owned_by(row).delete()
    audit(actor=actor, action=AuditAction.TAG_RULE_DELETE, removed=removed, **_words(row))
    row.delete()
    # A later rule of its exclusive group may now give its tag to the students it held.
    _apply_after_commit(row.campus_id)
    return removed


# --- the defaults ----------------------------------------------------------------------------------


@transaction.atomic
def tag_rules_ship_defaults(*, campus_ids: Iterable[int] | None = None) -> list[TagRule]:
    """Give campuses the default rules (personas.default_tag_rules) for the tags they have no rule
    for; the rules created. Called for a new campus (crm.events.campus_created) and by the demo."""
    campuses = Campus.objects.order_by("pk")
    if campus_ids is not None:
        campuses = campuses.filter(pk__in=list(campus_ids))
    ids = list(campuses.values_list("pk", flat=True))
    if not ids:
        return []
    tags = {}
    for default in DEFAULT_RULES:
        group, _created = TagGroup.objects.get_or_create(name=default.group, defaults={"exclusive": default.exclusive})
        tags[default.tag] = Tag.objects.get_or_create(group=group, name=default.tag)[0]
    have = set(TagRule.objects.filter(campus_id__in=ids).values_list("campus_id", "tag_id"))
    # In DEFAULT_RULES' order, so that within an exclusive group the first listed wins.
    missing = [
        TagRule(campus_id=campus_id, tag=tags[d.tag], name=d.name, conditions=d.conditions)
        for campus_id in ids
        for d in DEFAULT_RULES
        if (campus_id, tags[d.tag].pk) not in have
    ]
    return TagRule.objects.bulk_create(missing, ignore_conflicts=True)


def ship_defaults_to_new_campus(campus_id: int) -> None:
    """crm.events listener: a campus created through crm's service starts with the defaults."""
    tag_rules_ship_defaults(campus_ids=[campus_id])


# --- applying the rules -----------------------------------------------------------------------------


def _selects(rule: TagRule) -> Q | None:
    """The students of any campus the rule's conditions select; None: no one (switched off, or
    its conditions no longer compile)."""
    if not rule.active:
        return None
    try:
        return compile_tree(rule.conditions, viewer=campus_viewer(rule.campus_id))
    except ConditionError as exc:
        # Written valid, broken since (a tag it names was removed): it holds for no one until its
        # manager fixes it.
        logger.error("tag rule %s of campus %s no longer compiles: %s", rule.pk, rule.campus_id, exc)
        return None


def _selected(rule: TagRule, earlier: Sequence[TagRule], *, few: bool = False) -> QuerySet[Student] | None:
    """The students the rule gives its tag to now: those of its campus its conditions select, minus
    those its exclusive group keeps from it (a person's tag of the group, or a match of a rule
    written before, `earlier`). None: no one."""
    selects = _selects(rule)
    if selects is None:
        return None
    students = Student.objects.filter(campus_id=rule.campus_id).filter(selects)
    if rule.tag.group.exclusive:
        group_tags = Tag.objects.filter(group_id=rule.tag.group_id).values("pk")
        if few:
            # A few students (after a fact): a probe of the tag index for each.
            by_a_person_of = StudentTag.objects.filter(student_id=OuterRef("pk"), tag_id__in=group_tags).exclude(
                source=TagSource.RULE
            )
            students = students.filter(~Exists(by_a_person_of))
        else:
            # A whole campus: NOT IN a list, one hashed look-up of the people's tags of the group
            # instead of a probe for every student of the campus.
            by_a_person = (
                StudentTag.objects.filter(tag_id__in=group_tags).exclude(source=TagSource.RULE).values("student_id")
            )
            students = students.exclude(pk__in=by_a_person)
        for first in earlier:
            first_selects = _selects(first)
            if first_selects is not None:
                students = students.filter(~first_selects)
    return students


def _measures_from_now(tree: Any) -> bool:
    """Whether the tree counts days back from now (its SQL holds the moment it was built)."""
    if not isinstance(tree, dict):
        return False
    if "field" in tree:
        return tree.get("op") in ("within_days", "over_days_ago")
    return any(
        _measures_from_now(child) for children in tree.values() if isinstance(children, list) for child in children
    )


# The SQL of each rule's selection, per version of the rule and of the rules before it: building it
# from the tree costs more than running it for one student (the path after each fact), so it is
# built once. A version is the rules' `updated_at` and conditions with what else decides the SQL; a
# rule that counts days from now is built each time.
_SELECTION_SQL: dict[tuple[Any, ...], tuple[str, dict[str, Any]] | None] = {}
SELECTION_CACHE_SIZE = 1000


def _selection_sql(rule: TagRule, earlier: Sequence[TagRule], *, few: bool) -> tuple[str, dict[str, Any]] | None:
    """`_selected` as SQL with named parameters ("selected_<n>"); None: no one."""
    rules = (rule, *earlier)
    key = (
        few,
        rule.campus_id,
        rule.tag.group_id,
        rule.tag.group.exclusive,
        *((r.pk, r.updated_at, r.active, json.dumps(r.conditions, sort_keys=True)) for r in rules),
    )
    cacheable = not any(_measures_from_now(r.conditions) for r in rules)
    if cacheable and key in _SELECTION_SQL:
        return _SELECTION_SQL[key]
    students = _selected(rule, earlier, few=few)
    result = None
    if students is not None:
        compiled, compiled_params = students.order_by().values("id").query.get_compiler(using=students.db).as_sql()
        params = {f"selected_{index}": value for index, value in enumerate(compiled_params)}
        result = (_named_placeholders(compiled, "selected_"), params)
    if cacheable:
        if len(_SELECTION_SQL) >= SELECTION_CACHE_SIZE:
            _SELECTION_SQL.clear()
        _SELECTION_SQL[key] = result
    return result


# One statement per rule (PostgreSQL). `selected`: the students the rule gives its tag to now (the
# SQL Django compiled for `_selected`), or those of them asked for, read once.
# `removed`: the rows of its tag the rule owns (source "rule", its "#<id> " prefix) whose student it
# no longer selects (rows of a tag the rule gave before its tag was changed went with the change).
# `written`: the selected students who do not hold the tag yet get it. Those who hold it already are
# skipped: by this rule (nothing to write, so a second run writes nothing) or by a person (never
# converted). A row of the tag another rule owns (a student who moved campus), or this rule's own
# row under an old name, is taken over and relabelled; the WHERE on the conflict keeps a row a person
# added meanwhile as it is. The two touch different rows, so one snapshot serves both.
APPLY_RULE = """
WITH selected AS MATERIALIZED (
    SELECT chosen.id FROM ({selected}) chosen
    WHERE %(student_ids)s::bigint[] IS NULL OR chosen.id = ANY(%(student_ids)s::bigint[])
),
removed AS (
    DELETE FROM crm_studenttag owned
    WHERE owned.tag_id = %(tag_id)s AND owned.source = 'rule' AND owned.rule LIKE %(owned_prefix)s
      AND (%(student_ids)s::bigint[] IS NULL OR owned.student_id = ANY(%(student_ids)s::bigint[]))
      -- NOT IN, not NOT EXISTS: a hashed subplan whatever the planner guesses of the CTE's size
      -- (docs/benchmarks.md); ids are never NULL.
      AND owned.student_id NOT IN (SELECT selected.id FROM selected)
    RETURNING 1
),
written AS (
    INSERT INTO crm_studenttag (student_id, tag_id, source, rule, created_at)
    SELECT selected.id, %(tag_id)s, 'rule', %(ref)s, now()
    FROM selected
    WHERE NOT EXISTS (
        SELECT 1 FROM crm_studenttag held
        WHERE held.student_id = selected.id AND held.tag_id = %(tag_id)s
          AND (held.source <> 'rule' OR held.rule = %(ref)s)
    )
    ON CONFLICT (student_id, tag_id) DO UPDATE SET rule = EXCLUDED.rule
    WHERE crm_studenttag.source = 'rule'
    RETURNING (xmax = 0) AS inserted
)
SELECT (SELECT count(*) FROM written WHERE inserted), (SELECT count(*) FROM removed)
"""

# A rule that selects no one (switched off, or its conditions no longer compile).
NO_ONE = "SELECT NULL::bigint AS id WHERE false"


def _named_placeholders(sql: str, prefix: str) -> str:
    """Django's compiled SQL with its positional placeholders named, in order (`%%` stays)."""
    count = iter(range(1_000_000))
    return re.sub(r"%%|%s", lambda m: m.group(0) if m.group(0) == "%%" else f"%({prefix}{next(count)})s", sql)


# Up to this many students, a rule's selection probes each one's tags instead of hashing the campus's.
FEW_STUDENTS = 1000


def _apply_rule_sql(rule: TagRule, earlier: Sequence[TagRule], student_ids: list[int] | None) -> tuple[int, int]:
    params: dict[str, Any] = {
        "owned_prefix": f"{rule.ref_prefix}%",  # "#12 %": no LIKE wildcard in an id
        "student_ids": student_ids,
        "tag_id": rule.tag_id,
        "ref": rule.ref,
    }
    selection = _selection_sql(rule, earlier, few=student_ids is not None and len(student_ids) <= FEW_STUDENTS)
    selected_sql = NO_ONE
    if selection is not None:
        selected_sql, selected_params = selection
        params.update(selected_params)
    with connection.cursor() as cursor:
        cursor.execute(APPLY_RULE.format(selected=selected_sql), params)
        added, removed = cursor.fetchone()
    return int(added), int(removed)


def _apply_rule_portable(rule: TagRule, earlier: Sequence[TagRule], student_ids: list[int] | None) -> tuple[int, int]:
    """The same as APPLY_RULE through the ORM, for the embedded SQLite database (a small demo)."""
    owned = _owned_by(rule)
    students = _selected(rule, earlier)
    if student_ids is not None:
        owned = owned.filter(student_id__in=student_ids)
        students = students.filter(pk__in=student_ids) if students is not None else None
    selected = set(students.values_list("id", flat=True)) if students is not None else set()
    lapsed = owned.filter(tag_id=rule.tag_id).exclude(student_id__in=selected)
    removed = lapsed.delete()[0] if lapsed.exists() else 0
    holding = StudentTag.objects.filter(tag_id=rule.tag_id, student_id__in=selected)
    held = set(holding.filter(~Q(source=TagSource.RULE) | Q(rule=rule.ref)).values_list("student_id", flat=True))
    relabel = holding.filter(source=TagSource.RULE).exclude(rule=rule.ref)
    taken_over = set(relabel.values_list("student_id", flat=True))
    relabel.update(rule=rule.ref)
    new = sorted(selected - held - taken_over)
    StudentTag.objects.bulk_create(
        [StudentTag(student_id=pk, tag_id=rule.tag_id, source=TagSource.RULE, rule=rule.ref) for pk in new],
        ignore_conflicts=True,
    )
    return len(new), removed


def tag_rules_apply(
    *,
    student_ids: Iterable[int] | None = None,
    campus_ids: Iterable[int] | None = None,
    rule_ids: Iterable[int] | None = None,
) -> tuple[int, int]:
    """See `_tag_rules_apply`. Every student of several campuses (the full nightly run, a rule's
    campus after it changed is one) is shared out over two connections by campus, each its own
    transaction: a campus's rules and students are nobody else's, and the work is CPU-bound."""
    if (
        student_ids is None
        and rule_ids is None
        and connection.vendor == "postgresql"
        and not connection.in_atomic_block
    ):
        rules = TagRule.objects.all()
        if campus_ids is not None:
            rules = rules.filter(campus_id__in=list(campus_ids))
        campuses = sorted(set(rules.values_list("campus_id", flat=True)))
        if len(campuses) > 1:

            def run(share: list[int]) -> tuple[int, int]:
                try:
                    return _tag_rules_apply(campus_ids=share)
                finally:
                    connection.close()  # this thread's own connection

            with ThreadPoolExecutor(max_workers=2) as pool:
                results = list(pool.map(run, [campuses[0::2], campuses[1::2]]))
            return sum(r[0] for r in results), sum(r[1] for r in results)
    return _tag_rules_apply(student_ids=student_ids, campus_ids=campus_ids, rule_ids=rule_ids)


@transaction.atomic
def _tag_rules_apply(
    *,
    student_ids: Iterable[int] | None = None,
    campus_ids: Iterable[int] | None = None,
    rule_ids: Iterable[int] | None = None,
) -> tuple[int, int]:
    """Bring rule-assigned tags in line with every rule (or the rules of `campus_ids`, or only the
    rules `rule_ids`), for every student of their campuses (or only `student_ids`); (tags added,
    tags removed).

    Called by the profile engine on every recomputation, after a rule is written, and nightly.
    Idempotent: a second run adds and removes nothing and writes no row."""
    ids = sorted(set(student_ids)) if student_ids is not None else None
    if ids is not None and not ids:
        return (0, 0)
    rules = TagRule.objects.select_related("tag__group").order_by("campus_id", "pk")
    if campus_ids is not None:
        rules = rules.filter(campus_id__in=list(campus_ids))
    if ids is not None:
        # The rules of the students' campuses. A rule of the campus a student left keeps its tag on
        # them until the next run over its campus, which removes it (the student is not selected).
        rules = rules.filter(campus__in=Student.objects.filter(pk__in=ids).values("campus_id"))
    only = set(rule_ids) if rule_ids is not None else None
    postgres = connection.vendor == "postgresql"
    if postgres and (ids is None or len(ids) > 1000):
        with connection.cursor() as cursor:
            # A whole campus: JIT's compile time for these wide predicates outweighs its gain
            # (docs/benchmarks.md), and each rule's selection is hashed in memory.
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SET LOCAL work_mem = '256MB'")
    apply_rule = _apply_rule_sql if postgres else _apply_rule_portable
    # Per (campus, exclusive group): the rules written before, which win.
    earlier: dict[tuple[int, int], list[TagRule]] = defaultdict(list)
    todo: list[tuple[TagRule, tuple[TagRule, ...]]] = []
    for rule in rules:
        key = (rule.campus_id, rule.tag.group_id)
        if only is None or rule.pk in only:
            todo.append((rule, tuple(earlier[key]) if rule.tag.group.exclusive else ()))
        if rule.tag.group.exclusive and rule.active:
            earlier[key].append(rule)
    if postgres and ids is not None and len(ids) <= FEW_STUDENTS:
        # After a fact: most rules hold for the student as they did. One read says which do not.
        todo = _out_of_line(todo, ids)
    if postgres and (ids is None or len(ids) > FEW_STUDENTS) and only is None:
        # Whole campuses, or many of their students: every rule in one pass over the students.
        return _apply_campus_in_one_pass(todo, ids) if todo else (0, 0)
    added = removed = 0
    for rule, before in todo:
        rule_added, rule_removed = apply_rule(rule, before, ids)
        added += rule_added
        removed += rule_removed
    return (added, removed)


# Every rule of some campuses at once (PostgreSQL): `matches` reads their students once with one
# boolean per rule (its conditions, compiled as for `_selected`) and one per exclusive group (a
# person gave the student a tag of it); `desired` is what each rule gives now, an exclusive group's
# first rule winning and a person's tag of the group keeping every rule out; then, as APPLY_RULE
# does rule by rule, the rows a rule owns that it no longer gives go, and the students it gives its
# tag to who hold it neither by a person nor by it get it (taking over another rule's row of the tag).
APPLY_CAMPUS = """
WITH matches AS MATERIALIZED (
    SELECT * FROM ({matches}) q WHERE %s::bigint[] IS NULL OR q.id = ANY(%s::bigint[])
),
rules (idx, tag_id, ref, owned_prefix) AS (VALUES {rules}),
-- Each student's given rules as one array (a row per hit, not one per rule and student).
desired AS (
    SELECT g.student_id, r.idx, r.tag_id, r.ref
    FROM (SELECT m.id AS student_id, unnest(array_remove(ARRAY[{hits}]::int[], NULL)) AS idx FROM matches m) g
    JOIN rules r ON r.idx = g.idx
),
removed AS (
    DELETE FROM crm_studenttag owned
    USING rules r
    WHERE owned.tag_id = r.tag_id AND owned.source = 'rule' AND owned.rule LIKE r.owned_prefix
      AND (%s::bigint[] IS NULL OR owned.student_id = ANY(%s::bigint[]))
      -- NOT IN, not NOT EXISTS: one hashed subplan of the desired pairs (ids are never NULL).
      AND (owned.student_id, r.idx) NOT IN (SELECT d.student_id, d.idx FROM desired d)
    RETURNING 1
),
written AS (
    INSERT INTO crm_studenttag (student_id, tag_id, source, rule, created_at)
    SELECT d.student_id, d.tag_id, 'rule', d.ref, now()
    FROM desired d
    WHERE NOT EXISTS (
        SELECT 1 FROM crm_studenttag held
        WHERE held.student_id = d.student_id AND held.tag_id = d.tag_id
          AND (held.source <> 'rule' OR held.rule = d.ref)
    )
    ON CONFLICT (student_id, tag_id) DO UPDATE SET rule = EXCLUDED.rule
    WHERE crm_studenttag.source = 'rule'
    RETURNING (xmax = 0) AS inserted
)
SELECT (SELECT count(*) FROM written WHERE inserted), (SELECT count(*) FROM removed)
"""


def _apply_campus_in_one_pass(
    todo: list[tuple[TagRule, tuple[TagRule, ...]]], student_ids: list[int] | None = None
) -> tuple[int, int]:
    """Every rule of some campuses (`todo`, in the order written) in one statement: APPLY_CAMPUS,
    for all their students or only `student_ids`.
    The campuses' students, their stage and profile rows and the tag table are read once, where a
    statement per rule (or per campus) read them again each time."""
    annotations: dict[str, Any] = {}
    for index, (rule, _before) in enumerate(todo):
        selects = _selects(rule)
        if selects is not None:
            # A rule selects the students of its own campus only.
            annotations[f"m{index}"] = ExpressionWrapper(
                Q(campus_id=rule.campus_id) & selects, output_field=BooleanField()
            )
    column = {rule.pk: f"m{index}" for index, (rule, _before) in enumerate(todo)}
    for group_id in sorted({rule.tag.group_id for rule, _before in todo if rule.tag.group.exclusive}):
        group_tags = list(Tag.objects.filter(group_id=group_id).values_list("pk", flat=True))
        # A probe of the student's own tags (the unique key leads with the student), not `pk IN
        # (the group's tags by a person)`: that subplan is rescanned once per student whenever the
        # planner believes the tag table small (right after the first run wrote it), which reads
        # every tag of the group for every student.
        by_a_person = StudentTag.objects.filter(student_id=OuterRef("pk"), tag_id__in=group_tags).exclude(
            source=TagSource.RULE
        )
        annotations[f"p{group_id}"] = Exists(by_a_person)
    campus_ids = sorted({rule.campus_id for rule, _before in todo})
    students = Student.objects.filter(campus_id__in=campus_ids).annotate(**annotations).values("id", *annotations)
    matches, params = students.query.get_compiler(using=students.db).as_sql()
    rule_rows, hits = [], []
    rule_params: list[Any] = []
    for index, (rule, before) in enumerate(todo):
        rule_rows.append("(%s::int, %s::bigint, %s::text, %s::text)")
        rule_params += [index, rule.tag_id, rule.ref, f"{rule.ref_prefix}%"]
        own = column[rule.pk]
        if own not in annotations:
            continue
        gives = [f"coalesce(m.{own}, false)"]
        gives += [f"NOT coalesce(m.{column[r.pk]}, false)" for r in before if column.get(r.pk) in annotations]
        if rule.tag.group.exclusive:
            gives.append(f"NOT coalesce(m.p{rule.tag.group_id}, false)")
        hits.append(f"CASE WHEN {' AND '.join(gives)} THEN {index} END")
    statement = APPLY_CAMPUS.format(matches=matches, rules=", ".join(rule_rows), hits=", ".join(hits) or "NULL::int")
    with connection.cursor() as cursor:
        cursor.execute(statement, [*params, student_ids, student_ids, *rule_params, student_ids, student_ids])
        added, removed = cursor.fetchone()
    return int(added), int(removed)


def _out_of_line(
    todo: list[tuple[TagRule, tuple[TagRule, ...]]], ids: list[int]
) -> list[tuple[TagRule, tuple[TagRule, ...]]]:
    """The rules whose tags on these few students differ from what the rule selects now: one query
    for every rule's selection of them, one for their tags. APPLY_RULE then runs only for those."""
    parts, params = [], {"student_ids": ids}
    for index, (rule, before) in enumerate(todo):
        selection = _selection_sql(rule, before, few=True)
        if selection is None:
            continue
        selected_sql, selected_params = selection
        prefix = f"r{index}_"
        renamed = selected_sql.replace("%(selected_", f"%({prefix}selected_")
        parts.append(
            f"SELECT {index} AS rule_index, chosen.id FROM ({renamed}) chosen "
            "WHERE chosen.id = ANY(%(student_ids)s::bigint[])"
        )
        params.update({f"{prefix}{name}": value for name, value in selected_params.items()})
    selected: dict[int, set[int]] = defaultdict(set)
    if parts:
        statement = " UNION ALL ".join(parts)
        if len(ids) <= PREPARED_UP_TO:
            # Planning it costs several times running it for a student or two (personas.prepared).
            rows = execute_prepared(statement, params).fetchall()
        else:
            with connection.cursor() as cursor:
                cursor.execute(statement, params)
                rows = cursor.fetchall()
        for index, student_id in rows:
            selected[index].add(student_id)
    held = list(
        StudentTag.objects.filter(student_id__in=ids, tag_id__in={rule.tag_id for rule, _ in todo}).values_list(
            "student_id", "tag_id", "source", "rule"
        )
    )
    out = []
    for index, (rule, before) in enumerate(todo):
        by_person = {sid for sid, tag, source, _ref in held if tag == rule.tag_id and source != TagSource.RULE}
        by_rule = {sid for sid, tag, source, ref in held if tag == rule.tag_id and source == TagSource.RULE}
        own = {
            sid for sid, tag, source, ref in held if tag == rule.tag_id and source == TagSource.RULE and ref == rule.ref
        }
        owned_by_prefix = {
            sid
            for sid, tag, source, ref in held
            if tag == rule.tag_id and source == TagSource.RULE and ref.startswith(rule.ref_prefix)
        }
        to_add = selected[index] - by_person - own
        to_remove = owned_by_prefix - selected[index]
        if to_add or to_remove or (by_rule & selected[index]) - own:
            out.append((rule, before))
    return out


# What a rule reads that can change without the student's profile being computed again: who owns
# them (the lead pool moves owners), their tags (people and other rules), and anything counted back
# from now. Everything else reaches the profile run: the facts through their events, the student's
# own fields (student_update announces them), the stage and flags (copied on the profile), the
# profile's figures and scores.
EVERYONE_NIGHTLY_FIELDS = ("owner", "tag")


def _reads_beyond_the_profile(tree: Any) -> bool:
    if not isinstance(tree, dict):
        return False
    if "field" in tree:
        return tree.get("field") in EVERYONE_NIGHTLY_FIELDS or tree.get("op") in ("within_days", "over_days_ago")
    return any(
        _reads_beyond_the_profile(child)
        for children in tree.values()
        if isinstance(children, list)
        for child in children
    )


def tag_rules_nightly(*, changed_ids: Sequence[int]) -> tuple[int, int]:
    """The nightly run's share: every rule for the students whose profile changed tonight, and the
    rules that read beyond the profile (with the rules after them in an exclusive group, which
    they can displace) for everyone. A quiet night with the default rules touches no one."""
    rules = list(TagRule.objects.select_related("tag__group").order_by("campus_id", "pk"))
    wide: set[int] = set()
    for rule in rules:
        reads_beyond = rule.active and _reads_beyond_the_profile(rule.conditions)
        displaced = rule.tag.group.exclusive and any(
            r.pk in wide and r.campus_id == rule.campus_id and r.tag.group_id == rule.tag.group_id for r in rules
        )
        if reads_beyond or displaced:
            wide.add(rule.pk)
    added = removed = 0
    if changed_ids:
        added, removed = tag_rules_apply(student_ids=changed_ids)
    if wide:
        more_added, more_removed = tag_rules_apply(rule_ids=wide)
        added, removed = added + more_added, removed + more_removed
    return added, removed
