"""The group-commit enqueue without a network: the messages its script builds are Dramatiq's (the contract
of this fast path), batching, back-pressure, failure."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import dramatiq
import fakeredis
import fakeredis.aioredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.queue.group_commit import GroupCommit, GroupCommitError, QueueFull
from adapters.queue.names import PROCESS_ACTOR, SESSIONS_QUEUE
from tests.dramatiq_contract import what_dramatiq_encodes


def fake_commit(server: fakeredis.FakeServer, **options: Any) -> GroupCommit:
    return GroupCommit(
        "redis://unused",
        "ns",
        SESSIONS_QUEUE,
        PROCESS_ACTOR,
        client_factory=lambda: fakeredis.aioredis.FakeRedis(server=server),
        **options,
    )


def put_all(commit: GroupCommit, events: list[tuple[str, str | None, int | None]]) -> list[Any]:
    async def scenario() -> list[Any]:
        try:
            return await asyncio.gather(*(commit.put(*event) for event in events), return_exceptions=True)
        finally:
            await commit.aclose()

    return asyncio.run(scenario())


def stored_messages(server: fakeredis.FakeServer) -> list[tuple[str, bytes]]:
    """(redis message id, message) in queue order."""
    client = fakeredis.FakeRedis(server=server)
    return [
        (rid.decode(), client.hget(f"ns:{SESSIONS_QUEUE}.msgs", rid))
        for rid in client.lrange(f"ns:{SESSIONS_QUEUE}", 0, -1)
    ]


@pytest.mark.parametrize(
    ("session_id", "event_id", "event_at", "kwargs"),
    [
        ("sess_1", "evt_1", 1_796_000_000_123, {"event_id": "evt_1", "event_at": 1_796_000_000_123}),
        ('sess_ü"\\/😀', None, None, {"event_id": None}),
        ("sess_2", "", 5, {"event_id": None, "event_at": 5}),
    ],
)
def test_each_message_is_what_dramatiq_encodes_for_it(
    session_id: str, event_id: str | None, event_at: int | None, kwargs: dict[str, Any]
) -> None:
    server = fakeredis.FakeServer()
    [message_id] = put_all(fake_commit(server), [(session_id, event_id, event_at)])
    [(redis_message_id, data)] = stored_messages(server)
    assert json.loads(data) == what_dramatiq_encodes(data, redis_message_id)
    decoded = dramatiq.Message.decode(data)
    assert decoded.args == (session_id,) and decoded.kwargs == kwargs
    assert decoded.message_id == message_id.decode()  # put answers Dramatiq's message id


_any_text = st.characters(exclude_categories=())  # surrogates included


@given(st.lists(st.tuples(st.text(_any_text, min_size=1), st.text(_any_text)), min_size=1, max_size=8))
@settings(max_examples=100, deadline=None)
def test_messages_match_dramatiqs_for_any_text(events: list[tuple[str, str]]) -> None:
    """Non-ASCII, quotes, control characters; surrogates that cannot be sent are refused before the batch."""
    server = fakeredis.FakeServer()
    answers = put_all(fake_commit(server), [(s, e, 1) for s, e in events])
    sendable = [not isinstance(a, ValueError) for a in answers]
    for (session_id, event_id), ok in zip(events, sendable, strict=True):
        assert ok == all(c < "\ud800" or c > "\udfff" for c in session_id + event_id)
    for redis_message_id, data in stored_messages(server):
        assert json.loads(data) == what_dramatiq_encodes(data, redis_message_id)
    enqueued = [s for (s, _), a in zip(events, answers, strict=True) if isinstance(a, bytes)]
    assert [dramatiq.Message.decode(d).args[0] for _, d in stored_messages(server)] == enqueued


def test_message_ids_are_fresh_canonical_version_4_uuids() -> None:
    server = fakeredis.FakeServer()
    put_all(fake_commit(server), [(f"sess_{i}", None, None) for i in range(300)])
    values = []
    for redis_message_id, data in stored_messages(server):
        values += [redis_message_id, dramatiq.Message.decode(data).message_id]
    assert len(set(values)) == 600
    for value in values:
        parsed = uuid.UUID(value)
        assert str(parsed) == value and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_concurrent_puts_all_land_in_dramatiqs_keys_in_arrival_order() -> None:
    server = fakeredis.FakeServer()
    sessions = [f"sess_{i}" for i in range(200)]
    put_all(fake_commit(server, max_batch=50), [(s, None, None) for s in sessions])
    stored = stored_messages(server)
    assert [dramatiq.Message.decode(data).args[0] for _, data in stored] == sessions  # arrival order kept
    assert fakeredis.FakeRedis(server=server).hlen(f"ns:{SESSIONS_QUEUE}.msgs") == 200


def test_the_queue_ceiling_refuses_whole_batches_before_redis_fills_up() -> None:
    """QUEUE_MAX_MESSAGES: what the queue holds (waiting, in flight, or waiting for a retry) is counted
    inside the batch's own script; past the ceiling nothing of the batch is written."""
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server)
    client.hset(f"ns:{SESSIONS_QUEUE}.DQ.msgs", "retrying", b"x")  # a retry waiting its turn counts too
    commit = fake_commit(server, max_messages=5)

    async def put(first: int, count: int) -> list[Any]:
        return await asyncio.gather(
            *(commit.put(f"s{i}", None, None) for i in range(first, first + count)), return_exceptions=True
        )

    async def scenario() -> tuple[list[Any], list[Any]]:
        return await put(0, 4), await put(4, 1)

    first, second = asyncio.run(scenario())
    assert all(isinstance(a, bytes) for a in first)
    assert len(second) == 1 and isinstance(second[0], QueueFull)
    assert client.llen(f"ns:{SESSIONS_QUEUE}") == 4 and client.hlen(f"ns:{SESSIONS_QUEUE}.msgs") == 4
    client.delete(f"ns:{SESSIONS_QUEUE}.DQ.msgs")  # a worker made room
    assert isinstance(asyncio.run(put(9, 1))[0], bytes)


