"""Fault knobs for failure tests and benchmarks, and the validation of changes to them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

# JSON name -> attribute, for the knobs that are probabilities.
RATE_KNOBS = {
    "errorRate": "error_rate",
    "rate429": "rate429",
    "dropRate": "drop_rate",
    "duplicateRate": "duplicate_rate",
}
MAX_LATENCY_MS = 60_000
LIMIT_KNOB = "rateLimitPerMinute"


class FaultError(ValueError):
    """A bad change to the knobs; the message is safe to show."""


@dataclass(frozen=True)
class Faults:
    latency_ms: float = 0.0  # added before every vendor API answer
    error_rate: float = 0.0  # fraction of vendor API answers that are 500
    rate429: float = 0.0  # fraction of vendor API answers that are 429 with Retry-After: 1
    drop_rate: float = 0.0  # fraction of webhook events never sent
    duplicate_rate: float = 0.0  # fraction of webhook events sent twice under one event id
    rate_limit_per_minute: int | None = None  # above this many vendor API requests in 60 s: 429 (None: no limit)

    def to_json(self) -> dict[str, float | None]:
        return {
            "latencyMs": self.latency_ms,
            **{key: getattr(self, attr) for key, attr in RATE_KNOBS.items()},
            LIMIT_KNOB: self.rate_limit_per_minute,
        }

    def updated(self, changes: Mapping[str, Any]) -> Faults:
        """A copy with these JSON-named changes applied; `seed` is accepted and left to the caller."""
        unknown = set(changes) - {"latencyMs", "seed", LIMIT_KNOB, *RATE_KNOBS}
        if unknown:
            raise FaultError(f"unknown fault knobs: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for key, value in changes.items():
            if key == "seed":
                if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                    raise FaultError("seed must be an integer or null")
                continue
            if key == LIMIT_KNOB:
                if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                    raise FaultError(f"{LIMIT_KNOB} must be a positive whole number or null")
                values["rate_limit_per_minute"] = value
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FaultError(f"{key} must be a number")
            if key == "latencyMs":
                if not 0 <= value <= MAX_LATENCY_MS:
                    raise FaultError(f"latencyMs must be between 0 and {MAX_LATENCY_MS}")
                values["latency_ms"] = value
            else:
                if not 0 <= value <= 1:
                    raise FaultError(f"{key} must be between 0 and 1")
                values[RATE_KNOBS[key]] = value
        return replace(self, **values)
