"""tracelab settings, read from the environment (django-environ).

Embedded default: no DATABASE_URL → SQLite (WAL, IMMEDIATE transactions); no REDIS_URL → Celery
runs tasks eagerly in-process. Production: DJANGO_SETTINGS_MODULE=tracelab.settings_production.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# The development key is only for the embedded default; production settings require DJANGO_SECRET_KEY.
SECRET_KEY = env("DJANGO_SECRET_KEY", default="dev-only-insecure-key-never-use-in-production")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "labeling",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tracelab.urls"
WSGI_APPLICATION = "tracelab.wsgi.application"
ASGI_APPLICATION = "tracelab.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

VAR_DIR = Path(env("TRACELAB_VAR_DIR", default=str(BASE_DIR / "var")))

if env("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env("SQLITE_PATH", default=str(VAR_DIR / "tracelab.sqlite3")),
            "OPTIONS": {
                # IMMEDIATE takes the write lock at BEGIN, so two writers queue instead of deadlocking.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env("DJANGO_MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Uploads: imports stream to disk; the request body cap keeps a single upload bounded.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
TRACELAB_MAX_IMPORT_BYTES = env.int("TRACELAB_MAX_IMPORT_BYTES", default=2 * 1024**3)
TRACELAB_MAX_IMAGE_BYTES = env.int("TRACELAB_MAX_IMAGE_BYTES", default=20 * 1024 * 1024)
TRACELAB_MAX_IMAGE_PIXELS = env.int("TRACELAB_MAX_IMAGE_PIXELS", default=40_000_000)
TRACELAB_IMAGE_FETCH_TIMEOUT = env.float("TRACELAB_IMAGE_FETCH_TIMEOUT", default=10.0)
TRACELAB_IMPORT_DIR = VAR_DIR / "imports"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "labeling.api.authentication.TokenAuthentication",  # DRF's check, one plain statement
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "labeling.api.pagination.ItemCursorPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {},
    "EXCEPTION_HANDLER": "labeling.api.errors.exception_handler",
    # `?format=` selects the export format, not a DRF renderer.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "tracelab API",
    "DESCRIPTION": "Three-tier human-AI labeling: certified surrogate, trace-aware judge routing, budgeted human review.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ItemStateEnum": "labeling.states.ItemState",
        "ReviewTaskStateEnum": "labeling.models.ReviewTask.State",
        "RoutingRunStateEnum": "labeling.models.RoutingRun.State",
        "ImportStatusEnum": "labeling.models.ImportJob.Status",
        "JudgeRunStatusEnum": "labeling.models.JudgeRun.Status",
    },
}

REDIS_URL = env("REDIS_URL", default="")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Redis redelivers unacknowledged tasks after this many seconds: above the longest task.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
# Celery's Django fixup closes the database connection after every task unless this is set: a new
# PostgreSQL backend per task costs more than routing an item. tracelab.celery closes only broken or
# expired (CONN_MAX_AGE) connections after each task instead.
CELERY_DB_REUSE_MAX = 10_000
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", default="tracelab")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# The AI judge: base URL and model here; the key only from the environment (OPENAI_API_KEY).
TRACELAB_JUDGE_BASE_URL = env("OPENAI_BASE_URL", default="")
TRACELAB_JUDGE_MODEL = env("TRACELAB_JUDGE_MODEL", default="gpt-4o-mini")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# The live pipeline.
TRACELAB_JUDGE_TIMEOUT = env.float("TRACELAB_JUDGE_TIMEOUT", default=60.0)
TRACELAB_JUDGE_MAX_ATTEMPTS = env.int("TRACELAB_JUDGE_MAX_ATTEMPTS", default=4)
# A routing worker's claim on an item; an item whose worker died returns after this many seconds.
TRACELAB_ROUTE_LEASE_SECONDS = env.int("TRACELAB_ROUTE_LEASE_SECONDS", default=600)
# A routing task claims and routes items for this long, then hands the run on to a new task.
TRACELAB_ROUTE_SLICE_SECONDS = env.float("TRACELAB_ROUTE_SLICE_SECONDS", default=10.0)
# The most worker processes that route one run at once (the run's tasks in flight).
TRACELAB_ROUTE_TASKS_PER_RUN = env.int("TRACELAB_ROUTE_TASKS_PER_RUN", default=32)
