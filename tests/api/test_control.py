"""/users, favourite filters, preferences, sessions and maintenance messages
(docs/api.md §6), on whichever back-end pair runs."""
import json
import os
import re
import tempfile

import pytest
import requests

from conftest import OgdServer
from test_auth import ALL_ROUTES, claims, import_users, login, sha

OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


@pytest.fixture(scope="module")
def srv():
    d = tempfile.mkdtemp(prefix="ogd-test-")
    s = OgdServer(d, None)
    import_users(s, [
        {"_id": "frontend", "auth_type": "local", "sha256_password": sha("front")},
        {"_id": "backend", "auth_type": "local", "sha256_password": sha("back"),
         "authorised_routes": ALL_ROUTES},
        {"_id": "norout", "auth_type": "local", "sha256_password": sha("x")},
        {"_id": "no_auth_type_user", "sha256_password": sha("password")},
    ])
    s.start()
    s.backend = {"Authorization": "Bearer " + login(s, "backend", "back").json()}
    s.frontend = {"Authorization": "Bearer " + login(s, "frontend", "front").json()}
    yield s
    rc = s.stop()
    log = s.read_log()
    for secret in ("eyJ", "new-secret-1", "pw-local-1"):
        assert secret not in log, secret
    assert rc == 0
    assert not s.sanitizer_reports(), log[-20000:]


def call(srv, method, path, who="backend", **kw):
    headers = dict(kw.pop("headers", {}))
    if who:
        headers.update(getattr(srv, who))
    return srv.request(method, path, headers=headers, auth=False, **kw)


# ---------------------------------------------------------------- /users

def test_create_user_and_log_in(srv):
    body = {"_id": "newlocal", "auth_type": "local", "sha256_password": "pw-local-1",
            "authorised_routes": ["/submit/hdf POST"]}
    r = call(srv, "POST", "/users", json=body)
    assert r.status_code == 201 and r.json() == "newlocal"
    t = login(srv, "newlocal", "pw-local-1")
    assert t.status_code == 200
    assert claims(t.json())["authorised_routes"] == ["/submit/hdf POST"]
    assert "password: argon2id" in srv.user_cli("list").stdout
    dup = call(srv, "POST", "/users", json=body)
    assert dup.status_code == 400
    assert dup.json() == {"detail": "username field must not be the same as a pre existing "
                                    "user. You put: 'newlocal' "}


@pytest.mark.parametrize("body,detail", [
    ({"_id": "a", "auth_type": "local", "sha256_password": ""},
     "you must have a password with the password field"),
    ({"_id": "a", "auth_type": "other", "sha256_password": "p"},
     "auth_type must be either 'local' or 'FedID'. You put: 'other' "),
    ({"_id": "a", "auth_type": "FedID", "sha256_password": "p"},
     "for the auth_type you put (FedID), no password is required. Please remove this field"),
    ({"_id": "a", "auth_type": "local"},
     "for the auth_type you put (local), a password is required. Please add this field"),
    ({"_id": "a", "auth_type": "local", "sha256_password": "p",
      "authorised_routes": ["/users GET", "false path"]},
     "some of the routes entered are invalid:  ['false path'] "),
    ({"_id": "", "auth_type": "local", "sha256_password": "p"},
     "username field must not be filled. You put: '' "),
])
def test_create_user_errors(srv, body, detail):
    r = call(srv, "POST", "/users", json=body)
    assert r.status_code == 400
    assert r.json() == {"detail": detail}


def test_create_user_validation_and_auth(srv):
    assert call(srv, "POST", "/users", json={"auth_type": "local"}).status_code == 422
    assert call(srv, "POST", "/users", json={"_id": "x", "auth_type": "local",
                                            "sha256_password": "p",
                                            "email": "not-an-email"}).status_code == 422
    # 401 before 422: dependencies run before body validation (docs/api.md §3.4)
    r = call(srv, "POST", "/users", who=None, json={"auth_type": 1})
    assert r.status_code == 401
    # but a body that is not JSON is 422 even without a token
    r = call(srv, "POST", "/users", who=None, data="{bad")
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    r = call(srv, "GET", "/users", who="frontend")
    assert r.status_code == 403
    assert r.json() == {"detail": "User 'frontend' is not authorised to use endpoint '/users GET'"}


