"""Service settings, read once from the environment into a frozen dataclass."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

T = TypeVar("T")

DEFAULT_API_URL = "https://api.facesign.ai"
MAIL_BACKENDS = ("console", "file", "smtp")
LOG_FORMATS = ("json", "console")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A bad or missing setting; the message names the variable and fits on one line."""


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///facesign-recovery.db"
    redis_url: str | None = None
    facesign_api_url: str = DEFAULT_API_URL
    facesign_api_key: str | None = None
    webhook_secrets: tuple[str, ...] = ()
    webhook_tolerance: int = 300
    webhook_max_bytes: int = 262144
    public_base_url: str = "http://127.0.0.1:8000"
    public_base_url_given: bool = False  # unset, `serve` derives it from where it listens
    # The token rides in the fragment, which browsers never send: no server or proxy log can hold it.
    reset_url_template: str = "{PUBLIC_BASE_URL}/reset#token={token}"
    reset_token_ttl: int = 900
    attempt_ttl: int = 1800
    reconcile_after: int = 60
    reconcile_interval: int = 30
    mail_backend: str = "console"
    mail_dir: str = "mail"
    mail_from: str = "Account recovery <no-reply@localhost>"
    smtp_url: str | None = None
    audit_pseudonym_key: str | None = None
    audit_anchor_sink: str | None = None  # a file path, an https URL or "syslog": see anchor_sink_kind()
    audit_anchor_interval: int = 3600
    audit_anchor_token: str | None = None
    require_conversation_confirmation: bool = False
    sandbox_port: int = 8001
    worker_threads: int = 4
    facesign_timeout: float = 10.0
    recoveries_per_minute: int = 10
    # FaceSign requests per minute for the whole fleet, and the share of them only POST /recoveries may use.
    facesign_rate_limit: int = 900
    facesign_interactive_share: float = 0.3
    flow_file: str | None = None
    facesign_frame_origin: str | None = None
    # Redis broker tuning, justified in adapters/queue/broker.py: a crashed worker's messages come back in seconds.
    dramatiq_heartbeat_timeout: int = 15_000  # ms
    dramatiq_maintenance_chance: int = 100_000  # per million broker commands
    # Where each `worker` serves its Prometheus metrics (Dramatiq's own variable names), and the
    # directory its processes share them through.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 9191
    worker_metrics_dir: str | None = None
    # What operators watch: the log format (None: console on a terminal, else JSON), where a
    # long-running `reconcile` serves its metrics (port 0: nowhere), and how often it verifies the
    # audit chain for the chain gauge (0: never).
    log_format: str | None = None
    reconciler_metrics_host: str = "127.0.0.1"
    reconciler_metrics_port: int = 9192
    audit_verify_interval: int = 3600
    # Defending the account owner: the per-account recovery lock and the owner's alerts.
    recovery_lock_threshold: int = 3
    recovery_lock_window: int = 86400
    attempt_alert_interval: int = 3600
    # Signed events to the customer's application (Standard Webhooks).
    app_webhook_urls: tuple[str, ...] = ()
    app_webhook_secret: str | None = None
    app_webhook_retry_window: float = 86400.0  # seconds of retries before an event is a dead letter
    # Degrading gracefully (docs/operations.md, "What happens when"): every wait bounded, every queue capped.
    queue_max_messages: int = 20_000  # webhook events the broker may hold before the receiver answers 503
    reconcile_max_calls: int = 300  # FaceSign calls one reconcile pass may spend
    recovery_start_concurrency: int = 8  # `POST /recoveries` vendor calls in flight per receiver process
    recovery_start_timeout: int = 10  # seconds a person starting a recovery waits at most, then 503
    database_connect_timeout: int = 5  # seconds (PostgreSQL)
    database_statement_timeout: int = 10  # seconds (PostgreSQL); a statement this much overdue is cut off
    database_keepalives_idle: int = 30  # seconds of silence before TCP keepalive probes (PostgreSQL)
    worker_redis_timeout: int = 30  # seconds a worker's Redis command may take (a shorter stall is ridden out)
    # Safe by default: the sandbox only when asked for, operators-only metrics, bounded bodies,
    # the proxies whose forwarded addresses are believed, and a cap on recoveries from everyone.
    sandbox_mode: bool = False  # FACESIGN_SANDBOX: the built-in stand-in answers instead of FaceSign
    facesign_api_url_given: bool = False
    metrics_token: str | None = None
    allowed_origins: tuple[str, ...] = ()
    recoveries_per_minute_total: int = 600
    forwarded_allow_ips: str = "127.0.0.1"
    body_read_timeout: float = 10.0

    @property
    def embedded(self) -> bool:
        """No Redis: an in-process broker and worker threads inside `serve`."""
        return self.redis_url is None

    @property
    def frame_origin(self) -> str:
        """The origin the session pages are framed from: FACESIGN_FRAME_ORIGIN, else the API's origin."""
        parts = urlsplit(self.facesign_frame_origin or self.facesign_api_url)
        return f"{parts.scheme}://{parts.netloc}"

    def reset_url(self, token: str) -> str:
        return self.reset_url_template.replace("{PUBLIC_BASE_URL}", self.public_base_url).replace("{token}", token)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        r = _Reader(env)
        settings = cls(
            database_url=r.text("DATABASE_URL", cls.database_url),
            redis_url=r.optional_url("REDIS_URL", ("redis", "rediss", "unix")),
            facesign_api_url=r.url("FACESIGN_API_URL", DEFAULT_API_URL, ("http", "https")).rstrip("/"),
            facesign_api_key=r.optional("FACESIGN_API_KEY"),
            webhook_secrets=r.secrets("FACESIGN_WEBHOOK_SECRET"),
            webhook_tolerance=r.integer("FACESIGN_WEBHOOK_TOLERANCE", 300, minimum=1),
            webhook_max_bytes=r.integer("WEBHOOK_MAX_BYTES", 262144, minimum=64),
            public_base_url=r.url("PUBLIC_BASE_URL", cls.public_base_url, ("http", "https")).rstrip("/"),
            public_base_url_given=r.optional("PUBLIC_BASE_URL") is not None,
            reset_url_template=r.template("RESET_URL_TEMPLATE", cls.reset_url_template),
            reset_token_ttl=r.integer("RESET_TOKEN_TTL", 900, minimum=1),
            attempt_ttl=r.integer("ATTEMPT_TTL", 1800, minimum=1),
            reconcile_after=r.integer("RECONCILE_AFTER", 60, minimum=0),
            reconcile_interval=r.integer("RECONCILE_INTERVAL", 30, minimum=1),
            mail_backend=r.choice("MAIL_BACKEND", "console", MAIL_BACKENDS),
            mail_dir=r.text("MAIL_DIR", cls.mail_dir),
            mail_from=r.text("MAIL_FROM", cls.mail_from),
            smtp_url=r.optional_url("SMTP_URL", ("smtp", "smtps")),
            audit_pseudonym_key=r.optional("AUDIT_PSEUDONYM_KEY"),
            audit_anchor_sink=r.optional("AUDIT_ANCHOR_SINK"),
            audit_anchor_interval=r.integer("AUDIT_ANCHOR_INTERVAL", 3600, minimum=1),
            audit_anchor_token=r.optional("AUDIT_ANCHOR_TOKEN"),
            require_conversation_confirmation=r.boolean("REQUIRE_CONVERSATION_CONFIRMATION", False),
            sandbox_port=r.integer("SANDBOX_PORT", 8001, minimum=1, maximum=65535),
            worker_threads=r.integer("WORKER_THREADS", 4, minimum=1, maximum=256),
            facesign_timeout=float(r.integer("FACESIGN_TIMEOUT", 10, minimum=1, maximum=120)),
            recoveries_per_minute=r.integer("RECOVERIES_PER_MINUTE", 10, minimum=1),
            facesign_rate_limit=r.integer("FACESIGN_RATE_LIMIT", cls.facesign_rate_limit, minimum=1),
            facesign_interactive_share=r.fraction("FACESIGN_INTERACTIVE_SHARE", cls.facesign_interactive_share),
            flow_file=r.optional("FLOW_FILE"),
            facesign_frame_origin=r.optional_url("FACESIGN_FRAME_ORIGIN", ("http", "https")),
            dramatiq_heartbeat_timeout=r.integer(
                "DRAMATIQ_HEARTBEAT_TIMEOUT", cls.dramatiq_heartbeat_timeout, minimum=1_000, maximum=600_000
            ),
            dramatiq_maintenance_chance=r.integer(
                "DRAMATIQ_MAINTENANCE_CHANCE", cls.dramatiq_maintenance_chance, minimum=0, maximum=1_000_000
            ),
            worker_metrics_host=r.text("dramatiq_prom_host", cls.worker_metrics_host),
            worker_metrics_port=r.integer("dramatiq_prom_port", cls.worker_metrics_port, minimum=0, maximum=65535),
            worker_metrics_dir=r.optional("dramatiq_prom_db"),
            log_format=r.choice("LOG_FORMAT", "", LOG_FORMATS) or None,
            reconciler_metrics_host=r.text("RECONCILER_METRICS_HOST", cls.reconciler_metrics_host),
            reconciler_metrics_port=r.integer(
                "RECONCILER_METRICS_PORT", cls.reconciler_metrics_port, minimum=0, maximum=65535
            ),
            audit_verify_interval=r.integer("AUDIT_VERIFY_INTERVAL", cls.audit_verify_interval, minimum=0),
            recovery_lock_threshold=r.integer("RECOVERY_LOCK_THRESHOLD", 3, minimum=1, maximum=1000),
            recovery_lock_window=r.integer("RECOVERY_LOCK_WINDOW", 86400, minimum=1),
            attempt_alert_interval=r.integer("ATTEMPT_ALERT_INTERVAL", 3600, minimum=0),
            app_webhook_urls=r.urls("APP_WEBHOOK_URL", ("http", "https")),
            app_webhook_secret=r.optional("APP_WEBHOOK_SECRET"),
            app_webhook_retry_window=float(r.integer("APP_WEBHOOK_RETRY_WINDOW", 86400, minimum=1)),
            queue_max_messages=r.integer("QUEUE_MAX_MESSAGES", cls.queue_max_messages, minimum=1),
            reconcile_max_calls=r.integer("RECONCILE_MAX_CALLS", cls.reconcile_max_calls, minimum=1),
            recovery_start_concurrency=r.integer(
                "RECOVERY_START_CONCURRENCY", cls.recovery_start_concurrency, minimum=1, maximum=256
            ),
            recovery_start_timeout=r.integer(
                "RECOVERY_START_TIMEOUT", cls.recovery_start_timeout, minimum=1, maximum=120
            ),
            database_connect_timeout=r.integer(
                "DATABASE_CONNECT_TIMEOUT", cls.database_connect_timeout, minimum=1, maximum=300
            ),
            database_statement_timeout=r.integer(
                "DATABASE_STATEMENT_TIMEOUT", cls.database_statement_timeout, minimum=1, maximum=3600
            ),
            database_keepalives_idle=r.integer(
                "DATABASE_KEEPALIVES_IDLE", cls.database_keepalives_idle, minimum=1, maximum=7200
            ),
            worker_redis_timeout=r.integer("WORKER_REDIS_TIMEOUT", cls.worker_redis_timeout, minimum=1, maximum=600),
            sandbox_mode=r.boolean("FACESIGN_SANDBOX", False),
            facesign_api_url_given=r.optional("FACESIGN_API_URL") is not None,
            metrics_token=r.optional("METRICS_TOKEN"),
            allowed_origins=r.origins("ALLOWED_ORIGINS"),
            recoveries_per_minute_total=r.integer("RECOVERIES_PER_MINUTE_TOTAL", 600, minimum=1),
            forwarded_allow_ips=r.forwarded_ips("FORWARDED_ALLOW_IPS", cls.forwarded_allow_ips),
            body_read_timeout=float(r.integer("REQUEST_BODY_TIMEOUT", 10, minimum=1, maximum=300)),
        )
        if settings.mail_backend == "smtp" and settings.smtp_url is None:
            raise ConfigError("SMTP_URL: required when MAIL_BACKEND=smtp")
        if settings.smtp_url is not None:
            _check_smtp_url(settings.smtp_url)
        _check_anchor_sink(settings)
        if settings.facesign_api_key is not None and not settings.webhook_secrets and not settings.sandbox_mode:
            raise ConfigError("FACESIGN_WEBHOOK_SECRET: required when FACESIGN_API_KEY is set (sandbox off)")
        _check_app_webhook(settings)
        return settings

    def check_service(self) -> None:
        """What a running service (`serve`, `worker`, `reconcile`, the ASGI app) needs beyond valid values.

        Outside the sandbox: the vendor's credentials and the pseudonym key, never a silent stand-in.
        In the sandbox: nothing that looks like production, because the stand-in approves whoever the
        person at its page picks.
        """
        if self.sandbox_mode:
            refusal = _sandbox_refusal(self)
            if refusal:
                raise ConfigError(f"FACESIGN_SANDBOX: refused because {refusal}; the sandbox is for local demos only")
            return
        required = (
            ("FACESIGN_API_KEY", self.facesign_api_key),
            ("FACESIGN_WEBHOOK_SECRET", self.webhook_secrets),
            ("AUDIT_PSEUDONYM_KEY", self.audit_pseudonym_key),
        )
        for name, value in required:
            if not value:
                raise ConfigError(f"{name}: required (set FACESIGN_SANDBOX=1 for the built-in sandbox instead)")


