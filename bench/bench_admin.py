"""Issue 3's budget for the admin's student list: 300 ms or less at the 95th percentile,
unfiltered and filtered, on 1,000,000 students (no exact count of the table per view).

The data is the lifecycle bench's (bench/bench_lifecycle.py), generated once and reused.
Each list is requested through Django's test client (middleware, session, queries,
template) after a warm-up, as an administrator (all campuses) and as a manager of one campus.

Run: `make bench BENCH=admin` or `.venv/bin/python -m bench admin`.
"""

from __future__ import annotations

import statistics
import time

REQUESTS = 30
WARM_UP = 3
BUDGET_MS = 300.0
URL = "/admin/crm/student/"


def _lists() -> list[tuple[str, dict[str, str]]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM crm_student ORDER BY id DESC LIMIT 1")
        name = cursor.fetchone()[0]  # type: ignore[index]
        cursor.execute("SELECT phone FROM crm_guardian ORDER BY id DESC LIMIT 1")
        guardian = cursor.fetchone()
    lists = [
        ("unfiltered", {}),
        ("filtered by stage", {"pipeline__stage__exact": "active"}),
        ("filtered by stage and channel", {"pipeline__stage__exact": "dormant", "channel__exact": "douyin"}),
        ("search by part of a name", {"q": name[1:3] if len(name) > 2 else name}),
    ]
    if guardian:
        phone = guardian[0]
        lists.append(("search by phone (national format)", {"q": phone[3:] if phone.startswith("+86") else phone}))
    return lists


def _measure(user: object, params: dict[str, str]) -> list[float]:
    from django.test import Client

    client = Client()
    client.force_login(user)  # type: ignore[arg-type]
    for _ in range(WARM_UP):
        assert client.get(URL, params).status_code == 200
    timings = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = client.get(URL, params)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return timings


def main() -> list[str]:
    from django.conf import settings

    from bench.bench_board import _viewers
    from bench.bench_lifecycle import ensure_data

    if "testserver" not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    out: list[str] = []
    ensure_data(out)
    manager, admin = _viewers()
    lists = _lists()
    for who, user in (("administrator", admin), ("manager of one campus", manager)):
        for label, params in lists:
            timings = _measure(user, params)
            p95 = statistics.quantiles(timings, n=20)[-1]
            verdict = "ok" if p95 <= BUDGET_MS else "OVER"
            out.append(
                f"admin student list, {who}, {label}: p95 {p95:.0f} ms, median {statistics.median(timings):.0f} ms"
                f"   (budget <= {BUDGET_MS:.0f} ms: {verdict})"
            )
    return out
