"""The listener the lifecycle engine reaches after deciding students (PersonasConfig.ready)."""

from __future__ import annotations


def students_decided(student_ids: list[int]) -> None:
    from personas.tasks import refresh_profiles

    refresh_profiles.delay(list(student_ids))
