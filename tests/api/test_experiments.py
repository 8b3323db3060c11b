"""Experiments (docs/experiments.md): GET/POST /experiments and the jobs process's
scheduled refresh, against a fake user office (REST login) and Scheduler (WSDL + SOAP)
served by the test. Runs on both back-end pairs."""
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import free_port

PASSWORD = "uo-secret-Pa55"
SESSION = "sess-7f3a"
TNS = "http://fake.scheduler.test/"


def part(rb, n, status, start, end):
    return (f"<experimentPartList><experimentStartDate>{start}</experimentStartDate>"
            f"<experimentEndDate>{end}</experimentEndDate><partNumber>{n}</partNumber>"
            f"<referenceNumber>{rb}</referenceNumber><status>{status}</status>"
            f"</experimentPartList>")


def envelope(inner):
    return ('<?xml version="1.0"?><S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/">'
            f"<S:Body>{inner}</S:Body></S:Envelope>")


class FakeScheduler:
    """The user office's POST /uo/sessions, the WSDL at /wsdl and the SOAP service at /soap.
    `mode` switches in failures; every request is recorded."""

    def __init__(self):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.mode = "ok"
        self.requests = []
        self.login_failures = 0  # answer 503 to this many logins first
        self.release = threading.Event()  # ends the waits of the slow modes
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def reply(self, status, body, ctype="text/xml; charset=utf-8"):
                data = body.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # ogd gave up waiting (the timeout tests)

            def do_GET(self):
                fake.requests.append(("GET", self.path, ""))
                if fake.mode == "slow_wsdl":
                    fake.release.wait(10)
                if self.path == "/wsdl":
                    self.reply(200, fake.wsdl())
                else:
                    self.reply(404, "")

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n).decode()
                fake.requests.append(("POST", self.path, body))
                if self.path == "/uo/sessions":
                    if fake.mode == "slow_login":
                        fake.release.wait(10)
                    if fake.login_failures > 0:
                        fake.login_failures -= 1
                        return self.reply(503, "{}", "application/json")
                    if fake.mode == "login_refused":
                        return self.reply(401, '{"error": "bad credentials"}', "application/json")
                    if fake.mode == "no_session":
                        return self.reply(201, '{"token": "x"}', "application/json")
                    creds = json.loads(body)
                    ok = creds == {"username": "og-user", "password": PASSWORD}
                    return self.reply(201 if ok else 401, json.dumps({"sessionId": SESSION}),
                                      "application/json")
                if self.path == "/soap":
                    status, text = fake.soap(body)
                    return self.reply(status, text)
                self.reply(404, "")

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wsdl(self):
        return ('<?xml version="1.0"?><wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" '
                f'xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" targetNamespace="{TNS}">'
                '<wsdl:service name="ScheduleWebService"><wsdl:port name="P" binding="B">'
                f'<soap:address location="{self.base}/soap"/></wsdl:port></wsdl:service>'
                "</wsdl:definitions>")

    def soap(self, body):
        if f"<arg0>{SESSION}</arg0>" not in body:
            return 500, envelope("<S:Fault><faultcode>S:Server</faultcode>"
                                 "<faultstring>Invalid session</faultstring></S:Fault>")
        if "getExperimentDatesForInstrument" in body:
            if self.mode == "fault":
                return 500, envelope("<S:Fault><faultcode>S:Server</faultcode>"
                                     "<faultstring>Instrument unknown</faultstring></S:Fault>")
            if self.mode == "garbage":
                return 200, "<S:Envelope><unclosed>"
            dates = [(20310000, 1), (20310000, 2), (20310001, 1)]
            items = "".join(f"<return><instrument>Gemini</instrument><part>{p}</part>"
                            f"<rbNumber>{rb}</rbNumber><scheduledDate>2023-06-05T00:00:00Z"
                            "</scheduledDate><timeAllocated>1</timeAllocated></return>"
                            for rb, p in dates)
            return 200, envelope(f'<ns2:getExperimentDatesForInstrumentResponse xmlns:ns2="{TNS}">'
                                 f"{items}</ns2:getExperimentDatesForInstrumentResponse>")
        if "getExperiments" in body:
            if self.mode == "bad_part":
                return 200, envelope('<ns2:getExperimentsResponse xmlns:ns2="x"><return>'
                                     "<experimentPartList><partNumber>one</partNumber>"
                                     "</experimentPartList></return></ns2:getExperimentsResponse>")
            parts = "".join([
                part(20310000, 1, "Delivered", "2023-06-05T00:00:00Z", "2023-06-21T23:59:59Z"),
                part(20310000, 2, "Cancelled", "2023-07-01T00:00:00Z", "2023-07-02T00:00:00Z"),
                part(20310000, 2, "Published", "2023-07-03T09:00:00+01:00", "2023-07-04T00:00:00Z"),
                part(20310000, 3, "Delivered", "2023-08-01T00:00:00Z", "2023-08-02T00:00:00Z"),
            ])
            other = part(20310001, 1, "Changed", "2023-09-01T00:00:00Z", "2023-09-02T00:00:00Z")
            return 200, envelope(f'<ns2:getExperimentsResponse xmlns:ns2="{TNS}">'
                                 f"<return>{parts}</return><return>{other}</return>"
                                 "</ns2:getExperimentsResponse>")
        return 500, envelope("<S:Fault><faultstring>unknown call</faultstring></S:Fault>")

    def soap_bodies(self, call):
        return [b for m, p, b in self.requests if p == "/soap" and call in b]


