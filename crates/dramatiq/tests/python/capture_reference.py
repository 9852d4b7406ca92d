"""Captures what dramatiq itself writes, for socketlet-dramatiq's wire tests.

Run with the venv of this folder (setup.sh makes it), a Redis that may be flushed and, optionally,
a RabbitMQ:

    .venv/bin/python capture_reference.py --redis redis://127.0.0.1:PORT \
        [--amqp amqp://guest:guest@127.0.0.1:5672/%2f] > ../fixtures/reference.json

It sends messages with dramatiq's own `actor.send` / `send_with_options` on the Redis broker and
on the RabbitMQ broker, stores a result and a failure with dramatiq's own RedisBackend, and
prints, as JSON, the bytes each left in Redis or RabbitMQ (with the keys, queues and AMQP
properties they went to). The Rust tests rebuild every message from its ids and compare bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

# Arguments that exercise the encoder: non-ASCII (ensure_ascii escapes), an astral character
# (a surrogate pair), DEL, quotes, backslashes, control characters, nested values, and keyword
# arguments in a non-sorted order.
TRICKY_ARGS = ("Zoë", {"nested": [1, -7, None, True, False, "x"], "empty": {}}, [])
TRICKY_KWARGS = {"b": 1, "a": "\u2603 \U0001F600 \x7f \"q\" \\ \n\t\x01 </script>", "c": [0]}


def capture_redis(url: str) -> dict:
    client = redis.Redis.from_url(url)
    client.flushall()
    broker = RedisBroker(url=url)
    backend = RedisBackend(url=url)
    broker.add_middleware(Results(backend=backend))
    dramatiq.set_broker(broker)

    @dramatiq.actor(queue_name="default", store_results=True)
    def add(x, y):  # pragma: no cover - never run here
        return x + y

    @dramatiq.actor(queue_name="vms", actor_name="open_vm_task", store_results=True)
    def open_vm_task(id, name, user_id):  # pragma: no cover - never run here
        return {"id": id}

    sent = [
        ("plain args", add.send(1, 2)),
        (
            "tricky args, kwargs and options",
            open_vm_task.send_with_options(
                args=TRICKY_ARGS, kwargs=TRICKY_KWARGS, max_retries=0, min_backoff=100
            ),
        ),
        ("no arguments", open_vm_task.send_with_options()),
        ("delayed (eta)", add.send_with_options(args=(3, 4), delay=1500)),
    ]
    messages = []
    for what, message in sent:
        queue = message.queue_name
        rid = message.options["redis_message_id"]
        list_key = f"dramatiq:{queue}"
        hash_key = f"dramatiq:{queue}.msgs"
        ids = [i.decode() for i in client.lrange(list_key, 0, -1)]
        assert rid in ids, (what, list_key, ids)
        raw = client.hget(hash_key, rid)
        messages.append(
            {
                "what": what,
                "list_key": list_key,
                "hash_key": hash_key,
                "redis_message_id": rid,
                "raw": raw.decode("utf-8"),
            }
        )
    keys = sorted(k.decode() for k in client.keys("*"))

    results = []
    for what, message in sent:
        if what == "plain args":
            backend.store_result(message, {"sum": 3, "why": "\u2603"}, 600000)
        elif what == "delayed (eta)":
            backend.store_result(message, None, 600000)
        elif what == "tricky args, kwargs and options":
            backend.store_exception(message, ValueError("the guest did not boot \u2603"), 600000)
        else:
            backend.store_exception(message, RuntimeError(), 600000)
        key = backend.build_message_key(message)
        results.append(
            {
                "what": what,
                "queue_name": message.queue_name,
                "actor_name": message.actor_name,
                "message_id": message.message_id,
                "key": key,
                "type": client.type(key).decode(),
                "len": client.llen(key),
                "raw": client.lindex(key, 0).decode("utf-8"),
                "pttl_at_most": 600000,
                "pttl": client.pttl(key),
            }
        )
    return {"messages": messages, "keys_after_sending": keys, "results": results}


def capture_rabbitmq(url: str) -> dict | None:
    import pika
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    queue = "socketlet_capture_" + uuid.uuid4().hex[:8]
    try:
        broker = RabbitmqBroker(url=url)
        broker.declare_queue(queue, ensure=True)
    except Exception as e:  # no RabbitMQ here
        print(f"no RabbitMQ at {url}: {e}", file=sys.stderr)
        return None
    dramatiq.set_broker(broker)

    @dramatiq.actor(queue_name=queue, actor_name="open_vm_task")
    def open_vm_task(id, name, user_id):  # pragma: no cover - never run here
        return {"id": id}

    sent = [
        ("plain args", open_vm_task.send("job-1", "web-1", "alice")),
        (
            "delayed (eta), with a priority",
            open_vm_task.send_with_options(
                args=("job-2", "web-2", "bob"), delay=1500, broker_priority=3
            ),
        ),
    ]
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    messages = []
    for what, message in sent:
        routing_key = message.queue_name
        method, properties, body = channel.basic_get(routing_key, auto_ack=True)
        assert method is not None, (what, routing_key)
        messages.append(
            {
                "what": what,
                "exchange": method.exchange,
                "routing_key": method.routing_key,
                "delivery_mode": properties.delivery_mode,
                "priority": properties.priority,
                "content_type": properties.content_type,
                "headers": properties.headers,
                "raw": body.decode("utf-8"),
            }
        )
    for name in (queue, queue + ".DQ", queue + ".XQ"):
        channel.queue_delete(name)
    connection.close()
    broker.close()
    return {"queue": queue, "messages": messages}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True)
    parser.add_argument("--amqp")
    args = parser.parse_args()
    out = {
        "dramatiq": dramatiq.__version__,
        "redis-py": redis.__version__,
        "redis": capture_redis(args.redis),
        "rabbitmq": capture_rabbitmq(args.amqp) if args.amqp else None,
    }
    json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main()
