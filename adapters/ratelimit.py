"""Moving-window rate limits (the `limits` package): in memory, or in Redis so every process shares them."""

from __future__ import annotations

import logging
import time

import redis
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)

KEY_PREFIX = "facesign-recovery:ratelimit"


def storage(redis_url: str | None) -> Storage:
    if redis_url is None:
        return MemoryStorage()
    return RedisStorage(redis_url, key_prefix=KEY_PREFIX, socket_timeout=2.0, socket_connect_timeout=2.0)


class PerMinute:
    """At most `per_minute` hits per key in any 60 s; `hit()` answers how long to wait, or None."""

    def __init__(self, name: str, per_minute: int, redis_url: str | None) -> None:
        self.name = name
        self.item = RateLimitItemPerMinute(per_minute)
        self.limiter = MovingWindowRateLimiter(storage(redis_url))

    def hit(self, key: str) -> int | None:
        """Count one hit; None when it is allowed, else the seconds until it would be.

        An unreachable store lets the hit through: the limits guard against abuse, and an outage of
        their store must not stop people recovering.
        """
        try:
            if self.limiter.hit(self.item, self.name, key):
                return None
            reset_at, _ = self.limiter.get_window_stats(self.item, self.name, key)
        except redis.RedisError as exc:
            log.warning("rate limit store unavailable, letting the request through: %s", type(exc).__name__)
            return None
        return max(1, int(reset_at - time.time()) + 1)
