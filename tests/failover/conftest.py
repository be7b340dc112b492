"""The failover tests talk to HTTP servers and moto on loopback: allow exactly that here.

Without it the outbound guard refuses loopback (tests/security/test_runbooks_and_outbound.py
proves it); every other test directory keeps the default, an empty allow-list.
"""

import pytest

LOOPBACK = ["127.0.0.0/8", "::1"]


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    settings.DR_OUTBOUND_ALLOW = LOOPBACK
