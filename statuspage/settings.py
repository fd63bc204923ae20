"""The one settings module. Everything that differs between machines comes from the environment.

Bad values stop start-up with ImproperlyConfigured naming the variable (see statuspage.lib.env).
"""
from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from statuspage.lib.env import (
    env_bool,
    env_dotted_path,
    env_int,
    env_list,
    env_str,
    env_time_zone,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

# --- core -----------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on-0123456789abcdef"
elif len(SECRET_KEY) < 50 and not DEBUG:
    raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters long in production")

SITE_URL = env_url("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must name at least one host when DEBUG is off")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [SITE_URL])
TIME_ZONE = env_time_zone("TIME_ZONE", "UTC")
USE_TZ = True
USE_I18N = True
LANGUAGE_CODE = "en-us"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI's files served from our own static files: the docs work without the internet.
    "drf_spectacular_sidecar",
    "django_q",
    "anymail",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "incidents",
    "subscribers",
    "notifications",
]
SITE_ID = 1

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Cached public pages and the v2 JSON are answered here, before session/auth/CSRF/messages.
    "incidents.serving.PublicReadMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "statuspage.urls"
WSGI_APPLICATION = "statuspage.wsgi.application"
ASGI_APPLICATION = "statuspage.asgi.application"

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

# --- database ---------------------------------------------------------------------------
_database_url = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
try:
    _database = dj_database_url.parse(_database_url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0))
except ValueError as exc:  # dj-database-url raises ValueError on an unknown scheme
    raise ImproperlyConfigured(f"DATABASE_URL is not a usable database URL: {exc}") from None
if _database["ENGINE"] not in ("django.db.backends.sqlite3", "django.db.backends.postgresql"):
    raise ImproperlyConfigured("DATABASE_URL must be a sqlite:// or postgres:// URL")
if _database["ENGINE"] == "django.db.backends.sqlite3":
    _database["CONN_MAX_AGE"] = 0
    # WAL lets the web process read while the worker writes; the timeout rides out short locks.
    _database["OPTIONS"] = {"init_command": "PRAGMA journal_mode=WAL;", "timeout": 20, "transaction_mode": "IMMEDIATE"}
else:
    _database["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache and queue --------------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", "", schemes=("redis", "rediss", "unix"))
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "statuspage.lib.redis_cache.RedisCache", "LOCATION": REDIS_URL}}
else:
    # The database is the queue broker without Redis, but not the cache: a database cache
    # would put SQL on every public read. Files are shared by the web and worker processes
    # of a single-machine install, which is what running without Redis means.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
            "OPTIONS": {"MAX_ENTRIES": 2000},
        }
    }

