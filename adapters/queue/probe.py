"""A quick look at the Redis that REDIS_URL names, for `doctor`: does it answer, and may it evict?"""

from __future__ import annotations

from dataclasses import dataclass

import redis


class RedisUnavailable(Exception):
    """Redis did not answer in time, or refused us; the message says which, without the URL."""


@dataclass(frozen=True)
class RedisStatus:
    version: str
    eviction_policy: str | None  # None when the server hides its configuration (managed services do)


def redis_status(url: str, timeout: float = 3.0) -> RedisStatus:
    """Raises RedisUnavailable when the server does not answer in time or refuses us."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return _status(client)
    except redis.RedisError as exc:
        raise RedisUnavailable(f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
    finally:
        client.close()


def _status(client: redis.Redis) -> RedisStatus:
    client.ping()
    version = str(client.info("server").get("redis_version", "unknown"))
    try:
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis.ResponseError:
        policy = None
    return RedisStatus(version, str(policy) if policy is not None else None)
