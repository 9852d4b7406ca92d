import uuid

from django.conf import settings
from django.db import models


class VirtualMachine(models.Model):
    """A VM of the catalogue a user may open."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vms")
    name = models.CharField(max_length=63)
    image = models.CharField(max_length=100)
    vcpus = models.PositiveSmallIntegerField(default=1)
    memory_mb = models.PositiveIntegerField(default=1024)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="one_name_per_owner")]

    def __str__(self):
        return self.name

    def latest_job(self):
        return self.jobs.order_by("-created_at").first()


class Job(models.Model):
    """One opening of one VM: one dramatiq message to open_vm_task."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    DONE = "done"
    FAILED = "failed"
    STATES = [(s, s) for s in (QUEUED, RUNNING, RETRYING, DONE, FAILED)]
    ACTIVE = (QUEUED, RUNNING, RETRYING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    vm = models.ForeignKey(VirtualMachine, on_delete=models.CASCADE, related_name="jobs")
    state = models.CharField(max_length=10, choices=STATES, default=QUEUED)
    # The dramatiq message that carries it, and the worker running its current attempt.
    message_id = models.CharField(max_length=36, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=100, blank=True)
    progress = models.FloatField(default=0)
    detail = models.CharField(max_length=300, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def as_event(self):
        """What the browser gets for this job (vm_progress, vm_response, /jobs/)."""
        return {
            "id": str(self.id),
            "vm": self.vm.name,
            "state": self.state,
            "fraction": self.progress,
            "text": self.detail,
            "worker": self.worker,
            "result": self.result,
            "error": self.error or None,
        }
