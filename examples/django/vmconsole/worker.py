"""What the `dramatiq` command loads: Django first (the actor uses the ORM and the settings),
then the actors.

    DJANGO_SETTINGS_MODULE=vmconsole.settings dramatiq vmconsole.worker --processes 2 --threads 2
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vmconsole.settings")
django.setup()

from vms import tasks  # noqa: E402,F401  (declares open_vm_task on the broker)
