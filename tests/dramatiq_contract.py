"""The group commit's contract with Dramatiq, shared by its unit (fakeredis) and integration (Redis) tests."""

from __future__ import annotations

import json
from typing import Any

import dramatiq

from adapters.queue.names import PROCESS_ACTOR, SESSIONS_QUEUE


def what_dramatiq_encodes(data: bytes, redis_message_id: str) -> dict[str, Any]:
    """`Message.encode` for the stored message's own values (ids and timestamp taken over), decoded:
    what `RedisBroker.enqueue` would have stored for the same message."""
    message = dramatiq.Message.decode(data)
    expected = dramatiq.Message(
        queue_name=SESSIONS_QUEUE,
        actor_name=PROCESS_ACTOR,
        args=message.args,
        kwargs=message.kwargs,
        options={"redis_message_id": redis_message_id},
        message_id=message.message_id,
        message_timestamp=message.message_timestamp,
    ).encode()
    decoded: dict[str, Any] = json.loads(expected)
    return decoded