def test_get_users(srv):
    r = call(srv, "GET", "/users")
    assert r.status_code == 200
    users = {u["username"]: u for u in r.json()["users"]}
    assert users["frontend"] == {"username": "frontend", "auth_type": "local",
                                 "authorised_routes": []}
    assert users["backend"]["authorised_routes"] == ALL_ROUTES
    assert "no_auth_type_user" not in users
    assert all(set(u) == {"username", "auth_type", "authorised_routes"} for u in users.values())


def test_update_user(srv):
    call(srv, "POST", "/users", json={"_id": "upd", "auth_type": "local",
                                     "sha256_password": "old-pass",
                                     "authorised_routes": ["/users GET"]})
    r = call(srv, "PATCH", "/users", json={"_id": "upd", "add_authorised_routes":
                                          ["/maintenance PUT", "/users GET"],
                                          "remove_authorised_routes": ["/users GET"]})
    assert r.status_code == 200 and r.json() == "Updated upd"
    assert claims(login(srv, "upd", "old-pass").json())["authorised_routes"] == ["/maintenance PUT"]
    # Fix (docs/api.md §8 item 19): no updated_password keeps the password (the reference
    # erases it).
    assert login(srv, "upd", "old-pass").status_code == 200
    r = call(srv, "PATCH", "/users", json={"_id": "upd", "updated_password": "new-secret-1"})
    assert r.status_code == 200
    assert login(srv, "upd", "old-pass").status_code == 401
    assert login(srv, "upd", "new-secret-1").status_code == 200


def test_remove_routes_from_a_user_without_routes_grants_nothing(srv):
    """Fix (docs/api.md §8 item 19): the reference sets the routes to the list it was asked
    to remove."""
    r = call(srv, "PATCH", "/users", json={"_id": "norout",
                                          "remove_authorised_routes": ["/users POST"]})
    assert r.status_code == 200
    assert claims(login(srv, "norout", "x").json())["authorised_routes"] in (None, [])


@pytest.mark.parametrize("body,status,detail", [
    ({"_id": "backend", "updated_password": ""}, 400,
     "you must have a password with the password field"),
    ({"_id": "backend", "add_authorised_routes": ["nope"]}, 400,
     "some of the routes entered are invalid:  ['nope'] "),
    ({"_id": "backend", "remove_authorised_routes": ["it's"]}, 400,
     "some of the routes entered are invalid:  [\"it's\"] "),
    ({"_id": "nobody"}, 400, "Problem with query parameter input"),
    ({"_id": ""}, 400, "Problem with query parameter input"),
])
def test_update_user_errors(srv, body, status, detail):
    r = call(srv, "PATCH", "/users", json=body)
    assert r.status_code == status and r.json() == {"detail": detail}


def test_delete_user(srv):
    call(srv, "POST", "/users", json={"_id": "gone", "auth_type": "local",
                                     "sha256_password": "p"})
    r = call(srv, "DELETE", "/users/gone")
    assert r.status_code == 204 and r.content == b""
    r = call(srv, "DELETE", "/users/gone")
    assert r.status_code == 400
    assert r.json() == {"detail": "username field must exist in the database. You put: 'gone'"}
    assert login(srv, "gone", "p").status_code == 401


# ---------------------------------------------------------------- preferences

@pytest.mark.parametrize("value", ["string value", 123, 123.456, True, False, [1, "a"],
                                   {"a": {"b": None}}])
def test_preferences_keep_json_types(srv, value):
    r = call(srv, "POST", "/users/preferences", json={"name": "PREF", "value": value})
    assert r.status_code == 201 and r.content == b""
    assert r.headers["Location"] == "/users/preferences/PREF"
    g = call(srv, "GET", "/users/preferences/PREF")
    assert g.status_code == 200 and g.json() == value and type(g.json()) is type(value)


def test_preferences_are_per_user_and_deletable(srv):
    call(srv, "POST", "/users/preferences", json={"name": "mine", "value": 1})
    assert call(srv, "GET", "/users/preferences/mine", who="frontend").status_code == 404
    assert call(srv, "DELETE", "/users/preferences/mine").status_code == 204
    r = call(srv, "GET", "/users/preferences/mine")
    assert r.status_code == 404 and r.json() == {"detail": "No such attribute in database"}
    assert call(srv, "DELETE", "/users/preferences/mine").status_code == 404
    assert call(srv, "POST", "/users/preferences", json={"name": "x"}).status_code == 422
    assert call(srv, "POST", "/users/preferences",
                json={"name": "x", "value": None}).status_code == 422