def test_a_string_redis_cannot_take_fails_its_own_put_and_not_the_batch() -> None:
    server = fakeredis.FakeServer()
    answers = put_all(
        fake_commit(server), [("sess_ok", None, None), ("sess_\ud800", None, None), ("s", "evt_\udfff", 1)]
    )
    assert isinstance(answers[0], bytes)
    assert isinstance(answers[1], ValueError) and isinstance(answers[2], ValueError)
    assert [dramatiq.Message.decode(d).args for _, d in stored_messages(server)] == [("sess_ok",)]


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
        messages = len(json.loads(args[-1])[2])  # the last argument: the batch, its events third
        self.written += messages
        return [1] * messages

    async def aclose(self) -> None:
        return None


def test_a_full_buffer_refuses_at_once_instead_of_growing() -> None:
    async def scenario() -> tuple[int, int]:
        release = asyncio.Event()
        client = StalledClient(release, fail=False)
        commit = GroupCommit(
            "redis://unused", "ns", "q", "a", max_pending=3, max_batch=1, client_factory=lambda: client
        )
        waiting = [asyncio.create_task(commit.put("m0", None, None))]
        for _ in range(3):  # the put, then the writer taking its batch into flight
            await asyncio.sleep(0)
        assert commit.pending == 0
        waiting += [asyncio.create_task(commit.put(f"s{i}", None, None)) for i in range(1, 4)]
        await asyncio.sleep(0)
        assert commit.pending == 3
        with pytest.raises(GroupCommitError, match="full"):
            await commit.put("one-too-many", None, None)
        release.set()
        await asyncio.gather(*waiting)
        return client.written, commit.pending

    assert asyncio.run(scenario()) == (4, 0)


def test_a_failed_round_trip_fails_every_waiter_of_that_batch_and_the_next_batch_retries() -> None:
    async def scenario() -> list[Any]:
        release = asyncio.Event()
        client = StalledClient(release, fail=True)
        commit = GroupCommit("redis://unused", "ns", "q", "a", client_factory=lambda: client)
        waiting = [asyncio.create_task(commit.put(f"s{i}", None, None)) for i in range(5)]
        await asyncio.sleep(0)
        release.set()
        results = await asyncio.gather(*waiting, return_exceptions=True)
        client.fail = False
        await commit.put("later", None, None)  # the writer restarts after a failure
        return [*results, client.written]

    *results, written = asyncio.run(scenario())
    assert all(isinstance(r, GroupCommitError) for r in results)
    assert written == 1


def test_a_round_trip_that_hangs_is_cut_by_the_timeout() -> None:
    async def scenario() -> None:
        client = StalledClient(asyncio.Event(), fail=False)  # never released
        commit = GroupCommit("redis://unused", "ns", "q", "a", timeout=0.05, client_factory=lambda: client)
        await commit.put("m", None, None)

    with pytest.raises(GroupCommitError, match="Timeout"):
        asyncio.run(scenario())


def test_a_redis_that_never_answers_is_cut_by_the_timeout_and_the_next_batch_reconnects() -> None:
    """The real client, with no socket timeout of its own: the batch's bound is what ends the wait,
    and the connection it cut is not reused (a late answer would be read as the next batch's)."""

    async def scenario() -> tuple[list[Any], int]:
        connections = 0

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            await reader.read()  # reads every command, answers none, until the client hangs up
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        commit = GroupCommit(f"redis://127.0.0.1:{port}", "ns", "q", "a", timeout=0.2)
        outcomes = []
        try:
            for session_id in ("first", "second"):
                started = asyncio.get_running_loop().time()
                with pytest.raises(GroupCommitError, match="Timeout"):
                    await commit.put(session_id, None, None)
                outcomes.append(asyncio.get_running_loop().time() - started)
        finally:
            await commit.aclose()
            server.close()
        return outcomes, connections

    waited, connections = asyncio.run(scenario())
    assert all(0.15 < seconds < 2.0 for seconds in waited), waited
    assert connections == 2


def test_a_waiter_that_went_away_does_not_break_the_batch() -> None:
    async def scenario() -> int:
        release = asyncio.Event()
        client = StalledClient(release, fail=False)
        commit = GroupCommit("redis://unused", "ns", "q", "a", client_factory=lambda: client)
        gone = asyncio.create_task(commit.put("gone", None, None))
        stays = asyncio.create_task(commit.put("stays", None, None))
        await asyncio.sleep(0)
        gone.cancel()
        release.set()
        await stays
        return client.written

    assert asyncio.run(scenario()) == 2