Q_CLUSTER = {
    # The broker queue's name: two deployments sharing one Redis database need different ones.
    "name": env_str("Q_CLUSTER_NAME", "statuspage"),
    "workers": env_int("Q_WORKERS", 2, minimum=1),
    # A task may run for `timeout` seconds; it is handed to another worker only after `retry`
    # seconds, so retry > timeout keeps one task from running twice at once.
    "timeout": 60,
    "retry": 90,
    # Our own tables record what is done; the queue may give up after a few tries because the
    # per-minute sweeper re-queues whatever is still due.
    "max_attempts": 3,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 500,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 1

# --- email ------------------------------------------------------------------------------
EMAIL_BACKEND = env_dotted_path("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "status@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
ANYMAIL = {
    key[len("ANYMAIL_"):]: value
    for key, value in __import__("os").environ.items()
    if key.startswith("ANYMAIL_") and value
}

# Messages live in the session, not in a cookie: the admin shows a new API key once as a message,
# and a cookie would carry it in the clear (signed, not encrypted) to the browser and back.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# --- auth (django-allauth, staff only) --------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_ADAPTER = "statuspage.lib.auth.StaffAccountAdapter"
ACCOUNT_LOGOUT_ON_GET = False
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env_str("MFA_TOTP_ISSUER", "Status page")
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/admin/"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Reverse proxies in front of the app that append to X-Forwarded-For (0: use REMOTE_ADDR).
TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0, minimum=0)

# --- API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Deny by default: every public endpoint opts in explicitly.
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("API_ANON_RATE", "120/min"),
        "user": env_str("API_USER_RATE", "600/min"),
    },
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # Throttles key on REMOTE_ADDR unless proxies are trusted: a client-written X-Forwarded-For
    # must not choose whose quota is spent.
    "NUM_PROXIES": TRUSTED_PROXIES,
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# The OpenAPI 3 description of the management API, at /api/schema/ with Swagger UI at /api/docs/
# (statuspage/urls.py). Both are for staff only: the schema describes the editorial endpoints.
SPECTACULAR_SETTINGS = {
    "TITLE": "Status page management API",
    "DESCRIPTION": (
        "Statuspage-compatible management API v1 (`Authorization: OAuth <key>`), with the editorial "
        "workflow's drafts, approvals, policy, templates and archive beside it."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAdminUser"],
    "SERVE_AUTHENTICATION": [
        "rest_framework.authentication.SessionAuthentication",
        "subscribers.authentication.ApiTokenAuthentication",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ComponentStatusEnum": "incidents.models.ComponentStatus",
        "IncidentStatusEnum": "incidents.models.ALL_STATUS_CHOICES",
        "DraftStateEnum": "incidents.models.DraftState",
        "ImpactEnum": "incidents.models.Impact",
    },
}

# --- static files -----------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = VAR_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- the status page --------------------------------------------------------------------
# Seconds a browser or CDN may reuse a public response before revalidating with its ETag.
PUBLIC_CACHE_MAX_AGE = env_int("PUBLIC_CACHE_MAX_AGE", 10, minimum=0)
# Subscribe requests one IP address may make an hour (the public form and the v2 subscribe API).
SUBSCRIBE_MAX_PER_IP_PER_HOUR = env_int("SUBSCRIBE_MAX_PER_IP_PER_HOUR", 20, minimum=1)
# When set, every change also writes the page, the v2 JSON and the feeds as plain files here.
STATIC_EXPORT_DIR = env_str("STATIC_EXPORT_DIR", "")

# --- production hardening -----------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO").upper()},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- outbound HTTP and providers (notifications) ---
# Every outbound request goes through statuspage.lib.http, which refuses non-public addresses.
# Networks listed here (CIDR, comma separated) are allowed anyway, and may be reached over
# plain http: for receivers hosted next to this install, e.g. "10.20.0.0/16,fd00:1::/64".
import base64 as _base64  # noqa: E402
import hashlib as _hashlib  # noqa: E402
import hmac as _hmac  # noqa: E402
import ipaddress as _ipaddress  # noqa: E402
import re as _re  # noqa: E402

OUTBOUND_ALLOWED_NETWORKS = env_list("OUTBOUND_ALLOWED_NETWORKS", [])
for _cidr in OUTBOUND_ALLOWED_NETWORKS:
    try:
        _ipaddress.ip_network(_cidr, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"OUTBOUND_ALLOWED_NETWORKS must be comma separated networks such as 10.0.0.0/8; got {_cidr!r}"
        ) from None
# Seconds one outbound request may take (connect, send, answer). Standard Webhooks suggests
# 15-30 s for receivers; a shorter bound keeps a slow endpoint from holding a worker.
OUTBOUND_HTTP_TIMEOUT = env_int("OUTBOUND_HTTP_TIMEOUT", 10, minimum=1)
# Bytes of a receiver's answer we read at most; nothing we send needs more than a small JSON.
OUTBOUND_MAX_RESPONSE_BYTES = env_int("OUTBOUND_MAX_RESPONSE_BYTES", 64 * 1024, minimum=1024)
# CA bundle for https receivers (a private CA of self-hosted receivers); empty = certifi's roots.
OUTBOUND_CA_BUNDLE = env_str("OUTBOUND_CA_BUNDLE", "")
if OUTBOUND_CA_BUNDLE and not Path(OUTBOUND_CA_BUNDLE).is_file():
    raise ImproperlyConfigured(f"OUTBOUND_CA_BUNDLE must name a readable file; got {OUTBOUND_CA_BUNDLE!r}")

# Webhooks are signed with Standard Webhooks headers. Without WEBHOOK_SIGNING_SECRET
# (whsec_ + base64 of at least 24 random bytes) a secret is derived from SECRET_KEY, so it is
# stable across restarts but changes when SECRET_KEY does: set it explicitly in production and
# hand it to receivers.
WEBHOOK_SIGNING_SECRET = env_str("WEBHOOK_SIGNING_SECRET", "")
if WEBHOOK_SIGNING_SECRET:
    try:
        _key = _base64.b64decode(WEBHOOK_SIGNING_SECRET.removeprefix("whsec_") + "==", validate=False)
    except ValueError:
        _key = b""
    if not WEBHOOK_SIGNING_SECRET.startswith("whsec_") or len(_key) < 24:
        raise ImproperlyConfigured(
            "WEBHOOK_SIGNING_SECRET must be 'whsec_' followed by the base64 of at least 24 random bytes"
        )
else:
    WEBHOOK_SIGNING_SECRET = "whsec_" + _base64.b64encode(
        _hmac.new(SECRET_KEY.encode(), b"statuspage.webhook-signing-secret", _hashlib.sha256).digest()
    ).decode("ascii")

# Email: how many recipients one batch call to the ESP carries (ESPs cap this: SendGrid
# 1000 personalizations, Postmark 500 messages per batch).
EMAIL_BATCH_SIZE = env_int("EMAIL_BATCH_SIZE", 500, minimum=1)
# How the ESP spells a per-recipient merge field in a batch, NAME standing for the field:
# "{{NAME}}" (Postmark/SparkPost/SES templates), "%recipient.NAME%" (Mailgun), "*|NAME|*"
# (Mandrill), "-NAME-" (SendGrid, with ANYMAIL_SENDGRID_MERGE_FIELD_FORMAT="-{}-").
EMAIL_MERGE_FIELD_FORMAT = env_str("EMAIL_MERGE_FIELD_FORMAT", "{{NAME}}")
if "NAME" not in EMAIL_MERGE_FIELD_FORMAT:
    raise ImproperlyConfigured(f"EMAIL_MERGE_FIELD_FORMAT must contain NAME where the field name goes; got {EMAIL_MERGE_FIELD_FORMAT!r}")

# SMS: the backend class; notifications.transports.sms.TwilioSmsBackend talks to any
# Twilio-compatible API at SMS_BASE_URL, the default console backend only logs.
SMS_BACKEND = env_dotted_path("SMS_BACKEND", "notifications.transports.sms.ConsoleSmsBackend")
SMS_BASE_URL = env_url("SMS_BASE_URL", "https://api.twilio.com").rstrip("/")
SMS_ACCOUNT_SID = env_str("SMS_ACCOUNT_SID", "")
SMS_AUTH_TOKEN = env_str("SMS_AUTH_TOKEN", "")
SMS_FROM_NUMBER = env_str("SMS_FROM_NUMBER", "")
if SMS_FROM_NUMBER and not _re.fullmatch(r"\+[1-9][0-9]{1,14}", SMS_FROM_NUMBER):
    raise ImproperlyConfigured(f"SMS_FROM_NUMBER must be an E.164 number such as +15005550006; got {SMS_FROM_NUMBER!r}")
# Where the provider reports delivery status (empty: no callbacks are requested).
# Our own status callback view (notifications.views.sms_status) unless pointed elsewhere.
SMS_STATUS_CALLBACK_URL = env_url("SMS_STATUS_CALLBACK_URL", f"{SITE_URL}/webhooks/sms/status", schemes=("https", "http"))
# Longer texts are cut to fit: every segment is billed, and carriers reassemble few reliably.
SMS_MAX_SEGMENTS = env_int("SMS_MAX_SEGMENTS", 2, minimum=1)
if SMS_BACKEND.endswith(".TwilioSmsBackend") and not (SMS_ACCOUNT_SID and SMS_AUTH_TOKEN and SMS_FROM_NUMBER):
    raise ImproperlyConfigured("SMS_BACKEND is Twilio: set SMS_ACCOUNT_SID, SMS_AUTH_TOKEN and SMS_FROM_NUMBER")

# --- compliance archive ---
# How long archived messages are kept before `manage.py archive_purge` may remove them
# (default about 7 years); legal holds keep them longer.
ARCHIVE_RETENTION_DAYS = env_int("ARCHIVE_RETENTION_DAYS", 2555, minimum=1)

# --- notification delivery ---------------------------------------------------------------
# Send attempts per delivery before it is marked dead (transient failures back off in between).
DELIVERY_MAX_ATTEMPTS = env_int("DELIVERY_MAX_ATTEMPTS", 8, minimum=1)
# Deliveries per send task: claimed, archived and recorded together (one ESP call per
# EMAIL_BATCH_SIZE of them). A batch must finish well inside the queue timeout (60 s).
DELIVERY_SEND_BATCH = env_int("DELIVERY_SEND_BATCH", 500, minimum=1)
# At most one email per incident per subscriber in this window; later updates are combined.
NOTIFY_COALESCE_MINUTES = env_int("NOTIFY_COALESCE_MINUTES", 10, minimum=0)
# SMS only on lifecycle edges (first notice, resolution, maintenance start/end) unless this is on.
NOTIFY_SMS_EVERY_UPDATE = env_bool("NOTIFY_SMS_EVERY_UPDATE", False)

# --- support coordination (incidents.support) -------------------------------------------------
# Who hears, with the approved talking points, what customers were just told.
SUPPORT_ALERT_EMAILS = env_list("SUPPORT_ALERT_EMAILS", [])
SUPPORT_CHAT_WEBHOOK_URL = env_url("SUPPORT_CHAT_WEBHOOK_URL", "")
# A generic, signed JSON event per update for a helpdesk (Zendesk/Freshdesk automation).
HELPDESK_WEBHOOK_URL = env_url("HELPDESK_WEBHOOK_URL", "")

# --- redaction ---
# Update texts are checked before they are published for what must not leak: IP addresses,
# internal host names, secrets, email addresses and ticket ids (incidents.redaction).
from incidents import redaction as _redaction  # noqa: E402

# Hosts under these domains are internal ("db-03.prod.internal", "api.corp"); a company
# sub-domain such as int.example.com may be listed too. The SITE_URL host is never reported.
REDACTION_INTERNAL_DOMAINS = list(
    _redaction.parse_internal_domains(
        env_list("REDACTION_INTERNAL_DOMAINS", list(_redaction.DEFAULT_INTERNAL_DOMAINS))
    )
)
# Infrastructure host names ("db-03", "prod-web-12", "ip-10-0-1-5"), and ticket keys
# ("OPS-1234"): regular expressions; an empty value turns that check off.
REDACTION_HOST_PATTERN = env_str("REDACTION_HOST_PATTERN", _redaction.DEFAULT_HOST_PATTERN)
_redaction.compile_setting("REDACTION_HOST_PATTERN", REDACTION_HOST_PATTERN)
REDACTION_TICKET_PATTERN = env_str("REDACTION_TICKET_PATTERN", _redaction.DEFAULT_TICKET_PATTERN)
_redaction.compile_setting("REDACTION_TICKET_PATTERN", REDACTION_TICKET_PATTERN)
# Addresses staff publish on purpose (support@example.com), compared without regard to case.
REDACTION_ALLOWED_EMAILS = list(_redaction.parse_allowed_emails(env_list("REDACTION_ALLOWED_EMAILS", [])))
# More things to catch, as name=regex entries ("customer=cust_[0-9]{6}"); a bad one stops start-up.
REDACTION_EXTRA_PATTERNS = env_list("REDACTION_EXTRA_PATTERNS", [])
_redaction.parse_extra_patterns(REDACTION_EXTRA_PATTERNS)

# --- staff reminders ---
# incidents.reminders, every minute: reminders before a promised public update or a post-mortem
# is due, escalations once it is overdue, extended outages, maintenances near their end.
# A Slack- or Teams-compatible incoming webhook for internal pings (empty: no chat post).
STAFF_CHAT_WEBHOOK_URL = env_url("STAFF_CHAT_WEBHOOK_URL", "")
# Extra addresses told of every reminder, besides the commander and the communicators.
STAFF_ALERT_EMAILS = env_list("STAFF_ALERT_EMAILS", [])
if any("@" not in _address for _address in STAFF_ALERT_EMAILS):
    raise ImproperlyConfigured(f"STAFF_ALERT_EMAILS must be email addresses, comma-separated; got {STAFF_ALERT_EMAILS!r}")
# How many minutes before a public update is due its reminder goes out.
REMINDER_LEAD_MINUTES = env_int("REMINDER_LEAD_MINUTES", 10, minimum=1)
