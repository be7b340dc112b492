"""Single sign-on in a real browser: Chromium clicks "Sign in with SSO" on the portal served by
gunicorn, the test's OIDC provider (tests/support/oidc_server.py) approves, and the browser
lands on the dashboard with the role its group maps to; no page breaks the CSP, and the
client secret is in no page and no server log line.
"""

import pytest

from tests.support.oidc_server import OidcProvider
from tests.support.portal import running_portal

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def sso_servers(django_db_setup, django_db_blocker):
    with OidcProvider() as idp, django_db_blocker.unblock():
        env = {
            "DR_OIDC_ISSUER": idp.issuer,
            "DR_OIDC_CLIENT_ID": idp.client_id,
            "DR_OIDC_CLIENT_SECRET": idp.client_secret,
            "DR_OIDC_ROLE_MAP": "dr-viewers=viewer,dr-operators=operator",
        }
        with running_portal(workers=1, **env) as portal:
            yield idp, portal


def test_sso_sign_in_and_out_in_a_browser(browser, sso_servers):
    idp, portal = sso_servers
    idp.identity = {"sub": "b-1", "preferred_username": "bea", "groups": ["dr-operators"]}
    context = browser.new_context(base_url=portal.base_url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    console = []
    page.on("console", lambda msg: console.append(msg.text))
    try:
        page.goto("/backups/")
        assert "/accounts/login/" in page.url
        page.click("text=Sign in with SSO")
        page.wait_for_url(f"{portal.base_url}/backups/")
        assert "bea · operator" in page.inner_text("header")
        html = page.content()
        page.click("button:has-text('Log out')")
        page.wait_for_url("**/accounts/login/")
        page.goto("/")
        assert "/accounts/login/" in page.url
    finally:
        context.close()
    assert not [line for line in console if "Content Security Policy" in line]
    assert idp.client_secret not in html
    assert idp.client_secret not in portal.log_path.read_text()
