"""manage.py recompute_stages [--campus CODE] [--now ISO] [--full] [--rebuild]

Runs the lifecycle recomputation by hand: the nightly run (the students time may have
moved), or every student with --full; --rebuild first recomputes every kept aggregate from
the fact tables (after a bulk load that bypassed the services).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from crm.models import Campus
from lifecycle.models import StageSource
from lifecycle.services.activity import activity_rebuild_all
from lifecycle.services.recompute import recompute_stages


class Command(BaseCommand):
    help = "Recompute lifecycle stages and flags (the nightly run), optionally for one campus or at a given moment."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campus", help="only this campus (its code)")
        parser.add_argument("--now", help="decide as of this moment (ISO 8601; local time if no offset)")
        parser.add_argument("--full", action="store_true", help="decide every student, not only those due")
        parser.add_argument("--rebuild", action="store_true", help="first rebuild every kept aggregate")

    def handle(
        self, *args: Any, campus: str | None, now: str | None, full: bool, rebuild: bool, **options: Any
    ) -> None:
        campus_id = None
        if campus:
            found = Campus.objects.filter(code=campus).values_list("pk", flat=True).first()
            if found is None:
                raise CommandError(f"No campus with code {campus!r}.")
            campus_id = found
        moment = None
        if now:
            try:
                moment = dt.datetime.fromisoformat(now)
            except ValueError:
                raise CommandError(f"--now: {now!r} is not an ISO 8601 date-time.") from None
            if timezone.is_naive(moment):
                moment = timezone.make_aware(moment)
        started = time.perf_counter()
        if rebuild:
            written = activity_rebuild_all()
            self.stdout.write(f"Rebuilt the aggregates: {written} rows written.")
        result = recompute_stages(now=moment, source=StageSource.NIGHTLY, campus_id=campus_id, full=full)
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.decided} students decided, {result.changed} stage changes, "
                f"{result.rows_written} stage rows written in {time.perf_counter() - started:.2f} s."
            )
        )
