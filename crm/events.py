"""How crm tells higher apps that a student's facts changed, or that a campus was created,
without importing them.

crm sits at the bottom of the app graph (crm <- lifecycle <- personas <- campaigns).
A higher app registers a listener at start-up (its AppConfig.ready); crm services call
`student_facts_changed` inside their transaction and listeners run after commit, so a
rolled-back write never triggers anything. Listeners run robustly: one that fails (a
broker down, a bug in a higher app) is logged and neither fails the write that already
committed nor stops the listeners after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.db import transaction

Listener = Callable[[list[int]], None]
_listeners: list[Listener] = []
CampusListener = Callable[[int], None]
_campus_listeners: list[CampusListener] = []


def on_student_facts_changed(listener: Listener) -> Listener:
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def student_facts_changed(student_ids: Iterable[int]) -> None:
    ids = sorted(set(student_ids))
    if not ids:
        return
    for listener in list(_listeners):
        transaction.on_commit(lambda listener=listener: listener(ids), robust=True)  # type: ignore[misc]


def on_campus_created(listener: CampusListener) -> CampusListener:
    """A higher app sets up what each new campus starts with (personas: its default tag rules)."""
    if listener not in _campus_listeners:
        _campus_listeners.append(listener)
    return listener


def campus_created(campus_id: int) -> None:
    for listener in list(_campus_listeners):
        transaction.on_commit(lambda listener=listener: listener(campus_id), robust=True)  # type: ignore[misc]
