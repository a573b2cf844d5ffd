"""Races on PostgreSQL: several calls started at the same instant, each on its own connection."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connections


def race(*calls: Callable[[], object]) -> list[object]:
    """Run `calls` at the same instant, one thread and one connection each; return each
    call's result or the exception it raised, in order."""
    start = threading.Barrier(len(calls))
    outcomes: list[object] = [None] * len(calls)

    def run(index: int, call: Callable[[], object]) -> None:
        try:
            start.wait(timeout=10)
            outcomes[index] = call()
        except Exception as exc:
            outcomes[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a racer hung: a lock was never released"
    return outcomes
