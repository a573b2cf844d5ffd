"""A paginator for admin lists over big tables: never an exact COUNT(*) of a million rows.

- An unfiltered list on PostgreSQL takes its size from the planner's estimate
  (`pg_class.reltuples`, kept current by autovacuum/ANALYZE): one catalogue lookup.
- Any other list (filtered, searched, scoped to a campus, or on SQLite) reads the primary
  keys of its first `count_cap + 1` rows, in the list's order, in one query. Their number
  is the count ("1000+" past the cap, and the list pages up to the cap), and the page's rows
  are then fetched by key. A filter or search that matches few rows has to scan the table
  whatever we do; this way it is scanned once, not once to count and again for the page.

Both approximate kinds are `int`s (Django's ChangeList does arithmetic with the count) that
print what they are, so the page says "about 1000000 students" rather than a made-up exact figure.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property
from django.utils.translation import gettext


class ApproximateCount(int):
    """A row count that is an estimate ("about N") or a floor ("N+")."""

    is_floor: bool

    def __new__(cls, value: int, *, is_floor: bool) -> ApproximateCount:
        count = super().__new__(cls, value)
        count.is_floor = is_floor
        return count

    def __str__(self) -> str:
        if self.is_floor:
            return gettext("%(count)s+") % {"count": int(self)}
        return gettext("about %(count)s") % {"count": int(self)}

    def __repr__(self) -> str:
        return f"ApproximateCount({int(self)}, is_floor={self.is_floor})"


def is_unfiltered(queryset: QuerySet[Any]) -> bool:
    query = queryset.query
    return not (query.where or query.distinct or query.combinator or query.is_sliced or query.group_by)


def planner_row_estimate(queryset: QuerySet[Any]) -> int | None:
    """PostgreSQL's estimate of the rows in the queryset's table, or None if it has none."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    table = connection.ops.quote_name(queryset.model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    if row is None or row[0] is None or row[0] < 0:  # -1: never vacuumed or analysed
        return None
    return int(row[0])


class EstimatedCountPaginator(Paginator):
    # Below this many rows an exact count is cheap (and an estimate could hide fresh rows);
    # past it, a filtered list says "1000+": refine the filter rather than page on.
    count_cap = 1_000

    @cached_property
    def estimate(self) -> int | None:
        """The planner's row estimate, for a big unfiltered table on PostgreSQL; else None."""
        rows = self.object_list
        if isinstance(rows, QuerySet) and is_unfiltered(rows):
            estimate = planner_row_estimate(rows)
            if estimate is not None and estimate > self.count_cap:
                return estimate
        return None

    @cached_property
    def leading_pks(self) -> list[Any] | None:
        """The first `count_cap + 1` primary keys in the list's order, unless the estimate serves."""
        rows = self.object_list
        if not isinstance(rows, QuerySet) or self.estimate is not None:
            return None
        return list(rows.prefetch_related(None).values_list("pk", flat=True)[: self.count_cap + 1])

    @cached_property
    def count(self) -> int:
        if self.estimate is not None:
            return ApproximateCount(self.estimate, is_floor=False)
        pks = self.leading_pks
        if pks is None:
            return super().count
        if len(pks) > self.count_cap:
            return ApproximateCount(self.count_cap, is_floor=True)
        return len(pks)

    def page(self, number: int | str) -> Page:
        pks = self.leading_pks
        if pks is None:
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        return Page(self.rows_with_pks(pks[bottom:top]), number, self)

    def all_rows(self) -> QuerySet[Any] | None:
        """The rows up to the cap, fetched by key; None when the list is counted by estimate."""
        pks = self.leading_pks
        return None if pks is None else self.rows_with_pks(pks[: self.count_cap])

    def rows_with_pks(self, pks: list[Any]) -> QuerySet[Any]:
        rows = self.object_list
        assert isinstance(rows, QuerySet)
        return rows.filter(pk__in=pks) if pks else rows.none()
