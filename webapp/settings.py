"""Django settings for the FIPO control plane: every setting is read from the environment, here only.

Two deployment shapes are chosen by environment variables alone (docs/control-plane.md):

* embedded (nothing set): SQLite at ``var/db.sqlite3``, a Celery broker in ``var/celery-broker.sqlite3``
  (kombu's SQLAlchemy transport, no server), the in-memory channel layer and a local-memory cache. This
  works because only the web process broadcasts to websockets: trainers and workers report through the
  HTTP tracking endpoint, never through the channel layer.
* production (``DATABASE_URL`` + ``REDIS_URL``): PostgreSQL, Redis as Celery broker, channel layer and
  cache. ``DJANGO_ENV=production`` refuses to boot without ``DJANGO_SECRET_KEY`` or with ``DEBUG`` on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import dj_database_url
import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------- the reader
class _Env(environ.Env):
    """django-environ's reader (``env.str/bool/int/float/list/json``) with this deployment's rules,
    which differ from the library's defaults on purpose:

    * an empty variable is unset (``DATABASE_URL=`` from an ``.env`` template means the default);
    * a value is read literally: no ``$OTHER`` proxying (Django's generated secret keys may start
      with ``$``, which the library would resolve as the name of another variable);
    * a malformed value is an error naming the variable and the value, never a silent guess (the
      library reads ``DEBUG=maybe`` as False and drops the letters of ``1e3`` for a float);
    * list items are stripped (``"a, b"`` is ``["a", "b"]``).
    """

    _EXPECTED: ClassVar[dict[Any, str]] = {bool: "a boolean (1/0, true/false)", int: "an integer", float: "a number"}
    _TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})

    def get_value(self, var: str, cast: Any = None, default: Any = environ.Env.NOTSET,
                  parse_default: bool = False) -> Any:
        raw = self.ENVIRON.get(var, "")
        if raw == "":
            if default is self.NOTSET:
                raise ImproperlyConfigured(f"Set the {var} environment variable")
            return default
        try:
            return self.parse_value(raw, cast)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError too
            if cast is json.loads:
                raise ImproperlyConfigured(f"{var} must be JSON: {exc}") from None
            raise ImproperlyConfigured(f"{var} must be {self._EXPECTED.get(cast, 'valid')}, got {raw!r}") from None

    @classmethod
    def parse_value(cls, value: str, cast: Callable[..., Any] | type | None) -> Any:
        if cast is bool:
            if value.lower() in cls._TRUE:
                return True
            if value.lower() in cls._FALSE:
                return False
            raise ValueError(value)
        if cast is float:
            return float(value)
        if cast is list:
            return [item.strip() for item in value.split(",") if item.strip()]
        return super().parse_value(value, cast)


env = _Env()

# ------------------------------------------------------------------------------------- core
DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"DJANGO_ENV must be 'development' or 'production', got {DJANGO_ENV!r}")
PRODUCTION = DJANGO_ENV == "production"

DEBUG = env.bool("DEBUG", default=not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when DJANGO_ENV=production")

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=None)
if SECRET_KEY is None:
    if PRODUCTION:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required when DJANGO_ENV=production")
    SECRET_KEY = "dev-insecure-fipo-secret-key-never-use-in-production"  # development only

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

VAR_DIR = Path(env.str("FIPO_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "daphne",  # makes `manage.py runserver` serve ASGI (websockets) in development
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "webapp.common",
    "webapp.accounts",
    "webapp.runs",
    "webapp.tracking",
    "webapp.ops",  # runstack command; makes worker.celery_app the current Celery app
]
# Apps of other areas join when their package exists, so this file never imports a missing module.
_OPTIONAL_APPS = ["webapp.dashboard", "webapp.leaderboards"]
INSTALLED_APPS += [app for app in _OPTIONAL_APPS if (BASE_DIR / app.replace(".", "/") / "__init__.py").exists()]

# Migrations live in one package per app under migrations/: an app label gets an
# entry as soon as its package migrations/<label>/ exists (create it before `makemigrations <label>`).
MIGRATION_MODULES = {
    label: f"migrations.{label}"
    for label in ("accounts", "runs", "tracking", "leaderboards", "dashboard", "ops")
    if (BASE_DIR / "migrations" / label / "__init__.py").exists()
}

AUTH_USER_MODEL = "accounts.User"

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "webapp.common.middleware.DatabaseBusyMiddleware",  # a locked database: 503 + Retry-After, not 500
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"
ASGI_APPLICATION = "webapp.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "frontend" / "templates"],
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

# ---------------------------------------------------------------------------------- database
DATABASES = {
    # parse(env.str(...)), not config(): an empty DATABASE_URL means unset here as everywhere else
    "default": dj_database_url.parse(
        env.str("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env.int("DATABASE_CONN_MAX_AGE", default=0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded mode has a web process and a worker writing the same file: wait for locks instead
    # of failing, take the write lock at BEGIN (no deadlocking lock upgrades), and let readers run
    # beside a writer (WAL).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool("DATABASE_POOL", default=True):
    # A connection pool (psycopg_pool, Django >= 5.1). Under ASGI each request runs in a thread of its
    # own, so persistent connections (CONN_MAX_AGE > 0) would leak; without a pool every request opens
    # a connection: ~4 ms of PostgreSQL CPU plus a cold backend, a third of a tracking batch's cost
    # (bench/ingest.py). The pool hands a warm connection back and forth instead.
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # required with a pool
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN", default=2),
        "max_size": env.int("DATABASE_POOL_MAX", default=16),
        "timeout": env.float("DATABASE_POOL_TIMEOUT_S", default=30.0),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ------------------------------------------------------------------------ redis-backed parts
REDIS_URL = env.str("REDIS_URL", default=None)

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("FIPO_CACHE_PREFIX", default="fipo"),
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py >= 8 times reads out after 5 s by default, exactly channels_redis's blocking
                # receive (BZPOPMIN, 5 s): an idle websocket then dies with TimeoutError (code 1011).
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                "prefix": env.str("FIPO_CHANNELS_PREFIX", default="fipo-asgi"),
                "capacity": 1000,
                "expiry": 60,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "fipo"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# ------------------------------------------------------------------------------------ celery
CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL", default=REDIS_URL or f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}"
)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None)  # none: tasks are fire-and-forget, state is in rows
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=5 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=4 * 60)
# One queue name per deployment sharing a Redis database (the stack tests give each stack its own).
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TASK_ACKS_LATE = True  # a worker that dies mid-launch leaves the task for another worker
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "reap-lost-runs": {
        "task": "webapp.runs.tasks.reap_lost_runs",
        "schedule": timedelta(seconds=env.float("FIPO_REAP_INTERVAL_S", default=30.0)),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# ------------------------------------------------------------------------------- fipo domain
# The URL trainers post their events to (must be reachable from where the job runs).
FIPO_SERVER_URL = env.str("FIPO_SERVER_URL", default="http://127.0.0.1:8000").rstrip("/")
FIPO_RUNS_DIR = Path(env.str("FIPO_RUNS_DIR", default=str(VAR_DIR / "runs")))
# A running/starting run without any event for this long is marked lost by the reaper.
FIPO_HEARTBEAT_TIMEOUT_S = env.float("FIPO_HEARTBEAT_TIMEOUT_S", default=180.0)
# Largest ingest request body; bigger bodies get 413 before they are parsed.
FIPO_INGEST_MAX_BYTES = env.int("FIPO_INGEST_MAX_BYTES", default=16 * 1024 * 1024)
# Seconds a local job gets between SIGTERM and SIGKILL on cancel.
FIPO_CANCEL_GRACE_S = env.float("FIPO_CANCEL_GRACE_S", default=10.0)
# Login / token-endpoint throttle: at most N failed attempts per window per (ip, username).
FIPO_LOGIN_MAX_ATTEMPTS = env.int("FIPO_LOGIN_MAX_ATTEMPTS", default=10)
FIPO_LOGIN_WINDOW_S = env.int("FIPO_LOGIN_WINDOW_S", default=300)
# Websocket consumers re-read the stream this often (items written by other processes, e.g. a worker).
FIPO_WS_POLL_S = env.float("FIPO_WS_POLL_S", default=2.0)
# Default point budget of a downsampled metric series (the API caps max_points at 10x this).
FIPO_CHART_MAX_POINTS = env.int("FIPO_CHART_MAX_POINTS", default=2000)

# Most metric values one ingest request may carry (413 above, naming the limit), and the most ingest
# requests one run may make per second (429 with Retry-After above: the tracking client backs off).
FIPO_INGEST_MAX_POINTS = env.int("FIPO_INGEST_MAX_POINTS", default=100_000)
FIPO_INGEST_MAX_REQUESTS_PER_S = env.int("FIPO_INGEST_MAX_REQUESTS_PER_S", default=50)
# Eval jobs (docs/evaluation.md): the longest a job may run before it is stopped and failed, and the
# largest benchmark file a team may upload.
FIPO_EVAL_TIMEOUT_S = env.int("FIPO_EVAL_TIMEOUT_S", default=6 * 3600)
FIPO_BENCHMARK_MAX_BYTES = env.int("FIPO_BENCHMARK_MAX_BYTES", default=64 * 1024 * 1024)


# ------------------------------------------------------------------- multi-team security
# (docs/control-plane.md "Security"). Team members are not trusted with each other's data or with the
# hosts of the cluster: every path, address, variable and package a run config names is checked
# against what the deployment configured here, at create time (a field error) and again at launch.
def _data_roots(raw: Any) -> dict[str, list[str]]:
    """``{"team name" | "*": ["/abs/dir", ...]}``: the only places a team's run may read files from."""
    if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(p, str) and os.path.isabs(p) for p in v)
            for k, v in raw.items()):
        raise ImproperlyConfigured('FIPO_DATA_ROOTS must map team names (or "*") to lists of absolute paths')
    return {team: [os.path.realpath(p) for p in paths] for team, paths in raw.items()}