EXPECTED = [
    {"experiment_id": "20310000", "part": 1, "start_date": "2023-06-05T00:00:00",
     "end_date": "2023-06-21T23:59:59"},
    {"experiment_id": "20310000", "part": 2, "start_date": "2023-07-03T08:00:00",
     "end_date": "2023-07-04T00:00:00"},
    {"experiment_id": "20310001", "part": 1, "start_date": "2023-09-01T00:00:00",
     "end_date": "2023-09-02T00:00:00"},
]


@pytest.fixture
def fake():
    f = FakeScheduler()
    yield f
    f.server.shutdown()


def experiments_config(fake, **over):
    cfg = {"first_scheduler_contact_start_date": "2019-01-02T00:00:00Z",
           "scheduler_background_task_enabled": False,
           "scheduler_background_frequency": "0 9 * * 1",
           "scheduler_background_timezone": "Europe/London",
           "scheduler_background_retry_mins": 20.0,
           "user_office_rest_api_url": fake.base + "/uo",
           "username": "og-user", "password": PASSWORD,
           "scheduler_wsdl_url": fake.base + "/wsdl",
           "instrument_names": ["Gemini"],
           "worker_file_path": "/dev/shm/og-experiment-background"}
    cfg.update(over)
    return {"experiments": cfg}


@pytest.fixture
def srv(make_server, fake):
    s = make_server(config=experiments_config(fake), records=0)
    yield s
    assert PASSWORD not in s.read_log()
    assert SESSION not in s.read_log()


def without_ids(docs):
    return [{k: v for k, v in d.items() if k != "_id"} for d in docs]


def test_post_stores_and_get_lists(srv, fake):
    assert srv.get("/experiments").json() == []
    r = srv.request("POST", "/experiments")
    assert r.status_code == 200, r.text
    ids = r.json()
    assert len(ids) == 3 and all(re.fullmatch(r"[0-9a-f]{24}", i) for i in ids)
    # the window starts at the configured first date on the first run
    dates = fake.soap_bodies("getExperimentDatesForInstrument")
    assert len(dates) == 1
    assert "<arg1>Gemini</arg1>" in dates[0]
    assert "<startDate>2019-01-02T00:00:00Z</startDate>" in dates[0]
    exps = fake.soap_bodies("getExperiments>")
    assert ("<arg1><key>20310000</key><value>Gemini</value></arg1>"
            "<arg1><key>20310001</key><value>Gemini</value></arg1>") in exps[0]

    g = srv.get("/experiments")
    assert g.status_code == 200
    docs = g.json()
    assert [d["_id"] for d in docs] == sorted(ids)
    assert sorted(without_ids(docs), key=lambda d: (d["experiment_id"], d["part"])) == EXPECTED
    assert all(list(d) == ["_id", "experiment_id", "part", "start_date", "end_date"] for d in docs)

    # the same answer again: nothing new, each one reported as updated, same ids
    r2 = srv.request("POST", "/experiments")
    assert r2.status_code == 200, r2.text
    assert r2.json() == [f"Updated {i}" for i in ids]
    assert len(srv.get("/experiments").json()) == 3
    # the second window starts where the first run stamped the collection
    second = fake.soap_bodies("getExperimentDatesForInstrument")[1]
    start = re.search(r"<startDate>(.*?)</startDate>", second).group(1)
    assert start != "2019-01-02T00:00:00Z" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", start)


