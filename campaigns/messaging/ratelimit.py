"""A provider's rate limit, shared by every worker process: a counter per provider and second in
the cache (Redis in production), so two workers together stay under the limit one would.

When the cache cannot be reached (Redis restarting), nobody can tell how many messages went out
this second: `LimiterUnavailable`, and the caller sends nothing until it is back."""

from __future__ import annotations

import time

from django.core.cache import cache
from redis.exceptions import RedisError

_PREFIX = "campaigns:rate"


class LimiterUnavailable(Exception):
    """The shared counters cannot be reached: no message may go out now."""


def rate_acquire(provider: str, per_second: int, *, clock=time.time, sleep=time.sleep) -> None:  # type: ignore[no-untyped-def]
    """Wait until one more send to `provider` fits in the current second. 0: no limit."""
    if per_second <= 0:
        return
    while True:
        now = clock()
        second = int(now)
        key = f"{_PREFIX}:{provider}:{second}"
        try:
            cache.add(key, 0, timeout=5)
            taken = cache.incr(key)
        except ValueError:  # the key expired between add and incr
            continue
        except RedisError as error:
            raise LimiterUnavailable(f"{type(error).__name__}: {error}") from error
        if taken <= per_second:
            return
        sleep(max(second + 1 - now, 0.001))
