"""Acceptance test 2: a campaign survives its machinery failing under it.

Two real Celery worker processes send a 5,000-family campaign from PostgreSQL through Redis to the
local SMS gateway. Mid-run one worker is killed with SIGKILL and started again, and Redis (the
broker and the cache: a private server without persistence, so a restart loses every queued and
unacknowledged task) is killed and started again. The reconcilers run as the beat runs them. By the
gateway's own counts every family gets exactly one message: none lost, none twice.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import quote

import pytest
import redis
from celery import Celery
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachable

from campaigns.models import Campaign, CampaignStatus, Consent, ConsentRecord, ConsentSource, Message, MessageStatus
from campaigns.services.campaigns import campaign_launch
from campaigns.services.marketing_settings import marketing_settings_update
from campaigns.services.messages import messages_sweep
from campaigns.tasks import campaigns_tick
from config.celery import app as celery_app
from crm.models import Campus, Guardian, Stage, Student, StudentGuardian, StudentStage, User
from personas.models import Segment
from tests.campaigns.gateway import KEY, SECRET, Gateway
from tests.campaigns.test_campaigns import DORMANT, sms_campaign
from tests.factories import SegmentFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RECIPIENTS = 5_000
# The faults strike when the gateway has delivered this many: early, then mid-run.
KILL_WORKER_AT = 1_000
RESTART_REDIS_AT = 2_500
REDIS_DOWN_SECONDS = 1.0
# The reconcilers' thresholds, short so a lost task costs seconds, not minutes (they are minutes
# in production); the beat runs them every BEAT_SECONDS instead of every minute.
STUCK_SECONDS = 5
IDLE_SECONDS = 5
BEAT_SECONDS = 2.0
DEADLINE_SECONDS = 150
# Each worker takes two tasks at a time (acks late, prefetch 1), so the four batch tasks a launch
# starts are shared two and two: the killed worker is killed mid-batch.
WORKER_CONCURRENCY = 2
PARALLEL_TASKS = 4
BATCH_SIZE = 50
SMS_RATE_LIMIT = 600  # per second across both workers: the limiter's counters live in Redis
GATEWAY_LATENCY = 0.01


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@dataclass
class RedisServer:
    """A redis-server of this test's own, so killing it disturbs nothing else."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        command += ["--save", "", "--appendonly", "no"]
        with open(self.directory / "redis.log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise AssertionError(log_tail(self.directory / "redis.log")) from None
                time.sleep(0.02)
            finally:
                client.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


@dataclass
class Worker:
    """`celery -A config worker` as production runs it, on the private Redis and the test database."""

    name: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "threads"]
        command += ["--concurrency", str(WORKER_CONCURRENCY), "-Q", "default", "--loglevel", "INFO"]
        command += ["--without-heartbeat", "--without-gossip", "--without-mingle", "-n", f"{self.name}@%h"]
        self.log_file = open(self.log, "ab")  # noqa: SIM115  # closed by kill()
        self.process = subprocess.Popen(
            command, cwd=django_settings.BASE_DIR, env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while b" ready." not in self.log.read_bytes():
            assert self.process is not None and self.process.poll() is None, log_tail(self.log)
            assert time.monotonic() < deadline, log_tail(self.log)
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


def database_url() -> str:
    """The test database pytest-django created, for the workers (the test commits its rows)."""
    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else ""
    return f"postgres://{quote(db['USER'])}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs the redis-server binary")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def on_private_broker(private_redis: RedisServer, settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Celery]:
    """This process publishes (the launch, the beat's tick) to the private Redis, as the workers'
    beat would, with the workers' thresholds: through an app of its own, made the current one,
    which the shared tasks follow; the product's app and its connections are left alone."""
    if connection.vendor != "postgresql":
        pytest.skip("the workers share the test database: needs PostgreSQL")
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)  # Celery prefers it to its configuration
    app = Celery("scrm-fault-test", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.broker_url = private_redis.url
    app.conf.task_always_eager = False
    settings.MESSAGING_STUCK_SECONDS = STUCK_SECONDS
    settings.CAMPAIGN_IDLE_SECONDS = IDLE_SECONDS
    settings.CAMPAIGN_PARALLEL_TASKS = PARALLEL_TASKS
    app.set_current()
    try:
        yield app
    finally:
        celery_app.set_current()
        app.close()


@pytest.fixture
def workers(
    on_private_broker: Celery, private_redis: RedisServer, sms_gateway_server: Gateway, tmp_path: Path
) -> Iterator[list[Worker]]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(),
        "REDIS_URL": private_redis.url,
        "CELERY_BROKER_URL": private_redis.url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "SMS_PROVIDER": "sms_gateway",
        "SMS_GATEWAY_URL": sms_gateway_server.url,
        "SMS_GATEWAY_KEY": KEY,
        "SMS_GATEWAY_SECRET": SECRET,
        "SMS_GATEWAY_TIMEOUT": "5",
        "SMS_RATE_LIMIT": str(SMS_RATE_LIMIT),
        "MESSAGING_STUCK_SECONDS": str(STUCK_SECONDS),
        "CAMPAIGN_IDLE_SECONDS": str(IDLE_SECONDS),
        "CAMPAIGN_BATCH_SIZE": str(BATCH_SIZE),
        "CAMPAIGN_PARALLEL_TASKS": str(PARALLEL_TASKS),
        "CAMPAIGN_SEND_THREADS": "8",
    }
    started = [Worker(name, env, tmp_path / f"{name}.log") for name in ("w1", "w2")]
    try:
        for worker in started:
            worker.start()
        for worker in started:
            worker.wait_ready()
        yield started
    finally:
        for worker in started:
            worker.kill()


