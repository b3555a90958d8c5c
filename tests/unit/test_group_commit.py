"""The group-commit enqueue without a network: Dramatiq's exact bytes (the contract of this fast path),
batching, back-pressure, failure."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import dramatiq
import fakeredis.aioredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.queue.group_commit import GroupCommit, GroupCommitError, QueueFull, encode_message, message_ids
from adapters.queue.names import PROCESS_ACTOR, SESSIONS_QUEUE


def dramatiq_encoding(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[bytes, bytes, str]:
    """encode_message's bytes, what RedisBroker.enqueue encodes for the same message (ids and timestamp
    taken over), and the message id."""
    redis_message_id, message_id, data = encode_message(SESSIONS_QUEUE, PROCESS_ACTOR, args, kwargs)
    expected = dramatiq.Message(
        queue_name=SESSIONS_QUEUE,
        actor_name=PROCESS_ACTOR,
        args=args,
        kwargs=kwargs,
        options={"redis_message_id": redis_message_id},
        message_id=message_id,
        message_timestamp=json.loads(data)["message_timestamp"],
    ).encode()
    return data, expected, message_id


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(("sess_1",), {"event_id": "evt_1"}), (('sess_ü"\\',), {"event_id": None}), ((), {})],
)
def test_encoded_message_is_byte_for_byte_what_dramatiq_encodes(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    data, expected, message_id = dramatiq_encoding(args, kwargs)
    assert data == expected
    decoded = dramatiq.Message.decode(data)
    assert decoded.args == args and decoded.kwargs == kwargs and decoded.message_id == message_id


_values = st.one_of(st.text(), st.none(), st.integers(), st.booleans(), st.lists(st.text(), max_size=3))


@given(
    args=st.tuples(_values) | st.tuples(st.text(), st.text()), kwargs=st.dictionaries(st.text(), _values, max_size=4)
)
@settings(max_examples=300)
def test_encoding_matches_dramatiqs_for_any_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """The string-only shortcuts and the general path alike (non-ASCII, quotes, control characters)."""
    data, expected, _ = dramatiq_encoding(args, kwargs)
    assert data == expected


def test_every_message_gets_fresh_ids() -> None:
    first = encode_message(SESSIONS_QUEUE, PROCESS_ACTOR, ("s",), {})
    second = encode_message(SESSIONS_QUEUE, PROCESS_ACTOR, ("s",), {})
    assert len({first[0], first[1], second[0], second[1]}) == 4


def fake_commit(server: fakeredis.FakeServer, **options: Any) -> GroupCommit:
    return GroupCommit(
        "redis://unused", "ns", "q", client_factory=lambda: fakeredis.aioredis.FakeRedis(server=server), **options
    )


def test_concurrent_puts_all_land_in_dramatiqs_keys_in_arrival_order() -> None:
    server = fakeredis.FakeServer()
    commit = fake_commit(server, max_batch=50)

    messages = [encode_message("q", "a", (str(i),), {}) for i in range(200)]
    messages_by_id = {rid: data for rid, _, data in messages}

    async def scenario() -> list[str]:
        await asyncio.gather(*(commit.put(rid, data, rid, None, None) for rid, _, data in messages))
        await commit.aclose()
        return [rid for rid, _, _ in messages]

    ids = asyncio.run(scenario())
    client = fakeredis.FakeRedis(server=server)
    assert [i.decode() for i in client.lrange("ns:q", 0, -1)] == ids  # arrival order kept
    assert client.hlen("ns:q.msgs") == 200
    assert client.hget("ns:q.msgs", ids[7]) == messages_by_id[ids[7]]


def test_the_queue_ceiling_refuses_whole_batches_before_redis_fills_up() -> None:
    """QUEUE_MAX_MESSAGES: what the queue holds (waiting, in flight, or waiting for a retry) is counted
    inside the batch's own script; past the ceiling nothing of the batch is written."""
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server)
    client.hset("ns:q.DQ.msgs", "retrying", b"x")  # a retry waiting its turn counts too
    commit = fake_commit(server, max_messages=5)

    async def put(count: int) -> list[Any]:
        batch = [encode_message("q", "a", (str(i),), {}) for i in range(count)]
        return await asyncio.gather(
            *(commit.put(rid, data, rid, None, None) for rid, _, data in batch), return_exceptions=True
        )

    async def scenario() -> tuple[list[Any], list[Any]]:
        first = await put(4)
        second = await put(1)
        return first, second

    first, second = asyncio.run(scenario())
    assert first == [0] * 4
    assert len(second) == 1 and isinstance(second[0], QueueFull)
    assert client.llen("ns:q") == 4 and client.hlen("ns:q.msgs") == 4
    client.delete("ns:q.DQ.msgs")  # a worker made room
    assert asyncio.run(put(1)) == [0]


