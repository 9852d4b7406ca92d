"""gunicorn's entry point: gunicorn --workers 3 vmconsole.wsgi (ordinary sync workers)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vmconsole.settings")
application = get_wsgi_application()
