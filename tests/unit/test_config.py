"""Configuration from the environment; bad values stop start-up with one line naming the variable."""

from __future__ import annotations

import dataclasses

import pytest

from config import ConfigError, Settings

VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "FACESIGN_API_URL",
    "FACESIGN_API_KEY",
    "FACESIGN_WEBHOOK_SECRET",
    "FACESIGN_WEBHOOK_TOLERANCE",
    "WEBHOOK_MAX_BYTES",
    "PUBLIC_BASE_URL",
    "RESET_URL_TEMPLATE",
    "RESET_TOKEN_TTL",
    "ATTEMPT_TTL",
    "RECONCILE_AFTER",
    "RECONCILE_INTERVAL",
    "MAIL_BACKEND",
    "MAIL_DIR",
    "MAIL_FROM",
    "SMTP_URL",
    "AUDIT_PSEUDONYM_KEY",
    "REQUIRE_CONVERSATION_CONFIRMATION",
    "SANDBOX_PORT",
    "WORKER_THREADS",
    "FACESIGN_TIMEOUT",
    "RECOVERIES_PER_MINUTE",
    "FACESIGN_SANDBOX",
    "METRICS_TOKEN",
    "ALLOWED_ORIGINS",
    "RECOVERIES_PER_MINUTE_TOTAL",
    "FORWARDED_ALLOW_IPS",
    "REQUEST_BODY_TIMEOUT",
    "FACESIGN_RATE_LIMIT",
    "FACESIGN_INTERACTIVE_SHARE",
)
LIVE = {"FACESIGN_API_KEY": "fs_live_key", "FACESIGN_WEBHOOK_SECRET": "whsec_1"}


def test_defaults_from_an_empty_environment() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.database_url == "sqlite:///facesign-recovery.db"
    assert settings.redis_url is None
    assert settings.facesign_api_url == "https://api.facesign.ai"
    assert settings.facesign_api_key is None
    assert settings.webhook_secrets == ()
    assert settings.webhook_tolerance == 300
    assert settings.webhook_max_bytes == 262144
    assert settings.public_base_url == "http://127.0.0.1:8000"
    assert settings.reset_url_template == "{PUBLIC_BASE_URL}/reset#token={token}"
    assert settings.reset_token_ttl == 900
    assert settings.attempt_ttl == 1800
    assert settings.reconcile_after == 60
    assert settings.reconcile_interval == 30
    assert settings.mail_backend == "console"
    assert settings.smtp_url is None
    assert settings.audit_pseudonym_key is None
    assert settings.require_conversation_confirmation is False
    assert settings.sandbox_mode is False  # the sandbox only when asked for
    assert settings.facesign_rate_limit == 900
    assert settings.facesign_interactive_share == 0.3
    assert settings.embedded is True


def test_blank_values_mean_default() -> None:
    env = {
        name: "   "
        for name in (
            "FACESIGN_WEBHOOK_TOLERANCE",
            "MAIL_BACKEND",
            "REDIS_URL",
            "FACESIGN_API_KEY",
            "REQUIRE_CONVERSATION_CONFIRMATION",
            "RESET_URL_TEMPLATE",
        )
    }
    assert Settings.from_env(env) == Settings()


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.attempt_ttl = 5  # type: ignore[misc]


def test_live_mode_and_redis_mode() -> None:
    settings = Settings.from_env({**LIVE, "REDIS_URL": "redis://cache:6379/0"})
    assert settings.sandbox_mode is False
    assert settings.embedded is False
    assert settings.redis_url == "redis://cache:6379/0"
    assert settings.facesign_api_key == "fs_live_key"


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "rediss://user:pw@host:6380", "unix:///tmp/redis.sock"])
def test_redis_url_schemes(url: str) -> None:
    assert Settings.from_env({"REDIS_URL": url}).redis_url == url