class StalledClient:
    """A client whose batch script waits for `release` and then fails or succeeds."""

    def __init__(self, release: asyncio.Event, fail: bool) -> None:
        self.release, self.fail, self.written = release, fail, 0

    def register_script(self, script: str) -> Any:
        return self.run

    async def run(self, keys: list[str], args: list[Any]) -> list[int]:
        await self.release.wait()
        if self.fail:
            raise ConnectionError("redis went away")
        messages = (len(args) - 6) // 5  # after the six leading arguments, five per message
        self.written += messages
        return [0] * messages

    async def aclose(self) -> None:
        return None


def test_a_full_buffer_refuses_at_once_instead_of_growing() -> None:
    async def scenario() -> tuple[int, int]:
        release = asyncio.Event()
        client = StalledClient(release, fail=False)
        commit = GroupCommit("redis://unused", "ns", "q", max_pending=3, max_batch=1, client_factory=lambda: client)
        waiting = [asyncio.create_task(commit.put("m0", b"x", "m0", None, None))]
        for _ in range(3):  # the put, then the writer taking its batch into flight
            await asyncio.sleep(0)
        assert commit.pending == 0
        waiting += [asyncio.create_task(commit.put(f"m{i}", b"x", f"s{i}", None, None)) for i in range(1, 4)]
        await asyncio.sleep(0)
        assert commit.pending == 3
        with pytest.raises(GroupCommitError, match="full"):
            await commit.put("one-too-many", b"x", "one-too-many", None, None)
        release.set()
        await asyncio.gather(*waiting)
        return client.written, commit.pending

    assert asyncio.run(scenario()) == (4, 0)


def test_a_failed_round_trip_fails_every_waiter_of_that_batch_and_the_next_batch_retries() -> None:
    async def scenario() -> list[Any]:
        release = asyncio.Event()
        client = StalledClient(release, fail=True)
        commit = GroupCommit("redis://unused", "ns", "q", client_factory=lambda: client)
        waiting = [asyncio.create_task(commit.put(f"m{i}", b"x", f"s{i}", None, None)) for i in range(5)]
        await asyncio.sleep(0)
        release.set()
        results = await asyncio.gather(*waiting, return_exceptions=True)
        client.fail = False
        await commit.put("later", b"x", "later", None, None)  # the writer restarts after a failure
        return [*results, client.written]

    *results, written = asyncio.run(scenario())
    assert all(isinstance(r, GroupCommitError) for r in results)
    assert written == 1


def test_a_round_trip_that_hangs_is_cut_by_the_timeout() -> None:
    async def scenario() -> None:
        client = StalledClient(asyncio.Event(), fail=False)  # never released
        commit = GroupCommit("redis://unused", "ns", "q", timeout=0.05, client_factory=lambda: client)
        await commit.put("m", b"x", "m", None, None)

    with pytest.raises(GroupCommitError, match="Timeout"):
        asyncio.run(scenario())


def test_a_waiter_that_went_away_does_not_break_the_batch() -> None:
    async def scenario() -> int:
        release = asyncio.Event()
        client = StalledClient(release, fail=False)
        commit = GroupCommit("redis://unused", "ns", "q", client_factory=lambda: client)
        gone = asyncio.create_task(commit.put("gone", b"x", "gone", None, None))
        stays = asyncio.create_task(commit.put("stays", b"x", "stays", None, None))
        await asyncio.sleep(0)
        gone.cancel()
        release.set()
        await stays
        return client.written

    assert asyncio.run(scenario()) == 2


def test_message_ids_are_canonical_version_4_uuids() -> None:
    values = {value for _ in range(1000) for value in message_ids()}
    assert len(values) == 2000
    for value in list(values)[:200]:
        parsed = uuid.UUID(value)
        assert str(parsed) == value and parsed.version == 4 and parsed.variant == uuid.RFC_4122
