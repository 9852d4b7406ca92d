"""socketlet's hooks: Django views that socketlet calls (signed with --hook-secret), instead of a
python-socketio server inside Django.

- connect: on every Socket.IO connection, with the browser's cookies (socketlet
  --hook-forward-cookie). Django's session says who it is; the socket joins the room
  ``user:<id>``, where the workers send what they have to say to that user, whichever tab or
  connection it is on now.
- event: the browser's ``open_vms``. One dramatiq message per VM, and the ack answers at once
  with the job ids: nothing here waits for a VM.
"""

import logging

import socketlet.django as sl
from django.conf import settings
from django.urls import reverse

from .models import Job, VirtualMachine
from .tasks import open_vm_task

log = logging.getLogger(__name__)


def user_room(user_id):
    return f"user:{user_id}"


@sl.hook
def connect(request, payload):
    headers = payload["headers"]
    # A cookie rides along whatever page opened the connection. Browsers always send Origin on
    # a WebSocket and on cross-origin requests; a same-origin polling handshake (a GET) has
    # none. socketlet has already refused cross-origin requests (same origin by default).
    origin = headers.get("origin")
    if origin is not None and origin not in settings.SOCKETLET_ALLOWED_ORIGINS:
        return sl.refuse("origin not allowed")
    user = sl.user_from_cookies(headers)
    log.info(
        "connect over %s, Origin %s: %s",
        payload.get("transport"),
        origin or "absent",
        user.get_username() or "anonymous",
    )
    if not user.is_authenticated:
        return sl.refuse("log in first", data={"login": reverse("login")})
    return sl.accept(user.pk, rooms=[user_room(user.pk)], data={"name": user.get_username()})


@sl.hook
def event(request, payload):
    user_id = payload["user"]
    args = sl.event_args(payload)
    if payload["event"] != "open_vms":
        return sl.refuse(f"unknown event {payload['event']}")
    if len(args) != 1 or not isinstance(args[0], dict) or not isinstance(args[0].get("vms"), list):
        return sl.refuse('open_vms takes {"vms": [name, ...]}')
    names = [n for n in args[0]["vms"] if isinstance(n, str)]
    if not names or len(names) != len(args[0]["vms"]):
        return sl.refuse("name at least one VM")
    if len(names) > settings.VM_MAX_PER_REQUEST:
        return sl.refuse(f"at most {settings.VM_MAX_PER_REQUEST} VMs at once")
    vms = {vm.name: vm for vm in VirtualMachine.objects.filter(owner_id=user_id, name__in=names)}
    unknown = sorted(set(names) - set(vms))
    if unknown:
        return sl.refuse(f"no such VM: {', '.join(unknown)}")

    busy = set(
        Job.objects.filter(vm__in=vms.values(), state__in=Job.ACTIVE).values_list("vm__name", flat=True)
    )
    jobs = []
    for name in dict.fromkeys(names):  # in order, once each
        if name in busy:
            continue
        job = Job.objects.create(vm=vms[name], detail="queued")
        # The story's actor and arguments: open_vm_task(id, name, user_id).
        message = open_vm_task.send(str(job.id), name, user_id)
        Job.objects.filter(pk=job.pk).update(message_id=message.message_id)
        jobs.append({"id": str(job.id), "vm": name})
    log.info("user %s: %d VMs sent to dramatiq, %d already opening", user_id, len(jobs), len(busy))
    return sl.ack({"jobs": jobs, "busy": sorted(busy)})
