"""Ingest under failures: an object store that refuses uploads mid-ingest (production
pair, through tests/tools/faultproxy.py) and a database that refuses the record write (both
pairs). Either way nothing is left behind: no record points at a missing object, and a
failed request leaves no orphan objects."""
import os
import sqlite3
import subprocess

import pytest
import requests

import hdfgen
from conftest import BACKEND
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
