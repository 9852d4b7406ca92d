"""Everything the example needs before it serves: the database (migrate), the static files
(collectstatic, served by nginx), and two demo users with VMs to open. Safe to run again."""

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from vms.models import Job, VirtualMachine

#: The demo users: name -> (password, [(vm, image, vcpus, memory_mb)]). Images named broken-*
#: never boot: they show a retry, then a failure.
DEMO = {
    "alice": (
        "alice-demo",
        [
            ("web-1", "debian-12", 2, 2048),
            ("web-2", "debian-12", 2, 2048),
            ("db-1", "postgres-16", 4, 8192),
            ("cache-1", "redis-7", 1, 1024),
            ("legacy-1", "broken-centos-6", 1, 1024),
        ],
    ),
    "bob": (
        "bob-demo",
        [
            ("build-1", "ubuntu-24.04", 8, 16384),
            ("build-2", "ubuntu-24.04", 8, 16384),
            ("ci-runner", "debian-12", 4, 4096),
        ],
    ),
}


class Command(BaseCommand):
    help = "Migrate, collect static files, and create the demo users and their VMs."

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        User = get_user_model()
        for username, (password, vms) in DEMO.items():
            user, _ = User.objects.get_or_create(username=username)
            user.set_password(password)
            user.save()
            for name, image, vcpus, memory_mb in vms:
                VirtualMachine.objects.update_or_create(
                    owner=user,
                    name=name,
                    defaults={"image": image, "vcpus": vcpus, "memory_mb": memory_mb},
                )
        # Jobs left running by a previous run (stopped mid-way) would keep their VMs busy.
        stale = Job.objects.filter(state__in=Job.ACTIVE).update(
            state=Job.FAILED, detail="failed", error="the example was stopped before it finished"
        )
        self.stdout.write(f"demo ready ({stale} unfinished jobs of an earlier run marked failed)")
