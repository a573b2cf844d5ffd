"""Issue 3's budget for the pipeline board: the first render of /board/, counts included,
300 ms or less server time at the 95th percentile on 1,000,000 students, with a constant
number of queries.

The data is the lifecycle bench's (bench/bench_lifecycle.py: 1,000,000 students in ten
campuses, generated in SQL once and reused). If its students were never decided (all
still leads), their aggregates are rebuilt and they are decided once here with the
engine's nightly run, so the columns hold what the engine makes of the facts.

Measured in-process through Django's test client (the whole request: middleware, session,
queries, template), after a warm-up:
- a manager of one campus (about 100,000 students, the board's usual viewer);
- an administrator, who sees all campuses (every student of the database).

Run: `make bench BENCH=board` or `.venv/bin/python -m bench board`.
"""

from __future__ import annotations

import statistics
import time

REQUESTS = 60
WARM_UP = 5
BUDGET_MS = 300.0
MANAGER = "bench_board_manager"
ADMIN = "bench_board_admin"


def _board_index() -> str | None:
    """An index that serves every column's page: (campus_id, stage, changed_at DESC, student_id DESC)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'crm_studentstage' "
            "AND indexdef LIKE '%%(campus_id, stage, changed_at DESC, student_id DESC)%%'"
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _viewers() -> tuple[object, object]:
    from bench.bench_lifecycle import CAMPUS_PREFIX
    from crm.models import Campus, Role, User
    from crm.roles import role_group

    campus = Campus.objects.get(code=f"{CAMPUS_PREFIX}0")
    manager, created = User.objects.get_or_create(username=MANAGER, defaults={"campus": campus, "is_staff": True})
    if created:
        manager.groups.add(role_group(Role.MANAGER))
    admin, created = User.objects.get_or_create(
        username=ADMIN, defaults={"campus": None, "is_staff": True, "is_superuser": True}
    )
    if created:
        admin.groups.add(role_group(Role.ADMIN))
    return manager, admin


def _measure(user: object) -> tuple[list[float], int, int]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(user)  # type: ignore[arg-type]
    for _ in range(WARM_UP):
        assert client.get("/board/").status_code == 200
    timings = []
    queries = set()
    cards = 0
    for _ in range(REQUESTS):
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            response = client.get("/board/")
            timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
        queries.add(len(ctx.captured_queries))
        cards = response.content.count(b'<li class="board-card')
    if len(queries) != 1:
        raise AssertionError(f"the board's query count varied between requests: {sorted(queries)}")
    return timings, queries.pop(), cards


def main() -> list[str]:
    from django.conf import settings
    from django.db import connection

    from bench.bench_lifecycle import CAMPUS_PREFIX, NOW, ensure_data
    from lifecycle.services.activity import activity_rebuild_all
    from lifecycle.services.recompute import recompute_stages

    if "testserver" not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    out: list[str] = []
    ensure_data(out)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE stage <> 'lead') FROM crm_studentstage s JOIN crm_campus c "
            "ON c.id = s.campus_id WHERE c.code LIKE %s",
            [CAMPUS_PREFIX + "%"],
        )
        decided = cursor.fetchone()[0]  # type: ignore[index]
    if not decided:  # as the lifecycle bench does: the aggregates from the facts, then the nightly run
        started = time.perf_counter()
        activity_rebuild_all()
        recompute_stages(now=NOW, source="nightly")
        out.append(f"stages decided first (aggregates rebuilt, nightly run): {time.perf_counter() - started:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM crm_student")
        total = cursor.fetchone()[0]  # type: ignore[index]
        cursor.execute("VACUUM ANALYZE crm_studentstage")
    index = _board_index()
    out.append(f"students in the database: {total:,}; column index: {index or 'none (each column sorts its rows)'}")

    manager, admin = _viewers()
    for label, user in (("manager of one campus", manager), ("administrator, all campuses", admin)):
        timings, queries, cards = _measure(user)
        p95 = statistics.quantiles(timings, n=20)[-1]
        verdict = "ok" if p95 <= BUDGET_MS else "OVER"
        out.append(
            f"board first render, {label}: p95 {p95:.0f} ms, median {statistics.median(timings):.0f} ms, "
            f"{queries} queries, {cards} cards   (budget <= {BUDGET_MS:.0f} ms: {verdict})"
        )
    return out
