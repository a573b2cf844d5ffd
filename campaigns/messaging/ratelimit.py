"""A provider's rate limit, shared by every worker process: a counter per provider and second in
the cache (Redis in production), so two workers together stay under the limit one would."""

from __future__ import annotations

import time

from django.core.cache import cache

_PREFIX = "campaigns:rate"


def rate_acquire(provider: str, per_second: int, *, clock=time.time, sleep=time.sleep) -> None:  # type: ignore[no-untyped-def]
    """Wait until one more send to `provider` fits in the current second. 0: no limit."""
    if per_second <= 0:
        return
    while True:
        now = clock()
        second = int(now)
        key = f"{_PREFIX}:{provider}:{second}"
        cache.add(key, 0, timeout=5)
        try:
            taken = cache.incr(key)
        except ValueError:  # the key expired between add and incr
            continue
        if taken <= per_second:
            return
        sleep(max(second + 1 - now, 0.001))
