"""The one settings module: every value that differs between deployments comes from the
environment (see `.env.example`, which documents each variable) and is validated here, so
a bad value stops the process at start with the variable's name."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import sentry_sdk.utils
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from mainkode_example import env

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Mode --------------------------------------------------------------------------------
# "local" is the explicit opt-in that accepts `.env.example`'s placeholder secrets and
# DEBUG; "production" (the default) refuses both.
DJANGO_ENV = env.choice("DJANGO_ENV", ("production", "local"), default="production")
LOCAL_MODE = DJANGO_ENV == "local"

SECRET_KEY = env.secret("DJANGO_SECRET_KEY", allow_placeholder=LOCAL_MODE, min_length=32)
DEBUG = env.boolean("DJANGO_DEBUG", default=False)
if DEBUG and not LOCAL_MODE:
    raise ImproperlyConfigured(
        "Environment variable DJANGO_DEBUG is invalid: DEBUG is only allowed with DJANGO_ENV=local."
    )

ALLOWED_HOSTS = env.strings("DJANGO_ALLOWED_HOSTS")
# Where the Django admin lives. In production it must be moved off "admin/", the path
# scanners try first; its login is throttled either way (core.auth).
ADMIN_URL = env.string("DJANGO_ADMIN_URL", default="admin/") if LOCAL_MODE else env.string("DJANGO_ADMIN_URL")
if not re.fullmatch(r"([A-Za-z0-9_-]+/)+", ADMIN_URL):
    raise ImproperlyConfigured(
        "Environment variable DJANGO_ADMIN_URL is invalid: expected path segments ending in '/', e.g. 'admin/'."
    )
if ADMIN_URL == "admin/" and not LOCAL_MODE:
    raise ImproperlyConfigured(
        "Environment variable DJANGO_ADMIN_URL is invalid: move the admin off 'admin/' in production "
        "(the path scanners try first), e.g. 'staff-5f2c/'."
    )
CSRF_TRUSTED_ORIGINS = env.strings("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# --- HTTPS -------------------------------------------------------------------------------
# true when nginx terminates TLS (docker-compose.tls.yml sets it). uvicorn takes the scheme
# from nginx's X-Forwarded-Proto (FORWARDED_ALLOW_IPS), so request.is_secure() is right.
HTTPS = env.boolean("DJANGO_HTTPS", default=False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
# nginx already redirects plain HTTP; this covers anything that reaches Django otherwise.
# The probes (/healthz, /readyz) are answered before SecurityMiddleware and never redirected.
SECURE_SSL_REDIRECT = HTTPS
# HSTS is nginx's header (HSTS_SECONDS, HSTS_PRELOAD: nginx/templates/https-on.conf.template),
# on every HTTPS answer, nginx's own error pages and static files included; nginx drops a
# copy from Django. So Django sends none, and its check that asks for one (security.W004)
# is silenced where nginx terminates TLS; without TLS it still speaks up.
SECURE_HSTS_SECONDS = 0
SILENCED_SYSTEM_CHECKS = ["security.W004"] if HTTPS else []

# --- Applications ----------------------------------------------------------------------
INSTALLED_APPS = [
    "core.apps.AdminConfig",  # django.contrib.admin, its login throttled
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",  # API tokens: stored hashed, expiring
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks",  # Django 6.0's django.tasks, backported
    "django_tasks_db",  # its queue, a table in Postgres
    # Cross-cutting machinery first, then the domain (docs/design.md: The layout).
    "core",
    "demo",
    "chat",
    "worker",
]

MIDDLEWARE = [
    # First: liveness answers before anything can touch a database or check the Host.
    "core.health.LivenessMiddleware",
    # Second: counts and times every request that gets past liveness (core/metrics.py).
    "core.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.NoStoreWithCredentialsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# How asgi.py serves plain HTTP: "wsgi", Django's WSGI handler in a pool of HTTP_THREADS
# threads per worker process (core.http_threads), or "asgi", Django's ASGI handler (async
# views, streaming). docs/design.md says why wsgi is the default. WebSockets go through
# Channels either way.
HTTP_HANDLER = env.choice("DJANGO_HTTP_HANDLER", ("wsgi", "asgi"), default="wsgi")

ROOT_URLCONF = "mainkode_example.urls"
ASGI_APPLICATION = "mainkode_example.asgi.application"
WSGI_APPLICATION = "mainkode_example.wsgi.application"

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

# --- Postgres ----------------------------------------------------------------------------
# Under ASGI, persistent connections leak (Django ticket #33497): CONN_MAX_AGE stays 0 and
# Django's psycopg pool (per worker process, opened lazily on first use, so never before
# Gunicorn forks) keeps connections instead. Bound per replica: workers x DB_POOL_MAX_SIZE.
DB_POOL = {
    "min_size": env.integer("DB_POOL_MIN_SIZE", default=1, minimum=0),
    "max_size": env.integer("DB_POOL_MAX_SIZE", default=4, minimum=1),
    # Seconds a request waits for a free connection before failing: fail fast rather
    # than hang when Postgres is down or the pool is exhausted.
    "timeout": env.number("DB_POOL_TIMEOUT", default=5.0, minimum=0.1),
}
if DB_POOL["min_size"] > DB_POOL["max_size"]:
    raise ImproperlyConfigured("Environment variable DB_POOL_MIN_SIZE is invalid: it must not exceed DB_POOL_MAX_SIZE.")
# One HTTP thread per pooled connection: a request never waits for a connection another
# thread of its process holds (with 8 threads on a pool of 4, a profile found about a
# sixth of a worker's samples waiting there), and more threads than that would only add
# GIL contention. docs/benchmarks.md has the figures.
HTTP_THREADS = int(DB_POOL["max_size"])
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": env.string("POSTGRES_HOST"),
        "PORT": env.integer("POSTGRES_PORT", default=5432, minimum=1, maximum=65535),
        "NAME": env.string("POSTGRES_DB"),
        "USER": env.string("POSTGRES_USER"),
        "PASSWORD": env.secret("POSTGRES_PASSWORD", allow_placeholder=LOCAL_MODE),
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            "pool": DB_POOL,
            # Names the app's sessions in pg_stat_activity (how the pool bound is checked).
            "application_name": "mainkode_example",
            # Seconds to wait for a new connection to Postgres itself.
            "connect_timeout": env.integer("POSTGRES_CONNECT_TIMEOUT", default=3, minimum=1),
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis channel layer -------------------------------------------------------------------
# The channel layer is what carries a group message from the worker process (or replica)
# that received it to every process holding a member of the group.
REDIS_URL = env.string("REDIS_URL")
if not REDIS_URL.startswith(("redis://", "rediss://")):
    raise ImproperlyConfigured(
        "Environment variable REDIS_URL is invalid: expected redis://HOST:PORT/DB or rediss://..."
    )
# Empty: Redis requires no password (a local Redis); compose always sets one.
REDIS_PASSWORD = env.secret("REDIS_PASSWORD", allow_placeholder=LOCAL_MODE, required=False)
# Seconds a read from Redis may take. redis-py 8 made it 5 s by default, exactly the time
# channels_redis' blocking BZPOPMIN waits for a message: the read races the reply and idle
# consumers die with "Timeout reading from ..." (django/channels_redis#422). Longer than
# that pop, yet finite, so a dead Redis connection is still noticed.
REDIS_SOCKET_TIMEOUT = 15
# redis-py 8 caps an asyncio pool at 100 connections and raises, instead of waiting, when a
# burst of socket handshakes needs more; this bounds the burst instead (per worker process;
# Redis allows 10,000 clients), while the steady state stays small.
CHANNEL_LAYER_MAX_CONNECTIONS = env.integer("CHANNEL_LAYER_MAX_CONNECTIONS", default=1000, minimum=1)
# A pooled connection that Redis dropped (a restart) fails only when next used: a command
# that meets a broken connection runs once more, on a new one, so the first handshake or
# login after Redis is back does not fail. A broken connection only, never a timeout (the
# command may have run). The same for the cache below.
_redis_host: dict[str, object] = {
    "address": REDIS_URL,
    "max_connections": CHANNEL_LAYER_MAX_CONNECTIONS,
    "socket_timeout": REDIS_SOCKET_TIMEOUT,
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "retry": AsyncRetry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
}
if REDIS_PASSWORD:
    _redis_host["password"] = REDIS_PASSWORD
# "core" (default): channels_redis' RedisChannelLayer, lists in Redis; a message waits up
# to CHANNEL_LAYER_EXPIRY for a consumer that is briefly busy, and at most
# CHANNEL_LAYER_CAPACITY wait per channel. "pubsub": RedisPubSubChannelLayer, Redis
# Pub/Sub; nothing is stored, a message reaches whoever is subscribed at that moment.
# docs/benchmarks.md compares them.
CHANNEL_LAYER_BACKEND = env.choice("CHANNEL_LAYER_BACKEND", ("core", "pubsub"), default="core")
if CHANNEL_LAYER_BACKEND == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [_redis_host]},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [_redis_host],
                # Messages a single channel (a worker process's group hub: core.groups) may queue
                # before group_send drops (silently) for it; also each socket's inbox bound.
                "capacity": env.integer("CHANNEL_LAYER_CAPACITY", default=1000, minimum=1),
                # Seconds an undelivered message lives in Redis.
                "expiry": env.integer("CHANNEL_LAYER_EXPIRY", default=60, minimum=1),
            },
        }
    }

# --- HTTP, static, i18n ----------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed file names let nginx serve static files with a year-long cache.
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}

# Throttle counters must be shared by every worker process and replica: Redis, not the
# per-process memory cache. Short timeouts: a Redis outage fails fast, never hangs.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "cache",
        "OPTIONS": {
            **({"password": REDIS_PASSWORD} if REDIS_PASSWORD else {}),
            "socket_timeout": 2,
            "socket_connect_timeout": 2,
            "retry": Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
        },
    }
}

REST_FRAMEWORK = {
    # Spaces after ':' and ',' so /api/hello/ answers byte for byte what the design documents show.
    "COMPACT_JSON": False,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's parsers, with a JSON parser that answers 400 to JSON nested too deeply.
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # A database outage answers 503 + Retry-After, not 500.
    "EXCEPTION_HANDLER": "core.api_errors.exception_handler",
    # Token first: an anonymous write gets 401 with WWW-Authenticate, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Login attempts per client address (core.auth.LoginThrottle): brute force gets 429.
    # Posts per user over sockets (chat.consumers); REST posts meet nginx's NGINX_API_RATE.
    "DEFAULT_THROTTLE_RATES": {
        "auth": env.rate("AUTH_THROTTLE_RATE", default="10/minute"),
        "chat_socket_post": env.rate("CHAT_SOCKET_POST_RATE", default="20/second"),
        # Frames per socket, and per client address, on the design documents' rooms
        # (demo.consumers).
        "chat_room_frame": env.rate("CHAT_ROOM_FRAME_RATE", default="20/second"),
        "chat_room_address_frame": env.rate("CHAT_ROOM_ADDRESS_FRAME_RATE", default="100/second"),
        # Room exports asked for per user (chat.views).
        "export_create": env.rate("EXPORT_CREATE_RATE", default="20/hour"),
    },
    # uvicorn already set REMOTE_ADDR from nginx's X-Forwarded-For (FORWARDED_ALLOW_IPS):
    # use it as is, never the client-supplied header.
    "NUM_PROXIES": 0,
}

# API tokens (django-rest-knox): only a hash is stored, and each expires
# API_TOKEN_TTL_HOURS after login; clients log in again. `Authorization: Token <token>`.
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=env.integer("API_TOKEN_TTL_HOURS", default=10, minimum=1)),
    "AUTH_HEADER_PREFIX": "Token",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "mainkode_example API",
    "DESCRIPTION": "Chat rooms whose messages are stored in Postgres and pushed live over WebSockets.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page's JavaScript and CSS are served from our own static files (no CDN).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Keep drf-spectacular's enum hook; add the error answers (401, 404, 429, 503, ...).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.api_errors.document_error_responses",
    ],
}

# --- Background tasks ------------------------------------------------------------------------
# CPU-heavy or slow work runs in the worker service (app/worker/), never on a web
# process's event loop. The queue is a table in Postgres (django-tasks-db): an enqueue in a
# request's transaction commits with it or not at all. docs/operations.md: Background tasks.
# TASKS_INLINE=true runs each task inside the request that enqueues it: only for the
# benchmark that shows what that costs (scripts/bench), never in production.
TASKS_INLINE = env.boolean("TASKS_INLINE", default=False)
TASKS = {
    "default": {
        "BACKEND": "django_tasks.backends.immediate.ImmediateBackend"
        if TASKS_INLINE
        else "django_tasks_db.DatabaseBackend"
    }
}
# Each worker writes a heartbeat this often (seconds); a task whose worker has not written
# one for WORKER_LOST_AFTER seconds (killed, its host gone) is run again, up to
# TASK_MAX_ATTEMPTS runs in all, then recorded as failed.
WORKER_HEARTBEAT_INTERVAL = env.number("WORKER_HEARTBEAT_INTERVAL", default=5.0, minimum=0.5)
WORKER_LOST_AFTER = env.number("WORKER_LOST_AFTER", default=30.0, minimum=1.0)
if WORKER_LOST_AFTER < 3 * WORKER_HEARTBEAT_INTERVAL:
    raise ImproperlyConfigured(
        "Environment variable WORKER_LOST_AFTER is invalid: it must be at least 3 x WORKER_HEARTBEAT_INTERVAL."
    )
TASK_MAX_ATTEMPTS = env.integer("TASK_MAX_ATTEMPTS", default=3, minimum=1)
# Seconds an idle worker waits before it looks at the queue again.
WORKER_POLL_INTERVAL = env.number("WORKER_POLL_INTERVAL", default=1.0, minimum=0.05)
# Housekeeping (pruning finished tasks and old exports) runs in one worker at a time, this
# often (seconds).
WORKER_HOUSEKEEPING_INTERVAL = env.number("WORKER_HOUSEKEEPING_INTERVAL", default=600.0, minimum=1.0)
# Finished task rows (their results and errors) are kept this many days.
TASK_RESULT_RETENTION_DAYS = env.integer("TASK_RESULT_RETENTION_DAYS", default=7, minimum=1)
# The port the worker service serves its metrics on (app/worker/), inside its container;
# 0: not served. The same variable and default as the app's Gunicorn master, which reads
# it before Django starts (gunicorn.conf.py says why this port).
METRICS_PORT = env.integer("METRICS_PORT", default=9101, minimum=0, maximum=65535)
# Whether the app records its metrics at all (core/metrics.py); off, requests, sockets and
# group sends skip them (scripts/bench measures the difference). METRICS_PORT=0 stops only
# the serving.
METRICS_ENABLED = env.boolean("METRICS_ENABLED", default=True)
if not METRICS_ENABLED:
    MIDDLEWARE.remove("core.metrics.RequestMetricsMiddleware")

# --- Chat ------------------------------------------------------------------------------------
# Longest chat message (characters). The largest WebSocket frame is the server's business:
# WS_MAX_MESSAGE_BYTES in gunicorn.conf.py.
CHAT_MESSAGE_MAX_LENGTH = 4000
# A room export (chat/exports.py) refuses rooms with more messages than this, fails past
# EXPORT_MAX_BYTES (compressed), and is deleted this many hours after it is finished. A
# user whose finished exports hold EXPORT_USER_QUOTA_BYTES gets a 429 until some expire.
EXPORT_MAX_MESSAGES = env.integer("EXPORT_MAX_MESSAGES", default=500_000, minimum=1)
EXPORT_MAX_BYTES = env.integer("EXPORT_MAX_BYTES", default=64 * 2**20, minimum=1)
EXPORT_USER_QUOTA_BYTES = env.integer("EXPORT_USER_QUOTA_BYTES", default=256 * 2**20, minimum=1)
EXPORT_RETENTION_HOURS = env.integer("EXPORT_RETENTION_HOURS", default=24, minimum=1)
# Where the worker writes export files: a volume it shares with the `files` service. Who
# sends a download: `app` streams the file from this process (the seed's bare Gunicorn; the
# folder must be here too); `nginx` answers X-Accel-Redirect and nginx sends it from the
# `files` service, as every deployment shape sets (docs/design.md: Room exports).
EXPORT_ROOT = Path(env.string("EXPORT_ROOT", default="/srv/exports"))
EXPORT_SERVED_BY = env.choice("EXPORT_SERVED_BY", ("app", "nginx"), default="app")

# --- Error tracking (optional) -----------------------------------------------------------------
# Sentry (core/error_tracking.py): off unless SENTRY_DSN is set. Events name the environment
# (default: DJANGO_ENV) and the release (e.g. the image tag); SENTRY_SAMPLE_RATE is the share
# of errors sent, SENTRY_TRACES_SAMPLE_RATE of requests traced (0: no performance data).
SENTRY_DSN = env.string("SENTRY_DSN", default="")
if SENTRY_DSN:
    try:
        sentry_sdk.utils.Dsn(SENTRY_DSN)
    except sentry_sdk.utils.BadDsn as error:
        raise ImproperlyConfigured(f"Environment variable SENTRY_DSN is invalid: {error}.") from None
    # Right after liveness: each request's events carry its X-Request-ID (core/error_tracking.py).
    liveness = MIDDLEWARE.index("core.health.LivenessMiddleware")
    MIDDLEWARE.insert(liveness + 1, "core.error_tracking.RequestIdTagMiddleware")
SENTRY_ENVIRONMENT = env.string("SENTRY_ENVIRONMENT", default=DJANGO_ENV)
SENTRY_RELEASE = env.string("SENTRY_RELEASE", default="")
SENTRY_SAMPLE_RATE = env.number("SENTRY_SAMPLE_RATE", default=1.0, minimum=0.0, maximum=1.0)
SENTRY_TRACES_SAMPLE_RATE = env.number("SENTRY_TRACES_SAMPLE_RATE", default=0.0, minimum=0.0, maximum=1.0)

# --- Logging ---------------------------------------------------------------------------------
LOG_LEVEL = env.choice("DJANGO_LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), default="INFO")
# One JSON object per line on stdout (python-json-logger): what log collectors parse.
# DJANGO_LOG_FORMAT=plain for human eyes (the development compose file sets it).
LOG_FORMAT = env.choice("DJANGO_LOG_FORMAT", ("json", "plain"), default="json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "stream": "ext://sys.stdout"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # A 4xx is the client's doing and is in the access log already: django.request writes
    # only server errors (anyone could otherwise fill the log with WARNING lines).
    "loggers": {"django.request": {"level": "ERROR"}},
}