def _ray_heads(raw: Any) -> dict[str, dict[str, Any]]:
    """``{"name": "http://head:8265" | {"address": ..., "env_vars": {...}}}``: the Ray clusters runs may use.

    ``env_vars`` are the deployment's own variables for jobs on that head (``PYTHONPATH``,
    ``FIPO_PYTHON``, ``FIPO_RUNS_DIR``...): applied after the user's, so a user never overrides them."""
    heads: dict[str, dict[str, Any]] = {}
    if not isinstance(raw, dict):
        raise ImproperlyConfigured("FIPO_RAY_HEADS must be a JSON object of name: address")
    for name, value in raw.items():
        head = {"address": value} if isinstance(value, str) else value
        if (not isinstance(head, dict) or not isinstance(head.get("address"), str)
                or not head["address"].startswith(("http://", "https://"))
                or not isinstance(head.get("env_vars", {}), dict)):
            raise ImproperlyConfigured(f"FIPO_RAY_HEADS[{name!r}] must be an http(s) address or "
                                       '{"address": ..., "env_vars": {...}}')
        heads[str(name)] = {"address": head["address"].rstrip("/"),
                            "env_vars": {str(k): str(v) for k, v in head.get("env_vars", {}).items()}}
    return heads


FIPO_DATA_ROOTS = _data_roots(env.json("FIPO_DATA_ROOTS", default={}))
FIPO_RAY_HEADS = _ray_heads(env.json("FIPO_RAY_HEADS", default={"default": "http://127.0.0.1:8265"}))
# Environment variables a user may give a job (fnmatch patterns); FIPO_*, LD_* and PYTHON* never.
FIPO_JOB_ENV_ALLOW = env.list("FIPO_JOB_ENV_ALLOW", default=["NCCL_*", "CUDA_*", "HF_*", "VLLM_*", "TORCH_*",
                                                      "OMP_NUM_THREADS", "TOKENIZERS_PARALLELISM"])
