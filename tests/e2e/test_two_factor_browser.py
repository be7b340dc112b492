"""Two-factor enrolment in a real browser against gunicorn started with DR_REQUIRE_2FA on:
the QR code renders under the CSP, a code typed from the shown key enrols, the next sign-in
asks for a code, and the server's log never holds the key."""

import re
import time
from base64 import b32decode

import pytest
from django_otp.oath import TOTP

from tests.e2e.conftest import Shots, log_in
from tests.factories import PASSWORD, UserFactory
from tests.support.portal import running_portal

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def code_from(secret: str, steps_ahead=0) -> str:
    totp = TOTP(b32decode(secret.replace(" ", "")))
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"


def test_a_manager_enrols_in_the_browser_and_is_asked_next_time(browser, request):
    UserFactory(username="mona", role="manager")
    with running_portal(workers=1, DR_REQUIRE_2FA="on") as portal:
        seen = []
        for step in ("enrol", "verify"):
            context = browser.new_context(base_url=portal.base_url)
            page = context.new_page()
            page.shot = Shots(page, f"{request.node.name}-{step}")
            page.on(
                "console",
                lambda m: seen.append(m.text) if "Content Security Policy" in m.text else None,
            )
            log_in(page, "mona", PASSWORD)
            if step == "enrol":
                assert "/accounts/2fa/enrol/" in page.url
                qr = page.locator(".qr svg").bounding_box()
                assert qr["width"] > 100 and qr["height"] > 100  # scannable, not a dot
                secret = page.locator("#totp-secret").inner_text()
                page.shot("qr")
                page.fill("input[name=code]", code_from(secret))
                page.click("button:has-text('Turn on')")
                codes = page.locator("#recovery-codes li").all_inner_texts()
                assert len(codes) == 10
                page.shot("recovery-codes")
                page.click("a:has-text('Continue')")
            else:
                assert "/accounts/2fa/verify/" in page.url
                page.fill("input[name=code]", code_from(secret, 1))
                page.click("button:has-text('Verify')")
            page.wait_for_url(lambda url: "/accounts/2fa/" not in url)
            assert page.locator("h1").first.is_visible()
            assert re.search(r"/$", page.url)
            context.close()
        assert seen == []
        log = portal.log_path.read_text()
        key_hex = b32decode(secret.replace(" ", "")).hex()
        assert secret.replace(" ", "") not in log and key_hex not in log
        assert not any(code in log for code in codes)
