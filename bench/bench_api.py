"""Issue 12's budgets for the API, over HTTP against gunicorn (2 workers) on PostgreSQL with
1,000,000 students, driven by a load generator on the same machine (Debian's `hey`):
- a parent's child page (GET /api/v1/parent/children/<id>/) at 100 requests per second,
  p95 50 ms or less, no errors;
- the staff student list (GET /api/v1/students/, a campus manager's first page through an
  integration token) at 50 requests per second, p95 150 ms or less, no errors.

The data is the lifecycle bench's (bench/bench_lifecycle.py: 1,000,000 students in ten
campuses, generated once and reused). One of its students with a contract and a year of
attendance gets a parent (and upcoming lessons); the parent logs in through the service, the
manager gets a token. Latency is the load generator's, per request, client side (so it
includes HTTP and gunicorn), over RUN_SECONDS after a warm-up; the rate achieved is printed
beside the rate asked for (hey's workers wait for their answer, so a slow server would show
a lower rate, not a hidden queue).

Run: `make bench BENCH=api` or `.venv/bin/python -m bench api`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_SECONDS = 30
WARM_SECONDS = 5
WORKERS = 2
PARENT_PHONE = "+8613700137000"
MANAGER = "bench_api_manager"
# (label, path template, rate per second, p95 budget in ms)
CHILD_RATE, CHILD_BUDGET = 100, 50.0
LIST_RATE, LIST_BUDGET = 50, 150.0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fixtures() -> tuple[int, str, str]:
    """The bench parent's child id, the parent's access token and the manager's API token."""
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from bench.bench_lifecycle import CAMPUS_PREFIX
    from crm.models import Attendance, Campus, Guardian, Lesson, Role, Student, User
    from crm.roles import role_group
    from parents.services.sessions import session_open

    guardian = Guardian.objects.filter(phone=PARENT_PHONE).first()
    if guardian is None:
        guardian = Guardian.objects.create(phone=PARENT_PHONE, name="压测家长", relation="妈妈")
        # A child with a long history: the busiest kind of page.
        child_id = (
            Attendance.objects.filter(student__campus__code=f"{CAMPUS_PREFIX}0")
            .values_list("student_id", flat=True)
            .order_by("-lesson_at")
            .first()
        )
        if child_id is None:
            raise RuntimeError("the lifecycle bench's data has no attendance at its first campus")
        child = Student.objects.get(pk=child_id)
        child.guardians.add(guardian)
        contract = child.contracts.order_by("-signed_at").first()
        teacher = Attendance.objects.filter(student=child).first().teacher  # type: ignore[union-attr]
        for day in range(1, 11):
            lesson = Lesson.objects.create(
                course=contract.course,  # type: ignore[union-attr]
                teacher=teacher,
                starts_at=timezone.now() + dt.timedelta(days=day * 3),
            )
            lesson.students.add(child)
    child = Student.objects.filter(guardians=guardian).get()
    access = session_open(guardian=guardian, via="sms").access
    campus = Campus.objects.get(code=f"{CAMPUS_PREFIX}0")
    manager, created = User.objects.get_or_create(username=MANAGER, defaults={"campus": campus})
    if created:
        manager.groups.add(role_group(Role.MANAGER))
    token, _ = Token.objects.get_or_create(user=manager)
    return child.pk, access, token.key


class Gunicorn:
    def __init__(self) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # As production runs it: connections kept between requests (README, DATABASE_CONN_MAX_AGE).
        env = {**os.environ, "DEBUG": "0", "CELERY_TASK_ALWAYS_EAGER": "1", "DATABASE_CONN_MAX_AGE": "60"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{self.port}", "-w", str(WORKERS)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("gunicorn did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _load(url: str, header: str, rate: int, seconds: int) -> tuple[list[float], list[int], float]:
    """`hey` at `rate` requests per second (10 workers at rate/10 each) for `seconds`."""
    workers = 10
    command = ["hey", "-z", f"{seconds}s", "-c", str(workers), "-q", str(rate / workers), "-H", header, "-o", "csv"]
    started = time.perf_counter()
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - started
    rows = list(csv.DictReader(io.StringIO(output)))
    latencies = [float(r["response-time"]) * 1000 for r in rows]
    statuses = [int(r["status-code"]) for r in rows]
    return latencies, statuses, len(rows) / elapsed


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[94]


def _line(label: str, rate: int, budget: float, result: tuple[list[float], list[int], float]) -> str:
    latencies, statuses, achieved = result
    errors = sum(1 for s in statuses if s != 200)
    p95 = _p95(latencies)
    ok = p95 <= budget and errors == 0 and achieved >= rate * 0.95
    return (
        f"{label}: p95 {p95:.2f} ms, median {statistics.median(latencies):.2f} ms, "
        f"{len(latencies):,} requests at {achieved:.1f}/s (asked {rate}/s), {errors} errors   "
        f"(budget p95 {budget:.0f} ms at {rate}/s, no errors: {'ok' if ok else 'OVER'})"
    )


def main() -> list[str]:
    from bench.bench_lifecycle import ensure_data

    if shutil.which("hey") is None:
        return ["skipped: the load generator `hey` is missing (Debian: apt-get install hey; `make bench` installs it)"]
    out: list[str] = []
    ensure_data(out)
    child_id, access, token = _fixtures()
    from django.db import connection

    connection.close()  # gunicorn's workers get the database to themselves
    server = Gunicorn()
    try:
        child_url = f"{server.base}/api/v1/parent/children/{child_id}/"
        list_url = f"{server.base}/api/v1/students/"
        parent, staff = f"Bearer {access}", f"Token {token}"
        for url, auth in ((child_url, parent), (list_url, staff)):
            with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": auth})) as answer:
                assert answer.status == 200, url
        _load(child_url, f"Authorization: {parent}", CHILD_RATE, WARM_SECONDS)
        child = _load(child_url, f"Authorization: {parent}", CHILD_RATE, RUN_SECONDS)
        _load(list_url, f"Authorization: {staff}", LIST_RATE, WARM_SECONDS)
        students = _load(list_url, f"Authorization: {staff}", LIST_RATE, RUN_SECONDS)
    finally:
        server.stop()
    out.append(
        f"gunicorn {WORKERS} workers (sync, DATABASE_CONN_MAX_AGE=60), hey with 10 workers, "
        f"{RUN_SECONDS} s each after {WARM_SECONDS} s"
    )
    out.append(_line("parent child page (a year of attendance, 10 lessons ahead)", CHILD_RATE, CHILD_BUDGET, child))
    out.append(_line("staff student list (a campus of 100,000, first page)", LIST_RATE, LIST_BUDGET, students))
    return out
