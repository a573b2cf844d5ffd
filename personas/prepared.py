"""Statements prepared once per database connection (PostgreSQL), run from a generic plan.

The per-fact path (`profiles_after_event`) runs a few large hand-written statements for one
student; PostgreSQL spends several times longer planning them than running them (3 ms against
0.5 ms). Bound on the server and prepared, they are planned once per connection, and each
execution runs the kept plan. The plan is the generic one: the planner would otherwise plan each
execution again for its values (a list of ids is costed as ten where one is asked), which is the
time saved. Only statements whose plan does not hinge on the values belong here: keys looked up
in indexes, a few students at a time.

Django's cursors bind on the client and are never prepared (Django turns psycopg's preparing off,
for connection poolers), so these statements go through a psycopg cursor of their own on
Django's connection: they share its transaction, but Django's query log (`connection.queries`,
CaptureQueriesContext) does not list them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from django.db import connection, transaction
from psycopg.types.numeric import Int8Dumper

# Up to this many students, the per-fact statements run prepared; more, planned for their number.
PREPARED_UP_TO = 100

# Preparing is turned on for these statements only, at a threshold no other statement reaches.
ONLY_WHEN_ASKED = 2**31


def execute_prepared(statement: str, params: Mapping[str, Any]) -> psycopg.Cursor[Any]:
    """`statement` with `params` bound on the server, prepared on this connection; the cursor, to
    fetch from. A parameter the server cannot type from its context needs a cast in the statement
    (a NULL, an array: `%(ids)s::bigint[]`)."""
    # In a transaction for SET LOCAL (no savepoint: the caller's block decides what an error undoes),
    # and the driver's errors as Django's, as a Django cursor raises them.
    with transaction.atomic(savepoint=False), connection.wrap_database_errors:
        raw = connection.connection
        cursor = psycopg.Cursor(raw)
        # Every int (and list of them) as bigint: psycopg would pick the narrowest type by value,
        # and a statement is prepared once per set of parameter types.
        cursor.adapters.register_dumper(int, Int8Dumper)
        # For this transaction; the other statements in it bind on the client and have no plan kept.
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        threshold = raw.prepare_threshold
        raw.prepare_threshold = ONLY_WHEN_ASKED
        try:
            cursor.execute(statement, params, prepare=True)
        finally:
            raw.prepare_threshold = threshold
    return cursor
