"""Login, tokens, permissions (docs/api.md §2.4, docs/auth.md) and the fixes of the
reference's security defects (docs/security.md), on whichever back-end pair runs."""
import base64
import hashlib
import json
import os
import re
import subprocess
import tempfile
import time

import jwt
import pytest
import requests

from conftest import ADMIN_PASSWORD, ADMIN_USER, OGD

ALL_ROUTES = ["/submit/hdf POST", "/submit/manifest POST", "/records/{id_} DELETE",
              "/experiments POST", "/users POST", "/users PATCH", "/users GET",
              "/users/{id_} DELETE", "/maintenance PUT", "/scheduled_maintenance PUT"]


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


# The reference's CI users (util/users_for_mongoimport.json), with its SHA-256 hashes.
REFERENCE_USERS = [
    {"_id": "frontend", "auth_type": "local", "sha256_password": sha("front")},
    {"_id": "backend", "auth_type": "local", "sha256_password": sha("back"),
     "authorised_routes": ALL_ROUTES},
    {"_id": "hdf_import", "auth_type": "local", "sha256_password": sha("import"),
     "authorised_routes": ["/submit/hdf POST", "/submit/manifest POST"]},
    {"_id": "emptyroutes", "auth_type": "local", "sha256_password": sha("empty"),
     "authorised_routes": []},
    {"_id": "no_auth_type_user", "sha256_password": sha("password")},
    {"_id": "invalid_auth_type_user", "auth_type": "Invalid", "sha256_password": sha("password")},
    {"_id": "local_user_no_password", "auth_type": "local"},
    {"_id": "fedid_user", "auth_type": "FedID", "email": "fedid_user@test.com"},
]


def import_users(srv, users):
    path = os.path.join(srv.data_dir, "users.jsonl")
    with open(path, "w") as f:
        for u in users:
            f.write(json.dumps(u) + "\n")
    subprocess.run([OGD, "import", "--config", srv.config_path, "--collection", "users", path],
                   check=True, env=srv.env, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def auth_server():
    from conftest import OgdServer
    d = tempfile.mkdtemp(prefix="ogd-test-")
    s = OgdServer(d, None)
    import_users(s, REFERENCE_USERS)
    s.start()
    yield s
    rc = s.stop()
    log = s.read_log()
    # No secret ever reaches the log: passwords, and no JWT (they all start "eyJ").
    for secret in ("front", "back", ADMIN_PASSWORD, "eyJ"):
        assert secret not in log.replace("frontend", "").replace("backend", ""), secret
    assert rc == 0
    assert not s.sanitizer_reports(), log[-20000:]


def login(srv, username, password):
    return requests.post(srv.url + "/login", json={"username": username, "password": password},
                         timeout=30)


def claims(token):
    return jwt.decode(token, options={"verify_signature": False})


def sign(payload, key_path=None):
    """A token signed with the test servers' private key (as ogd would sign it)."""
    from conftest import test_keys
    with open(key_path or test_keys()[0], "rb") as f:
        return jwt.encode(payload, f.read(), algorithm="RS256")


def bearer(token):
    return {"Authorization": "Bearer " + token}


# ---------------------------------------------------------------- POST /login

def test_login_returns_a_json_string_and_the_refresh_cookie(auth_server):
    r = login(auth_server, "backend", "back")
    assert r.status_code == 200
    assert r.text.startswith('"eyJ') and r.text.endswith('"')
    token = r.json()
    c = claims(token)
    assert list(c)[:4] == ["username", "authorised_routes", "userIsAdmin", "exp"]
    assert c["username"] == "backend" and c["authorised_routes"] == ALL_ROUTES
    assert c["userIsAdmin"] is True
    assert abs(c["exp"] - (time.time() + 60 * 60)) < 30
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT"}
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("refresh_token=eyJ")
    assert cookie.endswith("; HttpOnly; Max-Age=604800; Path=/refresh; SameSite=Lax; Secure")
    refresh = r.cookies["refresh_token"]
    rc = claims(refresh)
    assert rc["username"] == "backend" and rc["exp"] > c["exp"]


def test_user_is_admin_claim_rules(auth_server):
    assert claims(login(auth_server, "frontend", "front").json())["userIsAdmin"] is False
    assert claims(login(auth_server, "frontend", "front").json())["authorised_routes"] is None
    c = claims(login(auth_server, "emptyroutes", "empty").json())
    assert "userIsAdmin" not in c and c["authorised_routes"] == []
    assert "userIsAdmin" not in claims(login(auth_server, "hdf_import", "import").json())


@pytest.mark.parametrize("user,password,status,detail", [
    ("unknown_user", "x", 401, "User not authorised"),
    ("backend", "wrong", 401, "User not authorised"),
    ("no_auth_type_user", "password", 500, "Unknown error"),
    ("invalid_auth_type_user", "password", 500,
     "auth_type 'Invalid' not recognised for user 'invalid_auth_type_user'"),
    ("local_user_no_password", "x", 500,
     "Encoded password missing in record for user 'local_user_no_password'"),
])
def test_login_errors(auth_server, user, password, status, detail):
    r = login(auth_server, user, password)
    assert r.status_code == status
    assert r.json() == {"detail": detail}


def test_login_body_validation(auth_server):
    r = requests.post(auth_server.url + "/login", json={"username": "backend"}, timeout=30)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "password"]
    r = requests.post(auth_server.url + "/login", data="{nope", timeout=30)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


