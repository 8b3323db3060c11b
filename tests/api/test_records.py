"""GET /records, /records/count, /records/{id_}, /records/range_converter against the
hand-written fixture records (tests/api/data/records.jsonl), per docs/api.md §4-§5."""
import json

import pytest
import requests

ALL = ["20230605080000", "20230605080300", "20230605090000", "20230605100000",
       "20230605160000", "20230606120000"]


def records(srv, **params):
    params.setdefault("conditions", "{}")
    r = srv.get("/records", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()


def ids(srv, conditions, **params):
    return [rec["_id"] for rec in records(srv, conditions=json.dumps(conditions), **params)]


def count(srv, conditions):
    r = srv.get("/records/count", params={"conditions": json.dumps(conditions)})
    assert r.status_code == 200, r.text
    return r.json()


def test_all_records_natural_order(fixture_server):
    assert ids(fixture_server, {}) == ALL
    assert count(fixture_server, {}) == 6


def test_conditions_absent_means_everything(fixture_server):
    r = fixture_server.get("/records")
    assert r.status_code == 200
    assert len(r.json()) == 6
    assert fixture_server.get("/records/count").json() == 6


def test_spec_projection_example(fixture_server):
    got = records(fixture_server, projection=["metadata.shotnum", "metadata.timestamp"],
                  order="metadata.shotnum ASC", limit=2,
                  conditions=json.dumps({"metadata.shotnum": {"$exists": True}}))
    assert got == [
        {"_id": "20230605080000", "metadata": {"shotnum": 423648000000,
                                                "timestamp": "2023-06-05T08:00:00"}},
        {"_id": "20230605080300", "metadata": {"shotnum": 423648001800,
                                                "timestamp": "2023-06-05T08:03:00"}},
    ]


def test_projection_of_channel_data(fixture_server):
    got = records(fixture_server, projection="channels.TS-202-TSM-P1-CAM-2-FWHMX.data", limit=1)
    assert got == [{"_id": "20230605080000",
                    "channels": {"TS-202-TSM-P1-CAM-2-FWHMX": {"data": 46.402748185135856}}}]


def test_projection_subfield_missing_gives_empty_channel(fixture_server):
    got = records(fixture_server, projection="channels.CM-202-CVC-CAM-1.data", limit=1)
    assert got == [{"_id": "20230605080000", "channels": {"CM-202-CVC-CAM-1": {}}}]


def test_projection_channel_metadata(fixture_server):
    got = records(fixture_server, projection="channels.CM-202-CVC-CAM-1.metadata", limit=1)
    assert got[0]["channels"]["CM-202-CVC-CAM-1"] == {"metadata": {
        "channel_dtype": "image", "exposure_time_s": 0.0012, "gain": 0.7862722445526737,
        "bit_depth": 12}}


def test_projection_collision_is_400(fixture_server):
    r = fixture_server.get("/records", params={"conditions": "{}",
                                               "projection": ["metadata", "metadata.shotnum"]})
    assert r.status_code == 400
    assert "collision" in r.json()["detail"]


def test_full_record_shape(fixture_server):
    rec = records(fixture_server, limit=1)[0]
    assert list(rec.keys()) == ["_id", "metadata", "channels"]
    assert list(rec["metadata"].keys()) == ["epac_ops_data_version", "timestamp",
                                            "active_area", "shotnum"]
    assert rec["metadata"]["timestamp"] == "2023-06-05T08:00:00"
    assert list(rec["channels"].keys()) == ["SER-202-BI-RH-1", "TS-202-TSM-P1-CAM-2-FWHMX",
                                            "CM-202-CVC-CAM-1"]
    assert list(rec["channels"]["CM-202-CVC-CAM-1"].keys()) == ["metadata", "image_path",
                                                                "thumbnail"]


def test_version_only_when_stored(fixture_server):
    recs = {r["_id"]: r for r in records(fixture_server)}
    assert recs["20230605100000"]["version"] == 2
    assert list(recs["20230605100000"].keys())[:2] == ["_id", "version"]
    assert "version" not in recs["20230605080000"]


def test_truncate_cuts_thumbnails_to_50(fixture_server):
    rec = records(fixture_server, limit=1, truncate="true")[0]
    thumb = rec["channels"]["CM-202-CVC-CAM-1"]["thumbnail"]
    assert len(thumb) == 50
    full = records(fixture_server, limit=1)[0]["channels"]["CM-202-CVC-CAM-1"]["thumbnail"]
    assert full.startswith(thumb) and len(full) > 50


def test_skip_limit_and_negative_limit(fixture_server):
    assert ids(fixture_server, {}, skip=2, limit=2) == ALL[2:4]
    assert ids(fixture_server, {}, limit=-2) == ALL[:2]
    assert fixture_server.get("/records", params={"skip": -1}).status_code == 400


def test_order_compound_and_desc(fixture_server):
    got = ids(fixture_server, {}, order=["metadata.active_area desc", "_id desc"])
    assert got == ["20230605100000", "20230606120000", "20230605160000", "20230605090000",
                   "20230605080300", "20230605080000"]


def test_order_channel_data_puts_missing_and_null_first(fixture_server):
    got = ids(fixture_server, {}, order="channels.TS-202-TSM-P1-CAM-2-FWHMX.data asc")
    # 090000 lacks a value (null), 160000 has null; then numbers ascending
    assert set(got[:2]) == {"20230605090000", "20230605160000"}
    assert got[2:] == ["20230605100000", "20230605080300", "20230606120000", "20230605080000"]


@pytest.mark.parametrize("order", ["metadata.shotnum", "metadata.shotnum up",
                                   "metadata.shotnum  asc"])
def test_bad_order_is_400(fixture_server, order):
    r = fixture_server.get("/records", params={"order": order})
    assert r.status_code == 400
    assert order in r.json()["detail"]


def test_filters(fixture_server):
    s = fixture_server
    assert ids(s, {"metadata.shotnum": 423648000000}) == ["20230605080000"]
    assert count(s, {"metadata.shotnum": {"$gt": 423648036000}}) == 2
    assert ids(s, {"metadata.shotnum": {"$exists": False}}) == ["20230606120000"]
    assert ids(s, {"channels.STR-CHANNEL.data": "beam on"}) == ["20230605080300"]
    assert ids(s, {"channels.STR-CHANNEL": {"$exists": True}}) == ["20230605080300",
                                                                   "20230605090000"]
    # $ne matches records lacking the field (Mongo semantics)
    assert len(ids(s, {"channels.STR-CHANNEL.data": {"$ne": "beam on"}})) == 5
    # type bracketing: a number never matches a string value
    assert ids(s, {"channels.STR-CHANNEL.data": {"$gt": 0}}) == []
    # null matches missing and null
    assert ids(s, {"channels.TS-202-TSM-P1-CAM-2-FWHMX.data": None}) == ["20230605090000",
                                                                          "20230605160000"]
    assert ids(s, {"metadata.active_area": {"$in": ["ea2", "zz"]}}) == ["20230605100000"]
    assert ids(s, {"$or": [{"metadata.shotnum": 423648000000}, {"_id": "20230606120000"}]}) == [
        "20230605080000", "20230606120000"]
    assert ids(s, {"$nor": [{"metadata.active_area": "ea1"}]}) == ["20230605100000"]
    assert ids(s, {"channels.SER-202-BI-RH-1.data": {"$not": {"$gt": 45.5}}}) == [
        "20230605080300", "20230605090000"]


def test_expr_channel_vs_channel(fixture_server):
    cond = {"$expr": {"$gt": ["$channels.SER-202-BI-RH-1.data",
                              "$channels.TS-202-TSM-P1-CAM-2-FWHMX.data"]}}
    got = ids(fixture_server, cond)
    # RH > FWHMX everywhere a FWHMX number exists; a null/missing FWHMX sorts lowest
    assert got == ALL


def test_frontend_conditions(fixture_server):
    """The exact shape the web client builds (docs/api.md §4.3)."""
    cond = {"$and": [{"metadata.timestamp": {"$gte": "2023-06-05T08:00:00",
                                             "$lte": "2023-06-05T09:00:59"}},
                     {"$and": [{"channels.SER-202-BI-RH-1.data": {"$lt": 48}},
                               {"channels.TS-202-TSM-P1-CAM-2-FWHMX.data": {"$not": {"$gt": 41}}}]}],
            "$or": [{"channels.SER-202-BI-RH-1": {"$exists": True}},
                    {"channels.TS-202-TSM-P1-CAM-2-FWHMX": {"$exists": True}}]}
    assert ids(fixture_server, cond) == ["20230605080300", "20230605090000"]
    assert count(fixture_server, cond) == 2


def test_date_conversion_rules(fixture_server):
    s = fixture_server
    assert count(s, {"metadata.timestamp": {"$gt": "2023-06-05T10:00:00"}}) == 2
    # non-zero-padded fields are still dates
    assert count(s, {"metadata.timestamp": {"$gt": "2023-6-5T10:0:0"}}) == 2
    # strings directly inside arrays are not converted: they never equal a date
    assert count(s, {"metadata.timestamp": {"$in": ["2023-06-05T08:00:00"]}}) == 0
    # fractional seconds are not converted either
    assert count(s, {"metadata.timestamp": {"$gte": "2023-06-05T08:00:00.5"}}) == 0


@pytest.mark.parametrize("cond,needle", [
    ({"metadata.shotnum": {"$where": 1}}, "$where"),
    ({"$where": "sleep(1)"}, "$where"),
    ({"$and": []}, "$and"),
    ({"$or": {}}, "$or"),
    ({"metadata.shotnum": {"$gt": 1, "plain": 2}}, ""),
])
def test_bad_filters_are_400(fixture_server, cond, needle):
    r = fixture_server.get("/records", params={"conditions": json.dumps(cond)})
    assert r.status_code == 400, r.text
    assert needle in r.json()["detail"]
    r = fixture_server.get("/records/count", params={"conditions": json.dumps(cond)})
    assert r.status_code == 400


def test_injection_in_keys_and_values_is_inert(fixture_server):
    s = fixture_server
    for key in ["channels.X'); DROP TABLE records;--.data", 'metadata.a"b', "x\\y"]:
        r = s.get("/records/count", params={"conditions": json.dumps({key: "1"})})
        assert r.status_code in (200, 400), r.text
    # a NUL in a key is not accepted as JSON text at all
    r = s.get("/records/count", params={"conditions": json.dumps({"_id\u0000x": "1"})})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    assert count(s, {"_id": "x' OR '1'='1"}) == 0
    assert count(s, {}) == 6


def test_conditions_must_be_object_and_json(fixture_server):
    r = fixture_server.get("/records", params={"conditions": "[1]"})
    assert r.status_code == 400
    r = fixture_server.get("/records", params={"conditions": "{not json"})
    assert r.status_code == 422
    detail = r.json()["detail"][0]
    assert detail["type"] == "json_invalid"
    assert detail["loc"] == ["query", "conditions"]


@pytest.mark.parametrize("params,name,kind", [
    ({"skip": "x"}, "skip", "int_parsing"),
    ({"limit": "1.5"}, "limit", "int_parsing"),
    ({"truncate": "maybe"}, "truncate", "bool_parsing"),
    ({"lower_level": "-1"}, "lower_level", "greater_than_equal"),
    ({"upper_level": "256"}, "upper_level", "less_than_equal"),
])
def test_parameter_validation_is_422(fixture_server, params, name, kind):
    r = fixture_server.get("/records", params=params)
    assert r.status_code == 422
    d = r.json()["detail"][0]
    assert d["loc"] == ["query", name] and d["type"] == kind


def test_max_documents_caps_silently(make_server):
    srv = make_server(config={"mongodb": {"max_documents": 3}}, records=0)
    srv.stop()
    srv.import_fixtures()
    srv.start()
    assert len(srv.get("/records", params={"conditions": "{}"}).json()) == 3
    assert len(srv.get("/records", params={"limit": 5}).json()) == 3
    assert srv.get("/records/count").json() == 6


def test_get_one(fixture_server):
    r = fixture_server.get("/records/20230605080300")
    assert r.status_code == 200
    rec = r.json()
    assert rec["_id"] == "20230605080300"
    assert rec["channels"]["STR-CHANNEL"]["data"] == "beam on"
    r = fixture_server.get("/records/20230605080300", params={"truncate": "1"})
    assert len(r.json()["channels"]["CM-202-CVC-CAM-1"]["thumbnail"]) == 50


def test_get_one_missing_and_conditions(fixture_server):
    r = fixture_server.get("/records/19990101000000")
    assert r.status_code == 404
    assert r.json() == {"detail": "Record cannot be found"}
    # conditions are ANDed, not date-converted, and a _id in them overrides the path
    r = fixture_server.get("/records/20230605080300",
                           params={"conditions": json.dumps({"metadata.active_area": "ea2"})})
    assert r.status_code == 404
    r = fixture_server.get("/records/whatever",
                           params={"conditions": json.dumps({"_id": "20230605080000"})})
    assert r.status_code == 200 and r.json()["_id"] == "20230605080000"


def test_range_converter(fixture_server):
    s = fixture_server
    r = s.get("/records/range_converter",
              params={"shotnum_range": json.dumps({"min": 423648036000, "max": 423648288000})})
    assert r.json() == {"from": "2023-06-05T09:00:00", "to": "2023-06-05T16:00:00"}
    r = s.get("/records/range_converter",
              params={"shotnum_range": json.dumps({"min": 1234, "max": 423648072000})})
    assert r.json() == {"from": "2023-06-05T08:00:00", "to": "2023-06-05T10:00:00"}
    r = s.get("/records/range_converter", params={"date_range": json.dumps(
        {"from": "2023-06-05 08:16:19", "to": "2023-06-05T16:00:00"})})
    assert r.json() == {"min": 423648036000, "max": 423648288000}
    r = s.get("/records/range_converter", params={"date_range": json.dumps(
        {"from": "2023-06-05T09:00:00+01:00", "to": "2023-06-05T09:00:00+00:00"})})
    assert r.json() == {"min": 423648000000, "max": 423648036000}


def test_range_converter_errors(fixture_server):
    s = fixture_server
    r = s.get("/records/range_converter", params={
        "shotnum_range": json.dumps({"min": 1, "max": 2}),
        "date_range": json.dumps({"from": "2023-06-05T08:00:00", "to": "2023-06-05T09:00:00"})})
    assert r.status_code == 400
    assert r.json()["detail"] == "Query parameters cannot contain both date_range and shotnum_range"
    r = s.get("/records/range_converter")
    assert r.status_code == 500
    assert r.json()["detail"] == "Both date range and shot number range are None"
    r = s.get("/records/range_converter", params={"shotnum_range": json.dumps({"min": 5, "max": 1})})
    assert (r.status_code, r.json()["detail"]) == (400, "max cannot be less than min value")
    r = s.get("/records/range_converter", params={"date_range": json.dumps(
        {"from": "2023-06-05T09:00:00", "to": "2023-06-05T08:00:00"})})
    assert (r.status_code, r.json()["detail"]) == (400, "to cannot be less than from value")
    r = s.get("/records/range_converter", params={"shotnum_range": json.dumps({"min": 1, "max": 2})})
    assert (r.status_code, r.json()["detail"]) == (404, NO_RESULTS)
    r = s.get("/records/range_converter", params={"shotnum_range": json.dumps({"min": "x", "max": 2})})
    assert r.status_code == 400
    assert "min" in r.json()["detail"]


NO_RESULTS = "No results have been found from database query"


def metrics_by_class(session, srv, route):
    """{status class: count} of GET route in /metrics, read on the caller's connection."""
    r = session.get(srv.url + "/metrics", timeout=30)
    assert r.status_code == 200
    out = {}
    prefix = 'ogd_http_requests_total{method="GET",route="%s",status="' % route
    for line in r.text.splitlines():
        if line.startswith(prefix):
            name, value = line.rsplit(" ", 1)
            out[name[len(prefix):-2]] = float(value)
    return out


@pytest.mark.parametrize("params", [
    # the web client's default: a date range with no records in it
    {"date_range": {"from": "2000-01-01T00:00:00", "to": "2000-01-01T23:59:59"}},
    {"shotnum_range": {"min": 1, "max": 2}},
    # valid input of the other kind (ints for dates, floats or dates for shot numbers):
    # the reference's query runs and matches nothing, ogd knows that without asking
    {"date_range": {"from": 1, "to": 2}},
    {"shotnum_range": {"min": 1.5, "max": 2.5}},
    {"shotnum_range": {"min": "2023-06-05T08:00:00", "max": "2023-06-05T16:00:00"}},
])
def test_range_converter_nothing_found_is_404_not_a_server_error(fixture_server, params):
    """An empty range is 404 with the reference's text (the reference answers 500): the web
    client asks for the last 24 hours on every page load, and a day without shots is not a
    server failure, so /metrics must not count it as a 5xx."""
    s = fixture_server
    route = "/records/range_converter"
    # One keep-alive connection: the next request on it is read only after the previous
    # one has finished, and a request is counted when it finishes, so /metrics already
    # includes it (no waiting, whichever worker serves the connection).
    with requests.Session() as session:
        session.headers["Authorization"] = "Bearer " + s.token
        before = metrics_by_class(session, s, route)
        r = session.get(s.url + route, params={k: json.dumps(v) for k, v in params.items()},
                        timeout=30)
        assert r.status_code == 404, r.text
        assert r.json() == {"detail": NO_RESULTS}
        after = metrics_by_class(session, s, route)
    assert after.get("5xx", 0) == before.get("5xx", 0)
    assert after.get("4xx", 0) == before.get("4xx", 0) + 1
