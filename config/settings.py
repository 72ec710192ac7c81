"""Filmroom settings.

Every knob is an environment variable with a default that runs the app on SQLite for a
newcomer (DEBUG on, a development secret key). Production sets at least FILMROOM_DEBUG=0,
FILMROOM_SECRET_KEY, FILMROOM_ALLOWED_HOSTS and DATABASE_URL.
"""
import json
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("FILMROOM_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("FILMROOM_DEBUG", True)
SECRET_KEY = os.environ.get("FILMROOM_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("FILMROOM_SECRET_KEY must be set when FILMROOM_DEBUG is off.")
    SECRET_KEY = "development-only-secret-key-do-not-use-in-production-0123456789"
ALLOWED_HOSTS = env_list("FILMROOM_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("FILMROOM_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "axes",
    "csp",
    "tracker",
    "archive",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tracker.views.roles_context",
            ],
        },
    },
]

# SQLite under var/ by default. BEGIN IMMEDIATE makes every transaction take the write lock
# up front, so two writers never both read the ledger head and then race to append.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'filmroom.sqlite3'}",
        # Connections are kept for a minute (checked before reuse): a new PostgreSQL connection
        # per scan delivery roughly halved the scan rate one server sustained.
        conn_max_age=int(os.environ.get("FILMROOM_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A fresh clone has no var/ yet; SQLite creates the file but not its folder.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# Logging in lands on the home page: the search box, then each role's dashboard (/home/).
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# django-axes: lock a username+address pair out after repeated failures.
AXES_FAILURE_LIMIT = int(os.environ.get("FILMROOM_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("FILMROOM_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

# Sessions end after this much idle time: every request pushes the expiry forward.
SESSION_COOKIE_AGE = int(os.environ.get("FILMROOM_SESSION_IDLE_SECONDS", str(30 * 60)))
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# The site's language: pages for a person who has not picked one (and whose browser asks for
# none we have), and what is written with no person asking (a station agent's reads, the sweep's
# reminder e-mails). "zh-hans" for a Chinese hospital; manage.py check refuses other values.
LANGUAGE_CODE = os.environ.get("FILMROOM_LANGUAGE_CODE", "en")
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("FILMROOM_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tracker.permissions.LoginSessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "tracker.pagination.Pages",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "tracker.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# Content-Security-Policy, in every environment (so tests meet it): scripts, styles, images and
# connections only from this site; no inline script or style anywhere (templates use classes
# from static/filmroom/filmroom.css and scripts from static/), no plugins, no framing. Drawn
# signatures travel as data: URLs inside form posts and are shown from this site.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Filmroom API",
    "DESCRIPTION": _("Custody chain of tagged radiology media: media, tags, loans, transfers, ledger."),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI is served from this site (no CDN: hospital networks are often closed).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Every operation documents the one error shape for the errors it can give.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tracker.api.shapes.document_errors",
    ],
    "ENUM_NAME_OVERRIDES": {
        "MediaKindEnum": "tracker.choices.MediaKind",
        "LocationKindEnum": "tracker.choices.LocationKind",
        "EventKindEnum": "tracker.choices.EventKind",
        "MediaStatusEnum": "tracker.choices.MediaStatus",
        "RequestStatusEnum": "tracker.choices.RequestStatus",
        "InventoryStatusEnum": "tracker.choices.InventoryStatus",
    },
}

# The custody ledger's checkpoint signing key (Ed25519, PEM). In development it is generated
# on first use under var/; in production provide it and keep a copy of the public key offline.
LEDGER_SIGNING_KEY_FILE = Path(
    os.environ.get("FILMROOM_LEDGER_SIGNING_KEY_FILE", VAR_DIR / "ledger-signing-key.pem")
)
LEDGER_ORIGIN = os.environ.get("FILMROOM_LEDGER_ORIGIN", "filmroom.local/custody-ledger")
# DICOM PS3.15 audit messages (manage.py audit_messages): the AuditSourceID and people's domain
# (user@AUDIT_SOURCE_ID), where the XML files go (with the command's memory of what it sent), and
# the audit repository that takes them by syslog: HOST:PORT, TLS on or off, the CA file to trust
# and an optional client certificate and key (IHE ATNA authenticates both ends).
AUDIT_SOURCE_ID = os.environ.get("FILMROOM_AUDIT_SOURCE_ID", LEDGER_ORIGIN.split("/")[0])
AUDIT_MESSAGES_DIR = Path(os.environ.get("FILMROOM_AUDIT_MESSAGES_DIR", VAR_DIR / "audit-messages"))
AUDIT_REPOSITORY = os.environ.get("FILMROOM_AUDIT_REPOSITORY", "")
AUDIT_REPOSITORY_TLS = env_bool("FILMROOM_AUDIT_REPOSITORY_TLS", False)
AUDIT_REPOSITORY_CA = os.environ.get("FILMROOM_AUDIT_REPOSITORY_CA", "")
AUDIT_REPOSITORY_CERT = os.environ.get("FILMROOM_AUDIT_REPOSITORY_CERT", "")
AUDIT_REPOSITORY_KEY = os.environ.get("FILMROOM_AUDIT_REPOSITORY_KEY", "")
# NTAG 424 DNA SUN: the site's SDM meta-read key (hex, decrypts the `e` parameter) and the
# secret that seals each tag's own file-read key in the database.
SUN_META_READ_KEY = bytes.fromhex(os.environ.get("FILMROOM_SUN_META_READ_KEY", "")) or None
TAG_KEY_SECRET = os.environ.get("FILMROOM_TAG_KEY_SECRET", "")
# Loan length when no policy says otherwise.
DEFAULT_LOAN_DAYS = int(os.environ.get("FILMROOM_DEFAULT_LOAN_DAYS", "14"))

# Flags and reminders (manage.py sweep): an item with a courier this long is flagged, an item on
# the shelf unseen this long is flagged, an overdue borrower is reminded at most this often.
FLAG_TRANSIT_HOURS = int(os.environ.get("FILMROOM_FLAG_TRANSIT_HOURS", "48"))
FLAG_NOT_SEEN_DAYS = int(os.environ.get("FILMROOM_FLAG_NOT_SEEN_DAYS", "365"))
REMINDER_EVERY_DAYS = int(os.environ.get("FILMROOM_REMINDER_EVERY_DAYS", "3"))
# Reminder e-mails: printed on the console until a site sets its mail server
# (FILMROOM_EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend, EMAIL_HOST...).
EMAIL_BACKEND = os.environ.get(
    "FILMROOM_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
EMAIL_HOST = os.environ.get("FILMROOM_EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("FILMROOM_EMAIL_PORT", "25"))
DEFAULT_FROM_EMAIL = os.environ.get("FILMROOM_DEFAULT_FROM_EMAIL", "filmroom@localhost")

# Disc indexer (archive/indexer.py): worker processes parsing headers and hashing, and the limits
# one file may use in a worker before it is reported as a problem instead of indexed.
DISC_IMPORT_WORKERS = int(os.environ.get("FILMROOM_DISC_IMPORT_WORKERS", "2"))
DISC_FILE_TIMEOUT_SECONDS = float(os.environ.get("FILMROOM_DISC_FILE_TIMEOUT_SECONDS", "30"))
DISC_WORKER_MEMORY_MB = int(os.environ.get("FILMROOM_DISC_WORKER_MEMORY_MB", "1024"))

# PACS look-up (archive/pacs.py): a JSON object naming each PACS, e.g.
# {"main": {"protocol": "dimse", "host": "10.0.0.5", "port": 104, "ae_title": "PACS",
#           "calling_ae_title": "FILMROOM", "timeout": 10},
#  "web": {"protocol": "dicomweb", "base_url": "https://pacs/dicom-web", "timeout": 10}}
PACS = json.loads(os.environ.get("FILMROOM_PACS", "{}"))

# Labels (tracker/labels.py): the site's address as printed in QR codes, e.g.
# https://filmroom.hospital.example (blank: the address the labels page was opened at), and
# whether an item's label shows the patient's name (the patient ID is always printed).
SITE_URL = os.environ.get("FILMROOM_SITE_URL", "").rstrip("/")
LABEL_SHOW_PATIENT_NAME = env_bool("FILMROOM_LABEL_SHOW_PATIENT_NAME", False)

if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("FILMROOM_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("FILMROOM_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"

# Application logs carry ids and codes, never patient names.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Addresses in log lines are reduced to their routes: no patient names or IDs in the logs.
    "filters": {"no_patient_data": {"()": "tracker.log_filters.NoPatientData"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["no_patient_data"]}
    },
    "root": {"handlers": ["console"], "level": os.environ.get("FILMROOM_LOG_LEVEL", "INFO")},
    "loggers": {
        "axes": {"level": "WARNING"},
        # pynetdicom logs query identifiers (patient names and IDs) at INFO and DEBUG.
        "pynetdicom": {"level": "WARNING"},
        # Django's own handlers for these would bypass the filter; send them to ours.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.request": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "django.security": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
