"""dramatiq's broker, from settings.DRAMATIQ_BROKER_URL: Redis by default, RabbitMQ when the URL
is amqp://. Imported by vms.tasks before its actor is declared (an actor binds to the broker
that is set when it is declared), so Django (sending) and the workers share it."""

import dramatiq
from django.conf import settings

url = settings.DRAMATIQ_BROKER_URL
if url.startswith(("amqp://", "amqps://")):
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = RabbitmqBroker(url=url)
elif url.startswith(("redis://", "rediss://", "unix://")):
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(
        url=url,
        heartbeat_timeout=settings.DRAMATIQ_REDIS_HEARTBEAT_TIMEOUT_MS,
        maintenance_chance=settings.DRAMATIQ_REDIS_MAINTENANCE_CHANCE,
    )
else:
    raise RuntimeError(f"DRAMATIQ_BROKER_URL is redis://... or amqp://..., not {url!r}")

dramatiq.set_broker(broker)
