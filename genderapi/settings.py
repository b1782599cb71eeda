"""Django settings for genderapi, every deploy-time knob read from the environment with a safe default.

The environment variables are listed (with their defaults) in docs/service.md. Two of them change behaviour
noticeably when unset:

- ``DJANGO_SECRET_KEY``: with DEBUG on, a fixed development key is used; otherwise a random key is generated
  once, saved next to the database (``secret_key``, mode 0600) so that every worker and restart shares it,
  and a warning is logged at startup. Production deployments should set it.
- ``REDIS_URL``: the quota counters live in an embedded in-process store (fakeredis) instead of Redis; they are
  per process and lost on restart, and a warning is logged at startup.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value.replace("_", ""))
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}")
    return number


# Messages for genderapi.apps to log once logging is configured (settings load before it is).
STARTUP_WARNINGS: list[str] = []

DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = [h.strip() for h in env_str("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
                 if h.strip()]

DATABASE_PATH = Path(env_str("DATABASE_PATH", str(BASE_DIR / "var" / "db.sqlite3")))
DATABASE_PATH.parent.mkdir(parents=True, exist_ok=True)


def _persistent_secret_key(path: Path) -> str:
    """Read the generated key at ``path``, creating it atomically if absent (workers may race here)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if not key:
            raise ImproperlyConfigured(f"{path} is empty: delete it or set DJANGO_SECRET_KEY") from None
        return key
    key = secrets.token_urlsafe(50)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "").strip()
if not SECRET_KEY:
    if DEBUG:
        SECRET_KEY = "django-insecure-genderapi-development-only"
    else:
        _key_path = DATABASE_PATH.parent / "secret_key"
        SECRET_KEY = _persistent_secret_key(_key_path)
        STARTUP_WARNINGS.append(
            f"DJANGO_SECRET_KEY not set: using a generated key stored in {_key_path}; "
            "set DJANGO_SECRET_KEY in production")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "genderapi",
    "predictions",
    "quotas",
]

MIDDLEWARE = [
    # These two run first: every response gets an X-Request-ID, and oversized bodies are refused
    # before anything reads them.
    "genderapi.middleware.RequestIDMiddleware",
    "genderapi.middleware.UploadSizeLimitMiddleware",
    # Probes answer before the Host header is checked (Kubernetes probes send the pod IP as Host).
    "genderapi.health.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "genderapi.urls"
WSGI_APPLICATION = "genderapi.wsgi.application"

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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATABASE_PATH,
        # Keep each thread's connection between requests instead of opening SQLite anew every time.
        "CONN_MAX_AGE": 600,
        "CONN_HEALTH_CHECKS": True,
    },
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True
# The quota day ends at midnight in this zone.
TIME_ZONE = env_str("TIME_ZONE", "UTC")

STATIC_URL = "static/"

# --- Quota store -------------------------------------------------------------------------------------


def redis_cache_config(url: str) -> dict:
    """The django-redis cache entry for a real Redis at ``url``.

    Short timeouts and a single immediate retry: a dropped pooled connection (Redis restarted) is re-made
    transparently, while a Redis that is down costs a request milliseconds before its 503, not the seconds
    of redis-py's default exponential back-off. Not on a timeout: the command may have reached a stalled
    Redis, which would then run the charge script twice when it resumes.
    """
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.retry import Retry

    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": url,
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": 1,
            "SOCKET_TIMEOUT": 1,
            "CONNECTION_POOL_KWARGS": {"retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))},
        },
    }


REDIS_URL = os.environ.get("REDIS_URL", "").strip()
QUOTA_STORE_EMBEDDED = not REDIS_URL
if REDIS_URL:
    from redis.connection import parse_url

    try:
        parse_url(REDIS_URL)
    except ValueError as exc:  # the message never repeats the URL: it may hold a password
        raise ImproperlyConfigured(
            f"REDIS_URL is not a Redis URL ({exc}); expected e.g. redis://127.0.0.1:6379/0") from None
    CACHES = {"default": redis_cache_config(REDIS_URL)}
else:
    import fakeredis

    # One server per process, shared by every connection of this process.
    EMBEDDED_REDIS_SERVER = fakeredis.FakeServer()
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://embedded:6379/0",
            "OPTIONS": {
                "CONNECTION_POOL_KWARGS": {
                    "connection_class": fakeredis.FakeConnection,
                    "server": EMBEDDED_REDIS_SERVER,
                },
            },
        },
    }
    STARTUP_WARNINGS.append(
        "REDIS_URL not set: using an embedded in-process store (fakeredis); counters are per-process "
        "and lost on restart; not for production")

