"""The pages: the VM list (the Open button talks to socketlet), and the state of the user's
latest jobs, which the page reads again after a reconnection."""

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render

from .models import VirtualMachine


def _vms_with_jobs(user):
    vms = list(VirtualMachine.objects.filter(owner=user))
    return [(vm, vm.latest_job()) for vm in vms]


@login_required
def index(request):
    return render(request, "vms/index.html", {"rows": _vms_with_jobs(request.user)})


@login_required
def jobs(request):
    """The latest job of each of the user's VMs."""
    return JsonResponse(
        {"jobs": [job.as_event() for _vm, job in _vms_with_jobs(request.user) if job is not None]}
    )
