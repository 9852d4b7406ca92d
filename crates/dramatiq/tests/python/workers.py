"""The dramatiq actors socketlet-dramatiq's integration tests send messages to.

Plain dramatiq, as an application would write it: run with the real `dramatiq` command,

    DRAMATIQ_BROKER=redis://127.0.0.1:PORT DRAMATIQ_RESULTS=redis://127.0.0.1:PORT \
        .venv/bin/dramatiq workers --processes 2 --threads 2

Environment:
  DRAMATIQ_BROKER   redis://... (RedisBroker) or amqp://... (RabbitmqBroker)
  DRAMATIQ_RESULTS  redis://... of the results backend (RedisBackend, default namespace and keys)
  DRAMATIQ_QUEUE    the actors' queue (default: "default")

Every actor stores its results. `record` also appends what it ran to the Redis list
`socketlet-test:ran` of the results Redis, so that a test sees what ran and when (even a job
whose result nobody awaits).
"""

from __future__ import annotations

import json
import os
import time

import dramatiq
import redis
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

BROKER_URL = os.environ["DRAMATIQ_BROKER"]
RESULTS_URL = os.environ["DRAMATIQ_RESULTS"]
QUEUE = os.environ.get("DRAMATIQ_QUEUE", "default")

if BROKER_URL.startswith("amqp"):
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = RabbitmqBroker(url=BROKER_URL)
else:
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=BROKER_URL)
broker.add_middleware(Results(backend=RedisBackend(url=RESULTS_URL)))
dramatiq.set_broker(broker)

marks = redis.Redis.from_url(RESULTS_URL)


def mark(what: str, **fields) -> dict:
    entry = {"what": what, "at_ms": int(time.time() * 1000), "pid": os.getpid(), **fields}
    marks.rpush("socketlet-test:ran", json.dumps(entry))
    return entry


@dramatiq.actor(queue_name=QUEUE, store_results=True, max_retries=0)
def add(x, y):
    return x + y


@dramatiq.actor(queue_name=QUEUE, store_results=True, max_retries=0)
def nap(seconds, tag):
    time.sleep(seconds)
    return {"tag": tag, "slept": seconds, "pid": os.getpid()}


@dramatiq.actor(queue_name=QUEUE, store_results=True, max_retries=0)
def explode(why):
    raise ValueError(why)


@dramatiq.actor(queue_name=QUEUE, store_results=True, max_retries=1, min_backoff=100, max_backoff=200)
def flaky(why):
    mark("flaky", why=why)
    raise RuntimeError(why)


@dramatiq.actor(queue_name=QUEUE, store_results=True, max_retries=0)
def record(tag, **kwargs):
    return mark("record", tag=tag, kwargs=kwargs)


@dramatiq.actor(queue_name=QUEUE, store_results=True, max_retries=0)
def open_vm_task(id, name, user_id):
    """The story's actor: opens the VM `name` for `user_id`; `id` is the server's job id."""
    time.sleep(0.3)
    if name.startswith("legacy"):
        raise RuntimeError(f"{name}: the guest did not boot")
    return {
        "id": id,
        "name": name,
        "user_id": user_id,
        "state": "running",
        "worker_pid": os.getpid(),
    }