def test_preference_names_are_opaque(srv):
    """Fix (docs/security.md item 25): dotted and $ names are plain names, not database paths."""
    for name in ("a.b", "$set"):
        assert call(srv, "POST", "/users/preferences",
                    json={"name": name, "value": 5}).status_code == 201
        assert call(srv, "GET", "/users/preferences/" + name).json() == 5


# ---------------------------------------------------------------- favourite filters

def test_favourite_filters(srv):
    assert call(srv, "GET", "/users/filters", who="frontend").json() == []
    r = call(srv, "POST", "/users/filters", params={"name": "F1", "filter": "a > b"})
    assert r.status_code == 201
    fid = r.json()
    assert OBJECT_ID.match(fid)
    assert r.headers["Location"] == "/users/filters/" + fid
    assert call(srv, "GET", "/users/filters/" + fid).json() == {"_id": fid, "name": "F1",
                                                                "filter": "a > b"}
    assert {"_id": fid, "name": "F1", "filter": "a > b"} in call(srv, "GET", "/users/filters").json()
    u = call(srv, "PATCH", "/users/filters/" + fid, params={"name": "F2"})
    assert u.status_code == 200 and u.json() == "Updated " + fid
    assert call(srv, "GET", "/users/filters/" + fid).json()["name"] == "F2"
    same = call(srv, "PATCH", "/users/filters/" + fid, params={"name": "F2"})
    assert same.status_code == 500
    assert same.json() == {"detail": f"Change to favourite filter {fid} has been unsuccessful"}
    assert call(srv, "PATCH", "/users/filters/" + fid).json() == "No updates necessary"
    e = call(srv, "PATCH", "/users/filters/" + fid, params={"name": "", "filter": "x"})
    assert e.status_code == 400 and e.json() == {"detail": "Name of filter cannot be empty"}
    # another user's filter is not visible
    o = call(srv, "GET", "/users/filters/" + fid, who="frontend")
    assert o.status_code == 404
    assert o.json() == {"detail": f"Favourite filter {fid} cannot be found for user 'frontend'"}
    assert call(srv, "DELETE", "/users/filters/" + fid).status_code == 204
    d = call(srv, "DELETE", "/users/filters/" + fid)
    assert d.status_code == 404
    assert d.json() == {"detail": f"Favourite filter {fid} cannot be found for user 'backend'"}


def test_favourite_filter_errors(srv):
    r = call(srv, "GET", "/users/filters/nothex")
    assert r.status_code == 400 and r.json() == {"detail": "ID provided is not a valid ObjectId"}
    r = call(srv, "GET", "/users/filters/" + "0" * 24)
    assert r.status_code == 404
    assert r.json() == {"detail": f"Favourite filter {'0' * 24} cannot be found for user 'backend'"}
    r = call(srv, "POST", "/users/filters", params={"name": "", "filter": "x"})
    assert r.status_code == 400 and r.json() == {"detail": "Filter and its name are required"}
    assert call(srv, "POST", "/users/filters", params={"name": "x"}).status_code == 422


FILTER_METHODS = [("GET", None), ("PATCH", {"name": "renamed", "filter": "c < d"}),
                  ("DELETE", None)]


@pytest.mark.parametrize("method,params", FILTER_METHODS)
def test_unknown_favourite_filter_is_404(srv, method, params):
    """Fix (issue 14): the reference answers 500 for a filter id the caller does not have
    (`Unknown error` on GET and PATCH, `Change to favourite filter <id> has been
    unsuccessful` on DELETE); ogd answers 404 naming the id."""
    fid = os.urandom(12).hex()
    r = call(srv, method, "/users/filters/" + fid, params=params)
    assert r.status_code == 404
    assert r.json() == {"detail": f"Favourite filter {fid} cannot be found for user 'backend'"}


