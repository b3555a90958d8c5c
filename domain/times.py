"""One spelling of time for everything we write, and one reading of the times people give us."""

from __future__ import annotations

from datetime import UTC, datetime


def format_time(value: datetime) -> str:
    """UTC, microseconds, `Z`: one spelling whatever the database handed back."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if value.year < 1000:  # strftime writes such years unpadded, and hashed rows keep that spelling
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.isoformat(timespec="microseconds")[:-6] + "Z"  # the same text, at a third of the cost


def as_utc(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; every stored time is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_time(value: str) -> datetime:
    """ISO 8601 (`2026-11-19`, `2026-11-19T08:00:00Z`, `…+02:00`) as an aware UTC datetime; no zone means UTC.

    Raises ValueError for anything else, including times that fall outside the calendar once in UTC.
    """
    try:
        parsed = datetime.fromisoformat(value)
        return as_utc(parsed)
    except (ValueError, OverflowError):
        raise ValueError(f"not an ISO 8601 time (e.g. 2026-11-19 or 2026-11-19T08:00:00Z): {value!r}") from None


MAX_EPOCH_MS = 10**14  # past the year 5000: not a time anyone sends in earnest


def from_epoch_ms(value: object) -> datetime | None:
    """FaceSign's times (the webhook's `createdAt`): whole milliseconds since the epoch; None for anything else."""
    if type(value) is not int or not 0 < value < MAX_EPOCH_MS:
        return None
    return datetime.fromtimestamp(value / 1000, UTC)