def test_fedid_empty_password_is_refused(auth_server):
    """Fix (docs/security.md item 19): an empty password never reaches the directory."""
    r = login(auth_server, "fedid_user", "")
    assert r.status_code == 401 and r.json() == {"detail": "User not authorised"}


def test_legacy_sha256_hash_is_upgraded_to_argon2id(make_server):
    """Fix (docs/security.md item 18): the reference's unsalted SHA-256 is accepted once,
    then replaced."""
    srv = make_server(records=0)
    import_users(srv, [{"_id": "legacy", "auth_type": "local", "sha256_password": sha("pw1"),
                        "authorised_routes": []}])
    listing = srv.user_cli("list").stdout
    assert "legacy\tlocal\t0 permissions\tpassword: sha256" in listing
    assert login(srv, "legacy", "pw1").status_code == 200
    listing = srv.user_cli("list").stdout
    assert "legacy\tlocal\t0 permissions\tpassword: argon2id" in listing
    assert login(srv, "legacy", "pw1").status_code == 200
    assert login(srv, "legacy", "pw2").status_code == 401


def test_login_rate_limit_per_user(make_server):
    """Fix: failed logins are limited per user (and per client address)."""
    srv = make_server(records=0)
    srv.user_cli("add", "victim", password="right-password")
    statuses = []
    for _ in range(60):  # 10 per user per worker, 2 workers
        r = login(srv, "victim", "wrong")
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[-1] == 429, statuses
    assert set(statuses[:-1]) == {401}
    r = login(srv, "victim", "wrong")
    # Once a worker has locked the user, the right password does not get through it either.
    locked = 0
    for _ in range(20):
        r = login(srv, "victim", "right-password")
        if r.status_code == 429:
            locked += 1
            assert int(r.headers["Retry-After"]) > 0
            assert r.json() == {"detail": "Too many failed login attempts, try again later"}
    assert locked > 0


def test_login_rate_limit_is_shared_by_the_workers(make_server):
    """The failure counts live in memory every worker shares: the 11th attempt is refused
    whichever of the 4 workers gets it (with per-worker counts it needed up to 40)."""
    srv = make_server(config={"server": {"workers": 4}}, records=0)
    srv.user_cli("add", "victim", password="right-password")
    for _ in range(10):  # each on a new connection, spread over the workers
        assert login(srv, "victim", "wrong").status_code == 401
    for _ in range(12):
        r = login(srv, "victim", "right-password")
        assert r.status_code == 429
        assert r.json() == {"detail": "Too many failed login attempts, try again later"}
        assert 0 < int(r.headers["Retry-After"]) <= 300
    # another user is not affected
    srv.user_cli("add", "bystander", password="bystander-password")
    assert login(srv, "bystander", "bystander-password").status_code == 200


