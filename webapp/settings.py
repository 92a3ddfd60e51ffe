"""Steer settings. The environment is read here and nowhere else (see webapp.environment)."""

import os
from pathlib import Path

from webapp import environment

BASE_DIR = Path(__file__).resolve().parent.parent
ENV = environment.load(os.environ, BASE_DIR)

SECRET_KEY = ENV.secret_key
DEBUG = ENV.debug
ALLOWED_HOSTS = ENV.allowed_hosts
CSRF_TRUSTED_ORIGINS = ENV.csrf_trusted_origins

STEER_VAR_DIR = ENV.var_dir
STEER_CHECKPOINT_DIR = ENV.checkpoint_dir
STEER_MODEL_CACHE_DIR = ENV.model_cache_dir
# Run artifacts (files attached to a run, as MLflow's log_artifact): stored under
# STEER_ARTIFACT_DIR/run-<id>/, at most this many bytes a file and this many a run, and at most
# this many files a run (replacing a path the run has is no new file).
STEER_ARTIFACT_DIR = ENV.artifact_dir
STEER_ARTIFACT_MAX_BYTES = 100 * 1024 * 1024
STEER_ARTIFACT_RUN_MAX_BYTES = 1024 * 1024 * 1024
STEER_ARTIFACT_RUN_MAX_FILES = 10_000
STEER_USES_EMBEDDED_DATABASE = ENV.uses_embedded_database
STEER_USES_EMBEDDED_BROKER = ENV.uses_embedded_broker
# A running run whose worker has not written a heartbeat for this long shows "worker lost".
STEER_HEARTBEAT_TIMEOUT_S = 120
# A run whose worker is lost this many times in a row before it gets further (a checkpoint, an
# evaluation step) fails, instead of being delivered again forever (a process killed out of memory).
STEER_MAX_LOST_ATTEMPTS = 3
# Metric ingestion over REST: at most this many points per request.
STEER_METRIC_BATCH_LIMIT = 10_000

INSTALLED_APPS = [
    # Before django.contrib.auth: its changepassword and createsuperuser replace Django's.
    "webapp.accounts",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",  # naturaltime: "a moment ago", "40 seconds ago"
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from static files, not a CDN
    "django_htmx",
    "webapp.core",
    "webapp.projects",
    "webapp.datasets",
    "webapp.experiments",
    "webapp.feedback",
    "webapp.rewards",
    "webapp.api",
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
    "django_htmx.middleware.HtmxMiddleware",
    "webapp.core.htmx_login.HtmxLoginRedirectMiddleware",
    "webapp.core.csp.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"

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
                "webapp.projects.context_processors.memberships",
            ],
        },
    },
]

DATABASES = {"default": ENV.database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "projects:list"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = ENV.var_dir / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Requests: JSONL imports and metric batches are the largest legitimate bodies.
DATA_UPLOAD_MAX_MEMORY_SIZE = 32 * 1024 * 1024
# An uploaded file over this goes to a temporary file, which imports read a chunk at a time
# (webapp.core.uploads), so that a web process holds no more than this of each upload.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440  # Django's default, 2.5 MB

SESSION_COOKIE_HTTPONLY = True
# STEER_HTTPS=1 (served over HTTPS): the session and CSRF cookies travel only over HTTPS, and
# behind STEER_TRUSTED_PROXIES reverse proxies their X-Forwarded-Proto tells Django a request
# came in over HTTPS (which CSRF's origin check needs). Without a trusted proxy the header is
# the client's to write, so it is not believed.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = ENV.https
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if ENV.https and ENV.trusted_proxies else None
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the body's hx-headers, not the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Scripts only from Steer's own static files (webapp.core.csp): model text that slipped past
# the escaping still could not run. The API docs pages (an inline script, a blob: worker) are exempt.
STEER_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
STEER_CSP_EXEMPT_PATHS = ("/api/v1/docs/", "/api/v1/redoc/")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "webapp.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "webapp.api.schema.SteerAutoSchema",
    "DEFAULT_PARSER_CLASSES": [
        "webapp.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "webapp.api.pagination.DefaultCursorPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "webapp.api.errors.exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "webapp.api.query_strings.FormatNegotiation",
    "DEFAULT_THROTTLE_RATES": {"auth": "20/min"},
    # The client address the failed-login throttle counts against: the connection's own
    # unless STEER_TRUSTED_PROXIES reverse proxies sit in front (X-Forwarded-For is the
    # client's to write, so trusting it with no proxy would let a guesser pick a new address
    # for every guess).
    "NUM_PROXIES": ENV.trusted_proxies,
}
# Failed log-ins allowed per client address and per username, on every form that checks a
# password (webapp.accounts.backends; counted in the database by webapp.accounts.auth_failures;
# the API's token failures use REST_FRAMEWORK's "auth" rate above).
STEER_LOGIN_FAILURE_RATES = {"address": "30/hour", "username": "10/hour"}
# The only password backend: a second one listed before it would check passwords without the
# limits, and one after it would have its successes counted as failures.
AUTHENTICATION_BACKENDS = ["webapp.accounts.backends.ThrottledModelBackend"]
SPECTACULAR_SETTINGS = {
    "TITLE": "Steer API",
    "DESCRIPTION": "Runs, metrics, trajectories, feedback and reward models of a Steer installation.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # a PATCH body is documented as its serializer is (PATCH /members/<id>/ requires "role")
    "COMPONENT_SPLIT_PATCH": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Path ids (webapp.api.urls.IdConverter: at most 18 digits) are integers to generated clients.
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}},
    # Names of their own for the enums whose field names collide with others ("kind", "role"):
    # drf-spectacular would name them with a hash of their values, which a new value changes.
    "ENUM_NAME_OVERRIDES": {"RunKindEnum": "webapp.experiments.models.RunKind",
                            "ProjectRoleEnum": "webapp.projects.models.Role"},
}

# Celery: long GPU work goes to its own queue; tasks are acknowledged after they finish
# so a worker that dies mid-run has its run delivered again.
CELERY_BROKER_URL = ENV.broker_url
CELERY_BROKER_TRANSPORT_OPTIONS = ENV.broker_transport_options
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = 3
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "workers.tasks.run_policy": {"queue": "gpu"},
    "workers.tasks.run_evaluation": {"queue": "gpu"},
    "workers.tasks.train_reward_model": {"queue": "gpu"},
    "workers.tasks.train_dpo": {"queue": "gpu"},
    "workers.tasks.train_sft": {"queue": "gpu"},
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO" if DEBUG else "WARNING"},
}
