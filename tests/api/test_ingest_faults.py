"""Ingest under failures: an object store that refuses uploads mid-ingest (production
pair, through tests/tools/faultproxy.py) and a database that refuses the record write (both
pairs). Either way nothing is left behind: no record points at a missing object, and a
failed request leaves no orphan objects. An upload that failed for ogd but landed in the store
anyway is deleted later by the jobs process (docs/design.md §6.5)."""
import os
import signal
import sqlite3
import subprocess

import pytest
import requests

import hdfgen
from conftest import BACKEND, wait_for
from test_ingest import DIR, ID, hdf_bytes, post_file, post_manifest
from test_production import faultproxy  # noqa: F401  (fixture)


def start(make_server, config=None):
    s = make_server(records=0, config=config)
    assert post_manifest(s, hdfgen.manifest()).status_code == 201
    return s


def block_record_writes(srv):
    """Makes every record insert fail inside the database (a trigger), on either pair."""
    url = srv.config_value("database", "url")
    if url:
        sql = ("CREATE FUNCTION ogd_test_fail() RETURNS trigger LANGUAGE plpgsql AS "
               "$$BEGIN RAISE EXCEPTION 'refused by test'; END$$; "
               "CREATE TRIGGER ogd_test_fail BEFORE INSERT OR UPDATE ON records "
               "FOR EACH ROW EXECUTE FUNCTION ogd_test_fail();")
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True,
                       capture_output=True)
    else:
        db = sqlite3.connect(os.path.join(srv.data_dir, "ogd.sqlite3"))
        # a trigger writing to a table that no longer exists: every insert fails with an
        # error that is not a constraint violation
        db.execute("CREATE TABLE ogd_test_gone (x)")
        db.execute("CREATE TRIGGER ogd_test_fail BEFORE INSERT ON records "
                   "BEGIN INSERT INTO ogd_test_gone VALUES (1); END")
        db.execute("DROP TABLE ogd_test_gone")
        db.commit()
        db.close()


def test_failed_record_write_removes_every_uploaded_object(make_server, tmp_path):
    srv = start(make_server)
    block_record_writes(srv)
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path))
    assert r.status_code == 500
    assert r.json() == {"detail": "Database error"}
    assert srv.object_keys() == []
    assert srv.get("/records/count").json() == 0
    assert srv.get("/healthz").status_code == 200


@pytest.mark.skipif(BACKEND != "production", reason="needs S3 (OGD_TEST_BACKEND=production)")
def test_s3_failing_mid_ingest(make_server, faultproxy, tmp_path):  # noqa: F811
    srv = start(make_server, {"echo": {"url": faultproxy.url, "max_retries": 1}})
    bucket = srv.config_value("echo", "bucket_name")
    # every image upload fails; the other objects go through
    faultproxy(mode="status", code=500, count=-1, match="/%s/images/" % bucket)
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path))
    assert r.status_code == 201, r.text
    resp = r.json()["response"]
    assert resp["rejected_channels"] == {"PM-201-FE-CAM-1": ["Upload to Echo failed"],
                                         "PM-201-FE-CAM-2": ["Upload to Echo failed"]}
    assert "PM-201-FE-CAM-1" not in resp["accepted_channels"]
    faultproxy(mode="pass")
    rec = srv.get("/records/" + ID).json()
    assert "PM-201-FE-CAM-1" not in rec["channels"]
    assert "PM-201-HJ-PD" in rec["channels"]
    # every path in the record has its object, and no image object exists
    keys = srv.object_keys()
    assert not [k for k in keys if k.startswith("images/")]
    for name, ch in rec["channels"].items():
        for field, prefix in (("image_path", None), ("waveform_path", "waveforms"),
                              ("vector_path", "vectors")):
            if field in ch:
                pre = prefix or ("float_images" if ch["image_path"].endswith(".npz") else "images")
                assert pre + "/" + ch[field] in keys
    # the missing images are accepted on a re-submission (their objects are absent)
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path))
    assert r.status_code == 200
    assert r.json()["response"]["accepted_channels"] == ["PM-201-FE-CAM-1", "PM-201-FE-CAM-2"]
    assert "images/%s/PM-201-FE-CAM-1.png" % DIR in srv.object_keys()


@pytest.mark.skipif(BACKEND != "production", reason="needs S3 (OGD_TEST_BACKEND=production)")
def test_s3_down_and_database_refusing(make_server, faultproxy, tmp_path):  # noqa: F811
    """Uploads partly failing, then the record write failing: what did get stored is
    deleted again."""
    srv = start(make_server, {"echo": {"url": faultproxy.url, "max_retries": 0}})
    bucket = srv.config_value("echo", "bucket_name")
    block_record_writes(srv)
    faultproxy(mode="status", code=503, count=-1, match="/%s/waveforms/" % bucket)
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path))
    assert r.status_code == 500
    faultproxy(mode="pass")
    assert srv.object_keys() == []
    assert requests.get(srv.url + "/healthz", timeout=5).status_code == 200