def test_auth_required_and_permission(srv):
    assert srv.get("/experiments", auth=False).status_code == 401
    assert srv.request("POST", "/experiments", auth=False).status_code == 401
    srv.user_cli("add", "viewer", password="viewer-password")
    tok = srv.login("viewer", "viewer-password")
    h = {"Authorization": "Bearer " + tok}
    assert srv.get("/experiments", headers=h).status_code == 200
    r = srv.request("POST", "/experiments", headers=h)
    assert r.status_code == 403
    assert r.json() == {"detail": "User 'viewer' is not authorised to use endpoint "
                                  "'/experiments POST'"}


@pytest.mark.parametrize("mode,detail", [
    ("login_refused", "Logging in to retrieve experiments wasn't successful. %s recieved"),
    ("no_session", "Session ID cannot be found from User Office API login endpoint"),
    ("fault", "Problem processing current Scheduler call (getExperimentDatesForInstrument): "
              "Instrument unknown"),
    ("bad_part", "Problem validating communication to the Scheduler: an experiment part lacks "
                 "an integer referenceNumber or partNumber, or a status"),
])
def test_scheduler_errors(srv, fake, mode, detail):
    fake.mode = mode
    r = srv.request("POST", "/experiments")
    assert r.status_code == 500
    assert r.json() == {"detail": detail}
    assert srv.get("/experiments").json() == []
    assert srv.get("/version").status_code == 200  # the worker is fine


def test_malformed_xml(srv, fake):
    fake.mode = "garbage"
    r = srv.request("POST", "/experiments")
    assert r.status_code == 500
    assert r.json()["detail"].startswith(
        "Problem parsing XML during communication with Scheduler: ")


@pytest.mark.parametrize("mode,detail", [
    ("slow_wsdl", "Unexpected error from contacting the Scheduler"),
    ("slow_login", "Request to /sessions to retrieve experiment data from the external system "
                   "has timed out"),
])
def test_slow_systems_time_out_without_blocking(make_server, fake, mode, detail):
    # one worker: while its refresh waits on the stalled system, it still answers others
    cfg = experiments_config(fake, request_timeout=1)
    cfg["server"] = {"workers": 1}
    s = make_server(config=cfg, records=0)
    fake.mode = mode
    out = {}
    t = threading.Thread(target=lambda: out.update(r=s.request("POST", "/experiments")))
    t.start()
    try:
        stalled = "/wsdl" if mode == "slow_wsdl" else "/uo/sessions"
        deadline = time.time() + 20
        while not any(p == stalled for _, p, _ in fake.requests) and time.time() < deadline:
            time.sleep(0.05)
        assert t.is_alive()  # the refresh is waiting on the stalled system
        assert s.get("/version").status_code == 200
        t.join(30)  # ogd gives up after request_timeout; the fake is still stalled
    finally:
        fake.release.set()
        t.join(30)
    assert out["r"].status_code == 500
    assert out["r"].json() == {"detail": detail}


def test_scheduler_down(make_server, fake):
    dead = f"http://127.0.0.1:{free_port()}"
    s = make_server(config=experiments_config(fake, scheduler_wsdl_url=dead + "/wsdl"),
                    records=0)
    r = s.request("POST", "/experiments")
    assert r.status_code == 500
    assert r.json() == {"detail": "Unexpected error from contacting the Scheduler"}
    s2 = make_server(config=experiments_config(fake, user_office_rest_api_url=dead),
                     records=0)
    r = s2.request("POST", "/experiments")
    assert r.status_code == 500
    assert r.json() == {"detail": "Connection error occurred"}
    assert s2.get("/experiments").json() == []


def test_jobs_process_fills_the_table(make_server, fake):
    fake.login_failures = 1  # the first run fails; a retry or the next run succeeds
    # a 2-second schedule: every even second of every minute
    s = make_server(config=experiments_config(
        fake, scheduler_background_task_enabled=True,
        scheduler_background_frequency="* * * * * */2",
        scheduler_background_retry_mins=0.02), records=0)
    deadline = time.time() + 30
    docs = []
    while time.time() < deadline:
        docs = s.get("/experiments").json()
        if len(docs) == 3:
            break
        time.sleep(0.2)
    assert sorted(without_ids(docs), key=lambda d: (d["experiment_id"], d["part"])) == EXPECTED
    logins = [r for r in fake.requests if r[1] == "/uo/sessions"]
    assert len(logins) >= 2  # the refused one and the one that worked
    assert "experiments refresh failed" in s.read_log()
    assert PASSWORD not in s.read_log()
