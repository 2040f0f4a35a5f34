"""A small local OpenID Connect provider for the sign-in tests: Streamlit's `st.login` talks to it as to Google.

    idp = OIDCProvider(client_id="kh-e2e", client_secret="s3cret").start()   # 127.0.0.1, a free port
    idp.email = "ana@pointai.tech"      # whoever "signs in" next
    idp.email_verified = False          # what their id_token says (None: no such claim)
    idp.metadata_url                    # for [auth] server_metadata_url
    idp.stop()

/authorize does not ask anything: it redirects straight back to the client's redirect_uri with a one-time code
for `idp.email`. /token checks the client's credentials, the code, its redirect_uri and the PKCE verifier, and
answers with an RS256-signed id_token carrying the nonce the client sent. /jwks publishes the public key.
Loopback only, for tests; nothing here is a real identity provider.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(n: int) -> str:
    return _b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


@dataclass
class _Grant:
    email: str
    email_verified: bool | None
    client_id: str
    redirect_uri: str
    nonce: str | None
    challenge: str | None
    method: str | None


class OIDCProvider:
    def __init__(self, client_id: str, client_secret: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.email = "nobody@example.invalid"
        self.email_verified: bool | None = True  # what the next id_token says; None leaves the claim out
        self.claims_supported = ["sub", "email", "email_verified", "name"]  # what the metadata says it sends
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = secrets.token_hex(8)
        self._grants: dict[str, _Grant] = {}
        self._lock = threading.Lock()
        self.log: list[str] = []  # the paths asked, in order (no secrets: codes are one-time and local)
        self._host = host
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._server.server_port}"

    @property
    def metadata_url(self) -> str:
        return self.url + "/.well-known/openid-configuration"

    def start(self) -> OIDCProvider:
        self._thread = threading.Thread(target=self._server.serve_forever, name="oidc-provider", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- the protocol ----------------------------------------------------------------------------------
    def metadata(self) -> dict:
        return {
            "issuer": self.url,
            "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token",
            "jwks_uri": self.url + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": list(self.claims_supported),
        }

    def jwks(self) -> dict:
        pub = self._key.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self._kid,
                          "n": _uint(pub.n), "e": _uint(pub.e)}]}

    def id_token(self, grant: _Grant) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": hashlib.sha256(grant.email.encode()).hexdigest()[:24],
            "aud": grant.client_id,
            "iat": now,
            "exp": now + 600,
            "email": grant.email,
            "name": grant.email.split("@", 1)[0].title(),
        }
        if grant.email_verified is not None:
            claims["email_verified"] = grant.email_verified
        if grant.nonce:
            claims["nonce"] = grant.nonce
        header = {"alg": "RS256", "typ": "JWT", "kid": self._kid}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or not redirect_uri or query.get("response_type") != "code":
            return 400, {}, b"bad authorization request"
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._grants[code] = _Grant(self.email, self.email_verified, self.client_id, redirect_uri,
                                        query.get("nonce"), query.get("code_challenge"),
                                        query.get("code_challenge_method"))
        back = {"code": code}
        if "state" in query:
            back["state"] = query["state"]
        sep = "&" if urlsplit(redirect_uri).query else "?"
        return 302, {"Location": redirect_uri + sep + urlencode(back)}, b""

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict]:
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            raw = base64.b64decode(authorization[6:]).decode()
            client_id, _, client_secret = raw.partition(":")
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            return 401, {"error": "invalid_client"}
        with self._lock:
            grant = self._grants.pop(form.get("code", ""), None)
        if grant is None or form.get("grant_type") != "authorization_code":
            return 400, {"error": "invalid_grant"}
        if form.get("redirect_uri") != grant.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri differs"}
        if grant.challenge:
            verifier = form.get("code_verifier", "")
            if _b64url(hashlib.sha256(verifier.encode()).digest()) != grant.challenge:
                return 400, {"error": "invalid_grant", "error_description": "PKCE verifier does not match"}
        return 200, {"access_token": secrets.token_urlsafe(24), "token_type": "Bearer", "expires_in": 600,
                     "id_token": self.id_token(grant), "scope": "openid email profile"}

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet: the test reads provider.log instead
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                      content_type: str = "application/json") -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                provider.log.append(parts.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path == "/.well-known/openid-configuration":
                    self._send(200, json.dumps(provider.metadata()).encode())
                elif parts.path == "/jwks":
                    self._send(200, json.dumps(provider.jwks()).encode())
                elif parts.path == "/authorize":
                    status, headers, body = provider.authorize(query)
                    self._send(status, body, headers, "text/plain")
                elif parts.path == "/health":
                    self._send(200, b'{"ok": true}')
                else:
                    self._send(404, b'{"error": "not_found"}')

            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                provider.log.append(parts.path)
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if parts.path == "/token":
                    status, payload = provider.token(form, self.headers.get("Authorization"))
                    self._send(status, json.dumps(payload).encode())
                else:
                    self._send(404, b'{"error": "not_found"}')

        return Handler