def test_values_are_read() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql+psycopg://app@db/recovery",
            "FACESIGN_API_URL": "http://127.0.0.1:8001/",
            "FACESIGN_WEBHOOK_TOLERANCE": " 60 ",
            "WEBHOOK_MAX_BYTES": "64",
            "PUBLIC_BASE_URL": "https://recover.example.com/",
            "RESET_TOKEN_TTL": "120",
            "ATTEMPT_TTL": "600",
            "RECONCILE_AFTER": "0",
            "RECONCILE_INTERVAL": "5",
            "MAIL_BACKEND": "smtp",
            "SMTP_URL": "smtps://mailer:pw@smtp.example.com:465",
            "AUDIT_PSEUDONYM_KEY": "k" * 32,
        }
    )
    assert settings.database_url == "postgresql+psycopg://app@db/recovery"
    assert settings.facesign_api_url == "http://127.0.0.1:8001"
    assert settings.webhook_tolerance == 60
    assert settings.webhook_max_bytes == 64
    assert settings.public_base_url == "https://recover.example.com"
    assert (settings.reset_token_ttl, settings.attempt_ttl) == (120, 600)
    assert (settings.reconcile_after, settings.reconcile_interval) == (0, 5)
    assert settings.mail_backend == "smtp"
    assert settings.smtp_url == "smtps://mailer:pw@smtp.example.com:465"
    assert settings.audit_pseudonym_key == "k" * 32


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("on", True),
        (" True ", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("off", False),
    ],
)
def test_require_conversation_confirmation_booleans(raw: str, expected: bool) -> None:
    settings = Settings.from_env({"REQUIRE_CONVERSATION_CONFIRMATION": raw})
    assert settings.require_conversation_confirmation is expected


@pytest.mark.parametrize("backend", ["console", "file", "smtp"])
def test_mail_backends(backend: str) -> None:
    env = {"MAIL_BACKEND": backend, "SMTP_URL": "smtp://localhost:25"}
    assert Settings.from_env(env).mail_backend == backend


def test_facesign_budget_is_read() -> None:
    settings = Settings.from_env({"FACESIGN_RATE_LIMIT": "2700", "FACESIGN_INTERACTIVE_SHARE": " 0.25 "})
    assert (settings.facesign_rate_limit, settings.facesign_interactive_share) == (2700, 0.25)
    assert Settings.from_env({"FACESIGN_INTERACTIVE_SHARE": "0"}).facesign_interactive_share == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("whsec_a", ("whsec_a",)),
        ("whsec_a,whsec_b", ("whsec_a", "whsec_b")),
        (" whsec_a , whsec_b ,whsec_c", ("whsec_a", "whsec_b", "whsec_c")),
    ],
)
def test_comma_separated_secrets(raw: str, expected: tuple[str, ...]) -> None:
    settings = Settings.from_env({**LIVE, "FACESIGN_WEBHOOK_SECRET": raw})
    assert settings.webhook_secrets == expected


def test_secret_allowed_in_sandbox_mode() -> None:
    assert Settings.from_env({"FACESIGN_WEBHOOK_SECRET": "s1,s2"}).webhook_secrets == ("s1", "s2")


@pytest.mark.parametrize(
    ("env", "token", "expected"),
    [
        pytest.param({}, "tok123", "http://127.0.0.1:8000/reset#token=tok123", id="default"),
        pytest.param(
            {"PUBLIC_BASE_URL": "https://recover.example.com/"},
            "abc",
            "https://recover.example.com/reset#token=abc",
            id="base-url-trailing-slash",
        ),
        pytest.param(
            {"RESET_URL_TEMPLATE": "https://app.example.com/password/{token}"},
            "t-1",
            "https://app.example.com/password/t-1",
            id="custom-template",
        ),
        pytest.param(
            {"RESET_URL_TEMPLATE": "{PUBLIC_BASE_URL}/r/{token}?again={token}", "PUBLIC_BASE_URL": "https://a.example"},
            "x",
            "https://a.example/r/x?again=x",
            id="both-placeholders-token-twice",
        ),
        pytest.param(
            {"RESET_URL_TEMPLATE": "https://app.example.com/reset?t={token}&l={lang}"},
            "y",
            "https://app.example.com/reset?t=y&l={lang}",
            id="other-braces-left-alone",
        ),
    ],
)
def test_reset_url(env: dict[str, str], token: str, expected: str) -> None:
    assert Settings.from_env(env).reset_url(token) == expected


