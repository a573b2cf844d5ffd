"""A paginator for admin lists over big tables: never an exact COUNT(*) of a million rows.

- An unfiltered list on PostgreSQL takes its size from the planner's estimate
  (`pg_class.reltuples`, kept current by autovacuum/ANALYZE), which costs one index lookup.
- Any other list (filtered, searched, scoped to a campus, or on SQLite) counts, but at most
  `count_cap + 1` rows, so the count is cheap however many rows match; past the cap the
  list shows "10000+" and pages up to the cap.

Both approximate kinds are `int`s (Django's ChangeList does arithmetic with the count) that
print what they are, so the page says "about 1000000 students" rather than a made-up exact figure.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
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
    # Below this many rows an exact count is cheap, and an estimate could hide fresh rows.
    count_cap = 10_000

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        if not isinstance(rows, QuerySet):
            return super().count
        if is_unfiltered(rows):
            estimate = planner_row_estimate(rows)
            if estimate is not None and estimate > self.count_cap:
                return ApproximateCount(estimate, is_floor=False)
        counted = rows.order_by().values("pk")[: self.count_cap + 1].count()
        if counted > self.count_cap:
            return ApproximateCount(self.count_cap, is_floor=True)
        return counted
