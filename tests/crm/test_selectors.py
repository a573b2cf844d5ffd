"""Reads scoped where they start: the two scopes over students say the same thing."""

from __future__ import annotations

import pytest

from crm.models import Campus, User
from crm.selectors import stage_rows_visible_to, students_visible_to
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "actor", ["front_desk", "front_desk_b", "teacher", "manager", "manager_b", "admin_user", "campusless"]
)
def test_stage_rows_follow_the_same_rule_as_students(
    request: pytest.FixtureRequest, campus_a: Campus, campus_b: Campus, actor: str
) -> None:
    """The board counts a viewer's stage rows without joining their students: the rows must be
    those of exactly the students the viewer may see, whoever they are."""
    for campus in (campus_a, campus_a, campus_b):
        factories.StudentFactory(campus=campus)
    viewer: User = (
        factories.UserFactory(campus=None, role="front_desk")
        if actor == "campusless"
        else request.getfixturevalue(actor)
    )
    students = set(students_visible_to(viewer).values_list("pk", flat=True))
    rows = set(stage_rows_visible_to(viewer).values_list("student_id", flat=True))
    assert rows == students
    expected = {"front_desk": 2, "teacher": 2, "manager": 2, "front_desk_b": 1, "manager_b": 1, "admin_user": 3}
    assert len(students) == expected.get(actor, 0)
