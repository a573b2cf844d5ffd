"""The listener crm's write services reach after commit (registered in LifecycleConfig.ready).

Every fact-changing crm service calls `crm.events.student_facts_changed(ids)`; after the
commit, `student_facts_changed` below schedules the `lifecycle.recompute_students` task for
those ids (in-process in the embedded default, where Celery runs eagerly).

Once the event path has decided them, `students_decided(ids)` tells the higher apps' listeners
(`on_students_decided`), after commit.

`recompute_deferred()` holds the ids back while a block runs and recomputes them in one
set-based run when it ends: for bulk writers (the demo seed) that would otherwise schedule
one task per service call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import transaction

_local = threading.local()

DecidedListener = Callable[[list[int]], None]
_decided_listeners: list[DecidedListener] = []


def on_students_decided(listener: DecidedListener) -> DecidedListener:
    """A higher app (personas) asks to hear of students decided after their facts changed, so
    what it derives from the stage follows the engine's decision, never runs before it."""
    if listener not in _decided_listeners:
        _decided_listeners.append(listener)
    return listener


def students_decided(student_ids: list[int]) -> None:
    """Called by the event path once its decisions are written; listeners run after commit."""
    ids = sorted(set(student_ids))
    if not ids:
        return
    for listener in list(_decided_listeners):
        transaction.on_commit(lambda listener=listener: listener(ids), robust=True)  # type: ignore[misc]


def student_facts_changed(student_ids: list[int]) -> None:
    pending: set[int] | None = getattr(_local, "pending", None)
    if pending is not None:
        pending.update(student_ids)
        return
    from lifecycle.tasks.recompute import recompute_students

    recompute_students.delay(list(student_ids))


@contextmanager
def recompute_deferred(*, recompute: bool = True) -> Iterator[set[int]]:
    """Collect the ids of facts changed inside the block; recompute them all once at its end
    (or not at all with recompute=False, when the caller runs the full recomputation itself)."""
    outer = getattr(_local, "pending", None)
    if outer is not None:  # nested: the outermost block recomputes
        yield outer
        return
    pending: set[int] = set()
    _local.pending = pending
    try:
        yield pending
    finally:
        _local.pending = None
    if pending and recompute:
        from lifecycle.services.recompute import recompute_after_event

        recompute_after_event(sorted(pending))
