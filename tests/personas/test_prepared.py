"""The per-fact statements run prepared (personas.prepared): planned once per connection and run
from that plan, inside the caller's transaction, failing as a Django cursor fails."""

from __future__ import annotations

import pytest
from django.db import DataError, connection, transaction

from crm.models import Campus, Student
from personas.prepared import execute_prepared
from tests import factories

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="statements are prepared on PostgreSQL"),
]

STATEMENT = "SELECT s.id FROM crm_student s WHERE s.id = ANY(%(ids)s::bigint[]) ORDER BY s.id"


def kept_plans(statement: str) -> list[tuple[int, int]]:
    """(generic plans, custom plans) of each prepared statement of this text on the connection."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = %s", [statement]
        )
        return cursor.fetchall()


def test_one_plan_kept_whatever_the_ids(campus_a: Campus) -> None:
    students = [factories.StudentFactory(campus=campus_a, guardians=[]) for _ in range(2)]
    ids = sorted(s.pk for s in students)
    # Small and huge ids alike (psycopg would type them int2 or int8 by value): one statement.
    for asked in ([ids[0]], ids, [*ids, 2**40], [1]):
        found = execute_prepared(STATEMENT, {"ids": asked}).fetchall()
        assert [row[0] for row in found] == [pk for pk in asked if pk in ids]
    plans = kept_plans(STATEMENT.replace("%(ids)s", "$1"))
    # Run from the one generic plan each time, never planned again for the values.
    assert plans == [(4, 0)]


def test_runs_in_the_callers_transaction(campus_a: Campus) -> None:
    student = factories.StudentFactory(campus=campus_a, guardians=[])
    with transaction.atomic():
        execute_prepared("DELETE FROM crm_student WHERE id = %(id)s", {"id": student.pk})
        # Django's next query in the transaction sees the statement's write...
        assert not Student.objects.filter(pk=student.pk).exists()
        transaction.set_rollback(True)
    # ...which goes with the transaction.
    assert Student.objects.filter(pk=student.pk).exists()
    with transaction.atomic():
        written = factories.StudentFactory(campus=campus_a, guardians=[])
        # And the statement sees what Django wrote in it.
        assert execute_prepared(STATEMENT, {"ids": [written.pk]}).fetchall() == [(written.pk,)]


def test_errors_are_djangos_and_mark_the_block() -> None:
    with transaction.atomic():
        with pytest.raises(DataError):
            execute_prepared("SELECT 1 / %(zero)s", {"zero": 0})
        # The caller's block is rolled back on leaving, as after a Django cursor's error.
        assert connection.needs_rollback
