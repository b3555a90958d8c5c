"""The settings of the recovery lock, the owner's alerts and the application's events."""

from __future__ import annotations

import base64

import pytest

from config import ConfigError, Settings

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert (settings.recovery_lock_threshold, settings.recovery_lock_window) == (3, 86400)
    assert settings.attempt_alert_interval == 3600
    assert settings.app_webhook_urls == () and settings.app_webhook_secret is None
    assert settings.app_webhook_retry_window == 86400


def test_values_are_read() -> None:
    settings = Settings.from_env(
        {
            "RECOVERY_LOCK_THRESHOLD": "5",
            "RECOVERY_LOCK_WINDOW": "600",
            "ATTEMPT_ALERT_INTERVAL": "0",
            "APP_WEBHOOK_URL": " https://app.example.com/hooks , http://127.0.0.1:9000/e ",
            "APP_WEBHOOK_SECRET": SECRET,
            "APP_WEBHOOK_RETRY_WINDOW": "30",
        }
    )
    assert (settings.recovery_lock_threshold, settings.recovery_lock_window, settings.attempt_alert_interval) == (
        5,
        600,
        0,
    )
    assert settings.app_webhook_urls == ("https://app.example.com/hooks", "http://127.0.0.1:9000/e")
    assert settings.app_webhook_secret == SECRET
    assert settings.app_webhook_retry_window == 30


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"RECOVERY_LOCK_THRESHOLD": "0"}, "RECOVERY_LOCK_THRESHOLD"),
        ({"RECOVERY_LOCK_WINDOW": "a day"}, "RECOVERY_LOCK_WINDOW"),
        ({"ATTEMPT_ALERT_INTERVAL": "-1"}, "ATTEMPT_ALERT_INTERVAL"),
        ({"APP_WEBHOOK_URL": "https://app.example.com/hooks"}, "APP_WEBHOOK_SECRET"),
        ({"APP_WEBHOOK_URL": "ftp://app.example.com", "APP_WEBHOOK_SECRET": SECRET}, "APP_WEBHOOK_URL"),
        ({"APP_WEBHOOK_URL": "https://a.example.com,,", "APP_WEBHOOK_SECRET": SECRET}, "APP_WEBHOOK_URL"),
        ({"APP_WEBHOOK_URL": "https://a.example.com", "APP_WEBHOOK_SECRET": "s3cret"}, "APP_WEBHOOK_SECRET"),
        ({"APP_WEBHOOK_URL": "https://a.example.com", "APP_WEBHOOK_SECRET": "whsec_not*base64"}, "APP_WEBHOOK_SECRET"),
        ({"APP_WEBHOOK_URL": "https://a.example.com", "APP_WEBHOOK_SECRET": "whsec_c2hvcnQ="}, "APP_WEBHOOK_SECRET"),
        ({"APP_WEBHOOK_RETRY_WINDOW": "0"}, "APP_WEBHOOK_RETRY_WINDOW"),
    ],
)
def test_bad_values_stop_start_up_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    message = str(caught.value)
    assert message.startswith(f"{variable}:") and "\n" not in message


def test_a_bad_url_is_not_echoed_since_it_may_carry_a_credential() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"APP_WEBHOOK_URL": "ftp://user:hunter2@host", "APP_WEBHOOK_SECRET": SECRET})
    assert "hunter2" not in str(caught.value)


def test_a_bad_secret_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"APP_WEBHOOK_URL": "https://a.example.com", "APP_WEBHOOK_SECRET": "whsec_hunter2!"})
    assert "hunter2" not in str(caught.value)
