"""GET /healthz: the database, the cache and the broker, for load balancers and operators.

200 with every check "ok" (the embedded broker reports "in-process"); 503 otherwise,
each failing check naming the error's type and message. Nothing here needs a login,
so nothing here reveals data: only whether the dependencies answer.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

OK = "ok"
IN_PROCESS = "in-process"
HEALTHY = {OK, IN_PROCESS}
# A dependency that does not answer within this many seconds counts as down.
TIMEOUT_SECONDS = 2


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return _error(exc)
    return OK


def check_cache() -> str:
    key = f"healthz:{uuid.uuid4().hex}"
    try:
        cache.set(key, "1", timeout=10)
        value = cache.get(key)
        cache.delete(key)
    except Exception as exc:
        return _error(exc)
    return OK if value == "1" else "error: the cache did not return what was stored"


def check_broker() -> str:
    url: str = settings.CELERY_BROKER_URL or ""
    if not url or url.startswith("memory://"):
        # The embedded default: tasks run inside the web process, there is no broker to ask.
        return IN_PROCESS
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS)
            try:
                client.ping()
            finally:
                client.close()
        except Exception as exc:
            return _error(exc)
        return OK
    # Any other transport (amqp://...): ask kombu, which Celery uses to talk to it.
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=TIMEOUT_SECONDS) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        return _error(exc)
    return OK


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": check_database(), "cache": check_cache(), "broker": check_broker()}
    healthy = all(value in HEALTHY for value in checks.values())
    return JsonResponse(checks, status=200 if healthy else 503)
