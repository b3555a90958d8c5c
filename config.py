"""Service settings, read once from the environment into a frozen dataclass."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

T = TypeVar("T")

DEFAULT_API_URL = "https://api.facesign.ai"
MAIL_BACKENDS = ("console", "file", "smtp")
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
    reset_url_template: str = "{PUBLIC_BASE_URL}/reset?token={token}"
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

    @property
    def sandbox_mode(self) -> bool:
        """No API key: the built-in FaceSign sandbox stands in for the vendor."""
        return self.facesign_api_key is None

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
        )
        if settings.mail_backend == "smtp" and settings.smtp_url is None:
            raise ConfigError("SMTP_URL: required when MAIL_BACKEND=smtp")
        if settings.smtp_url is not None:
            _check_smtp_url(settings.smtp_url)
        _check_anchor_sink(settings)
        if not settings.sandbox_mode and not settings.webhook_secrets:
            raise ConfigError("FACESIGN_WEBHOOK_SECRET: required when FACESIGN_API_KEY is set (sandbox off)")
        return settings


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
        raise ConfigError(f"SMTP_URL: needs a host name, got {parts.netloc!r}")
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
                raise ValueError(f"expected a {'/'.join(schemes)} URL, got {raw!r}")
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

    def template(self, name: str, default: str) -> str:
        def parse(raw: str) -> str:
            if "{token}" not in raw:
                raise ValueError("must contain {token}")
            return raw

        return self._get(name, default, parse)
