"""A small OpenID Connect provider for tests, served from a thread on a free loopback port.

Discovery, an authorization endpoint that approves `identity` at once (no login form) and
redirects with a code, a token endpoint that checks the client secret, the code, the
redirect URI and PKCE and answers with an RS256 ID token (carrying the nonce) signed by a
key made here with `cryptography`, its JWKS, and userinfo for the access token.

Tests change what it issues through `identity` (the claims), `id_token_changes` (claims
put into the ID token only, e.g. a wrong `aud` or an old `exp`) and `tamper` (the signature
is broken after signing). `requests` keeps every request for assertions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

KID = "test-key-1"


class OidcProvider:
    def __init__(self, client_id="dr-portal", client_secret="s3cret-Client-Value-42"):
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.identity: dict = {"sub": "user-1", "preferred_username": "alice"}
        self.id_token_changes: dict = {}
        self.tamper = False
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, params)
        self._codes: dict[str, dict] = {}
        self._access: dict[str, dict] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # --- what the endpoints answer ----------------------------------------------------

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }

    def jwks(self) -> dict:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": KID, "alg": "RS256", "use": "sig"}]}

    def id_token(self, claims: dict, nonce: str) -> str:
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            **claims,
            **self.id_token_changes,
        }
        token = jwt.encode(body, self.key, algorithm="RS256", headers={"kid": KID})
        if self.tamper:  # change one claim after signing: the signature no longer matches
            head, payload, signature = token.split(".")
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            data["preferred_username"] = "mallory"
            payload = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
            token = f"{head}.{payload}.{signature}"
        return token

    def authorize(self, query: dict) -> tuple[int, dict, dict]:
        """(status, headers, json body): a redirect with a code, or an error."""
        if query.get("client_id") != self.client_id:
            return 400, {}, {"error": "unauthorized_client"}
        if query.get("response_type") != "code" or "openid" not in query.get("scope", "").split():
            return 400, {}, {"error": "invalid_request"}
        for needed in ("redirect_uri", "state", "nonce", "code_challenge"):
            if not query.get(needed):
                return 400, {}, {"error": "invalid_request", "missing": needed}
        if query.get("code_challenge_method") != "S256":
            return 400, {}, {"error": "invalid_request", "missing": "S256"}
        code = secrets.token_urlsafe(24)
        self._codes[code] = {
            "nonce": query["nonce"],
            "redirect_uri": query["redirect_uri"],
            "challenge": query["code_challenge"],
            "claims": dict(self.identity),
        }
        target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        return 302, {"Location": target}, {}

    def token(self, form: dict, authorization: str) -> tuple[int, dict, dict]:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization.startswith("Basic "):
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
        if client_id != self.client_id or secret != self.client_secret:
            return 401, {}, {"error": "invalid_client"}
        grant = self._codes.pop(form.get("code", ""), None)  # a code works once
        if form.get("grant_type") != "authorization_code" or grant is None:
            return 400, {}, {"error": "invalid_grant"}
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return 400, {}, {"error": "invalid_grant", "why": "redirect_uri"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if challenge.rstrip(b"=").decode() != grant["challenge"]:
            return 400, {}, {"error": "invalid_grant", "why": "pkce"}
        access = secrets.token_urlsafe(24)
        self._access[access] = grant["claims"]
        body = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": self.id_token(grant["claims"], grant["nonce"]),
        }
        return 200, {}, body

    def userinfo(self, authorization: str) -> tuple[int, dict, dict]:
        claims = self._access.get(authorization.removeprefix("Bearer "))
        if claims is None:
            return 401, {}, {"error": "invalid_token"}
        return 200, {}, claims

    # --- HTTP -------------------------------------------------------------------------

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status, headers, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                provider.requests.append(("GET", parts.path, query))
                auth = self.headers.get("Authorization", "")
                routes = {
                    "/.well-known/openid-configuration": lambda: (200, {}, provider.discovery()),
                    "/jwks": lambda: (200, {}, provider.jwks()),
                    "/authorize": lambda: provider.authorize(query),
                    "/userinfo": lambda: provider.userinfo(auth),
                }
                route = routes.get(parts.path)
                self._answer(*(route() if route else (404, {}, {"error": "not found"})))

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                provider.requests.append(("POST", self.path, form))
                if self.path != "/token":
                    return self._answer(404, {}, {"error": "not found"})
                return self._answer(*provider.token(form, self.headers.get("Authorization", "")))

        return Handler