# ---------------------------------------------------------------- bearer tokens

def test_missing_or_malformed_bearer_is_401(auth_server):
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer "}, {"Authorization": "token"}):
        r = auth_server.get("/records/count", headers=headers, auth=False)
        assert r.status_code == 401, headers
        assert r.json() == {"detail": "Not authenticated"}
        assert r.headers["WWW-Authenticate"] == "Bearer"


def test_bad_tokens_are_403(auth_server):
    good = login(auth_server, "frontend", "front").json()
    expired = sign({"username": "frontend", "authorised_routes": None, "userIsAdmin": False,
                    "exp": int(time.time()) - 5, "token_type": "access"})
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for token in ("null", "abc.def.ghi", expired, forged, good + "."):
        r = auth_server.get("/records/count", headers=bearer(token))
        assert r.status_code == 403, token
        assert r.json() == {"detail": "Invalid token"}
    assert auth_server.get("/records/count", headers={"Authorization": "bEaReR " + good}).status_code == 200


def test_permission_text_and_precedence(auth_server):
    token = login(auth_server, "frontend", "front").json()
    r = auth_server.request("DELETE", "/records/20230605100000", headers=bearer(token))
    assert r.status_code == 403
    assert r.json() == {"detail": "User 'frontend' is not authorised to use endpoint "
                                  "'/records/{id_} DELETE'"}
    # no token: 401 before anything else
    r = auth_server.request("DELETE", "/records/20230605100000", auth=False)
    assert r.status_code == 401
    # token-only routes are open to any valid access token
    assert auth_server.get("/records/count", headers=bearer(token)).status_code == 200
    # routes without auth need nothing
    assert auth_server.get("/version", auth=False).status_code == 200


def test_refresh_token_is_not_a_bearer_token(auth_server):
    """Fix (docs/security.md item 15): the reference accepts a 7-day refresh token as a
    bearer token."""
    r = login(auth_server, "backend", "back")
    refresh = r.cookies["refresh_token"]
    assert auth_server.get("/records/count", headers=bearer(r.json())).status_code == 200
    r2 = auth_server.get("/records/count", headers=bearer(refresh))
    assert r2.status_code == 403 and r2.json() == {"detail": "Invalid token"}


def test_token_without_type_is_refused(auth_server):
    """A token shaped as the reference signs them (no type) is neither kind of token."""
    t = sign({"username": "backend", "authorised_routes": ALL_ROUTES, "userIsAdmin": True,
              "exp": int(time.time()) + 600})
    assert auth_server.get("/records/count", headers=bearer(t)).status_code == 403


def test_other_algorithms_are_refused(auth_server):
    t = jwt.encode({"username": "backend", "exp": int(time.time()) + 600,
                    "token_type": "access"}, "secret", algorithm="HS256")
    assert auth_server.get("/records/count", headers=bearer(t)).status_code == 403
    none = (base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode() + "." +
            base64.urlsafe_b64encode(json.dumps({"username": "backend", "token_type": "access",
                                                 "exp": int(time.time()) + 600}).encode())
            .rstrip(b"=").decode() + ".")
    assert auth_server.get("/records/count", headers=bearer(none)).status_code == 403


# ---------------------------------------------------------------- POST /verify

def test_verify(auth_server):
    r = login(auth_server, "frontend", "front")
    v = requests.post(auth_server.url + "/verify", json={"token": r.json()}, timeout=30)
    assert v.status_code == 200 and v.content == b""
    bad = requests.post(auth_server.url + "/verify", json={"token": "x.y.z"}, timeout=30)
    assert bad.status_code == 403 and bad.json() == {"detail": "Invalid token"}
    # Fix (docs/security.md item 15): a refresh token does not verify as an access token.
    rt = requests.post(auth_server.url + "/verify", json={"token": r.cookies["refresh_token"]},
                       timeout=30)
    assert rt.status_code == 403
    assert requests.post(auth_server.url + "/verify", json={}, timeout=30).status_code == 422


