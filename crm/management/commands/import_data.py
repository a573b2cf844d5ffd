"""python manage.py import_data <students|consultations|contracts> FILE [--dry-run] [--campus CODE] [--user USERNAME]

The same import as the staff page and the admin (crm.services.imports.import_rows):
prints the report, exits non-zero with the report when any row is bad (then nothing
is written), and writes nothing at all with --dry-run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser

from crm.models import Campus, User
from crm.services.imports import KINDS, ImportFileError, import_rows, read_table


class Command(BaseCommand):
    help = "Import students (with guardians and tags), consultations or contracts from an xlsx or csv file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", choices=KINDS)
        parser.add_argument("file", type=Path)
        parser.add_argument("--dry-run", action="store_true", help="Check and classify every row; write nothing.")
        parser.add_argument("--campus", help="Campus code (default: the user's campus).")
        parser.add_argument("--user", help="Username the import is recorded under (default: the first superuser).")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = self._actor(options["user"])
        campus = self._campus(options["campus"], actor)
        path: Path = options["file"]
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"{path}: {exc.strerror}") from None
        try:
            table = read_table(content, path.name)
        except ImportFileError as exc:
            raise CommandError(f"{path.name}: {exc.message}") from None

        def progress(phase: str, done: int, total: int) -> None:
            if options["verbosity"] >= 2:
                self.stderr.write(f"{phase} {done}/{total}")

        try:
            report = import_rows(
                kind=options["kind"],
                table=table,
                campus=campus,
                actor=actor,
                dry_run=options["dry_run"],
                file_name=path.name,
                progress=progress,
            )
        except PermissionDenied as exc:
            raise CommandError(f"{actor.username}: {exc}") from None
        for line in report.lines():
            self.stdout.write(line)
        if not report.ok:
            raise CommandError(f"{report.counts['error']} row(s) with errors; nothing was written.")

    def _actor(self, username: str | None) -> User:
        if username:
            try:
                return User.objects.get(username=username, is_active=True)
            except User.DoesNotExist:
                raise CommandError(f"No active user {username!r}.") from None
        actor = User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
        if actor is None:
            raise CommandError("No superuser to record the import under; pass --user USERNAME.")
        return actor

    def _campus(self, code: str | None, actor: User) -> Campus:
        if code:
            try:
                return Campus.objects.get(code=code)
            except Campus.DoesNotExist:
                known = ", ".join(Campus.objects.values_list("code", flat=True))
                raise CommandError(f"No campus {code!r} (known: {known}).") from None
        if actor.campus is not None:
            return actor.campus
        campuses = list(Campus.objects.all()[:2])
        if len(campuses) == 1:
            return campuses[0]
        raise CommandError("Which campus? Pass --campus CODE.")
