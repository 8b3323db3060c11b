"""FedID login over LDAP (docs/auth.md §4) and the fixes of docs/security.md item 19,
against a real OpenLDAP slapd started by scripts/start-slapd.sh (its environment:
OGD_TEST_LDAP_*). Without that environment the slapd cases are skipped; the cases that need
no directory (empty password, a server that is down or never answers) always run."""
import os
import shutil
import socket
import tempfile
import threading
import time

import jwt
import pytest
import requests

from conftest import OgdServer, free_port
from test_auth import import_users, sha

LDAP_URL = os.environ.get("OGD_TEST_LDAP_URL")
needs_slapd = pytest.mark.skipif(
    not LDAP_URL, reason="no test directory: eval \"$(scripts/start-slapd.sh)\" to run these")

USERS = [
    {"_id": "fedtest", "auth_type": "FedID", "email": "fedtest@test.com"},
    {"_id": "*", "auth_type": "FedID", "email": "star@test.com"},
    {"_id": "backend", "auth_type": "local", "sha256_password": sha("back")},
]
SECRETS = ("fedpass", "commapass", "eyJ")


def ldap_config(**over):
    cfg = {"fedid_server_url": LDAP_URL, "fedid_bind_dn": os.environ.get("OGD_TEST_LDAP_BIND_DN"),
           "fedid_ca_file": os.environ.get("OGD_TEST_LDAP_CA"),
           "fedid_search_base": os.environ.get("OGD_TEST_LDAP_BASE"),
           "fedid_timeout_seconds": 2}
    cfg.update(over)
    return {"auth": {k: v for k, v in cfg.items() if v is not None}}  # None: key left out


def start_server(config):
    d = tempfile.mkdtemp(prefix="ogd-test-")
    s = OgdServer(d, config)
    import_users(s, USERS)
    s.start()
    return s