def _sandbox_refusal(settings: Settings) -> str | None:
    if settings.facesign_api_url_given:
        return "FACESIGN_API_URL is set (a real FaceSign is configured)"
    if settings.database_url.startswith("postgresql"):
        return "DATABASE_URL is PostgreSQL (a production database)"
    if settings.public_base_url.startswith("https:"):
        return "PUBLIC_BASE_URL is https (a public deployment)"
    return None


def mask_url(raw: str) -> str:
    """The URL with any password replaced, for messages: `redis://user:***@host/0`."""
    parts = urlsplit(raw)
    if parts.password is None:
        return raw
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return parts._replace(netloc=f"{name}:***@{host}").geturl()


def _check_app_webhook(settings: Settings) -> None:
    """The application's events are signed with a Standard Webhooks secret: `whsec_` and 24 to 64
    bytes in base64, as that specification asks."""
    secret = settings.app_webhook_secret
    if settings.app_webhook_urls and secret is None:
        raise ConfigError("APP_WEBHOOK_SECRET: required when APP_WEBHOOK_URL is set")
    if secret is None:
        return
    if not secret.startswith("whsec_"):
        raise ConfigError("APP_WEBHOOK_SECRET: expected whsec_ followed by base64")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("APP_WEBHOOK_SECRET: the part after whsec_ is not valid base64") from None
    if not 24 <= len(key) <= 64:
        raise ConfigError(f"APP_WEBHOOK_SECRET: must decode to 24 to 64 bytes, got {len(key)}")