def test_another_users_favourite_filter_is_404_and_left_alone(srv):
    mine = {"name": "owned", "filter": "a > b"}
    fid = call(srv, "POST", "/users/filters", params=mine).json()
    for method, params in FILTER_METHODS:
        r = call(srv, method, "/users/filters/" + fid, who="frontend", params=params)
        assert r.status_code == 404, method
        assert r.json() == {
            "detail": f"Favourite filter {fid} cannot be found for user 'frontend'"}, method
    assert call(srv, "GET", "/users/filters/" + fid).json() == {"_id": fid, **mine}
    assert {"_id": fid, **mine} in call(srv, "GET", "/users/filters").json()
    assert all(f["_id"] != fid for f in call(srv, "GET", "/users/filters", who="frontend").json())
    assert call(srv, "DELETE", "/users/filters/" + fid).status_code == 204


@pytest.mark.parametrize("bad", ["nothex", "0" * 23, "0" * 25, "g" * 24, "0" * 22 + "z0"])
@pytest.mark.parametrize("method,params", FILTER_METHODS)
def test_malformed_favourite_filter_id_is_400(srv, method, params, bad):
    r = call(srv, method, "/users/filters/" + bad, params=params)
    assert r.status_code == 400
    assert r.json() == {"detail": "ID provided is not a valid ObjectId"}


# ---------------------------------------------------------------- sessions

def test_sessions(srv):
    r = call(srv, "POST", "/sessions", params={"name": "S1", "summary": "Sum",
                                              "auto_saved": "true"}, json={"myData": 123})
    assert r.status_code == 201
    sid = r.json()
    assert OBJECT_ID.match(sid) and r.headers["Location"] == "/sessions/" + sid
    g = call(srv, "GET", "/sessions/" + sid).json()
    assert list(g) == ["_id", "username", "name", "summary", "timestamp", "auto_saved", "session"]
    assert g["username"] == "backend" and g["session"] == {"myData": 123}
    assert g["auto_saved"] is True
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$", g["timestamp"])
    lst = call(srv, "GET", "/sessions/list").json()
    assert {"_id": sid, "name": "S1", "summary": "Sum", "timestamp": g["timestamp"],
            "auto_saved": True} in lst
    assert all(s["_id"] != sid for s in call(srv, "GET", "/sessions/list", who="frontend").json())
    dup = call(srv, "POST", "/sessions", params={"name": "S1", "summary": "x",
                                                "auto_saved": "no"}, json={})
    assert dup.status_code == 400
    assert dup.json() == {"detail": "Session name already exists for this user."}
    u = call(srv, "PATCH", "/sessions/" + sid, params={"name": "S1", "summary": "new",
                                                      "auto_saved": "0"}, json={"v": 2})
    assert u.status_code == 200 and u.json() == "Updated " + sid
    g = call(srv, "GET", "/sessions/" + sid).json()
    assert g["summary"] == "new" and g["auto_saved"] is False and g["session"] == {"v": 2}
    assert call(srv, "DELETE", "/sessions/" + sid).status_code == 204
    nf = call(srv, "GET", "/sessions/" + sid)
    assert nf.status_code == 404 and nf.json() == {"detail": "User session cannot be found"}


def test_session_errors(srv):
    bad = call(srv, "GET", "/sessions/xyz")
    assert bad.status_code == 400 and bad.json() == {"detail": "ID provided is not a valid ObjectId"}
    assert call(srv, "POST", "/sessions", params={"summary": "s", "auto_saved": "maybe"},
                json={}).status_code == 422
    assert call(srv, "POST", "/sessions", params={"summary": "s", "auto_saved": "1"},
                json=[1]).status_code == 422
    r = call(srv, "POST", "/sessions", params={"auto_saved": "1"}, json={})
    assert r.status_code == 500 and r.json() == {"detail": "Unknown error"}
    r = call(srv, "PATCH", "/sessions/" + "0" * 24, params={"summary": "s", "auto_saved": "1"},
             json={})
    assert r.status_code == 404
    assert r.json() == {"detail": "User session cannot be found in the database"}