BAD: list[tuple[str, dict[str, str], str]] = [
    ("tolerance-not-a-number", {"FACESIGN_WEBHOOK_TOLERANCE": "abc"}, "FACESIGN_WEBHOOK_TOLERANCE"),
    ("tolerance-zero", {"FACESIGN_WEBHOOK_TOLERANCE": "0"}, "FACESIGN_WEBHOOK_TOLERANCE"),
    ("tolerance-fraction", {"FACESIGN_WEBHOOK_TOLERANCE": "2.5"}, "FACESIGN_WEBHOOK_TOLERANCE"),
    ("tolerance-with-newline", {"FACESIGN_WEBHOOK_TOLERANCE": "30\n0"}, "FACESIGN_WEBHOOK_TOLERANCE"),
    ("max-bytes-negative", {"WEBHOOK_MAX_BYTES": "-1"}, "WEBHOOK_MAX_BYTES"),
    ("max-bytes-too-small", {"WEBHOOK_MAX_BYTES": "63"}, "WEBHOOK_MAX_BYTES"),
    ("reset-ttl-zero", {"RESET_TOKEN_TTL": "0"}, "RESET_TOKEN_TTL"),
    ("attempt-ttl-word", {"ATTEMPT_TTL": "half an hour"}, "ATTEMPT_TTL"),
    ("reconcile-after-negative", {"RECONCILE_AFTER": "-5"}, "RECONCILE_AFTER"),
    ("reconcile-interval-zero", {"RECONCILE_INTERVAL": "0"}, "RECONCILE_INTERVAL"),
    ("mail-backend-pigeon", {"MAIL_BACKEND": "pigeon"}, "MAIL_BACKEND"),
    ("mail-backend-case", {"MAIL_BACKEND": "SMTP"}, "MAIL_BACKEND"),
    ("redis-url-http", {"REDIS_URL": "http://x"}, "REDIS_URL"),
    ("redis-url-bare-host", {"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
    ("api-url-ftp", {"FACESIGN_API_URL": "ftp://api.facesign.ai"}, "FACESIGN_API_URL"),
    ("public-base-url-no-scheme", {"PUBLIC_BASE_URL": "recover.example.com"}, "PUBLIC_BASE_URL"),
    ("smtp-url-http", {"SMTP_URL": "http://mail"}, "SMTP_URL"),
    ("require-confirmation-maybe", {"REQUIRE_CONVERSATION_CONFIRMATION": "maybe"}, "REQUIRE_CONVERSATION_CONFIRMATION"),
    ("reset-template-without-token", {"RESET_URL_TEMPLATE": "https://app.example.com/reset"}, "RESET_URL_TEMPLATE"),
    ("reset-template-wrong-placeholder", {"RESET_URL_TEMPLATE": "https://x/reset?t={TOKEN}"}, "RESET_URL_TEMPLATE"),
    ("secret-empty-entry", {"FACESIGN_WEBHOOK_SECRET": "a,,b"}, "FACESIGN_WEBHOOK_SECRET"),
    ("secret-trailing-comma", {"FACESIGN_WEBHOOK_SECRET": "a,"}, "FACESIGN_WEBHOOK_SECRET"),
    ("secret-blank-entry", {"FACESIGN_WEBHOOK_SECRET": "a, ,b"}, "FACESIGN_WEBHOOK_SECRET"),
    ("smtp-without-smtp-url", {"MAIL_BACKEND": "smtp"}, "SMTP_URL"),
    ("api-key-without-secret", {"FACESIGN_API_KEY": "fs_live_key"}, "FACESIGN_WEBHOOK_SECRET"),
    (
        "api-key-with-blank-secret",
        {"FACESIGN_API_KEY": "fs_live_key", "FACESIGN_WEBHOOK_SECRET": "  "},
        "FACESIGN_WEBHOOK_SECRET",
    ),
    ("sandbox-port-too-big", {"SANDBOX_PORT": "70000"}, "SANDBOX_PORT"),
    ("queue-max-zero", {"QUEUE_MAX_MESSAGES": "0"}, "QUEUE_MAX_MESSAGES"),
    ("reconcile-calls-zero", {"RECONCILE_MAX_CALLS": "0"}, "RECONCILE_MAX_CALLS"),
    ("start-concurrency-zero", {"RECOVERY_START_CONCURRENCY": "0"}, "RECOVERY_START_CONCURRENCY"),
    ("start-timeout-too-long", {"RECOVERY_START_TIMEOUT": "121"}, "RECOVERY_START_TIMEOUT"),
    ("db-connect-timeout-zero", {"DATABASE_CONNECT_TIMEOUT": "0"}, "DATABASE_CONNECT_TIMEOUT"),
    ("db-statement-timeout-word", {"DATABASE_STATEMENT_TIMEOUT": "ten"}, "DATABASE_STATEMENT_TIMEOUT"),
    ("db-keepalives-zero", {"DATABASE_KEEPALIVES_IDLE": "0"}, "DATABASE_KEEPALIVES_IDLE"),
    ("worker-redis-timeout-zero", {"WORKER_REDIS_TIMEOUT": "0"}, "WORKER_REDIS_TIMEOUT"),
    ("sandbox-maybe", {"FACESIGN_SANDBOX": "maybe"}, "FACESIGN_SANDBOX"),
    ("forwarded-any", {"FORWARDED_ALLOW_IPS": "*"}, "FORWARDED_ALLOW_IPS"),
    ("forwarded-any-in-list", {"FORWARDED_ALLOW_IPS": "10.0.0.1, *"}, "FORWARDED_ALLOW_IPS"),
    ("forwarded-name", {"FORWARDED_ALLOW_IPS": "proxy.internal"}, "FORWARDED_ALLOW_IPS"),
    ("origins-with-path", {"ALLOWED_ORIGINS": "https://app.example.com/login"}, "ALLOWED_ORIGINS"),
    ("origins-bare-host", {"ALLOWED_ORIGINS": "app.example.com"}, "ALLOWED_ORIGINS"),
    ("total-zero", {"RECOVERIES_PER_MINUTE_TOTAL": "0"}, "RECOVERIES_PER_MINUTE_TOTAL"),
    ("body-timeout-zero", {"REQUEST_BODY_TIMEOUT": "0"}, "REQUEST_BODY_TIMEOUT"),
    ("rate-limit-zero", {"FACESIGN_RATE_LIMIT": "0"}, "FACESIGN_RATE_LIMIT"),
    ("rate-limit-fraction", {"FACESIGN_RATE_LIMIT": "12.5"}, "FACESIGN_RATE_LIMIT"),
    ("share-word", {"FACESIGN_INTERACTIVE_SHARE": "a third"}, "FACESIGN_INTERACTIVE_SHARE"),
    ("share-negative", {"FACESIGN_INTERACTIVE_SHARE": "-0.1"}, "FACESIGN_INTERACTIVE_SHARE"),
    ("share-everything", {"FACESIGN_INTERACTIVE_SHARE": "1"}, "FACESIGN_INTERACTIVE_SHARE"),
    ("share-nan", {"FACESIGN_INTERACTIVE_SHARE": "nan"}, "FACESIGN_INTERACTIVE_SHARE"),
]


def test_bounds_on_every_wait_are_read() -> None:
    env = {
        "QUEUE_MAX_MESSAGES": "500",
        "RECONCILE_MAX_CALLS": "50",
        "RECOVERY_START_CONCURRENCY": "2",
        "RECOVERY_START_TIMEOUT": "4",
        "DATABASE_CONNECT_TIMEOUT": "2",
        "DATABASE_STATEMENT_TIMEOUT": "30",
        "DATABASE_KEEPALIVES_IDLE": "15",
        "WORKER_REDIS_TIMEOUT": "10",
    }
    settings = Settings.from_env(env)
    assert (settings.queue_max_messages, settings.reconcile_max_calls) == (500, 50)
    assert (settings.recovery_start_concurrency, settings.recovery_start_timeout) == (2, 4)
    assert (settings.database_connect_timeout, settings.database_statement_timeout) == (2, 30)
    assert (settings.database_keepalives_idle, settings.worker_redis_timeout) == (15, 10)


@pytest.mark.parametrize(("env", "variable"), [pytest.param(e, v, id=i) for i, e, v in BAD])
def test_bad_value_names_the_variable_on_one_line(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    message = str(caught.value)
    assert message.startswith(f"{variable}: ")
    assert len(message) > len(variable) + 2
    assert "\n" not in message and "\r" not in message


def test_bad_value_message_shows_the_value() -> None:
    with pytest.raises(ConfigError, match=r"^FACESIGN_WEBHOOK_TOLERANCE: .*'abc'"):
        Settings.from_env({"FACESIGN_WEBHOOK_TOLERANCE": "abc"})
    with pytest.raises(ConfigError, match=r"^MAIL_BACKEND: .*'pigeon'"):
        Settings.from_env({"MAIL_BACKEND": "pigeon"})


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATTEMPT_TTL", "77")
    assert Settings.from_env() == Settings(attempt_ttl=77)


def test_operator_settings_log_format_reconciler_metrics_and_chain_check() -> None:
    assert Settings.from_env({}).log_format is None  # decided by the stream: console on a terminal
    env = {
        "LOG_FORMAT": "console",
        "RECONCILER_METRICS_HOST": "10.0.0.7",
        "RECONCILER_METRICS_PORT": "0",
        "AUDIT_VERIFY_INTERVAL": "600",
    }
    settings = Settings.from_env(env)
    assert settings.log_format == "console" and settings.reconciler_metrics_host == "10.0.0.7"
    assert settings.reconciler_metrics_port == 0 and settings.audit_verify_interval == 600
    for variable, value in (
        ("LOG_FORMAT", "xml"),
        ("RECONCILER_METRICS_PORT", "70000"),
        ("AUDIT_VERIFY_INTERVAL", "-1"),
    ):
        with pytest.raises(ConfigError, match=f"^{variable}: "):
            Settings.from_env({variable: value})


# A running service: the sandbox only when asked for, and never in a production-looking configuration.

SERVICE = {**LIVE, "AUDIT_PSEUDONYM_KEY": "pseudonym-key"}


@pytest.mark.parametrize("variable", ["FACESIGN_API_KEY", "FACESIGN_WEBHOOK_SECRET", "AUDIT_PSEUDONYM_KEY"])
@pytest.mark.parametrize("value", [None, "", "   "], ids=["missing", "empty", "blank"])
def test_a_service_without_its_secrets_does_not_start(variable: str, value: str | None) -> None:
    env = dict(SERVICE)
    if value is None:
        del env[variable]
    else:
        env[variable] = value
    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:  # a blank secret with the key set is already refused here
        message = str(exc)
    else:
        assert settings.sandbox_mode is False
        with pytest.raises(ConfigError) as caught:
            settings.check_service()
        message = str(caught.value)
    assert message.startswith(f"{variable}: ") and "\n" not in message


def test_a_blank_api_key_is_not_the_sandbox() -> None:
    settings = Settings.from_env({**SERVICE, "FACESIGN_API_KEY": "", "FACESIGN_API_URL": "https://api.facesign.ai"})
    assert settings.sandbox_mode is False
    with pytest.raises(ConfigError, match=r"^FACESIGN_API_KEY: required"):
        settings.check_service()


def test_a_complete_service_configuration_starts() -> None:
    Settings.from_env(SERVICE).check_service()


def test_the_sandbox_needs_no_secrets() -> None:
    settings = Settings.from_env({"FACESIGN_SANDBOX": "1"})
    assert settings.sandbox_mode is True
    settings.check_service()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"FACESIGN_API_URL": "https://api.facesign.ai"}, "FACESIGN_API_URL"),
        ({"DATABASE_URL": "postgresql+psycopg://app:pw@db/recovery"}, "PostgreSQL"),
        ({"PUBLIC_BASE_URL": "https://recover.example.com"}, "https"),
    ],
    ids=["api-url", "postgresql", "https"],
)
def test_the_sandbox_refuses_a_production_configuration(env: dict[str, str], named: str) -> None:
    settings = Settings.from_env({"FACESIGN_SANDBOX": "1", **env})
    with pytest.raises(ConfigError) as caught:
        settings.check_service()
    message = str(caught.value)
    assert message.startswith("FACESIGN_SANDBOX: refused") and named in message
    assert "pw@" not in message