def anchor_sink_kind(sink: str) -> str:
    """`syslog`, `url` or `file`: how AUDIT_ANCHOR_SINK's value is read."""
    if sink == "syslog":
        return "syslog"
    return "url" if urlsplit(sink).scheme in ("http", "https") else "file"


def _check_anchor_sink(settings: Settings) -> None:
    sink = settings.audit_anchor_sink
    if sink is None:
        return
    kind = anchor_sink_kind(sink)
    if kind == "url":
        parts = urlsplit(sink)
        if parts.username or parts.password or parts.query:  # checked first: the value is never echoed then
            raise ConfigError(
                "AUDIT_ANCHOR_SINK: no credentials or query in the URL; put the token in AUDIT_ANCHOR_TOKEN"
            )
        loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
        if not parts.hostname or (parts.scheme != "https" and not loopback):
            raise ConfigError(
                f"AUDIT_ANCHOR_SINK: an anchor URL must be https (plain http only to loopback), got {sink!r}"
            )
        if not settings.audit_anchor_token:
            raise ConfigError("AUDIT_ANCHOR_TOKEN: required when AUDIT_ANCHOR_SINK is a URL (sent as a bearer token)")
    elif kind == "file" and not os.path.isabs(sink):
        raise ConfigError(f"AUDIT_ANCHOR_SINK: a file sink needs an absolute path, https://… or syslog, got {sink!r}")


