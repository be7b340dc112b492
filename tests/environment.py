"""Loaded as a pytest plugin (-p tests.environment) before Django reads its settings.

Every test run gets its own var/ directory, so parallel runs never share a database
file, and fixed test keys, so nothing is generated into the developer's var/.
"""

import base64
import os
import tempfile

TEST_MASTER_KEY = base64.urlsafe_b64encode(b"k" * 32).decode()
OLD_MASTER_KEY = base64.urlsafe_b64encode(b"o" * 32).decode()

_var = tempfile.mkdtemp(prefix="dr-test-var-")
os.environ["DR_VAR_DIR"] = _var
os.environ.setdefault("DR_ENV", "test")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-production-0123456789")
os.environ.setdefault("DR_ENCRYPTION_KEYS", TEST_MASTER_KEY)
os.environ.setdefault("DR_ALLOWED_ROOTS", f"{_var},{tempfile.gettempdir()}")
os.environ.setdefault("DR_METRICS_TOKEN", "test-metrics-token")