def dormant_families_in_bulk(campus: Campus, consultant: User, n: int) -> list[Guardian]:
    """n dormant students of the campus, each with a guardian who consented to SMS marketing:
    set-based, as an import would write them (5,000 service calls would take minutes)."""
    now = timezone.now()
    guardians = Guardian.objects.bulk_create(
        Guardian(name=f"家长{i}", phone=f"+86137{i:08d}", relation="妈妈") for i in range(n)
    )
    students = Student.objects.bulk_create(
        Student(name=f"学生{i}", campus=campus, owner=consultant, created_by=consultant) for i in range(n)
    )
    StudentStage.objects.bulk_create(
        StudentStage(student=student, campus=campus, stage=Stage.DORMANT, changed_at=now) for student in students
    )
    StudentGuardian.objects.bulk_create(
        StudentGuardian(student=student, guardian=guardian)
        for student, guardian in zip(students, guardians, strict=True)
    )
    records = ConsentRecord.objects.bulk_create(
        ConsentRecord(
            guardian=guardian,
            channel="sms",
            granted=True,
            source=ConsentSource.STAFF,
            wording="同意接收课程优惠短信",
            recorded_by=consultant,
        )
        for guardian in guardians
    )
    Consent.objects.bulk_create(
        Consent(guardian=record.guardian, channel="sms", granted=True, record=record) for record in records
    )
    return guardians


@pytest.fixture
def dormant_segment(campus_a: Campus) -> Segment:
    return SegmentFactory(campus=campus_a, name="沉睡学员", conditions=DORMANT)


def run_beat() -> None:
    """What the beat runs every minute: the sweep, then the tick. A tick that finds the broker
    down fails as the beat's would, and the next one tries again."""
    messages_sweep()
    with contextlib.suppress(BrokerUnreachable):
        campaigns_tick()


def status_counts(campaign: Campaign) -> dict[str, int]:
    return dict(Counter(Message.objects.filter(campaign=campaign).values_list("status", flat=True)))


def test_a_killed_worker_and_a_restarted_redis_lose_and_repeat_nothing(
    on_private_broker: Celery,
    workers: list[Worker],
    private_redis: RedisServer,
    sms_gateway_server: Gateway,
    manager: User,
    front_desk: User,
    dormant_segment: Segment,
) -> None:
    campus = dormant_segment.campus
    assert campus is not None
    # Any hour of the day: the campus has no quiet hours.
    marketing_settings_update(actor=manager, campus=campus, quiet_from=dt.time(0), quiet_until=dt.time(0))
    guardians = dormant_families_in_bulk(campus, front_desk, RECIPIENTS)
    gateway = sms_gateway_server
    gateway.latency = GATEWAY_LATENCY
    first, _second = workers

    campaign = campaign_launch(actor=manager, campaign=sms_campaign(manager, dormant_segment))
    started = time.monotonic()
    killed_at = restarted_at = None
    next_beat = started + BEAT_SECONDS
    done = Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.DONE)
    while not done.exists():
        assert time.monotonic() - started < DEADLINE_SECONDS, (
            f"not done: gateway {gateway.sent_count}, rows {status_counts(campaign)}\n"
            + "\n".join(log_tail(worker.log) for worker in workers)
        )
        if killed_at is None and gateway.sent_count >= KILL_WORKER_AT:
            first.kill()
            killed_at = gateway.sent_count
            first.start()
        elif killed_at is not None and restarted_at is None and gateway.sent_count >= RESTART_REDIS_AT:
            private_redis.kill()
            restarted_at = gateway.sent_count
            time.sleep(REDIS_DOWN_SECONDS)
            private_redis.start()
        if time.monotonic() >= next_beat:
            run_beat()
            next_beat = time.monotonic() + BEAT_SECONDS
        time.sleep(0.05)
    elapsed = time.monotonic() - started

    # Both faults struck mid-run.
    assert killed_at is not None and restarted_at is not None
    assert KILL_WORKER_AT <= killed_at < restarted_at < RECIPIENTS, (killed_at, restarted_at)
    # By the gateway's own counts: every family's phone got one message, and nothing else did.
    phones = Counter(message["phone"] for message in gateway.delivered.values())
    assert phones == Counter(guardian.phone for guardian in guardians)
    rows = list(
        Message.objects.filter(campaign=campaign).values_list("idempotency_key", "status", "provider_message_id")
    )
    assert len(rows) == RECIPIENTS
    assert set(gateway.delivered) == {key for key, _status, _id in rows}
    # Every row recorded as sent, with the id the gateway gave its one message: none lost, none
    # left mid-send, none for a person to check.
    assert Counter(status for _key, status, _id in rows) == {MessageStatus.SENT: RECIPIENTS}
    assert all(gateway.delivered[key]["message_id"] == provider_id for key, _status, provider_id in rows)
    # Both workers outlived the broker's restart and answer on the new one.
    assert all(worker.alive() for worker in workers)
    names = [f"{worker.name}@{socket.gethostname()}" for worker in workers]
    replies = on_private_broker.control.ping(destination=names, timeout=10)
    assert sorted(name for reply in replies for name in reply) == names, replies
    print(
        f"\n{RECIPIENTS} sent in {elapsed:.1f}s; worker killed at {killed_at}, Redis restarted at "
        f"{restarted_at}; {len(gateway.requests) - RECIPIENTS} retried sends deduplicated by the gateway"
    )