def _check_smtp_url(url: str) -> None:
    parts = urlsplit(url)
    if not parts.hostname:
        raise ConfigError(f"SMTP_URL: needs a host name, got {mask_url(url)!r}")
    tls = parse_qs(parts.query).get("tls", ["starttls"])[0]
    if tls not in ("starttls", "none"):
        raise ConfigError(f"SMTP_URL: tls= must be starttls or none, got {tls!r}")


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def _get(self, name: str, default: T, parse: Callable[[str], T]) -> T:
        raw = self.env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None

    def text(self, name: str, default: str) -> str:
        return self._get(name, default, str)

    def optional(self, name: str) -> str | None:
        return self._get(name, None, str)

    def integer(self, name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
        def parse(raw: str) -> int:
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"expected a whole number, got {raw!r}") from None
            if minimum is not None and value < minimum:
                raise ValueError(f"must be at least {minimum}, got {value}")
            if maximum is not None and value > maximum:
                raise ValueError(f"must be at most {maximum}, got {value}")
            return value

        return self._get(name, default, parse)

    def fraction(self, name: str, default: float) -> float:
        """A number from 0 up to, not including, 1."""

        def parse(raw: str) -> float:
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"expected a number, got {raw!r}") from None
            if not 0 <= value < 1:  # also refuses nan and inf
                raise ValueError(f"must be at least 0 and below 1, got {raw}")
            return value

        return self._get(name, default, parse)

    def boolean(self, name: str, default: bool) -> bool:
        def parse(raw: str) -> bool:
            low = raw.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(f"expected true or false, got {raw!r}")

        return self._get(name, default, parse)

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        def parse(raw: str) -> str:
            if raw not in choices:
                raise ValueError(f"expected one of {', '.join(choices)}, got {raw!r}")
            return raw

        return self._get(name, default, parse)

    def url(self, name: str, default: str, schemes: tuple[str, ...]) -> str:
        def parse(raw: str) -> str:
            parts = urlsplit(raw)
            if parts.scheme not in schemes or not (parts.netloc or parts.path):
                raise ValueError(f"expected a {'/'.join(schemes)} URL, got {mask_url(raw)!r}")
            return raw

        return self._get(name, default, parse)

    def optional_url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        if not self.env.get(name, "").strip():
            return None
        return self.url(name, "", schemes)

    def secrets(self, name: str) -> tuple[str, ...]:
        def parse(raw: str) -> tuple[str, ...]:
            values = tuple(part.strip() for part in raw.split(","))
            if any(not value for value in values):
                raise ValueError("empty secret in the comma-separated list")
            return values

        return self._get(name, (), parse)

    def urls(self, name: str, schemes: tuple[str, ...]) -> tuple[str, ...]:
        def parse(raw: str) -> tuple[str, ...]:
            values = tuple(dict.fromkeys(part.strip() for part in raw.split(",")))
            for number, value in enumerate(values, start=1):
                parts = urlsplit(value)
                if parts.scheme not in schemes or not parts.netloc:
                    # Not echoed: such a URL may carry a credential.
                    raise ValueError(f"entry {number} is not an {' or '.join(schemes)} URL (comma-separated list)")
            return values

        return self._get(name, (), parse)

    def template(self, name: str, default: str) -> str:
        def parse(raw: str) -> str:
            if "{token}" not in raw:
                raise ValueError("must contain {token}")
            return raw

        return self._get(name, default, parse)

    def origins(self, name: str) -> tuple[str, ...]:
        def parse(raw: str) -> tuple[str, ...]:
            found = []
            for part in (p.strip() for p in raw.split(",")):
                parts = urlsplit(part)
                if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
                    raise ValueError(f"expected origins like https://app.example.com, got {part!r}")
                found.append(f"{parts.scheme}://{parts.netloc}".lower())
            return tuple(found)

        return self._get(name, (), parse)

    def forwarded_ips(self, name: str, default: str) -> str:
        def parse(raw: str) -> str:
            for part in (p.strip() for p in raw.split(",")):
                if part == "*":
                    raise ValueError(
                        "'*' would let every client name its own address in X-Forwarded-For, escaping the "
                        "per-address rate limit and passing as loopback for /metrics; list your proxies' "
                        "addresses or networks instead"
                    )
                try:
                    ip_network(part, strict=False) if "/" in part else ip_address(part)
                except ValueError:
                    raise ValueError(f"expected IP addresses or networks, got {part!r}") from None
            return raw

        return self._get(name, default, parse)