QUOTA_DAILY_LIMIT = env_int("QUOTA_DAILY_LIMIT", 50, minimum=0)
QUOTA_KEY_PREFIX = env_str("QUOTA_KEY_PREFIX", "genderapi")
# Redis down: by default /predict/ answers 503 (fail closed). True serves predictions uncounted, with a warning
# logged per request, for operators who prefer availability to enforcement.
QUOTA_FAIL_OPEN = env_bool("QUOTA_FAIL_OPEN", False)
# Refused uploads (not an image, no face, too large...) cost no quota unit, but decoding one can cost up to a
# second of CPU: past this many refused uploads within an hour, a user's /predict/ answers 429 until the hour is
# up (the count also starts again at midnight). 0 turns the cap off.
QUOTA_REFUSED_PER_HOUR = env_int("QUOTA_REFUSED_PER_HOUR", 100, minimum=0)

# --- Prediction --------------------------------------------------------------------------------------
MODEL_PATH = env_str("MODEL_PATH", str(BASE_DIR / "model.h5"))
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 10 * 1024 * 1024, minimum=1)
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 40_000_000, minimum=1)
MAX_FACES = env_int("MAX_FACES", 10, minimum=1)
# TensorFlow threads per worker for one operation (and between operations). 1 by default: concurrent requests
# then run side by side, one per core, instead of each splitting its small operations across the cores
# (measured faster on 2 cores: bench/). 0 keeps TensorFlow's default, one per core.
INFERENCE_THREADS = env_int("INFERENCE_THREADS", 1, minimum=0)

# Uploads are at most MAX_UPLOAD_BYTES (the middleware refuses bigger bodies), so they stay in memory:
# the pipeline wants bytes anyway. The first handler stops a body that grows past the limit.
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES
FILE_UPLOAD_HANDLERS = [
    "genderapi.uploads.SizeLimitedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# --- Users -------------------------------------------------------------------------------------------
# Password sign-in (Basic auth and the admin form) goes through genderapi.lockout: after this many failures
# within AUTH_LOCKOUT_SECONDS of each other, per username or per client address, sign-in answers 429 +
# Retry-After without checking the password. 0 turns a counter off.
AUTHENTICATION_BACKENDS = ["genderapi.lockout.LockoutModelBackend"]
AUTH_LOCKOUT_USER_FAILURES = env_int("AUTH_LOCKOUT_USER_FAILURES", 10, minimum=0)
AUTH_LOCKOUT_ADDRESS_FAILURES = env_int("AUTH_LOCKOUT_ADDRESS_FAILURES", 50, minimum=0)
AUTH_LOCKOUT_SECONDS = env_int("AUTH_LOCKOUT_SECONDS", 900, minimum=1)
GUIDE_PASSWORDS = {"pinpin": "azerty", "admin": "admin_password"}  # the product guide's, for a first start
PINPIN_PASSWORD = env_str("PINPIN_PASSWORD", GUIDE_PASSWORDS["pinpin"])
ADMIN_PASSWORD = env_str("ADMIN_PASSWORD", GUIDE_PASSWORDS["admin"])
# ensureusers (run at every start) gives a built-in account the password of its variable when that variable is
# set; when it is not, the default password is given only to an account it creates, so a password changed in the
# admin survives restarts.
ENFORCED_PASSWORDS = frozenset(username for username, variable in
                               (("pinpin", "PINPIN_PASSWORD"), ("admin", "ADMIN_PASSWORD"))
                               if os.environ.get(variable, "").strip())

# --- API ---------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["genderapi.authentication.CachedBasicAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.JSONParser",
    ],
    "EXCEPTION_HANDLER": "genderapi.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Reverse proxies in front of the app whose X-Forwarded-For entry is trusted for the client address (the
    # sign-in lockout counts per address). 0: the socket's address, and X-Forwarded-For is ignored (it is
    # whatever the client says).
    "NUM_PROXIES": env_int("NUM_PROXIES", 0, minimum=0),
}

# --- HTTPS: terminated by a proxy or load balancer in front of the app; these tell Django about it. ---
# Off by default because the app itself speaks plain HTTP (compose, local runs). Behind TLS, set them (see
# docs/service.md, "HTTPS"); `manage.py check --deploy` then passes.
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$", r"^readyz/?$"]  # probes speak plain HTTP inside the cluster
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)

# --- Logging: stdout only. Nothing here formats request headers, so Authorization never reaches a log. ---
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "filters": {"without_traceback": {"()": "genderapi.logfilters.WithoutTraceback"}},
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "plain"},
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        # 4xx answers are in the access log already; 5xx (ERROR) still come with their traceback.
        "django.request": {"handlers": ["stdout"], "level": "ERROR", "propagate": False},
        # A Host not in ALLOWED_HOSTS: one line, no traceback.
        "django.security.DisallowedHost": {"handlers": ["stdout"], "level": "WARNING", "propagate": False,
                                           "filters": ["without_traceback"]},
    },
}