def test_sessions_list_in_the_order_saved(srv):
    """Fix (issue 14): /sessions/list is in creation order, as the reference's natural
    order. Pairs saved back to back usually share a second, where ids with random bytes
    after the timestamp came back in either order. Either request may land on either
    worker; the order must hold every time."""
    saved = []
    for i in range(20):
        pair = []
        for j in range(2):
            r = call(srv, "POST", "/sessions", params={"name": f"order {i}.{j}", "summary": "s",
                                                      "auto_saved": "false"}, json={"i": i})
            assert r.status_code == 201, r.text
            pair.append(r.json())
        listed = [s["_id"] for s in call(srv, "GET", "/sessions/list").json()]
        assert listed.index(pair[0]) < listed.index(pair[1]), (i, pair, listed)
        saved += pair
    listed = [s["_id"] for s in call(srv, "GET", "/sessions/list").json()]
    assert [s for s in listed if s in saved] == saved
    for sid in saved:
        assert call(srv, "DELETE", "/sessions/" + sid).status_code == 204


def test_sessions_belong_to_their_owner(srv):
    """Fix (docs/security.md item 21): the reference lets any user read and overwrite (take
    over) any session."""
    sid = call(srv, "POST", "/sessions", params={"name": "private", "summary": "s",
                                                "auto_saved": "false"}, json={"x": 1}).json()
    r = call(srv, "GET", "/sessions/" + sid, who="frontend")
    assert r.status_code == 403
    r = call(srv, "PATCH", "/sessions/" + sid, who="frontend",
             params={"name": "stolen", "summary": "s", "auto_saved": "false"}, json={})
    assert r.status_code == 403
    r = call(srv, "DELETE", "/sessions/" + sid, who="frontend")
    assert r.status_code == 403
    assert r.json() == {"detail": "Session attempting to be deleted does not belong to current user"}
    g = call(srv, "GET", "/sessions/" + sid).json()
    assert g["username"] == "backend" and g["name"] == "private"


# ---------------------------------------------------------------- maintenance

@pytest.mark.parametrize("path,body", [
    ("/maintenance", {"show": True, "message": "message"}),
    ("/scheduled_maintenance", {"show": True, "message": "soon", "severity": "warning"}),
])
def test_maintenance(srv, path, body):
    r = call(srv, "PUT", path, json=body)
    assert r.status_code == 200 and r.content == b"null"
    fname = "maintenance.json" if path == "/maintenance" else "scheduled_maintenance.json"
    with open(os.path.join(srv.data_dir, fname)) as f:
        assert json.load(f) == body
    assert srv.get(path, auth=False).json() == body
    f = call(srv, "PUT", path, who="frontend", json=body)
    assert f.status_code == 403
    assert f.json() == {"detail": f"User 'frontend' is not authorised to use endpoint '{path} PUT'"}
    assert call(srv, "PUT", path, json={"show": "maybe", "message": "x",
                                       "severity": "info"}).status_code == 422
    # no temporary files left behind: the write is a rename (fix: docs/security.md item 27)
    assert not [n for n in os.listdir(srv.data_dir) if ".tmp." in n]


def test_scheduled_maintenance_severity(srv):
    r = call(srv, "PUT", "/scheduled_maintenance",
             json={"show": False, "message": "", "severity": "fatal"})
    assert r.status_code == 422


def test_maintenance_readers_never_see_a_torn_file(srv):
    """Fix (docs/security.md item 27): the reference truncates and rewrites in place, so a
    reader racing a writer can read a partial file (500)."""
    import threading
    stop = threading.Event()
    statuses = []

    def reader():
        while not stop.is_set():
            statuses.append(srv.get("/maintenance", auth=False).status_code)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(60):
            r = call(srv, "PUT", "/maintenance", json={"show": bool(i % 2),
                                                      "message": str(i) * 20000})
            assert r.status_code == 200
    finally:
        stop.set()
        t.join()
    assert statuses and set(statuses) == {200}


def test_concurrent_changes_to_one_user_are_all_kept(srv):
    """Preferences and filters live in the user's document; changes made at the same time
    (on both workers) are redone on a fresh copy instead of overwriting each other."""
    from concurrent.futures import ThreadPoolExecutor
    names = [f"CONC_{i}" for i in range(40)]

    def put(name):
        return call(srv, "POST", "/users/preferences", json={"name": name, "value": name}).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(put, names))
        filters = list(pool.map(lambda i: call(srv, "POST", "/users/filters",
                                               params={"name": f"cf{i}", "filter": "a"}).json(),
                                range(20)))
    assert set(statuses) == {201}
    for name in names:
        assert call(srv, "GET", "/users/preferences/" + name).json() == name
    stored = {f["_id"] for f in call(srv, "GET", "/users/filters").json()}
    assert set(filters) <= stored
