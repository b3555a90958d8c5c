"""`doctor`: is this deployment able to work? Each check says what it found and, when it fails, what to fix.

FaceSign's credentials are checked with one authenticated `GET /sessions/<an id nobody issued>`: the
API checks the key before it looks the session up, so 404 means the key was accepted, while 401 or
403 means it was not. Nothing is created at FaceSign, and the call costs one request of the budget.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from adapters.db.engine import Database
from adapters.db.migrate import missing_sqlite_file, schema_revisions
from adapters.facesign.client import FaceSignClient, FaceSignError, FaceSignNotFound, FaceSignRejected, RetryPolicy
from adapters.queue.probe import RedisUnavailable, redis_status
from config import ConfigError, Settings

FACESIGN_TIMEOUT = 5.0
MIN_SECRET_LENGTH = 16
PLACEHOLDERS = ("change", "replace", "example", "placeholder", "secret", "todo", "xxx")
UPGRADE = "run `facesign-recovery db upgrade`"
SAFE_EVICTION = ("noeviction", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    found: str
    fix: str = ""


def check_configuration(settings: Settings) -> Check:
    try:
        settings.check_service()  # what `serve`, `worker` and `reconcile` refuse to start without
    except ConfigError as exc:
        return Check("configuration", False, str(exc), "set it in the environment (docs/configuration.md)")
    mode = "embedded (no REDIS_URL)" if settings.embedded else "Redis"
    vendor = "the built-in sandbox" if settings.sandbox_mode else settings.facesign_api_url
    return Check("configuration", True, f"valid; {mode} mode, FaceSign at {vendor}")


def check_database(settings: Settings) -> Check:
    missing = missing_sqlite_file(settings.database_url)
    if missing is not None:
        return Check("database", False, f"no SQLite database at {missing}", f"{UPGRADE} here")
    db = Database.connect(settings.database_url)
    try:
        current, heads = schema_revisions(db)
    except Exception as exc:  # any driver's failure: the operator needs its kind, not our traceback
        return Check(
            "database",
            False,
            f"cannot read {db.url}: {type(exc).__name__}",
            "check DATABASE_URL and that the database server is up and reachable from here",
        )
    finally:
        db.dispose()
    head = ", ".join(heads)
    if current in heads:
        return Check("database", True, f"schema at {current}, the latest")
    if current is None:
        return Check(
            "database", False, f"never migrated (this version needs {head})", "run `facesign-recovery db upgrade`"
        )
    return Check(
        "database",
        False,
        f"schema at {current}, this version needs {head}",
        "run `facesign-recovery db upgrade` (if the database is newer than this code, deploy the newer version)",
    )


def check_redis(settings: Settings) -> Check:
    if settings.redis_url is None:
        return Check("redis", True, "not used: embedded mode (an in-process broker inside `serve`)")
    try:
        status = redis_status(settings.redis_url)
    except RedisUnavailable as exc:
        return Check(
            "redis", False, f"no answer: {exc}", "check REDIS_URL and that Redis is up and reachable from here"
        )
    if status.eviction_policy is not None and status.eviction_policy not in SAFE_EVICTION:
        return Check(
            "redis",
            False,
            f"Redis {status.version} evicts any key when full (maxmemory-policy {status.eviction_policy})",
            "set maxmemory-policy noeviction: a full Redis must refuse writes, not drop queued events",
        )
    policy = status.eviction_policy or "not visible to us"
    return Check("redis", True, f"Redis {status.version} answers; maxmemory-policy {policy}")


def check_facesign(settings: Settings, client_factory: Callable[[Settings], FaceSignClient] | None = None) -> Check:
    if settings.sandbox_mode:
        return Check("facesign", True, "sandbox mode: `serve` starts its own stand-in, nothing to reach")
    client = (client_factory or _probe_client)(settings)
    made_up = f"doctor-{secrets.token_hex(8)}"
    try:
        client.get_session(made_up)
    except FaceSignNotFound:
        return Check("facesign", True, f"{settings.facesign_api_url} accepted the API key (404 for a made-up session)")
    except FaceSignRejected as exc:
        if exc.status in (401, 403):
            return Check(
                "facesign",
                False,
                f"{settings.facesign_api_url} refused the API key (HTTP {exc.status})",
                "check FACESIGN_API_KEY: the key of this FaceSign account and environment",
            )
        return Check(
            "facesign",
            False,
            f"{settings.facesign_api_url} answered HTTP {exc.status}, not the FaceSign API's 404",
            "check FACESIGN_API_URL: the API's base URL, without a path",
        )
    except FaceSignError as exc:
        return Check(
            "facesign",
            False,
            f"{settings.facesign_api_url} unreachable: {exc}",
            "check FACESIGN_API_URL and that this host may reach it (proxy, egress rules, DNS)",
        )
    finally:
        client.close()
    return Check("facesign", True, f"{settings.facesign_api_url} answered")


def _probe_client(settings: Settings) -> FaceSignClient:
    policy = RetryPolicy(attempts=1, total_seconds=FACESIGN_TIMEOUT)
    key = settings.facesign_api_key or ""
    return FaceSignClient(settings.facesign_api_url, key, timeout=FACESIGN_TIMEOUT, policy=policy, pool_size=1)


def check_webhook_secret(settings: Settings) -> Check:
    if not settings.webhook_secrets:
        return Check("webhook secret", True, "unset: the sandbox signs with a secret of its own")
    for index, secret in enumerate(settings.webhook_secrets, 1):
        which = f"secret {index} of {len(settings.webhook_secrets)}"
        problem = _secret_problem(secret)
        if problem:
            return Check(
                "webhook secret",
                False,
                f"FACESIGN_WEBHOOK_SECRET {which} {problem}",
                "copy the webhook signing secret from FaceSign's dashboard exactly (comma-separate old and new)",
            )
    count = len(settings.webhook_secrets)
    return Check("webhook secret", True, f"{count} secret{'s' if count > 1 else ''} of a plausible form")


def _secret_problem(secret: str) -> str | None:
    if any(c.isspace() or c in "\"'`" for c in secret):
        return "contains quotes or spaces (copied with them?)"
    if len(secret) < MIN_SECRET_LENGTH:
        return f"is {len(secret)} characters: too short to be FaceSign's, and guessable"
    if any(word in secret.lower() for word in PLACEHOLDERS):
        return "looks like a placeholder"
    return None


def run_checks(env: Mapping[str, str] | None = None) -> list[Check]:
    """Every check, in the order an operator fixes things; a bad configuration stops the rest."""
    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        return [Check("configuration", False, str(exc), "set the variable it names (docs/configuration.md)")]
    return [
        check_configuration(settings),
        check_database(settings),
        check_redis(settings),
        check_facesign(settings),
        check_webhook_secret(settings),
    ]
