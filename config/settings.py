"""Settings for every environment.

The embedded default (no environment at all) is SQLite, a local-memory cache and
Celery tasks run in-process, so `make run` needs no configuration. Production sets
DATABASE_URL (PostgreSQL) and REDIS_URL (cache and Celery broker). The full table of
variables is in README.md.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _
from kombu import Queue

from config.env import env_bool, env_choice, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG and env_bool("REQUIRE_SECRET_KEY", default=False):
        raise ImproperlyConfigured("SECRET_KEY must be set in production")
    # The embedded default and tests only; production sets SECRET_KEY.
    SECRET_KEY = "embedded-default-not-for-production"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Where the product is reached from outside: the base of the links in messages (unsubscribe).
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "import_export",
    "django_celery_beat",
    "crm",
    "lifecycle",
    "personas",
    "campaigns",
    "parents",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "config.locale.ChosenLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.errors.ProductErrorPagesMiddleware",
]

ROOT_URLCONF = "config.urls"

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
                "crm.context_processors.viewer",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
        # A kept connection is checked before a request reuses it (a restarted database).
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] not in (
    "django.db.backends.postgresql",
    "django.db.backends.sqlite3",
):
    raise ImproperlyConfigured("DATABASE_URL must be a postgres:// or sqlite:// URL")
IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"

AUTH_USER_MODEL = "crm.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
# English, once chosen with the menu's switch, outlasts the browser session (config/locale.py).
LANGUAGE_COOKIE_AGE = 365 * 24 * 60 * 60
TIME_ZONE = "Asia/Shanghai"
# A filter left open says "all" (全部), not django-filter's dashes.
FILTERS_EMPTY_CHOICE_LABEL = _("All")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
MEDIA_URL = "media/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache and Celery: Redis when REDIS_URL is set, otherwise in-process.
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A broker restart: workers reconnect (also one started while it is down), and the tasks already
# running go on (Celery 6 would cancel them by default). The campaign's batch tasks work on the
# database, not the broker, and their claims make a redelivered copy harmless.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 30 * 60)
CELERY_TASK_DEFAULT_QUEUE = "default"
# A worker started without -Q consumes every queue listed here; long imports have their
# own queue so they never hold up short tasks (`-Q imports` gives them dedicated workers).
CELERY_TASK_QUEUES = (Queue("default"), Queue("imports"))
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Installed into django-celery-beat's tables when beat starts; editable in the admin.
CELERY_BEAT_SCHEDULE = {
    "lifecycle-nightly-recompute": {
        "task": "lifecycle.nightly_recompute",
        "schedule": crontab(hour=2, minute=0),
    },
    # After the stages (the tag rules read them), before the pool sweep.
    "personas-nightly-profiles": {
        "task": "personas.nightly_profiles",
        "schedule": crontab(hour=2, minute=15),
    },
    "lifecycle-pool-sweep": {
        "task": "lifecycle.pool_sweep",
        "schedule": crontab(hour=2, minute=30),
    },
    # The overview's snapshot, from the profiles of the run at 02:15 (which takes seconds).
    "personas-nightly-overview": {
        "task": "personas.nightly_overview",
        "schedule": crontab(hour=2, minute=40),
    },
    # Scheduled campaigns whose time came; sending campaigns whose workers' tasks were lost.
    "campaigns-tick": {
        "task": "campaigns.campaigns_tick",
        "schedule": 60.0,
    },
    # Messages left mid-send by a dead worker, or whose task was lost.
    "campaigns-sweep-messages": {
        "task": "campaigns.sweep_messages",
        "schedule": crontab(),
    },
    # The API's stored answers to Idempotency-Keys, a day after.
    "crm-idempotency-sweep": {
        "task": "crm.idempotency_sweep",
        "schedule": crontab(hour=3, minute=10),
    },
}

# Messaging: the provider of each channel (a dotted path). The console provider, the embedded
# default, keeps messages in the database and writes them to the log.
_PROVIDERS = {
    "console": "campaigns.messaging.console.ConsoleProvider",
    "sms_gateway": "campaigns.messaging.sms_gateway.SmsGatewayProvider",
    "smtp": "campaigns.messaging.email.SmtpEmailProvider",
    "wechat": "campaigns.messaging.wechat.WeChatSubscriptionProvider",
}


def _provider_path(name: str, default: str) -> str:
    return _PROVIDERS[env_choice(name, sorted(_PROVIDERS), default)]


MESSAGING_PROVIDERS = {
    "sms": _provider_path("SMS_PROVIDER", "console"),
    "email": _provider_path("EMAIL_PROVIDER", "console"),
    "wechat": _provider_path("WECHAT_PROVIDER", "console"),
}
# The HTTP SMS gateway (SMS_PROVIDER=sms_gateway).
SMS_GATEWAY_URL = env_str("SMS_GATEWAY_URL")
SMS_GATEWAY_KEY = env_str("SMS_GATEWAY_KEY")
SMS_GATEWAY_SECRET = env_str("SMS_GATEWAY_SECRET")
SMS_SIGN_NAME = env_str("SMS_SIGN_NAME", "SCRM")
SMS_GATEWAY_TIMEOUT = env_int("SMS_GATEWAY_TIMEOUT", 10)
# WeChat subscription messages (WECHAT_PROVIDER=wechat): the mini program's app id and secret.
WECHAT_API_BASE = env_str("WECHAT_API_BASE", "https://api.weixin.qq.com")
WECHAT_APPID = env_str("WECHAT_APPID")
WECHAT_SECRET = env_str("WECHAT_SECRET")
# Which version of the mini program a message opens: the released one, the trial or development build.
WECHAT_MINIPROGRAM_STATE = env_choice("WECHAT_MINIPROGRAM_STATE", ["formal", "trial", "developer"], "formal")
WECHAT_MINIPROGRAM_PAGE = env_str("WECHAT_MINIPROGRAM_PAGE")
WECHAT_TIMEOUT = env_int("WECHAT_TIMEOUT", 10)
if MESSAGING_PROVIDERS["wechat"] == _PROVIDERS["wechat"] and not (WECHAT_APPID and WECHAT_SECRET):
    raise ImproperlyConfigured("WECHAT_PROVIDER=wechat needs WECHAT_APPID and WECHAT_SECRET")
# Messages per second each channel's provider accepts, across every worker (0: no limit).
MESSAGING_RATE_LIMITS = {
    "sms": env_int("SMS_RATE_LIMIT", 0),
    "email": env_int("EMAIL_RATE_LIMIT", 0),
    "wechat": env_int("WECHAT_RATE_LIMIT", 0),
}
# A message claimed this long ago and still sending was left by a worker that died mid-send.
MESSAGING_STUCK_SECONDS = env_int("MESSAGING_STUCK_SECONDS", 300)
# A campaign's outbox: rows a worker claims at a time, and messages it has in flight at once.
CAMPAIGN_BATCH_SIZE = env_int("CAMPAIGN_BATCH_SIZE", 200)
CAMPAIGN_SEND_THREADS = env_int("CAMPAIGN_SEND_THREADS", 16)
# Batch tasks started per campaign: at least the number of worker processes, so all share it.
CAMPAIGN_PARALLEL_TASKS = env_int("CAMPAIGN_PARALLEL_TASKS", 2)
# A sending campaign no worker has taken a batch of for this long has lost its tasks (a killed
# worker, a restarted broker): the beat's tick gives it workers again.
CAMPAIGN_IDLE_SECONDS = env_int("CAMPAIGN_IDLE_SECONDS", 60)
# Email through Django's mail backends (EMAIL_PROVIDER=smtp); the defaults are Django's own.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", default=False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS (STARTTLS, port 587) and EMAIL_USE_SSL (port 465): set one, not both")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "webmaster@localhost")

REST_FRAMEWORK = {
    # Closed by default: an endpoint is for staff with a role unless it says otherwise
    # (the parent API sets `parents.api.permissions.IsParent`).
    "DEFAULT_PERMISSION_CLASSES": ["crm.api.permissions.IsStaff"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # The first one's scheme goes into WWW-Authenticate, which makes a stranger's answer a 401
        # (with the session first it would be a 403).
        "crm.api.auth.StaffTokenAuthentication",  # integrations: "Authorization: Token <key>"
        "parents.auth.ParentTokenAuthentication",  # the mini-program: "Authorization: Bearer <access>"
        "rest_framework.authentication.SessionAuthentication",  # the staff pages
    ],
    "DEFAULT_PAGINATION_CLASS": "crm.api.pagination.PageNumberPage",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PARSER_CLASSES": [
        "config.api_parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Every error in one JSON shape (config/api_errors.py).
    "EXCEPTION_HANDLER": "config.api_errors.exception_handler",
    # OPTIONS without the fields of a view's serializer: the schema has them (config/api_schema.py).
    "DEFAULT_METADATA_CLASS": "config.api_schema.SchemaFirstMetadata",
    # Counted in the cache (Redis outside the embedded default), per client address or account.
    "DEFAULT_THROTTLE_RATES": {
        "auth_ip": env_str("API_AUTH_RATE_IP", "30/min"),
        "auth_phone": env_str("API_AUTH_RATE_PHONE", "10/hour"),
        "invite_ip": env_str("API_INVITE_RATE_IP", "10/hour"),
    },
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
}
# The parent API (parents/): how long a login lasts, and the SMS login code's rules.
PARENT_ACCESS_TTL = timedelta(minutes=env_int("PARENT_ACCESS_MINUTES", 120))
PARENT_REFRESH_TTL = timedelta(days=env_int("PARENT_REFRESH_DAYS", 30))
PARENT_CODE_TTL = timedelta(minutes=env_int("PARENT_CODE_MINUTES", 5))
# Wrong codes for one phone within PARENT_CODE_LOCK before every code of that phone is refused.
PARENT_CODE_MAX_FAILURES = env_int("PARENT_CODE_MAX_FAILURES", 5)
PARENT_CODE_LOCK = timedelta(minutes=env_int("PARENT_CODE_LOCK_MINUTES", 15))
PARENT_CODE_RESEND_SECONDS = env_int("PARENT_CODE_RESEND_SECONDS", 60)
# WeChat login (jscode2session, then the phone-number exchange) uses the mini program's
# WECHAT_APPID and WECHAT_SECRET at WECHAT_API_BASE; without them WeChat login is off.

SPECTACULAR_SETTINGS = {
    "TITLE": "SCRM API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page's Swagger UI is served from our static files, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Choice sets whose field names other choice sets share get names of their own.
    "ENUM_NAME_OVERRIDES": {
        "CampaignStatusEnum": "campaigns.models.CampaignStatus",
        "CampaignChannelEnum": "campaigns.models.CampaignChannel",
        "CampaignGoalEnum": "campaigns.models.CampaignGoal",
        "CampaignGroupEnum": "campaigns.models.CampaignGroup",
        "SuppressionReasonEnum": "campaigns.models.SuppressionReason",
        "SourceChannelEnum": "crm.models.Channel.choices",
        "ContractStatusEnum": "crm.models.ContractStatus",
        "FlagEnum": "lifecycle.filters.Flag.choices",
        "ConsultationChannelEnum": "crm.models.ConsultationChannel",
        "TrialStatusEnum": "crm.models.TrialStatus",
        "AttendanceStatusEnum": "crm.models.AttendanceStatus",
        "NpsCategoryEnum": "personas.models.NpsCategory",
    },
    # The one error shape as every operation's error answers (config/api_schema.py), after the
    # default hook that names the enums.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api_schema.document_errors",
    ],
}

IMPORT_EXPORT_USE_TRANSACTIONS = True
IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT = True
IMPORT_EXPORT_SKIP_ADMIN_LOG = True
# Files with more rows than this are committed by a background task with progress.
IMPORT_ASYNC_ROW_THRESHOLD = env_int("IMPORT_ASYNC_ROW_THRESHOLD", 2000)
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 50 * 1024 * 1024

SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
