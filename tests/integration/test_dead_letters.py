"""Dead letters on a real Redis, put there by Dramatiq's own nack, listed and replayed."""

from __future__ import annotations

import threading

import dramatiq
import pytest
from click.testing import CliRunner

from adapters.queue import dead_letters
from adapters.queue.broker import build_broker, session_event_message
from adapters.queue.names import MAIL_ACTOR, MAIL_QUEUE, SESSIONS_QUEUE

pytestmark = pytest.mark.redis

TRACE = 'Traceback (most recent call last):\n  File "x.py", line 1\nFaceSignTransient: HTTP 503 on GET /sessions/s1\n'


def dead_letter(broker: dramatiq.Broker, message: dramatiq.Message) -> str:  # type: ignore[type-arg]
    """Enqueue, fetch and nack it exactly as a worker does when retries run out."""
    broker.enqueue(message)
    consumer = broker.consume(message.queue_name, prefetch=1, timeout=100)
    proxy = None
    for _ in range(20):
        proxy = next(consumer)
        if proxy is not None:
            break
    assert proxy is not None
    consumer.nack(proxy)
    consumer.close()
    return str(proxy.message_id)


def pending(broker: dramatiq.Broker, queue: str) -> list[dramatiq.Message]:  # type: ignore[type-arg]
    client = broker.client  # type: ignore[attr-defined]
    ids = client.lrange(f"{broker.namespace}:{queue}", 0, -1)  # type: ignore[attr-defined]
    data = client.hmget(f"{broker.namespace}:{queue}.msgs", ids) if ids else []  # type: ignore[attr-defined]
    return [dramatiq.Message.decode(item) for item in data]


def test_list_shows_what_an_operator_needs(redis_url: str, redis_namespace: str) -> None:
    broker = build_broker(redis_url, redis_namespace)
    message = session_event_message("sess_1", "evt_1").copy(options={"retries": 8, "traceback": TRACE})
    message_id = dead_letter(broker, message)
    mail = dramatiq.Message(queue_name=MAIL_QUEUE, actor_name=MAIL_ACTOR, args=("mail_1",), kwargs={}, options={})
    dead_letter(broker, mail)

    letters = list(dead_letters.list_dead_letters(broker))
    assert [(x.queue, x.actor, x.session_id) for x in letters] == [
        (SESSIONS_QUEUE, "process_session_event", "sess_1"),
        (MAIL_QUEUE, MAIL_ACTOR, None),
    ]
    assert letters[0].message_id == message_id
    assert letters[0].failure == "FaceSignTransient: HTTP 503 on GET /sessions/s1"
    assert letters[1].failure == "rejected (no traceback recorded)"
    assert 0 <= letters[0].age_seconds() < 60
    assert [letter.queue for letter in dead_letters.list_dead_letters(broker, [SESSIONS_QUEUE])] == [SESSIONS_QUEUE]


def test_replay_requeues_with_fresh_retries_once(redis_url: str, redis_namespace: str) -> None:
    broker = build_broker(redis_url, redis_namespace)
    message = session_event_message("sess_2", "evt_2").copy(options={"retries": 8, "traceback": TRACE})
    message_id = dead_letter(broker, message)

    assert dead_letters.replay(broker, message_id) is True
    assert dead_letters.replay(broker, message_id) is False
    assert list(dead_letters.list_dead_letters(broker)) == []
    [again] = pending(broker, SESSIONS_QUEUE)
    assert (again.message_id, again.args, again.kwargs) == (message_id, ("sess_2",), {"event_id": "evt_2"})
    assert "retries" not in again.options and "traceback" not in again.options
    assert again.options["replays"] == 1


def test_concurrent_replays_enqueue_once(redis_url: str, redis_namespace: str) -> None:
    broker = build_broker(redis_url, redis_namespace)
    ids = [dead_letter(broker, session_event_message(f"sess_{i}", None)) for i in range(5)]
    results: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(dead_letters.replay_all(build_broker(redis_url, redis_namespace)))
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(results) == 5
    assert sorted(m.message_id for m in pending(broker, SESSIONS_QUEUE)) == sorted(ids)


def test_cli_list_and_replay(redis_url: str, redis_namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import cli
    import cli.dlq

    broker = build_broker(redis_url, redis_namespace)
    monkeypatch.setattr(cli.dlq, "_broker", lambda: broker)
    message_id = dead_letter(broker, session_event_message("sess_cli", "evt_cli"))
    runner = CliRunner()

    listed = runner.invoke(cli.main, ["dlq", "list", "--format", "jsonl"])
    assert listed.exit_code == 0, listed.output
    assert f'"messageId":"{message_id}"' in listed.output and '"sessionId":"sess_cli"' in listed.output

    assert runner.invoke(cli.main, ["dlq", "replay", message_id]).exit_code == 0
    second = runner.invoke(cli.main, ["dlq", "replay", message_id])
    assert second.exit_code == 1 and "no dead letter" in second.output
    assert runner.invoke(cli.main, ["dlq", "replay"]).exit_code == 2
    table = runner.invoke(cli.main, ["dlq", "list"])
    assert table.exit_code == 0 and "(0 dead letters)" in table.output