# ---------------------------------------------------------------- POST /refresh

def refresh(srv, access, cookie):
    headers = {"Cookie": "refresh_token=" + cookie} if cookie is not None else {}
    return requests.post(srv.url + "/refresh", json={"token": access}, headers=headers, timeout=30)


def test_refresh(auth_server):
    r = login(auth_server, "backend", "back")
    access, cookie = r.json(), r.cookies["refresh_token"]
    time.sleep(1.1)
    n = refresh(auth_server, access, cookie)
    assert n.status_code == 200
    new = n.json()
    assert claims(new)["username"] == "backend"
    assert claims(new)["exp"] > claims(access)["exp"]
    assert auth_server.get("/records/count", headers=bearer(new)).status_code == 200


def test_refresh_errors(auth_server):
    r = login(auth_server, "backend", "back")
    access, cookie = r.json(), r.cookies["refresh_token"]
    assert refresh(auth_server, access, None).json() == {"detail": "No refresh token found"}
    assert refresh(auth_server, access, None).status_code == 403
    assert refresh(auth_server, access, "").json() == {"detail": "Invalid token"}
    other = login(auth_server, "frontend", "front").json()
    m = refresh(auth_server, other, cookie)
    assert m.status_code == 403
    assert m.json() == {"detail": "Refresh token does not match access token user"}
    u = refresh(auth_server, "not.a.token", cookie)
    assert u.status_code == 403 and u.json() == {"detail": "Unable to refresh token"}


def test_an_access_token_in_the_cookie_does_not_refresh(auth_server):
    """Fix (docs/security.md item 16): the reference extends any token put in the cookie,
    for ever."""
    access = login(auth_server, "backend", "back").json()
    r = refresh(auth_server, access, access)
    assert r.status_code == 403 and r.json() == {"detail": "Invalid token"}


def test_an_expired_access_token_is_refreshed_with_a_real_refresh_token(auth_server):
    """Kept (docs/security.md item 17): the web harness refreshes after expiry; the cookie
    must be genuine."""
    r = login(auth_server, "backend", "back")
    expired = sign({"username": "backend", "authorised_routes": ALL_ROUTES, "userIsAdmin": True,
                    "exp": int(time.time()) - 3600, "token_type": "access"})
    n = refresh(auth_server, expired, r.cookies["refresh_token"])
    assert n.status_code == 200
    assert claims(n.json())["exp"] > time.time()


def test_revocation_file(make_server):
    srv = make_server(records=0)
    r = login(srv, ADMIN_USER, ADMIN_PASSWORD)
    first = refresh(srv, r.json(), r.cookies["refresh_token"])
    assert first.status_code == 200
    cookie = first.cookies["refresh_token"]  # the rotated token, not used yet
    with open(os.path.join(srv.data_dir, "blacklisted_tokens.txt"), "w") as f:
        f.write("something-else\r\n" + cookie + "\r\n")
    b = refresh(srv, r.json(), cookie)
    assert b.status_code == 403 and b.json() == {"detail": "Token is blacklisted"}


