"""DELETE /records/{id_} (document and every object, both key layouts) and the demo data
set that `make run` serves."""
import json
import os


def objects_of(srv, record_id):
    d = f"{record_id[0:4]}/{record_id[4:6]}/{record_id[6:8]}/{record_id[8:]}/"
    return [k for k in srv.object_keys() if k.split("/", 1)[1].startswith((d, record_id + "/"))]


def test_demo_data_is_served(make_server):
    srv = make_server(records=12, images=True)
    assert srv.get("/records/count").json() == 12
    manifest = srv.get("/channels").json()["channels"]
    types = {c["type"] for c in manifest.values()}
    assert {"scalar", "image", "waveform", "vector"} <= types
    rec = srv.get("/records/20230605080000").json()
    assert rec["metadata"]["shotnum"] == 423648000000
    dtypes = {c["metadata"]["channel_dtype"] for c in rec["channels"].values()}
    assert {"scalar", "image", "waveform", "vector"} <= dtypes
    images = [n for n, c in rec["channels"].items() if c["metadata"]["channel_dtype"] == "image"]
    assert rec["channels"][images[0]]["image_path"].startswith("2023/06/05/080000/")
    assert len(objects_of(srv, "20230605080000")) >= 4


def test_delete_removes_document_and_objects(make_server):
    srv = make_server(records=5, images=True)
    rid = "20230605080010"
    # an object under the legacy layout too
    srv.put_object(f"waveforms/{rid}/OLD.json", b'{"x":[1],"y":[2]}')
    assert objects_of(srv, rid)
    r = srv.get("/records/" + rid)
    assert r.status_code == 200
    import requests
    r = srv.request("DELETE", "/records/" + rid)
    assert r.status_code == 204 and r.content == b""
    assert srv.get("/records/" + rid).status_code == 404
    assert objects_of(srv, rid) == []
    assert srv.get("/records/count").json() == 4
    # other records keep their objects
    assert objects_of(srv, "20230605080000")
    # unknown ids are fine too
    assert srv.request("DELETE", "/records/19990101000000").status_code == 204


def image_answers(srv, offset):
    """(pid, status) of each /images/{id}/{channel} request the log holds past offset."""
    with open(srv.log_path, "rb") as f:
        f.seek(offset)
        lines = f.read().decode(errors="replace").splitlines()
    out = []
    for line in lines:
        try:
            e = json.loads(line)
        except ValueError:
            continue
        route = e.get("route", "")
        if e.get("msg") == "request" and route.startswith("/images/{") and \
                not route.endswith("crosshair"):
            out.append((e["pid"], e["status"]))
    return out


def test_deleted_images_are_served_by_no_worker(make_server):
    # Every worker first holds the image in its cache; after the DELETE has answered, no
    # worker serves it again (each one's own cache is dropped through the node's write
    # log, not only the deleting worker's). Connections are spread over the workers by
    # the kernel: the loops stop once each worker is seen in the log, with a bound.
    srv = make_server(records=3, images=True)
    assert len(srv.worker_pids()) == 2
    rid = "20230605080000"
    rec = srv.get("/records/" + rid).json()
    ch = next(n for n, c in rec["channels"].items()
              if c["metadata"]["channel_dtype"] == "image")
    url = f"/images/{rid}/{ch}"
    start = os.path.getsize(srv.log_path)
    for _ in range(400):
        assert srv.get(url).status_code == 200
        if len({pid for pid, st in image_answers(srv, start) if st == 200}) == 2:
            break
    else:
        raise AssertionError("one worker took every connection: %r" % image_answers(srv, start))
    assert srv.request("DELETE", "/records/" + rid).status_code == 204
    after = os.path.getsize(srv.log_path)
    seen = []
    for _ in range(400):
        seen.append(srv.get(url).status_code)
        if seen[-1] != 404 or \
                len({pid for pid, st in image_answers(srv, after) if st == 404}) == 2:
            break
    else:
        raise AssertionError("one worker took every connection: %r" % image_answers(srv, after))
    assert set(seen) == {404}, "served after its DELETE: %r" % image_answers(srv, after)


def test_demo_is_deterministic_and_skips_when_not_empty(make_server):
    a = make_server(records=3, images=False)
    b = make_server(records=3, images=False)
    ra = a.get("/records", params={"conditions": json.dumps({})}).json()
    rb = b.get("/records", params={"conditions": json.dumps({})}).json()
    assert ra == rb
    a.demo(10, False)  # not empty: nothing is added
    assert a.get("/records/count").json() == 3
