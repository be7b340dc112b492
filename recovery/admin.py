from django.contrib import admin  # noqa: F401

from recovery.failover import admin as _failover_admin  # noqa: E402,F401