def test_refresh_rotates_the_refresh_token(make_server):
    """Fix (docs/security.md item 16): each refresh token refreshes once; reusing one
    revokes its session."""
    srv = make_server(records=0)
    r = login(srv, ADMIN_USER, ADMIN_PASSWORD)
    access, first = r.json(), r.cookies["refresh_token"]
    other = login(srv, ADMIN_USER, ADMIN_PASSWORD)  # a second session of the same user
    n = refresh(srv, access, first)
    assert n.status_code == 200
    header = n.headers["Set-Cookie"]
    assert header.startswith("refresh_token=eyJ")
    assert header.endswith("; HttpOnly; Max-Age=604800; Path=/refresh; SameSite=Lax; Secure")
    second = n.cookies["refresh_token"]
    assert second != first
    c1, c2 = claims(first), claims(second)
    assert c2["token_type"] == "refresh" and c2["username"] == ADMIN_USER
    assert c2["sid"] == c1["sid"] and c2["jti"] != c1["jti"]
    assert c2["exp"] == c1["exp"]  # rotation does not extend the session
    third = refresh(srv, n.json(), second)
    assert third.status_code == 200
    # the first token again (a stolen copy): refused, and its whole session is revoked
    reuse = refresh(srv, access, first)
    assert reuse.status_code == 403 and reuse.json() == {"detail": "Token is blacklisted"}
    latest = refresh(srv, third.json(), third.cookies["refresh_token"])
    assert latest.status_code == 403 and latest.json() == {"detail": "Token is blacklisted"}
    # the other session is not affected
    o = refresh(srv, other.json(), other.cookies["refresh_token"])
    assert o.status_code == 200
    # a refresh token without a rotation session (not made by this server) is refused
    bare = sign({"username": ADMIN_USER, "exp": int(time.time()) + 3600,
                 "token_type": "refresh"})
    b = refresh(srv, access, bare)
    assert b.status_code == 403 and b.json() == {"detail": "Invalid token"}
    # the users listing does not show the rotation state
    users = srv.get("/users").json()["users"]
    assert all(set(u) == {"username", "auth_type", "authorised_routes"} for u in users)


def test_refresh_rereads_permissions_and_stops_for_deleted_users(make_server):
    """Fix (docs/security.md items 16, 22): the reference copies the old claims into every
    refreshed token."""
    srv = make_server(records=0)
    srv.user_cli("add", "temp", "--route", "/users GET", password="temp-password")
    r = login(srv, "temp", "temp-password")
    access, cookie = r.json(), r.cookies["refresh_token"]
    srv.user_cli("routes", "temp", "--remove", "/users GET")
    n = refresh(srv, access, cookie)
    assert n.status_code == 200
    assert claims(n.json())["authorised_routes"] == []
    assert "userIsAdmin" not in claims(n.json())
    srv.user_cli("delete", "temp")
    gone = refresh(srv, access, cookie)
    assert gone.status_code == 403 and gone.json() == {"detail": "Invalid token"}


# ---------------------------------------------------------------- keys

def test_openssh_keys_as_the_reference_deploys(make_server, tmp_path):
    priv = str(tmp_path / "id_rsa")
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", priv],
                   check=True)
    with open(priv) as f:
        assert f.read().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    srv = make_server(config={"auth": {"private_key_path": priv,
                                       "public_key_path": priv + ".pub"}}, records=0)
    token = login(srv, ADMIN_USER, ADMIN_PASSWORD).json()
    assert srv.get("/records/count", headers=bearer(token)).status_code == 200
    # The signature is RS256 over the key in the OpenSSH public key line.
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key
    with open(priv + ".pub", "rb") as f:
        pub = load_ssh_public_key(f.read())
    assert jwt.decode(token, pub, algorithms=["RS256"])["username"] == ADMIN_USER
    # A token of the test key pair is not accepted by this server.
    assert srv.get("/records/count", headers=bearer(sign(
        {"username": ADMIN_USER, "exp": int(time.time()) + 60, "token_type": "access",
         "authorised_routes": ALL_ROUTES}))).status_code == 403


