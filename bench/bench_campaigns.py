"""Issue 11's budgets for campaigns, on the lifecycle bench's 1,000,000 students:

(a) an audience of 100,000 resolved into outbox rows, suppressions applied, in 10 s or less: the
    first bench campus whole (a segment with no condition), SMS and email, so 200,000 outbox rows
    plus the members; `campaign_resolve`, the statements a launch runs, rolled back after each of
    three runs (best and worst reported), beside the dry run (the same statements, counted);
(b) sending at 1,000 messages per second or more, sustained over 50,000 messages, with two real
    Celery worker processes (threads pool) and a local gateway answering each request in 20 ms
    (tests/campaigns/gateway.py in its own process, signatures checked, deduplicated by key).

The bench's families are made here once, in SQL, for the first two campuses (a guardian per
student, linked; a third with an email; SMS consent for 90%, a tenth of the rest opted out; email
consent for those with an address), and kept (the marker table `bench_campaigns_generated`). The
bench campuses keep no quiet hours and no frequency cap, so the figures do not depend on the hour
the bench runs at or on an earlier run; both rules are tested in tests/campaigns/.

Run: `make bench BENCH=campaigns` (after `make bench BENCH=lifecycle` has made the students).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MARKER = "bench_campaigns_generated"
MANAGER = "bench_campaigns_manager"
AUDIENCE_BUDGET_S = 10.0
RATE_BUDGET = 1000.0
SEND_MESSAGES = 50_000
GATEWAY_LATENCY = 0.020
WORKERS = 2
# Batch tasks each worker process works on at once (its Celery concurrency): while one waits on
# the database, the other's messages are in flight.
TASKS_PER_WORKER = 2
ROOT = Path(__file__).resolve().parent.parent

FAMILIES_SQL = [
    # A guardian per student of the first two campuses, phone and email derived from the id.
    """
    INSERT INTO crm_guardian (name, phone, relation, email, wechat_openid, wechat_unionid, created_at, updated_at)
    SELECT '家长' || s.id, '+86139' || lpad(s.id::text, 8, '0'), '妈妈',
           CASE WHEN s.id %% 3 = 0 THEN 'family' || s.id || '@example.cn' ELSE '' END, NULL, NULL, now(), now()
    FROM crm_student s WHERE s.campus_id = ANY(%(campuses)s)
    ON CONFLICT (phone) DO NOTHING
    """,
    """
    INSERT INTO crm_student_guardians (student_id, guardian_id)
    SELECT s.id, g.id FROM crm_student s JOIN crm_guardian g ON g.phone = '+86139' || lpad(s.id::text, 8, '0')
    WHERE s.campus_id = ANY(%(campuses)s)
    ON CONFLICT DO NOTHING
    """,
    # The proof of each decision, then the standing consent on it. (The ids of a bench campus
    # share their last digit: the split is on the next one.)
    """
    INSERT INTO campaigns_consentrecord (guardian_id, channel, granted, source, wording, evidence, recorded_at)
    SELECT g.id, c.channel, (s.id / 10 %% 10 <> 0), 'import', '入学登记表：同意接收短信与邮件', 'bench', now()
    FROM crm_student s
    JOIN crm_guardian g ON g.phone = '+86139' || lpad(s.id::text, 8, '0')
    CROSS JOIN (SELECT 'sms' AS channel UNION ALL SELECT 'email') c
    WHERE s.campus_id = ANY(%(campuses)s)
      AND (s.id / 10 %% 10 <> 0 OR s.id / 10 %% 100 = 0)
      AND (c.channel = 'sms' OR g.email <> '')
    """,
    """
    INSERT INTO campaigns_consent (guardian_id, channel, granted, record_id, updated_at)
    SELECT r.guardian_id, r.channel, r.granted, r.id, now() FROM campaigns_consentrecord r WHERE r.evidence = 'bench'
    ON CONFLICT (guardian_id, channel) DO NOTHING
    """,
]


def line(label: str, value: float, unit: str, budget: str, ok: bool) -> str:
    return f"{label}: {value:,.2f} {unit}   (budget {budget}: {'ok' if ok else 'OVER'})"


def _campuses() -> list[Any]:
    from bench.bench_lifecycle import CAMPUS_PREFIX
    from crm.models import Campus

    return list(Campus.objects.filter(code__in=[f"{CAMPUS_PREFIX}0", f"{CAMPUS_PREFIX}1"]).order_by("code"))


def ensure_families(out: list[str]) -> None:
    from django.db import connection, transaction

    campuses = [c.pk for c in _campuses()]
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {MARKER} (families bigint, seconds float, at timestamptz)")
        cursor.execute(f"SELECT families, seconds, at FROM {MARKER}")
        done = cursor.fetchone()
    if done:
        out.append(f"families: reused {done[0]:,} made on {done[2]:%Y-%m-%d %H:%M} (took {done[1]:.0f} s)")
        return
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in FAMILIES_SQL:
            cursor.execute(statement, {"campuses": campuses})
        cursor.execute("SELECT count(*) FROM crm_student_guardians")
        families = cursor.fetchone()[0]
        seconds = time.perf_counter() - started
        cursor.execute(f"INSERT INTO {MARKER} VALUES (%s, %s, now())", [families, seconds])
        cursor.execute("ANALYZE crm_guardian; ANALYZE crm_student_guardians; ANALYZE campaigns_consent")
    out.append(f"families: made {families:,} in SQL in {seconds:.0f} s")


def _manager(campus: Any) -> Any:
    from crm.models import Role, User
    from crm.roles import role_group

    manager, created = User.objects.get_or_create(username=MANAGER, defaults={"campus": None, "is_superuser": True})
    if created:
        manager.groups.add(role_group(Role.ADMIN))
    return manager


def _relax_rules(campus: Any) -> None:
    """No quiet hours and no cap at the bench campuses, and no contact left from an earlier run."""
    from campaigns.models import MarketingContact, MarketingSettings

    MarketingSettings.objects.update_or_create(
        campus=campus, defaults={"quiet_from": dt.time(0), "quiet_until": dt.time(0), "cap_days": 0}
    )
    MarketingContact.objects.filter(guardian__students__campus=campus).delete()


def _campaign(campus: Any, name: str, channels: list[str]) -> Any:
    from campaigns.services.campaigns import CampaignInput, TemplateInput, campaign_save
    from personas.models import Segment

    segment, _ = Segment.objects.get_or_create(
        name=f"bench {campus.code}", campus=campus, defaults={"conditions": {"all": []}}
    )
    templates = [
        TemplateInput(channel=c, text="{家长}您好，{学员}还有{剩余课时}课时。", subject="好久不见") for c in channels
    ]
    data = CampaignInput(name=name, goal="win_back", segment=segment, channels=channels, templates=templates)
    return campaign_save(actor=_manager(campus), campus=campus, data=data)


class _RollBack(Exception):
    pass


def measure_audience(out: list[str]) -> None:
    from django.db import transaction
    from django.utils import timezone

    from campaigns.models import CampaignMember, Message
    from campaigns.services.audience import dry_run_counts
    from campaigns.services.campaigns import campaign_resolve

    campus = _campuses()[0]
    _relax_rules(campus)
    campaign = _campaign(campus, "bench audience", ["sms", "email"])
    campaign.status = "sending"
    campaign.save(update_fields=["status"])
    seconds: list[float] = []
    counts = (0, 0)
    for _ in range(3):
        try:
            with transaction.atomic():
                started = time.perf_counter()
                campaign_resolve(campaign.pk, now=timezone.now())
                seconds.append(time.perf_counter() - started)
                counts = (
                    CampaignMember.objects.filter(campaign=campaign).count(),
                    Message.objects.filter(campaign=campaign).count(),
                )
                raise _RollBack
        except _RollBack:
            pass
    campaign.status = "draft"
    campaign.save(update_fields=["status"])
    worst = max(seconds)
    out.append(
        line(
            f"(a) audience resolved into outbox rows, {counts[0]:,} members, {counts[1]:,} rows (SMS and email, "
            f"suppressions applied), worst of 3 (best {min(seconds):.2f} s)",
            worst,
            "s",
            f"<= {AUDIENCE_BUDGET_S:.0f} s",
            worst <= AUDIENCE_BUDGET_S,
        )
    )
    started = time.perf_counter()
    dry = dry_run_counts(campaign, now=timezone.now())
    out.append(
        f"    the dry run of it (the same statements, counted, rolled back): {time.perf_counter() - started:.2f} s; "
        f"would reach {dry.reached}, held back {dry.suppressed}"
    )


def _gateway_process(ready: Any, ask: Any, latency: float) -> None:
    from tests.campaigns.gateway import Gateway, _handler
    from tests.campaigns.local_server import serving

    gateway = Gateway(latency=latency)
    with serving(_handler(gateway)) as url:
        ready.send(url)
        while ask.recv() == "stats":
            with gateway.lock:
                ask.send((len(gateway.delivered), len(gateway.requests), max(gateway.hits.values(), default=0)))


def _workers(gateway_url: str, redis_url: str) -> list[subprocess.Popen[bytes]]:
    from django.db import connection

    from tests.campaigns.gateway import KEY, SECRET

    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "SMS_PROVIDER": "sms_gateway",
        "SMS_GATEWAY_URL": f"{gateway_url}/v1",
        "SMS_GATEWAY_KEY": KEY,
        "SMS_GATEWAY_SECRET": SECRET,
        "CAMPAIGN_BATCH_SIZE": "200",
        "CAMPAIGN_SEND_THREADS": "64",
        "CAMPAIGN_PARALLEL_TASKS": str(WORKERS * TASKS_PER_WORKER),
        "DATABASE_CONN_MAX_AGE": "60",
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "threads"]
    command += ["--concurrency", str(TASKS_PER_WORKER)]
    command += ["-Q", "default", "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "WARNING"]
    logs = Path(tempfile.gettempdir())
    return [
        subprocess.Popen(
            [*command, "-n", f"bench{n}@%h"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(logs / f"scrm-bench-worker{n}.log").open("wb"),
        )
        for n in range(WORKERS)
    ]


def measure_sending(out: list[str]) -> None:
    from celery import Celery
    from django.db import connection

    from campaigns.models import Campaign, Message

    campus = _campuses()[1]
    _relax_rules(campus)
    campaign = _campaign(campus, "bench sending", ["sms"])
    campaign.status = "sending"
    campaign.save(update_fields=["status"])
    from campaigns.services.campaigns import campaign_resolve

    campaign_resolve(campaign.pk)
    # Keep the first 50,000 queued rows: the rest of the campus is not this measurement's.
    keep = Message.objects.filter(campaign=campaign, status="queued").order_by("pk").values_list("pk", flat=True)
    cutoff = keep[SEND_MESSAGES - 1]
    Message.objects.filter(campaign=campaign, pk__gt=cutoff).delete()
    queued = Message.objects.filter(campaign=campaign, status="queued").count()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE campaigns_message")

    redis_url = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/11")
    parent_ready, child_ready = multiprocessing.Pipe()
    parent_ask, child_ask = multiprocessing.Pipe()
    gateway = multiprocessing.get_context("fork").Process(
        target=_gateway_process, args=(child_ready, child_ask, GATEWAY_LATENCY), daemon=True
    )
    gateway.start()
    gateway_url = parent_ready.recv()
    workers = _workers(gateway_url, redis_url)
    broker = Celery(broker=redis_url)
    with broker.connection_for_write() as conn:
        conn.default_channel.queue_purge("default")
    try:
        time.sleep(4)  # the workers connect
        started = time.perf_counter()
        for _ in range(WORKERS * TASKS_PER_WORKER):
            broker.send_task("campaigns.send_campaign_batch", args=[campaign.pk], queue="default")
        deadline = started + 600
        while time.perf_counter() < deadline:
            time.sleep(0.5)
            if not Message.objects.filter(campaign=campaign, status__in=("queued", "sending")).exists():
                break
        seconds = time.perf_counter() - started
        parent_ask.send("stats")
        delivered, requests, most = parent_ask.recv()
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        parent_ask.send("stop")
        gateway.join(timeout=10)
    sent = Message.objects.filter(campaign=campaign, status="sent").count()
    rate = sent / seconds
    out.append(
        line(
            f"(b) sending {queued:,} SMS with {WORKERS} worker processes, gateway latency "
            f"{GATEWAY_LATENCY * 1000:.0f} ms: {sent:,} sent in {seconds:.1f} s (the gateway: {delivered:,} "
            f"delivered, {requests:,} requests, at most {most} per key)",
            rate,
            "messages/s",
            f">= {RATE_BUDGET:,.0f}/s",
            rate >= RATE_BUDGET and sent == queued == delivered,
        )
    )
    Campaign.objects.filter(pk=campaign.pk).update(status="done")


def _forget_earlier_runs() -> None:
    from campaigns.models import Campaign, Message

    earlier = Campaign.objects.filter(name__startswith="bench ")
    Message.objects.filter(campaign__in=earlier).delete()
    earlier.delete()


def main() -> list[str]:
    from bench.bench_lifecycle import ensure_data

    out: list[str] = []
    ensure_data(out)
    ensure_families(out)
    _forget_earlier_runs()
    measure_audience(out)
    measure_sending(out)
    return out
