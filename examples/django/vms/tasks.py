"""open_vm_task, the story's dramatiq actor, and what tells the user when dramatiq gives up.

Each VM is one message. The worker opens it (simulated: a few steps with a pause each), sending
``vm_progress`` to the user's room as it goes, and ``vm_response`` when it is open. Failures:

- an error while opening is retried once (max_retries=1), the user told of the retry;
- a worker that dies mid-way (killed, out of memory, its machine gone) holds the message
  unacknowledged; dramatiq hands it to another worker (RabbitMQ at once, the Redis broker once
  the dead worker's heartbeat is stale). Opening a VM twice could leave a half-made one behind,
  so that delivery finds the job already started and raises WorkerLost, which is never retried;
- too slow: time_limit.

Whenever dramatiq gives up on a message (retries exhausted, WorkerLost, the time limit), it
rejects it, and ReportFailures.after_nack marks the job failed and sends ``vm_response`` with
the error: the page never waits for a VM that is not coming.
"""

import logging
import os
import random
import socket
import time

import dramatiq
from django.conf import settings
from django.db.models import F
from django.utils import timezone
from dramatiq.middleware import Retries

from vmconsole.broker import broker

from . import push
from .models import Job

log = logging.getLogger(__name__)

WORKER = f"{socket.gethostname()}:{os.getpid()}"
#: The simulated provisioner's steps: (fraction done after it, what it does).
STEPS = [
    (0.25, "allocating"),
    (0.5, "booting the image"),
    (0.75, "starting services"),
    (1.0, "health check"),
]


class WorkerLost(Exception):
    """A delivery of a job another worker had started: that worker died before it finished."""


class ProvisioningError(Exception):
    """The VM could not be opened."""


def _send(user_id, event, job_id):
    job = Job.objects.select_related("vm").get(pk=job_id)
    push.to_user(user_id, event, job.as_event())


@dramatiq.actor(
    queue_name=settings.DRAMATIQ_QUEUE,
    max_retries=1,
    min_backoff=500,
    max_backoff=1000,
    time_limit=60_000,
    throws=(WorkerLost,),
)
def open_vm_task(id, name, user_id):
    # Take the job: queued (or waiting for its retry) -> running, in one UPDATE.
    claimed = Job.objects.filter(pk=id, state__in=[Job.QUEUED, Job.RETRYING]).update(
        state=Job.RUNNING,
        attempts=F("attempts") + 1,
        worker=WORKER,
        started_at=timezone.now(),
        detail="starting",
    )
    if not claimed:
        job = Job.objects.filter(pk=id).first()
        if job is not None and job.state == Job.RUNNING:
            raise WorkerLost(
                f"the worker opening {name} ({job.worker}) stopped before it finished; "
                "not opened twice"
            )
        log.info("job %s is %s: nothing to do", id, job.state if job else "gone")
        return
    try:
        vm = Job.objects.select_related("vm").get(pk=id).vm
        _send(user_id, "vm_progress", id)
        for fraction, what in STEPS:
            time.sleep(settings.VM_STEP_SECONDS * random.uniform(0.75, 1.25))
            if what == "booting the image" and vm.image.startswith("broken"):
                raise ProvisioningError(f"{vm.image} did not boot")
            Job.objects.filter(pk=id).update(progress=fraction, detail=what)
            _send(user_id, "vm_progress", id)
        result = {
            "name": name,
            "state": "running",
            "address": f"10.0.{vm.pk % 250}.{10 + vm.pk % 200}",
            "vcpus": vm.vcpus,
            "memory_mb": vm.memory_mb,
            "worker": WORKER,
        }
    except BaseException as exc:
        # Before dramatiq decides (retry or give up), so that a retry can claim the job again.
        Job.objects.filter(pk=id, state=Job.RUNNING).update(
            state=Job.RETRYING, detail=f"attempt failed: {exc}"
        )
        raise
    Job.objects.filter(pk=id).update(
        state=Job.DONE, progress=1.0, detail="open", result=result, finished_at=timezone.now()
    )
    _send(user_id, "vm_response", id)


class ReportFailures(dramatiq.Middleware):
    """Tells the user about retries, and about jobs dramatiq gave up on."""

    def after_process_message(self, broker, message, *, result=None, exception=None):
        # Retries has decided: message.failed means no retry (after_nack reports it).
        if message.actor_name != open_vm_task.actor_name or exception is None or message.failed:
            return
        job_id, _name, user_id = message.args
        Job.objects.filter(pk=job_id).update(
            detail=f"attempt {message.options.get('retries', 1)} failed ({exception}); retrying"
        )
        _send(user_id, "vm_progress", job_id)

    def after_nack(self, broker, message):
        # dramatiq gave up on the message: retries exhausted, WorkerLost, time limit, age limit.
        if message.actor_name != open_vm_task.actor_name:
            return
        job_id, name, user_id = message.args
        exception = getattr(message, "_exception", None)
        error = f"{type(exception).__name__}: {exception}" if exception else "dramatiq gave up"
        log.warning("job %s (%s) failed: %s", job_id, name, error)
        Job.objects.filter(pk=job_id).update(
            state=Job.FAILED, detail="failed", error=error, finished_at=timezone.now()
        )
        _send(user_id, "vm_response", job_id)


# dramatiq runs the after_* hooks in the reverse order of the list: placed before Retries, these
# run after it, once it has decided whether the message is retried.
broker.add_middleware(ReportFailures(), before=Retries)
