"""Run the benchmarks: `python -m bench [name ...]` (`make bench`).

Each module bench/bench_<name>.py exposes `main() -> list[str]`, the lines of results
to print. The runner points Django at a dedicated PostgreSQL database (scrm_bench by
default, created if missing, migrated), prints the machine and the date, then each
benchmark's lines, ready to paste into docs/benchmarks.md.

Environment: BENCH_DATABASE_URL (the database to use, as is), else DATABASE_URL with
its database name replaced by BENCH_DB_NAME (default scrm_bench), else
postgres://postgres@127.0.0.1:5432/scrm_bench. Tasks run in-process
(CELERY_TASK_ALWAYS_EAGER=1) unless set otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import pkgutil
import platform
import sys
import time
import traceback
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/scrm_bench"


def bench_database_url() -> str:
    explicit = os.environ.get("BENCH_DATABASE_URL")
    if explicit:
        return explicit
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith(("postgres://", "postgresql://")):
        return DEFAULT_URL
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path="/" + os.environ.get("BENCH_DB_NAME", "scrm_bench")))


def ensure_database(url: str) -> None:
    """Create the benchmark database if it does not exist (connecting to `postgres`)."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}", file=sys.stderr)


def available() -> list[str]:
    import bench

    return sorted(
        info.name.removeprefix("bench_")
        for info in pkgutil.iter_modules(bench.__path__)
        if info.name.startswith("bench_")
    )


def machine_lines() -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        row = cursor.fetchone()
    server = row[0] if row else "?"
    return [
        f"date: {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %z}",
        f"machine: {os.cpu_count()} CPUs ({cpu}), {memory} memory, {platform.system()} {platform.release()}",
        f"python {platform.python_version()}, PostgreSQL {server}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all), e.g. import")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    names = available()
    if args.list:
        print("\n".join(names) or "(no bench/bench_*.py modules)")
        return 0
    wanted = [name.removeprefix("bench_") for name in args.names] or names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(names) or 'none'}")

    url = bench_database_url()
    if not url.startswith(("postgres://", "postgresql://")):
        parser.error(f"benchmarks run on PostgreSQL; {url!r} is not a postgres:// URL")
    ensure_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)

    print("# SCRM benchmarks")
    for line in machine_lines():
        print(line)
    print(f"database: {urlsplit(url).hostname}:{urlsplit(url).port or 5432}{urlsplit(url).path}")
    if not wanted:
        print("\n(no bench/bench_*.py modules)")
        return 0

    failed = []
    for name in wanted:
        print(f"\n## {name}")
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.bench_{name}")
            for line in module.main():
                print(line, flush=True)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            print(f"FAILED after {time.perf_counter() - started:.1f} s")
        else:
            print(f"({name}: {time.perf_counter() - started:.1f} s in all)")
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