def stop_server(s):
    rc = s.stop()
    log = s.read_log()
    for secret in SECRETS:
        assert secret not in log, secret
    assert rc == 0, log[-5000:]
    assert not s.sanitizer_reports(), log[-20000:]
    shutil.rmtree(s.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def ldap_server():
    if not LDAP_URL:
        pytest.skip("no test directory: eval \"$(scripts/start-slapd.sh)\" to run these")
    s = start_server(ldap_config())
    yield s
    stop_server(s)


@pytest.fixture
def server_with():
    made = []

    def make(**over):
        s = start_server(ldap_config(**over))
        made.append(s)
        return s
    yield make
    for s in made:
        stop_server(s)


def login(srv, username, password):
    return requests.post(srv.url + "/login", json={"username": username, "password": password},
                         timeout=60)


def claims(token):
    return jwt.decode(token, options={"verify_signature": False})


# ---------------------------------------------------------------- against slapd

@needs_slapd
def test_fedid_login(ldap_server):
    r = login(ldap_server, "fedtest", "fedpass")
    assert r.status_code == 200, r.text
    token = r.json()
    c = claims(token)
    assert c["username"] == "fedtest" and c["token_type"] == "access"
    assert r.cookies["refresh_token"].startswith("eyJ")
    assert requests.post(ldap_server.url + "/verify", json={"token": token},
                         timeout=30).status_code == 200
    # the token works as a bearer token
    r = requests.get(ldap_server.url + "/users/preferences/nothing_set",
                     headers={"Authorization": "Bearer " + token}, timeout=30)
    assert r.status_code != 403 and r.status_code != 401


@needs_slapd
@pytest.mark.parametrize("user,password", [("fedtest", "wrong"), ("fedtest", "fedpass "),
                                           ("*", "fedpass")])
def test_fedid_wrong_password(ldap_server, user, password):
    r = login(ldap_server, user, password)
    assert r.status_code == 401
    assert r.json() == {"detail": "User not authorised"}


@needs_slapd
def test_fedid_empty_password_is_refused(ldap_server):
    r = login(ldap_server, "fedtest", "")
    assert r.status_code == 401
    assert r.json() == {"detail": "User not authorised"}


@needs_slapd
def test_local_users_are_unaffected(ldap_server):
    assert login(ldap_server, "backend", "back").status_code == 200
    assert login(ldap_server, "backend", "fedpass").status_code == 401


@needs_slapd
def test_new_fedid_user_gets_the_directory_email_and_dn_metacharacters_are_escaped(
        ldap_server):
    # "fed,user+1" is uid=fed\,user\+1,ou=people,...: only an RFC 4514-escaped DN binds.
    r = ldap_server.request("POST", "/users", json={
        "_id": "fed,user+1", "auth_type": "FedID", "email": "spoof@example.org"})
    assert r.status_code == 201, r.text
    assert r.json() == "fed,user+1"
    assert "fed,user+1\tFedID" in ldap_server.user_cli("list").stdout
    r = login(ldap_server, "fed,user+1", "commapass")
    assert r.status_code == 200, r.text
    assert claims(r.json())["username"] == "fed,user+1"
    assert login(ldap_server, "fed,user+1", "fedpass").status_code == 401


@needs_slapd
@pytest.mark.parametrize("name", ["**", "fed*", "*test", "f*d*", "x)(cn=fedtest"])
def test_email_lookup_filter_is_escaped(ldap_server, name):
    # Unescaped, (cn=**) or (cn=fed*) would match a directory entry and take its e-mail.
    r = ldap_server.request("POST", "/users", json={"_id": name, "auth_type": "FedID"})
    assert r.status_code == 400
    assert r.json() == {"detail": f"No email found for FedID username '{name}'"}


@needs_slapd
def test_email_lookup_of_unknown_user(ldap_server):
    r = ldap_server.request("POST", "/users", json={"_id": "nobody", "auth_type": "FedID"})
    assert r.status_code == 400
    assert r.json() == {"detail": "No email found for FedID username 'nobody'"}


@needs_slapd
def test_ldaps_url(server_with):
    url = os.environ.get("OGD_TEST_LDAPS_URL")
    if not url:
        pytest.skip("the test directory has no ldaps:// listener")
    s = server_with(fedid_server_url=url)
    assert login(s, "fedtest", "fedpass").status_code == 200
    assert login(s, "fedtest", "wrong").status_code == 401
    s2 = server_with(fedid_server_url=url,
                     fedid_ca_file=os.environ.get("OGD_TEST_LDAP_OTHER_CA"))
    r = login(s2, "fedtest", "fedpass")
    assert r.status_code == 500 and r.json() == {"detail": "Authentication server error"}


@needs_slapd
def test_certificate_for_another_host_is_refused(server_with):
    url = os.environ.get("OGD_TEST_LDAP_WRONG_HOST_URL")
    if not url:
        pytest.skip("the test directory has no listener on an address its certificate omits")
    s = server_with(fedid_server_url=url)  # trusted CA, but the name does not match
    r = login(s, "fedtest", "fedpass")
    assert r.status_code == 500 and r.json() == {"detail": "Authentication server error"}


@needs_slapd
def test_untrusted_ca_is_refused(server_with):
    s = server_with(fedid_ca_file=os.environ.get("OGD_TEST_LDAP_OTHER_CA"))
    r = login(s, "fedtest", "fedpass")
    assert r.status_code == 500
    assert r.json() == {"detail": "Authentication server error"}
    r = s.request("POST", "/users", json={"_id": "nobody", "auth_type": "FedID"})
    assert r.status_code == 500
    assert r.json() == {"detail": "Authentication server error"}
    assert login(s, "backend", "back").status_code == 200


@needs_slapd
def test_dn_template_must_match_the_directory(server_with):
    # the reference's <username>@<realm> form is not a DN slapd accepts: a server error
    s = server_with(fedid_bind_dn=None, fedid_server_ldap_realm="FED.CCLRC.AC.UK")
    r = login(s, "fedtest", "fedpass")
    assert r.status_code == 500
    assert r.json() == {"detail": "Authentication server error"}


# ---------------------------------------------------------------- without a directory

class SilentListener:
    """A TCP listener that accepts connections, counts them and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.sock.settimeout(0.1)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
                self.accepted.append(conn)
            except socket.timeout:
                continue
            except OSError:
                return

    def hang_up(self):
        """Closes the connections accepted so far (the client sees the server go away)."""
        for c in self.accepted:
            c.close()

    def close(self):
        self.stop = True
        self.thread.join()
        for c in self.accepted:
            c.close()
        self.sock.close()


@pytest.fixture
def listener():
    lst = SilentListener()
    yield lst
    lst.close()


def test_empty_password_never_reaches_the_directory(server_with, listener):
    s = server_with(fedid_server_url=f"ldap://127.0.0.1:{listener.port}", fedid_bind_dn=None,
                    fedid_server_ldap_realm="FED.CCLRC.AC.UK")
    r = login(s, "fedtest", "")
    assert r.status_code == 401
    assert r.json() == {"detail": "User not authorised"}
    time.sleep(0.2)  # a connection attempt, had there been one, would have arrived
    assert listener.accepted == []


def test_directory_that_never_answers_is_a_server_error(server_with, listener):
    s = server_with(fedid_server_url=f"ldap://127.0.0.1:{listener.port}", fedid_bind_dn=None,
                    fedid_server_ldap_realm="FED.CCLRC.AC.UK", fedid_timeout_seconds=1)
    result = {}

    def slow_login():
        result["r"] = login(s, "fedtest", "fedpass")
    t = threading.Thread(target=slow_login)
    t.start()
    # the worker's loop is not blocked meanwhile: other requests are answered
    while not listener.accepted and t.is_alive():
        time.sleep(0.01)
    for _ in range(5):
        assert requests.get(s.url + "/healthz", timeout=5).status_code == 200
        assert login(s, "backend", "back").status_code == 200
    t.join(60)
    assert not t.is_alive()
    assert result["r"].status_code == 500
    assert result["r"].json() == {"detail": "Authentication server error"}
    assert len(listener.accepted) >= 1


def test_directory_down_is_a_server_error(server_with):
    port = free_port()  # nothing listens there
    s = server_with(fedid_server_url=f"ldap://127.0.0.1:{port}", fedid_bind_dn=None,
                    fedid_server_ldap_realm="FED.CCLRC.AC.UK")
    r = login(s, "fedtest", "fedpass")
    assert r.status_code == 500
    assert r.json() == {"detail": "Authentication server error"}
    r = s.request("POST", "/users", json={"_id": "newfed", "auth_type": "FedID"})
    assert r.status_code == 500
    assert r.json() == {"detail": "Authentication server error"}
    assert login(s, "backend", "back").status_code == 200


def test_fedid_not_configured_is_a_server_error(server_with):
    s = server_with(fedid_server_url=None)
    r = login(s, "fedtest", "fedpass")
    assert r.status_code == 500
    assert r.json() == {"detail": "Authentication server error"}


def test_a_slow_directory_leaves_the_thread_pool_to_other_work(listener):
    # One worker with a 2-thread pool: at most one directory call runs at a time, the
    # others wait, and the second thread stays free for password hashing and the rest.
    # The directory holds each call until the test hangs up (the timeout is far away).
    config = ldap_config(fedid_server_url=f"ldap://127.0.0.1:{listener.port}", fedid_bind_dn=None,
                         fedid_server_ldap_realm="FED.CCLRC.AC.UK", fedid_timeout_seconds=60)
    config["server"] = {"workers": 1, "threads": 2}
    s = start_server(config)
    try:
        results = []

        def fed_login():
            results.append(login(s, "fedtest", "fedpass"))
        threads = [threading.Thread(target=fed_login) for _ in range(3)]
        for t in threads:
            t.start()
        while not listener.accepted:
            time.sleep(0.01)
        # a local login needs the pool (argon2id) and is answered while the FedID logins
        # are still pending
        assert login(s, "backend", "back").status_code == 200
        assert any(t.is_alive() for t in threads)
        assert len(listener.accepted) == 1  # they run one after the other
        for n in (1, 2, 3):
            while len(listener.accepted) < n:
                time.sleep(0.01)
            assert len(listener.accepted) == n
            listener.hang_up()
        for t in threads:
            t.join(60)
        assert [r.status_code for r in results] == [500, 500, 500]
        assert len(listener.accepted) == 3
    finally:
        stop_server(s)
