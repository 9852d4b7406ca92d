"""Settings of the VM console: an ordinary Django project whose browsers talk Socket.IO to
socketlet, and whose dramatiq workers open the VMs.

Everything that differs between machines comes from the environment (run.sh sets it all):

    DJANGO_SECRET_KEY       Django's secret key (required unless DJANGO_DEBUG=1)
    DJANGO_DEBUG            1 for Django's debug pages (never in production)
    DJANGO_DATA_DIR         where the SQLite database and collected static files go
    PUBLIC_URL              the address browsers use (nginx), e.g. http://127.0.0.1:8000
    SOCKETLET_API_URL       socketlet's address for its server API (its --addr or --api-addr)
    SOCKETLET_API_KEY       one of socketlet's --api-key
    SOCKETLET_HOOK_SECRET   socketlet's --hook-secret
    SOCKETLET_PUSH          how workers reach the browsers: "api" (socketlet's server API, the
                            default) or "redis" (python-socketio's RedisManager; socketlet runs
                            with --redis REDIS --python-channel socketio)
    SOCKETIO_REDIS_URL      with SOCKETLET_PUSH=redis: the Redis socketlet's --redis points at
    DRAMATIQ_BROKER_URL     redis://... (dramatiq's RedisBroker) or amqp://... (RabbitmqBroker)
    DRAMATIQ_QUEUE          the queue of open_vm_task (default "default")
    VM_STEP_SECONDS         how long each simulated provisioning step takes (default 0.8)
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("DJANGO_DATA_DIR", BASE_DIR / ".run"))

DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or (
    "insecure-debug-only-key" if DEBUG else None
)
if not SECRET_KEY:
    raise RuntimeError("set DJANGO_SECRET_KEY (run.sh makes one)")

PUBLIC_URL = os.environ.get("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
# Browsers come through nginx (PUBLIC_URL); socketlet calls the hooks on gunicorn directly.
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
CSRF_TRUSTED_ORIGINS = [PUBLIC_URL]
# nginx says whether the browser used https (proxy_set_header X-Forwarded-Proto $scheme).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = PUBLIC_URL.startswith("https://")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "vms",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "vmconsole.urls"
WSGI_APPLICATION = "vmconsole.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite in WAL mode: several gunicorn workers and dramatiq processes write to it at once.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "db.sqlite3",
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "vms:index"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# nginx serves these (location /static/); `manage.py prepare_demo` collects them.
STATIC_ROOT = DATA_DIR / "static"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"vms": {"handlers": ["stderr"], "level": "INFO"}},
}

# --- socketlet ----------------------------------------------------------------------------------
SOCKETLET_API_URL = os.environ.get("SOCKETLET_API_URL", "http://127.0.0.1:3000")
SOCKETLET_API_KEY = os.environ.get("SOCKETLET_API_KEY", "")
# Read by @socketlet.django.hook.
SOCKETLET_HOOK_SECRET = os.environ.get("SOCKETLET_HOOK_SECRET", "")
# The pages that may open a Socket.IO connection with a user's cookie.
SOCKETLET_ALLOWED_ORIGINS = {PUBLIC_URL}
SOCKETLET_PUSH = os.environ.get("SOCKETLET_PUSH", "api")
if SOCKETLET_PUSH not in ("api", "redis"):
    raise RuntimeError(f"SOCKETLET_PUSH is api or redis, not {SOCKETLET_PUSH!r}")
SOCKETIO_REDIS_URL = os.environ.get("SOCKETIO_REDIS_URL", "redis://127.0.0.1:6379/0")

# --- dramatiq -----------------------------------------------------------------------------------
DRAMATIQ_BROKER_URL = os.environ.get("DRAMATIQ_BROKER_URL", "redis://127.0.0.1:6379/0")
DRAMATIQ_QUEUE = os.environ.get("DRAMATIQ_QUEUE", "default")
# A worker that dies holding messages: RabbitMQ hands them to another worker at once; the Redis
# broker does once the dead worker's heartbeat is older than this, at a queue maintenance (run
# by chance on the broker's commands, here one in ten). dramatiq's defaults (60 s, one in a
# thousand) can leave such a message waiting for minutes.
DRAMATIQ_REDIS_HEARTBEAT_TIMEOUT_MS = 5_000
DRAMATIQ_REDIS_MAINTENANCE_CHANCE = 100_000  # per million commands

# How many VMs one open_vms request may open.
VM_MAX_PER_REQUEST = 16
VM_STEP_SECONDS = float(os.environ.get("VM_STEP_SECONDS", "0.8"))