# pip requirements a user may add to a Ray job: package names (fnmatch patterns, compared lower-case)
# with an optional version specifier; never URLs, paths or options. Empty: no extra packages.
FIPO_JOB_PIP_ALLOW = env.list("FIPO_JOB_PIP_ALLOW", default=[])
# Addresses (or CIDR networks) of the reverse proxies whose X-Forwarded-For is believed. Empty: the
# client address is REMOTE_ADDR (run daphne without --proxy-headers; see docs/control-plane.md).
FIPO_TRUSTED_PROXIES = env.list("FIPO_TRUSTED_PROXIES", default=[])
# Failed password attempts per username from all addresses together within FIPO_LOGIN_WINDOW_S.
FIPO_LOGIN_MAX_PER_USERNAME = env.int("FIPO_LOGIN_MAX_PER_USERNAME", default=30)
# Seconds a locked database (SQLite) answer asks the client to wait (503 + Retry-After).
FIPO_DB_BUSY_RETRY_AFTER_S = env.int("FIPO_DB_BUSY_RETRY_AFTER_S", default=5)

# (Other endpoints keep Django's DATA_UPLOAD_MAX_MEMORY_SIZE of 2.5 MB: the ingest view reads its
# body as a stream and applies FIPO_INGEST_MAX_BYTES itself, answering 413 in the contract's shape.)

# ------------------------------------------------------------------------------ auth, session
AUTH_PASSWORD_VALIDATORS = (
    [
        {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
        {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
        {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
        {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    ]
    if PRODUCTION
    else []
)
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=PRODUCTION)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=PRODUCTION)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if env.bool("SECURE_PROXY_SSL", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# -------------------------------------------------------------------------------------- i18n
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# ------------------------------------------------------------------------------ static files
STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "frontend" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Development serves straight from the source folders, no collectstatic needed.
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = DEBUG

# ------------------------------------------------------------------------------------ API
REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header turns "no credentials" into 401 rather than 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "webapp.accounts.auth.ApiTokenAuthentication",
        "webapp.accounts.auth.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["webapp.common.parsers.StrictJSONParser"],
    "EXCEPTION_HANDLER": "webapp.common.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "FIPO control plane API",
    "DESCRIPTION": "Runs, metrics, samples and the tracking endpoint. Shapes: docs/api-contract.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # 3.1: its schemas are JSON Schema 2020-12, the dialect pydantic emits for the engine's models.
    "OAS_VERSION": "3.1.0",
    # The schema lists every route and parameter: readable by logged-in users only.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

# -------------------------------------------------------------------------------- logging
# Request logging never includes headers or bodies, so tokens and passwords stay out of the logs.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