def test_key_pair_is_generated_without_an_auth_section(tmp_path):
    """`make run` needs no keys: the default pair is made in the data directory."""
    from conftest import free_port
    port = free_port()
    cfg = tmp_path / "c.yml"
    cfg.write_text(f'server:\n  bind: "127.0.0.1:{port}"\n  workers: 1\n'
                   f'  data_dir: "{tmp_path}/var"\n')
    subprocess.run([OGD, "user", "add", "u1", "--config", str(cfg)], input="pw-u1\n", text=True,
                   check=True, capture_output=True)
    p = subprocess.Popen([OGD, "serve", "--config", str(cfg)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 180  # a guard, not a timing (see conftest's start)
        while time.time() < deadline:
            try:
                requests.get(url + "/healthz", timeout=10)
                break
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.05)
        assert (tmp_path / "var" / "jwt_rsa").exists()
        assert oct((tmp_path / "var" / "jwt_rsa").stat().st_mode & 0o777) == "0o600"
        r = requests.post(url + "/login", json={"username": "u1", "password": "pw-u1"}, timeout=30)
        assert r.status_code == 200
    finally:
        p.terminate()
        p.wait(timeout=30)


@pytest.mark.skipif(not os.environ.get("OGD_TEST_PG_URL"), reason="needs PostgreSQL")
def test_no_key_pair_of_its_own_on_postgresql(tmp_path):
    """Nodes sharing a PostgreSQL database share one key pair: a node without the
    configured pair refuses to start instead of making its own."""
    from conftest import free_port
    port = free_port()
    cfg = tmp_path / "c.yml"
    cfg.write_text(f'server:\n  bind: "127.0.0.1:{port}"\n  workers: 1\n'
                   f'  data_dir: "{tmp_path}/var"\n'
                   f'database:\n  url: "{os.environ["OGD_TEST_PG_URL"]}"\n')
    p = subprocess.run([OGD, "serve", "--config", str(cfg)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode != 0
    assert "signs with the cluster's key pair" in p.stderr
    assert f"{tmp_path}/var/jwt_rsa" in p.stderr
    assert not (tmp_path / "var" / "jwt_rsa").exists()


def test_reload_with_unusable_keys_keeps_the_running_configuration(make_server):
    import signal
    srv = make_server(records=0)
    workers = srv.worker_pids()
    with open(srv.config_path) as f:
        text = f.read()
    with open(srv.config_path, "w") as f:
        f.write(re.sub(r'private_key_path: ".*"', 'private_key_path: "/nonexistent/key"', text))
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while "reload failed" not in srv.read_log() and time.time() < deadline:
        time.sleep(0.05)
    assert "auth: cannot read key file /nonexistent/key" in srv.read_log()
    assert srv.worker_pids() == workers
    assert srv.get("/records/count").status_code == 200
    assert login(srv, ADMIN_USER, ADMIN_PASSWORD).status_code == 200


def test_user_cli(make_server):
    srv = make_server(records=0)
    r = srv.user_cli("add", "cli1", "--route", "/users GET", "--route", "/maintenance PUT",
                     password="cli-pass-1")
    assert r.returncode == 0 and "added cli1" in r.stdout
    assert "cli-pass-1" not in r.stdout + r.stderr
    assert claims(login(srv, "cli1", "cli-pass-1").json())["authorised_routes"] == [
        "/users GET", "/maintenance PUT"]
    bad = srv.user_cli("add", "cli2", "--route", "/nope GET", password="x", check=False)
    assert bad.returncode == 2 and 'unknown permission "/nope GET"' in bad.stderr
    dup = srv.user_cli("add", "cli1", password="x", check=False)
    assert dup.returncode == 1 and "exists already" in dup.stderr
    nopw = srv.user_cli("add", "cli3", check=False)
    assert nopw.returncode == 1 and "password on standard input" in nopw.stderr
    r = srv.user_cli("routes", "cli1", "--remove", "/users GET", "--add", "/users POST")
    assert r.stdout.strip() == "cli1: '/maintenance PUT' '/users POST'"
    srv.user_cli("passwd", "cli1", password="cli-pass-2")
    assert login(srv, "cli1", "cli-pass-1").status_code == 401
    assert login(srv, "cli1", "cli-pass-2").status_code == 200
    srv.user_cli("add", "fed1", "--fedid", "--email", "fed1@example.org")
    assert "fed1\tFedID\t0 permissions\tpassword: none" in srv.user_cli("list").stdout
    assert srv.user_cli("passwd", "fed1", password="x", check=False).returncode == 1
    assert srv.user_cli("delete", "cli1").returncode == 0
    gone = srv.user_cli("delete", "cli1", check=False)
    assert gone.returncode == 1 and 'no user "cli1"' in gone.stderr
    assert login(srv, "cli1", "cli-pass-2").status_code == 401
