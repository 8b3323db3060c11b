"""`ogd ingest FILE...` (local, same pipeline as /submit/hdf) and `ogd ingest --url`."""
import subprocess

import hdfgen
from conftest import OGD
from test_ingest import ID, post_manifest


def run(srv, *args):
    return subprocess.run([OGD, "ingest", *args], capture_output=True, text=True, env=srv.env,
                          timeout=120)


def test_local_ingest(make_server, tmp_path):
    srv = make_server(records=0)
    assert post_manifest(srv, hdfgen.manifest()).status_code == 201
    good = hdfgen.make_file(str(tmp_path / "good.h5"))
    late = hdfgen.make_file(str(tmp_path / "late.h5"),
                            attrs={"timestamp": "2020-04-07T15:00:00Z", "shotnum": 9},
                            channels={"FALSE_SCALAR": {"dtype": "scalar", "data": 1}})
    p = run(srv, "--config", srv.config_path, good, late)
    assert p.returncode == 0, p.stderr
    assert "good.h5: 201 Added as %s: 9 accepted, 0 rejected" % ID in p.stderr
    assert "late.h5: 201 Added as 20200407150000: 9 accepted, 1 rejected" in p.stderr
    assert "FALSE_SCALAR: [\"Channel name is not recognised" in p.stderr
    assert srv.get("/records/count").json() == 2
    rec = srv.get("/records/" + ID).json()
    assert rec["channels"]["PM-201-HJ-PD"]["waveform_path"]
    # a second run merges; a bad file makes the exit status 1
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"nonsense")
    p = run(srv, "--config", srv.config_path, good, str(bad))
    assert p.returncode == 1
    assert "good.h5: 200 Updated %s" % ID in p.stderr
    assert "bad.h5: 400 \"Uploaded file is not a valid HDF5 file\"" in p.stderr
    p = run(srv, "--config", srv.config_path, str(tmp_path / "missing.h5"))
    assert p.returncode == 1


def test_remote_ingest(make_server, tmp_path):
    srv = make_server(records=0)
    assert post_manifest(srv, hdfgen.manifest()).status_code == 201
    good = hdfgen.make_file(str(tmp_path / "good.h5"))
    p = run(srv, "--url", srv.url, good)  # no token: the server refuses it
    assert p.returncode != 0 and '401 "Not authenticated"' in p.stderr
    p = run(srv, "--url", srv.url, "--token", srv.token, good)
    assert p.returncode == 0, p.stderr
    assert "201 Added as %s" % ID in p.stderr
    assert srv.get("/records/" + ID).status_code == 200
    p = run(srv, "--url", "http://127.0.0.1:1", good)
    assert p.returncode == 3


def test_demo_through_hdf5(make_server):
    srv = make_server(records=0)
    p = subprocess.run([OGD, "demo", "--config", srv.config_path, "--hdf5", "--records", "4"],
                       capture_output=True, text=True, env=srv.env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count(": 201 Added as ") == 4
    assert srv.get("/records/count").json() == 4
    rec = srv.get("/records/20230605080010").json()
    ch = rec["channels"]
    assert rec["metadata"]["shotnum"] == 100001
    assert ch["PM-201-FE-CAM-1"]["metadata"]["bit_depth"] == 12
    assert ch["PM-201-FE-CAM-1"]["thumbnail"]
    assert ch["CM-202-CVC-WFS-COEF"]["metadata"]["labels"][0] == "Tilt X"
    assert ch["PM-201-MODE"]["data"] in ("EX", "GS")
    assert len(srv.object_keys("images/2023/06/05/080010/")) == 2
    # a second run leaves a filled database alone
    p = subprocess.run([OGD, "demo", "--config", srv.config_path, "--hdf5", "--records", "4"],
                       capture_output=True, text=True, env=srv.env, timeout=300)
    assert p.returncode == 0
    assert "already holds records" in p.stderr
