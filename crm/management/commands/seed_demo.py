"""manage.py seed_demo [--students N] [--seed S] [--force | --if-empty]

A realistic institution for trying the product: two campuses, staff for every role
(passwords printed), courses, tags, and a year of history for N students (default 300).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count

from crm.management.demo import DEMO_PARENT_PHONE, DEMO_PASSWORD, MIN_STUDENTS, DemoBuilder, demo_account_specs
from crm.models import Campus, Guardian, Role, Student, StudentStage, StudentTag, TagSource, User
from crm.phones import normalize_phone, phone_display

if TYPE_CHECKING:
    from lifecycle.rules import Thresholds

ROLE_LABELS: dict[str, str] = {
    Role.FRONT_DESK: "前台/顾问",
    Role.TEACHER: "老师",
    Role.MANAGER: "校长",
    Role.ADMIN: "管理员",
}


class Command(BaseCommand):
    help = "Fill the database with a demo institution: two campuses, staff for every role, a year of history."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--students", type=int, default=300, help="how many students (default 300)")
        parser.add_argument("--seed", type=int, default=2024, help="random seed; the same seed gives the same demo")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--force", action="store_true", help="add the demo even though the database already has students"
        )
        mode.add_argument(
            "--if-empty",
            action="store_true",
            help="seed only an empty database; otherwise just print the demo accounts (used by `make run`)",
        )

    def handle(self, *args: Any, students: int, seed: int, force: bool, if_empty: bool, **options: Any) -> None:
        if students < MIN_STUDENTS:
            raise CommandError(f"--students must be at least {MIN_STUDENTS}, so every kind of history is there.")
        existing = Student.objects.count()
        if existing and if_empty:
            self.stdout.write(f"The database already has {existing} students; not seeding the demo again.")
            self.print_accounts()
            return
        if existing and not force:
            raise CommandError(
                f"The database already has {existing} students. seed_demo fills an empty database; "
                "run it with --force to add the demo anyway."
            )
        self.stdout.write(f"Seeding a demo institution with {students} students (seed {seed})...")
        summary = self.build_and_decide(students=students, seed=seed)
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(summary.kinds.items()))
        self.stdout.write(
            self.style.SUCCESS(f"Seeded {summary.students} students in {summary.seconds:.1f} s ({kinds}).")
        )
        self.print_accounts()

    def build_and_decide(self, *, students: int, seed: int) -> Any:
        """Write the facts, let the lifecycle engine decide every student's stage from them, then
        compute every profile, apply the campuses' tag rules and keep every campus's overview.

        The services would schedule one recomputation per call; they are held back and the
        engine runs once, set-based, over everyone (the command sits above the apps; crm's models
        and services never import lifecycle or personas). The campuses' thresholds place the demo's
        anchor students, so every stage is there whatever today's date is.
        """
        from lifecycle.models import StageSource
        from lifecycle.services.activity import activity_rebuild_all
        from lifecycle.services.events import recompute_deferred
        from lifecycle.services.facts import thresholds_by_campus
        from lifecycle.services.recompute import recompute_stages
        from personas.services.tag_rules import tag_rules_ship_defaults

        def thresholds_for(campus: Campus) -> Thresholds:
            return thresholds_by_campus()[campus.pk]

        with recompute_deferred(recompute=False):
            summary = DemoBuilder(students=students, seed=seed, thresholds_for=thresholds_for).build()
        activity_rebuild_all()
        result = recompute_stages(source=StageSource.NIGHTLY, full=True)
        stages = StudentStage.objects.values("stage").annotate(n=Count("pk")).order_by("stage")
        self.stdout.write(
            f"Lifecycle engine: {result.changed} stage changes; "
            + ", ".join(f"{row['stage']} {row['n']}" for row in stages)
        )
        from personas.services.overview import overview_refresh
        from personas.services.profiles import profiles_recompute

        # The campuses were written by the builder, not crm's campus service: they get the default
        # tag rules here. The profiles follow the stages (tags by rule read them): every student and
        # campus at once, then the rules.
        tag_rules_ship_defaults()
        profiles = profiles_recompute(full=True)
        by_rule = StudentTag.objects.filter(source=TagSource.RULE).count()
        self.stdout.write(
            f"Personas: {profiles.computed} profiles, {profiles.campuses_scored} campuses scored, "
            f"{by_rule} tags by rule"
        )
        overview = overview_refresh()
        self.stdout.write(f"Overview: {overview} groups kept for every campus")
        from campaigns.demo import seed_campaigns

        demo = seed_campaigns()
        self.stdout.write(
            f"Campaigns: {demo.consents} families' SMS consent recorded, {demo.campaigns} draft campaigns"
        )
        return summary

    def print_accounts(self) -> None:
        specs = demo_account_specs()
        present = set(User.objects.filter(username__in=[a.username for a in specs]).values_list("username", flat=True))
        accounts = [a for a in specs if a.username in present]
        if not accounts:
            self.stdout.write("No demo accounts in this database.")
            return
        self.stdout.write("")
        self.stdout.write(f"Demo accounts (password for all: {DEMO_PASSWORD})")
        self.stdout.write(f"  {'role':<11} {'username':<14} {'name':<8} campus")
        for account in accounts:
            role = f"{account.role}"
            self.stdout.write(
                f"  {role:<11} {account.username:<14} {account.name:<8} {account.campus}  ({ROLE_LABELS[account.role]})"
            )
        self.print_demo_parent()

    def print_demo_parent(self) -> None:
        """The parent who logs in to the H5 app at /m/; the console SMS provider prints the code."""
        guardian = Guardian.objects.filter(phone=normalize_phone(DEMO_PARENT_PHONE)).first()
        if guardian is None:
            return
        children = ", ".join(
            f"{child.name} ({child.campus.name})"
            for child in guardian.students.select_related("campus").order_by("campus__code", "pk")
        )
        self.stdout.write("")
        self.stdout.write(f"Demo parent for the parent app at /m/ (家长端): phone {phone_display(guardian.phone)}")
        self.stdout.write(f"  {guardian.name} ({guardian.relation}), children: {children}")
        self.stdout.write("  Tap 获取验证码: the SMS code is printed in this console (the console SMS provider).")