@pytest.mark.parametrize(
    ("env", "password"),
    [
        ({"REDIS_URL": "http://user:hunter2@cache:6379"}, "hunter2"),
        ({"SMTP_URL": "http://mailer:s3cr3t@smtp.example.com"}, "s3cr3t"),
        ({"SMTP_URL": "smtp://mailer:s3cr3t@:25"}, "s3cr3t"),
        ({"FACESIGN_API_URL": "ftp://k:apipass@api.facesign.ai"}, "apipass"),
    ],
)
def test_config_errors_mask_url_credentials(env: dict[str, str], password: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert password not in str(caught.value) and "***" in str(caught.value)


def test_proxies_origins_and_limits_are_read() -> None:
    settings = Settings.from_env(
        {
            "FORWARDED_ALLOW_IPS": "10.0.0.0/8, 192.168.1.7",
            "ALLOWED_ORIGINS": "https://App.example.com, http://localhost:3000",
            "RECOVERIES_PER_MINUTE_TOTAL": "50",
            "METRICS_TOKEN": "m-token",
            "REQUEST_BODY_TIMEOUT": "3",
        }
    )
    assert settings.forwarded_allow_ips == "10.0.0.0/8, 192.168.1.7"
    assert settings.allowed_origins == ("https://app.example.com", "http://localhost:3000")
    assert settings.recoveries_per_minute_total == 50 and settings.metrics_token == "m-token"
    assert settings.body_read_timeout == 3.0


def test_forwarded_any_is_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError, match=r"^FORWARDED_ALLOW_IPS: '\*' would let every client name its own address"):
        Settings.from_env({"FORWARDED_ALLOW_IPS": "*"})
