"""OIDC login (docs/auth.md §6) against a local identity provider served by the test:
a discovery document, a JWKS, and id_tokens it signs with its own RSA key."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from conftest import ADMIN_USER, free_port
from test_auth import claims, import_users, sha

CLIENT_ID = "operations-gateway"


class IdP:
    """Serves /.well-known/openid-configuration and /jwks; counts the fetches."""

    def __init__(self):
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}/realms/test"
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": "k1", "alg": "RS256", "use": "sig"})
        enc = json.loads(RSAAlgorithm.to_jwk(self.other.public_key()))
        enc.update({"kid": "enc", "alg": "RSA-OAEP", "use": "enc"})
        self.jwks = {"keys": [enc, jwk]}
        self.fetches = {"discovery": 0, "jwks": 0}
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/realms/test/.well-known/openid-configuration":
                    idp.fetches["discovery"] += 1
                    body = {"issuer": idp.issuer, "jwks_uri": f"{idp.issuer}/jwks"}
                elif self.path == "/realms/test/jwks":
                    idp.fetches["jwks"] += 1
                    body = idp.jwks
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, key=None, kid="k1", **over):
        now = int(time.time())
        payload = {"iss": self.issuer, "aud": CLIENT_ID, "exp": now + 300, "iat": now,
                   "email": "oidc.user@example.org"}
        payload.update(over)
        payload = {k: v for k, v in payload.items() if v is not None}
        headers = {"kid": kid} if kid else {}
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers=headers)


@pytest.fixture(scope="module")
def idp():
    i = IdP()
    yield i
    i.server.shutdown()


@pytest.fixture
def srv(make_server, idp):
    providers = {"testidp": {"display_name": "Test IdP",
                             "configuration_url": idp.issuer + "/.well-known/openid-configuration",
                             "client_id": CLIENT_ID, "verify_cert": True, "mechanism": "oidc",
                             "username_claim": "email"}}
    s = make_server(config={"auth": {"oidc_providers": providers}}, records=0)
    import_users(s, [{"_id": "oidcuser", "auth_type": "FedID", "email": "oidc.user@example.org",
                      "authorised_routes": ["/users GET"]},
                     {"_id": "plain", "auth_type": "local", "sha256_password": sha("p")}])
    yield s
    assert "eyJ" not in s.read_log()  # neither id_tokens nor our tokens are logged


def oidc_login(srv, token, provider="testidp"):
    headers = {"Authorization": "Bearer " + token} if token is not None else {}
    return requests.post(f"{srv.url}/oidc_login/{provider}", headers=headers, timeout=30)


def test_providers(srv, idp):
    r = srv.get("/oidc_providers", auth=False)
    assert r.status_code == 200
    assert r.json() == {"testidp": {"display_name": "Test IdP",
                                    "configuration_url": idp.issuer +
                                    "/.well-known/openid-configuration",
                                    "client_id": CLIENT_ID, "pkce": True,
                                    "scope": "openid email"}}


def test_login_with_an_id_token(srv, idp):
    r = oidc_login(srv, idp.token())
    assert r.status_code == 200, r.text
    c = claims(r.json())
    assert c["username"] == "oidcuser" and c["userIsAdmin"] is True
    assert r.headers["Set-Cookie"].startswith("refresh_token=eyJ")
    assert srv.get("/users", headers={"Authorization": "Bearer " + r.json()}).status_code == 200
    before = dict(idp.fetches)
    assert oidc_login(srv, idp.token()).status_code == 200
    # one worker may not have fetched yet; a worker that has keeps both documents
    assert idp.fetches["discovery"] - before["discovery"] <= 1


@pytest.mark.parametrize("over,status,detail", [
    ({"exp": int(time.time()) - 60}, 403, "JWT has expired"),
    ({"aud": "someone-else"}, 403, "Invalid OIDC id_token"),
    ({"iss": "http://evil.example/"}, 403, "Invalid OIDC id_token"),
    ({"nbf": int(time.time()) + 3600}, 403, "Invalid OIDC id_token"),
    ({"exp": None}, 403, "Invalid OIDC id_token"),
    ({"email": "nobody@example.org"}, 401, "User not authorised"),
    ({"email": None}, 500, "Unknown error"),
])
def test_id_token_checks(srv, idp, over, status, detail):
    r = oidc_login(srv, idp.token(**over))
    assert r.status_code == status and r.json() == {"detail": detail}


def test_wrong_key_and_malformed_tokens(srv, idp):
    r = oidc_login(srv, idp.token(key=idp.other))
    assert r.status_code == 403 and r.json() == {"detail": "Invalid OIDC id_token"}
    # a token naming the encryption key is not verified with it
    assert oidc_login(srv, idp.token(key=idp.other, kid="enc")).status_code in (403, 500)
    assert oidc_login(srv, "garbage").json() == {"detail": "Invalid OIDC id_token"}
    assert oidc_login(srv, idp.token(kid=None)).status_code == 500
    assert oidc_login(srv, idp.token(kid="unknown")).status_code == 500
    r = oidc_login(srv, None)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    r = oidc_login(srv, idp.token(), provider="nope")
    assert r.status_code == 404 and r.json() == {"detail": "Unknown OIDC provider"}
    # our own access token is not an id_token
    assert oidc_login(srv, srv.token).status_code in (403, 500)


def test_hs256_with_the_public_key_is_refused(srv, idp):
    """The algorithm comes from the JWK, never from the token (no RS/HS confusion)."""
    from cryptography.hazmat.primitives import serialization
    pem = idp.key.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    import hmac, hashlib, base64
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    now = int(time.time())
    h = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    p = b64(json.dumps({"iss": idp.issuer, "aud": CLIENT_ID, "exp": now + 300,
                        "email": "oidc.user@example.org"}).encode())
    sig = b64(hmac.new(pem, f"{h}.{p}".encode(), hashlib.sha256).digest())
    r = oidc_login(srv, f"{h}.{p}.{sig}")
    assert r.status_code == 403


def test_unreachable_provider(make_server):
    port = free_port()
    url = f"http://127.0.0.1:{port}/.well-known/openid-configuration"
    s = make_server(config={"auth": {"oidc_providers": {"down": {
        "display_name": "Down", "configuration_url": url, "client_id": CLIENT_ID,
        "verify_cert": True, "mechanism": "oidc", "username_claim": "email"}}}}, records=0)
    tok = jwt.encode({"a": 1}, "k", algorithm="HS256", headers={"kid": "x"})
    r = oidc_login(s, tok, provider="down")
    assert r.status_code == 500 and r.json() == {"detail": f"Request to {url} failed"}
    # the worker stays up
    assert s.get("/version", auth=False).status_code == 200
