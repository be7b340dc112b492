"""DR Portal settings, read from the environment.

Embedded default (nothing set): SQLite under var/, django-q2's ORM broker on that
database, the database cache, a secret key and key ring generated once into var/.
With DR_ENV=production every secret must come from the environment.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from dr_portal.lib import bootstrap, outbound

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
DR_ENV = env.str("DR_ENV", default="embedded")
if DR_ENV not in ("embedded", "production", "test"):
    raise ImproperlyConfigured(f"DR_ENV must be embedded, production or test, not {DR_ENV!r}")
PRODUCTION = DR_ENV == "production"

VAR_DIR = Path(env.str("DR_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _required_or_generated(name, generate):
    """Production names the missing variable; the embedded default generates it once."""
    value = env.str(name, default="")
    if value:
        return value, False
    if PRODUCTION:
        raise ImproperlyConfigured(f"{name} must be set when DR_ENV=production")
    return bootstrap.generated_value(VAR_DIR, name, generate), True


SECRET_KEY, SECRET_KEY_GENERATED = _required_or_generated(
    "DJANGO_SECRET_KEY", bootstrap.new_secret_key
)
DR_ENCRYPTION_KEYS, DR_KEYRING_GENERATED = _required_or_generated(
    "DR_ENCRYPTION_KEYS", bootstrap.new_master_key
)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[] if PRODUCTION else ["127.0.0.1", "localhost"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DR_ENV=production")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_q",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "dr_portal",
    "dr_portal.two_factor",  # after otp_totp: its admin replaces django-otp's key-showing one
    "backups",
    "recovery",
    "drills",
    "incidents",
    "dashboard",
    "api",
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
    "dr_portal.middleware.LoginRequiredEverywhere",
    "dr_portal.two_factor.middleware.TwoFactorRequired",
    "dr_portal.middleware.AuditContextMiddleware",
    "dr_portal.middleware.ContentSecurityPolicy",
    # Last, as django-axes asks: it turns a locked-out login into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dr_portal.urls"
WSGI_APPLICATION = "dr_portal.wsgi.application"

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
                "dr_portal.context_processors.portal",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web and worker processes share one file: WAL lets readers run beside the writer,
    # IMMEDIATE takes the write lock up front instead of failing on upgrade, and the
    # timeout waits for it rather than raising "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-portal.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: django-q2's cluster stats live here -----------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "dr_portal_cache",
        }
    }

# --- Background work -------------------------------------------------------
# The queue stays on the database (ORM broker): it keeps delivery receipts, so a task
# whose worker died is delivered again. Tasks claim their run rows, so that is harmless.
Q_TIMEOUT = env.int("DR_TASK_TIMEOUT", default=4 * 3600)
Q_WORKERS = env.int("DR_WORKERS", default=2)
Q_CLUSTER = {
    "name": "dr-portal",
    "orm": "default",
    "workers": Q_WORKERS,
    "timeout": Q_TIMEOUT,
    # retry must exceed dequeue-to-done including waiting in the cluster's own queue.
    "retry": Q_TIMEOUT * 2 + 600,
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "queue_limit": Q_WORKERS,
    "bulk": 1,
    "poll": env.float("DR_QUEUE_POLL", default=1.0),
    "save_limit": 500,
    "recycle": 200,
    "label": "Task queue",
    "ALT_CLUSTERS": {},
}

# --- Auth ------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
if DR_ENV == "test":
    # Hashing strength is not under test; PBKDF2 made each persona fixture cost ~0.3 s.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# django-axes first: it refuses a locked-out username and address before any password check.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # ModelBackend that refuses non-superusers when DR_OIDC_PASSWORD_LOGIN is off.
    "dr_portal.sso.PasswordBackend",
    # OIDC single sign-on (dr_portal/sso.py, docs/sso.md); inert while DR_OIDC_ISSUER is unset.
    "dr_portal.sso.SsoBackend",
]
# Lock out one username from one address after this many failures, for this long; a
# superuser unlocks in the admin (Axes > Access attempts: delete the row) or with
# `manage.py axes_reset_username NAME`. Each lock-out is in the audit log.
AXES_FAILURE_LIMIT = env.int("DR_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("DR_LOGIN_COOLOFF_MIN", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "dr_portal.middleware.axes_client_address"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Two-factor sign-in (dr_portal/two_factor): managers and superusers must enrol and give a
# code each session when on; anyone enrolled is always asked. API tokens are not affected.
DR_REQUIRE_2FA = env.bool("DR_REQUIRE_2FA", default=PRODUCTION)
OTP_TOTP_ISSUER = env.str("DR_2FA_ISSUER", default="DR Portal")
# django-otp's back-off after wrong codes: 1, 2, 4, 8 ... seconds times this factor.
OTP_TOTP_THROTTLE_FACTOR = 1
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# --- OIDC single sign-on (docs/sso.md); checked by dr_portal.checks.check_sso -----------------
# Endpoints come from <issuer>/.well-known/openid-configuration, fetched once an hour.
DR_OIDC_ISSUER = env.str("DR_OIDC_ISSUER", default="").rstrip("/")
DR_OIDC_CLIENT_ID = env.str("DR_OIDC_CLIENT_ID", default="")
DR_OIDC_CLIENT_SECRET = env.str("DR_OIDC_CLIENT_SECRET", default="")  # never logged or shown
DR_OIDC_SCOPES = env.str("DR_OIDC_SCOPES", default="openid email profile")
DR_OIDC_SIGN_ALGO = env.str("DR_OIDC_SIGN_ALGO", default="RS256")
DR_OIDC_ROLE_CLAIM = env.str("DR_OIDC_ROLE_CLAIM", default="groups")
DR_OIDC_ROLE_MAP = env.str("DR_OIDC_ROLE_MAP", default="")  # group=role,group=role
DR_OIDC_SYSTEM_ROLE_MAP = env.str("DR_OIDC_SYSTEM_ROLE_MAP", default="")  # group=role@system
DR_OIDC_MFA_AMR = env.list("DR_OIDC_MFA_AMR", default=["mfa", "otp", "hwk"])
DR_OIDC_PASSWORD_LOGIN = env.bool("DR_OIDC_PASSWORD_LOGIN", default=True)
# An SSO session ends after this many hours: roles removed at the provider apply by then.
DR_OIDC_SESSION_HOURS = env.int("DR_OIDC_SESSION_HOURS", default=12)
if DR_OIDC_SESSION_HOURS < 1:
    raise ImproperlyConfigured("DR_OIDC_SESSION_HOURS must be a whole number of hours, 1 or more")

# --- Email -----------------------------------------------------------------
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
    EMAIL_PORT = env.int("EMAIL_PORT", default=25)
    EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
    EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
    EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
    EMAIL_BACKEND = env.str(
        "EMAIL_BACKEND",
        default="django.core.mail.backends.smtp.EmailBackend"
        if PRODUCTION or env.str("EMAIL_HOST", default="")
        else "django.core.mail.backends.console.EmailBackend",
    )
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="dr-portal@localhost")
EMAIL_TIMEOUT = 10

# --- Portal ----------------------------------------------------------------
DR_DEMO_DIR = VAR_DIR / "demo"
DR_LOCAL_BACKUP_DIR = VAR_DIR / "backups"
# Users may only point sources, destinations and restore targets below these roots. Not the
# var dir itself: it holds the key ring, the secret key and the portal's database (only its
# demo and local-backup folders are allowed), and a source over it would ship the keys.
DR_ALLOWED_ROOTS = [
    Path(p).resolve()
    for p in env.list(
        "DR_ALLOWED_ROOTS",
        default=[str(DR_DEMO_DIR), str(DR_LOCAL_BACKUP_DIR), "/tmp", "/var/tmp"],
    )
]
DR_METRICS_TOKEN = env.str("DR_METRICS_TOKEN", default="")
# The Ed25519 key that signs report PDFs (dr_portal.lib.signing); generated into var/ if unset.
DR_SIGNING_KEY = env.str("DR_SIGNING_KEY", default="")
# The portal's public address, for links in emails, webhooks and call-out messages.
DR_PORTAL_URL = env.str("DR_PORTAL_URL", default="http://127.0.0.1:8000").rstrip("/")
# /metrics without a token from these addresses or networks (REMOTE_ADDR only), e.g. 127.0.0.1/32.
DR_METRICS_ALLOW = env.list("DR_METRICS_ALLOW", default=[])
# How many reverse proxies in front of the portal append to X-Forwarded-For. 0: the client
# is REMOTE_ADDR. N: the Nth address from the right (the one the outermost proxy saw).
# Used for the audit log and login lock-outs; never trust more hops than you run.
DR_TRUSTED_PROXIES = env.int("DR_TRUSTED_PROXIES", default=0)
if DR_TRUSTED_PROXIES < 0:
    raise ImproperlyConfigured("DR_TRUSTED_PROXIES must be 0 or a positive number of proxies")
DR_SCRATCH_DATABASE_URL = env.str("DR_SCRATCH_DATABASE_URL", default="")
# A worker cluster not seen for longer than this is reported down (/health/ready, the banner
# on every page); open pages re-check the banners every DR_BANNER_POLL_S seconds.
DR_WORKER_WINDOW_S = env.int("DR_WORKER_WINDOW_S", default=60)
DR_BANNER_POLL_S = env.int("DR_BANNER_POLL_S", default=15)
for _name in ("DR_WORKER_WINDOW_S", "DR_BANNER_POLL_S"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be a whole number of seconds, 1 or more")
# Outbound requests users configure (http_check and webhook steps, notification webhooks) may
# reach internal addresses (loopback, private, link-local, ...) only when listed here:
# comma-separated CIDRs, addresses and host names ("*.corp.example" covers subdomains).
try:
    DR_OUTBOUND_ALLOW = outbound.parse_allow(env.list("DR_OUTBOUND_ALLOW", default=[]))
except ValueError as exc:
    raise ImproperlyConfigured(f"DR_OUTBOUND_ALLOW: {exc}") from None
# A running run whose worker has not beaten for this long is failed as "worker lost".
DR_REAP_AFTER_S = env.int("DR_REAP_AFTER_S", default=120)
# The scrub reads every live copy back: a pass every DR_SCRUB_EVERY_HOURS (0: no schedule),
# reading at most DR_SCRUB_BYTES_PER_HOUR x DR_SCRUB_EVERY_HOURS per destination per pass.
DR_SCRUB_EVERY_HOURS = env.int("DR_SCRUB_EVERY_HOURS", default=24)
DR_SCRUB_BYTES_PER_HOUR = env.int("DR_SCRUB_BYTES_PER_HOUR", default=20 * 1024**3)
# "Copies proven in the last N days" (dashboard, compliance report).
DR_PROVEN_WITHIN_DAYS = env.int("DR_PROVEN_WITHIN_DAYS", default=30)
for _name in ("DR_SCRUB_EVERY_HOURS", "DR_SCRUB_BYTES_PER_HOUR", "DR_PROVEN_WITHIN_DAYS"):
    if globals()[_name] < (0 if _name == "DR_SCRUB_EVERY_HOURS" else 1):
        raise ImproperlyConfigured(f"{_name} must be a positive whole number")
# Scheduled restore tests rotate over the destinations holding the newest good backup; a
# (source, destination) copy no passed test read in this many days gets a test of its own
# (sources with scheduled restore tests; 0: rotation only). See recovery/rotation.py.
DR_COPY_TEST_EVERY_DAYS = env.int("DR_COPY_TEST_EVERY_DAYS", default=7)
if DR_COPY_TEST_EVERY_DAYS < 0:
    raise ImproperlyConfigured("DR_COPY_TEST_EVERY_DAYS must be a whole number of days, 0 or more")
# A new source pages (RPO breached) only after this; 0: its job's first scheduled backup + 1 h.
DR_NEW_SOURCE_GRACE_S = env.int("DR_NEW_SOURCE_GRACE_S", default=0)
# An open alert nobody acknowledged or snoozed is sent again this often; 0: never.
DR_ALERT_REPEAT_S = env.int("DR_ALERT_REPEAT_S", default=4 * 3600)
if DR_ALERT_REPEAT_S < 0:
    raise ImproperlyConfigured("DR_ALERT_REPEAT_S must be 0 (never) or a number of seconds")
# Replication lag of the runbooks' standbys (recovery/failover/lag.py), sampled every minute:
# alert when a standby is more than DR_LAG_ALERT_S seconds or DR_LAG_ALERT_BYTES bytes behind
# (0: no such threshold); samples are kept DR_LAG_KEEP_DAYS; one measurement waits at most
# DR_LAG_TIMEOUT_S per server.
DR_LAG_ALERT_S = env.int("DR_LAG_ALERT_S", default=300)
DR_LAG_ALERT_BYTES = env.int("DR_LAG_ALERT_BYTES", default=1024**3)
DR_LAG_KEEP_DAYS = env.int("DR_LAG_KEEP_DAYS", default=14)
DR_LAG_TIMEOUT_S = env.int("DR_LAG_TIMEOUT_S", default=10)
for _name in ("DR_LAG_ALERT_S", "DR_LAG_ALERT_BYTES", "DR_LAG_KEEP_DAYS", "DR_LAG_TIMEOUT_S"):
    if globals()[_name] < (1 if _name in ("DR_LAG_KEEP_DAYS", "DR_LAG_TIMEOUT_S") else 0):
        raise ImproperlyConfigured(
            f"{_name} must be a whole number, 0 or more (days, timeout: 1 or more)"
        )
# A failover runbook's proving run older than this makes its readiness "stale".
DR_FAILOVER_PROOF_DAYS = env.int("DR_FAILOVER_PROOF_DAYS", default=90)
if DR_FAILOVER_PROOF_DAYS < 1:
    raise ImproperlyConfigured("DR_FAILOVER_PROOF_DAYS must be a whole number of days, 1 or more")

# --- REST API (api/, docs/api.md) ------------------------------------------------
# Calls per minute per token (or per signed-in user), and writes per minute among them.
DR_API_RATE = env.str("DR_API_RATE", default="600/minute")
DR_API_WRITE_RATE = env.str("DR_API_WRITE_RATE", default="30/minute")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.auth.BearerTokenAuthentication",
        "api.auth.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.HasRole"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.NewestFirst",
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.CallThrottle", "api.throttling.WriteThrottle"],
    "DEFAULT_THROTTLE_RATES": {"call": DR_API_RATE, "write": DR_API_WRITE_RATE},
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "api.schema.AutoSchema",
    "DEFAULT_VERSIONING_CLASS": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "DR Portal API",
    "DESCRIPTION": "Backups, restore tests, restores, failovers, readiness and incidents. "
    "Authenticate with 'Authorization: Bearer <token>' (a token from Account > API tokens).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["api.permissions.HasRole"],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from the drf-spectacular-sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "dr_portal.runs.RunStatus",
        "StepStatusEnum": "recovery.failover.models.StepRun.Status",
        "IncidentStatusEnum": "incidents.models.IncidentStatus",
        "RunVerdictEnum": "recovery.targets.Verdict",
        "ReadinessVerdictEnum": [("ok", "ok"), ("at_risk", "at_risk"), ("breached", "breached")],
        "FailoverModeEnum": "recovery.failover.models.RunMode",
        "ProvenModeEnum": [("test", "test"), ("live", "live")],  # readiness: the proving run's
        "RtoVerdictEnum": [("met", "met"), ("missed", "missed")],
    },
}

# --- i18n, static ----------------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = not PRODUCTION  # serve static/ without collectstatic while developing
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on every start when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security --------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie.
X_FRAME_OPTIONS = "DENY"
# Sent on every response by dr_portal.middleware.ContentSecurityPolicy. No inline script
# anywhere (behaviour lives in static/dr_portal/portal.js); inline styles stay allowed
# because htmx injects its indicator style and a few templates set widths inline.
DR_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'"
)
SECURE_CONTENT_TYPE_NOSNIFF = True
if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # /health/* answers load balancers over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^health/"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact": {"()": "dr_portal.lib.redact.RedactingFilter"},
        # After redact: one record is one line, whatever a user put in a name.
        "one_line": {"()": "dr_portal.lib.logsafe.OneLineFilter"},
    },
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact", "one_line"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # django-q2 logs three lines per task at INFO, and system tasks run every minute:
        # the runs log their own outcome (dr_portal.runs); raise this to see the queue's.
        "django-q": {"level": env.str("DR_QUEUE_LOG_LEVEL", default="WARNING")},
    },
}