def db_sql(srv, sql):
    """Runs sql in the server's database (either pair); the rows, as lists of text."""
    url = srv.config_value("database", "url")
    if url:
        out = subprocess.run(["psql", "-q", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                             check=True, capture_output=True, text=True).stdout
        return [line.split("|") for line in out.splitlines() if line]
    db = sqlite3.connect(os.path.join(srv.data_dir, "ogd.sqlite3"))
    try:
        rows = [[str(v) for v in r] for r in db.execute(sql).fetchall()]
        db.commit()
        return rows
    finally:
        db.close()


def uncertain_keys(srv):
    return [r[0] for r in db_sql(srv, "SELECT id FROM uncertain_objects ORDER BY id")]


CAMS = ["images/%s/PM-201-FE-CAM-1.png" % DIR, "images/%s/PM-201-FE-CAM-2.png" % DIR]
# notes are due a second after they are made; the sweep runs when the test asks for it
# (SIGUSR2 to the jobs process), never on its own during a test
SWEEP = {"echo": {"uncertain_write_grace": 1}}


def sweep_until(srv, what, cond, timeout=120):
    """Asks the jobs process for a sweep (SIGUSR2) until cond() holds."""
    wait_for("the jobs process", lambda: "jobs process started" in srv.read_log())

    def poke():
        for pid in srv.jobs_pids():
            os.kill(pid, signal.SIGUSR2)
        return cond()
    wait_for(what, poke, timeout=timeout)


@pytest.mark.skipif(BACKEND != "production", reason="needs S3 (OGD_TEST_BACKEND=production)")
def test_uploads_that_land_after_failing_are_swept(make_server, faultproxy, tmp_path):  # noqa: F811
    cfg = {"echo": {"url": faultproxy.url, "max_retries": 0, "uncertain_write_grace": 1}}
    srv = start(make_server, cfg)
    bucket = srv.config_value("echo", "bucket_name")
    # the store stores every image, but ogd is told they failed
    faultproxy(mode="lost", code=503, count=-1, match="/%s/images/" % bucket)
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path))
    assert r.status_code == 201, r.text
    assert r.json()["response"]["rejected_channels"] == {
        "PM-201-FE-CAM-1": ["Upload to Echo failed"], "PM-201-FE-CAM-2": ["Upload to Echo failed"]}
    faultproxy(mode="pass")
    keys = srv.object_keys()
    assert all(k in keys for k in CAMS), keys  # they landed: orphans, for now
    assert uncertain_keys(srv) == CAMS
    # the jobs process deletes them, since no record refers to them, and forgets them
    sweep_until(srv, "the orphans and their notes to go",
                lambda: uncertain_keys(srv) == [] and not set(CAMS) & set(srv.object_keys()))
    rec = srv.get("/records/" + ID).json()
    assert "PM-201-FE-CAM-1" not in rec["channels"] and "PM-201-HJ-PD" in rec["channels"]
    # the same images failing again, then stored: the second upload renews the notes, and
    # the sweep finds the record refers to the objects: it keeps them and drops the notes
    faultproxy(mode="lost", code=503, count=-1, match="/%s/images/" % bucket)
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path))
    assert r.status_code == 200 and uncertain_keys(srv) == CAMS
    faultproxy(mode="pass")
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path))
    assert r.status_code == 200, r.text
    assert r.json()["response"]["accepted_channels"] == ["PM-201-FE-CAM-1", "PM-201-FE-CAM-2"]
    assert uncertain_keys(srv) == CAMS
    sweep_until(srv, "the notes to go", lambda: uncertain_keys(srv) == [])
    keys = srv.object_keys()
    assert all(k in keys for k in CAMS), keys
    assert srv.get("/images/%s/PM-201-FE-CAM-1" % ID).status_code == 200
    assert "2 live" in srv.read_log() or "1 live" in srv.read_log()


def test_a_key_being_swept_is_not_written(make_server, tmp_path):
    """An ingest that meets a key the sweep has claimed (it is deleting that object right
    now) does not write it: the channel is rejected as a failed upload, the rest stored."""
    srv = start(make_server)
    db_sql(srv, "INSERT INTO uncertain_objects (id, record_id, channel, noted_at, claim_until) "
                "VALUES ('%s', '%s', 'PM-201-FE-CAM-1', 1, 4000000000)" % (CAMS[0], ID))
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path))
    assert r.status_code == 201, r.text
    resp = r.json()["response"]
    assert resp["rejected_channels"] == {"PM-201-FE-CAM-1": ["Upload to Echo failed"]}
    assert "PM-201-FE-CAM-2" in resp["accepted_channels"]
    keys = srv.object_keys()
    assert CAMS[0] not in keys and CAMS[1] in keys
    # the claim is the sweep's: the note stays as it was
    assert db_sql(srv, "SELECT noted_at, claim_until FROM uncertain_objects") == [
        ["1", "4000000000"]]


def test_an_ingest_renews_the_notes_of_its_keys(make_server, tmp_path):
    """A note on a key an ingest writes is renewed first, so a sweep that read the old
    note cannot claim it; the sweep then finds the record refers to the object and keeps
    it."""
    srv = start(make_server, SWEEP)
    db_sql(srv, "INSERT INTO uncertain_objects (id, record_id, channel, noted_at, claim_until) "
                "VALUES ('%s', '%s', 'PM-201-FE-CAM-1', 1, 0)" % (CAMS[0], ID))
    before = int(db_sql(srv, "SELECT %s" % ("floor(extract(epoch from now()))::bigint"
                                            if srv.config_value("database", "url")
                                            else "unixepoch()"))[0][0])
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path))
    assert r.status_code == 201, r.text
    assert "PM-201-FE-CAM-1" in r.json()["response"]["accepted_channels"]
    (noted,), = db_sql(srv, "SELECT noted_at FROM uncertain_objects")
    assert int(noted) >= before
    sweep_until(srv, "the note to go", lambda: uncertain_keys(srv) == [])
    assert CAMS[0] in srv.object_keys()
    assert srv.get("/images/%s/PM-201-FE-CAM-1" % ID).status_code == 200
    assert "1 live" in srv.read_log()
