"""FedID login figure: POST /login for a FedID user through `ogd serve` (1 worker,
server.threads 2) against the slapd of scripts/start-slapd.sh (StartTLS, certificate
checked, simple bind), sequentially and with 8 clients at once; local (argon2id) logins
on the same server alongside as the baseline. Prints logins/s and the median latency."""
import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "api"))
from conftest import OgdServer  # noqa: E402
from test_auth import import_users, sha  # noqa: E402


def run(srv, user, password, n, clients):
    lat, lock = [], threading.Lock()
    per = n // clients

    def worker():
        s = requests.Session()
        for _ in range(per):
            t0 = time.perf_counter()
            r = s.post(srv.url + "/login", json={"username": user, "password": password},
                       timeout=60)
            dt = time.perf_counter() - t0
            assert r.status_code == 200, r.text
            with lock:
                lat.append(dt)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return len(lat) / wall, statistics.median(lat) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ogd", required=True)
    ap.add_argument("--logins", type=int, default=200)
    a = ap.parse_args()
    os.environ["OGD_BIN"] = a.ogd
    import conftest
    conftest.OGD = a.ogd
    import test_auth
    test_auth.OGD = a.ogd
    cfg = {"server": {"workers": 1, "threads": 2},
           "auth": {"fedid_server_url": os.environ["OGD_TEST_LDAP_URL"],
                    "fedid_bind_dn": os.environ["OGD_TEST_LDAP_BIND_DN"],
                    "fedid_ca_file": os.environ["OGD_TEST_LDAP_CA"]}}
    srv = OgdServer(tempfile.mkdtemp(prefix="ogd-bench-"), cfg)
    import_users(srv, [{"_id": "fedtest", "auth_type": "FedID", "email": "f@test.com"},
                       {"_id": "local", "auth_type": "local", "sha256_password": sha("pw")}])
    srv.start()
    try:
        run(srv, "local", "pw", 2, 1)  # upgrades the stored hash to argon2id first
        for clients in (1, 8):
            for user, pw, label in (("fedtest", "fedpass", "fedid"), ("local", "pw", "local")):
                rate, med = run(srv, user, pw, a.logins, clients)
                print(f"{label:6s} clients={clients}: {rate:7.1f} logins/s, median {med:6.1f} ms")
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
