"""The command line: check-config, import, and what the logs may not contain."""
import json
import os
import subprocess

from conftest import OGD


def run(*args, env=None):
    return subprocess.run([OGD, *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **(env or {})))


def test_check_config_masks_secrets(tmp_path):
    cfg = tmp_path / "config.yml"
    cfg.write_text("echo:\n  access_key: AKIA-VISIBLE-NOT\n  secret_key: hunter2\n"
                   "server:\n  data_dir: %s\n" % tmp_path)
    r = run("check-config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "hunter2" not in r.stdout and "AKIA-VISIBLE-NOT" not in r.stdout
    assert "***" in r.stdout


def test_check_config_reports_every_error_with_lines(tmp_path):
    cfg = tmp_path / "config.yml"
    cfg.write_text("server:\n  workers: many\n  nonsense: 1\n")
    r = run("check-config", str(cfg))
    assert r.returncode == 2
    assert f"{cfg}:2: server.workers" in r.stderr
    assert f"{cfg}:3:" in r.stderr and "server.nonsense" in r.stderr


def test_env_override_errors_name_the_variable(tmp_path):
    r = run("check-config", env={"OGD_SERVER__WORKERS": "four"})
    assert r.returncode == 2
    assert "OGD_SERVER__WORKERS" in r.stderr


def test_import_reports_the_bad_line_and_keeps_the_good(tmp_path):
    data = tmp_path / "records.jsonl"
    good = {"_id": "20230101000000", "metadata": {"timestamp": {"$date": "2023-01-01T00:00:00Z"},
                                                  "shotnum": {"$numberLong": "5"}},
            "channels": {"A": {"metadata": {"channel_dtype": "scalar"},
                               "data": {"$numberDouble": "NaN"}}}}
    data.write_text(json.dumps(good) + "\n{not json\n")
    env = {"OGD_SERVER__DATA_DIR": str(tmp_path)}
    r = run("import", "--collection", "records", str(data), env=env)
    assert r.returncode == 1
    assert f"{data}:2:" in r.stderr
    r = run("import", "--collection", "nope", str(data), env=env)
    assert r.returncode == 1 and "unknown collection" in r.stderr


def test_import_extended_json_values(make_server, tmp_path):
    srv = make_server(records=0)
    data = tmp_path / "r.jsonl"
    rec = {"_id": "20230101000000",
           "metadata": {"timestamp": {"$date": "2023-01-01T00:00:00Z"},
                        "shotnum": {"$numberLong": "423648000000"}},
           "channels": {"A": {"metadata": {"channel_dtype": "scalar"},
                              "data": {"$numberDouble": "NaN"}},
                        "I": {"metadata": {"channel_dtype": "image"},
                              "thumbnail": {"$binary": {"base64": "aVZCT1J3MEtHZ289",
                                                        "subType": "00"}}}}}
    data.write_text(json.dumps(rec) + "\n")
    r = run("import", "--config", srv.config_path, "--collection", "records", str(data))
    assert r.returncode == 0, r.stderr
    got = srv.get("/records/20230101000000").json()
    assert got["metadata"] == {"timestamp": "2023-01-01T00:00:00", "shotnum": 423648000000}
    assert got["channels"]["A"]["data"] is None          # NaN -> null
    assert got["channels"]["I"]["thumbnail"] == "iVBORw0KGgo="  # binary of base64 text


def test_logs_hold_no_query_strings(make_server):
    srv = make_server(records=0)
    srv.get("/records", params={"conditions": json.dumps({"_id": "s3cr3t-token-value"})})
    srv.get("/version?access_token=another-s3cr3t")
    log = srv.read_log()
    assert '"route":"/records"' in log
    assert "s3cr3t" not in log
