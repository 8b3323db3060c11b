"""GET /channels, /channels/{name}, /channels/summary/{name} (docs/api.md §5.13-§5.15)."""


def test_manifest_is_most_recent_with_type_default(fixture_server):
    r = fixture_server.get("/channels")
    assert r.status_code == 200
    m = r.json()
    assert m["_id"] == "20240101120000"
    assert set(m["channels"]) == {"SER-202-BI-RH-1", "TS-202-TSM-P1-CAM-2-FWHMX",
                                  "CM-202-CVC-CAM-1", "STR-CHANNEL"}
    rh = m["channels"]["SER-202-BI-RH-1"]
    assert rh == {"name": "Relative humidity 202:1", "path": "/Building/Room 202",
                  "type": "scalar", "notation": "normal", "units": "%RH"}
    assert list(rh.keys()) == ["name", "path", "type", "notation", "units"]
    fw = m["channels"]["TS-202-TSM-P1-CAM-2-FWHMX"]
    assert list(fw.keys()) == ["name", "path", "type", "notation", "precision"]


def test_one_channel(fixture_server):
    r = fixture_server.get("/channels/CM-202-CVC-CAM-1")
    assert r.json() == {"name": "Camera", "path": "/CM-202/CVC", "type": "image"}
    r = fixture_server.get("/channels/NOPE")
    assert r.status_code == 400
    assert r.json() == {"detail": "Channel 'NOPE' cannot be found"}
    # a channel only in an older manifest is not found
    assert fixture_server.get("/channels/OLD").status_code == 400


def test_summary_alone_is_channel_named_summary(fixture_server):
    r = fixture_server.get("/channels/summary")
    assert r.status_code == 400
    assert r.json() == {"detail": "Channel 'summary' cannot be found"}


def test_channel_summary(fixture_server):
    r = fixture_server.get("/channels/summary/SER-202-BI-RH-1")
    assert r.status_code == 200
    assert r.json() == {
        "first_date": "2023-06-05T08:00:00",
        "most_recent_date": "2023-06-06T12:00:00",
        "recent_sample": [{"2023-06-06T12:00:00": 48.0},
                          {"2023-06-05T16:00:00": 47.0},
                          {"2023-06-05T10:00:00": 50.25}],
    }


def test_channel_summary_image_and_missing(fixture_server):
    r = fixture_server.get("/channels/summary/CM-202-CVC-CAM-1")
    sample = r.json()["recent_sample"]
    assert len(sample) == 3
    assert all(isinstance(list(s.values())[0], str) for s in sample)
    r = fixture_server.get("/channels/summary/NOPE")
    assert r.status_code == 400
    assert r.json() == {"detail": "There is no timestamp data for NOPE"}


def test_no_manifest_is_500(make_server):
    srv = make_server(records=0)
    r = srv.get("/channels")
    assert r.status_code == 500
    assert r.json() == {"detail": "Unknown error"}
