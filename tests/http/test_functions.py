"""GET /functions/tokens, POST /functions/validate (spec/functions.md §B4-B5) and functions
evaluated in GET /records (spec/data.md §5)."""
import json

import pytest

IMG = "PM-201-FE-CAM-1"      # demo image channel (12-bit)
WAV = "PM-201-FE-PD"         # demo waveform channel
VEC = "TS-202-TSM-WFS-COEF"  # demo vector channel
SCA = "PM-201-FE-EM"         # demo scalar channel


@pytest.fixture(scope="module")
def srv(request):
    # one demo server for the module (module-scoped wrapper around make_server's logic)
    import shutil
    import tempfile
    from conftest import OgdServer
    d = tempfile.mkdtemp(prefix="ogd-test-")
    s = OgdServer(d, None)
    s.demo(6, True)
    s.start()
    yield s
    rc = s.stop()
    log = s.read_log()
    reports = s.sanitizer_reports()
    shutil.rmtree(d, ignore_errors=True)
    assert rc == 0
    assert not reports, log[-20000:]


def validate(srv, fns):
    return srv.request("POST", "/functions/validate", json=fns)


def fn(name, expr):
    return {"name": name, "expression": expr}


def test_tokens(srv):
    r = srv.get("/functions/tokens")
    assert r.status_code == 200
    toks = r.json()
    assert [t["symbol"] for t in toks] == [
        "+", "-", "*", "/", "**", "(", ")", "mean", "exp", "log", "max", "min", "background",
        "centre", "centroid_x", "centroid_y", "falling", "fwhm", "fwhm_x", "fwhm_y",
        "integrate", "rising"]
    assert toks[0] == {"symbol": "+", "name": "Add"}
    assert toks[4] == {"symbol": "**", "name": "Raise to power"}
    assert toks[6] == {"symbol": ")", "name": "Close bracket"}
    assert toks[17]["name"] == "Full Width Half Maximum"
    assert toks[15]["name"] == "Centroid (y)"
    for t in toks[:7]:
        assert list(t) == ["symbol", "name"]
    for t in toks[7:]:
        assert list(t) == ["symbol", "name", "details"] and t["details"]


def test_validate_types(srv):
    r = validate(srv, [fn("a", "1"), fn("b", "a + 1"), fn("c", f"{SCA} / 10"),
                       fn("d", f"log({SCA} / 10)"), fn("e", f"{WAV} - 737"),
                       fn("f", f"mean(log({WAV} - 737))"), fn("g", f"centre({WAV})"),
                       fn("h", f"{IMG} - 4"), fn("i", f"log({IMG} - 4)"), fn("j", VEC),
                       fn("k", "e * 2"), fn("l", f"background({IMG})")])
    assert r.status_code == 200, r.text
    assert r.json() == ["scalar", "scalar", "scalar", "scalar", "waveform", "scalar", "scalar",
                        "image", "image", "vector", "waveform", "scalar"]


def test_validate_conventional_precedence(srv):
    assert validate(srv, [fn("a", "36 / 6 * 3 + 2**2 - (3 + 5)")]).json() == ["scalar"]


@pytest.mark.parametrize("fns,msg", [
    ([fn(SCA, "1")], f"Error at index 0: name '{SCA}' is already a channel name"),
    ([fn("a", "1"), fn("a", "2")], "Error at index 1: name 'a' is already a function name"),
    ([fn("fwhm", "1")], "Error at index 0: name 'fwhm' is already a builtin name"),
    ([fn("**", "1")], "Error at index 0: name '**' is already a builtin name"),
    ([fn("b@d_n@m3", "1")], "Error at index 0: name 'b@d_n@m3' must start with a letter, "
                            "and can only contain letters, digits, '-' or '_' characters"),
    ([fn("x", "(a")], "Error at index 0: expression '(a' has unexpected end-of-input, "
                      "check all brackets are closed"),
    ([fn("x", "s+1")], "Error at index 0: expression 's+1' has unexpected character, "
                       "check all brackets are opened"),
    ([fn("x", "zz + 1")], "Error at index 0: 'zz' is not a recognised channel"),
    ([fn("x", "x + 1")], "Error at index 0: 'x' is not a recognised channel"),
    ([fn("a", "b / 10"), fn("b", "1")], "Error at index 0: 'b' is not a recognised channel"),
    ([fn("x", "unknown(zz)")], "Error at index 0: 'zz' is not a recognised channel"),
    ([fn("x", "MEAN(1)")], "Error at index 0: 'MEAN' is not a recognised builtin function name"),
    ([fn("x", "centre(1)")], "Error at index 0: 'centre' accepts {'waveform'} type(s), "
                             "'scalar' provided"),
    ([fn("b", IMG), fn("c", WAV), fn("a", "b + c")],
     "Error at index 2: Operation between types [<ChannelDtype.IMAGE: 'image'>, "
     "<ChannelDtype.WAVEFORM: 'waveform'>] not supported"),
    ([fn("b", f"{IMG} - 4"), fn("c", WAV), fn("a", "b + c")],
     "Error at index 2: Operation between types ['image', "
     "<ChannelDtype.WAVEFORM: 'waveform'>] not supported"),
    ([fn("x", f"{VEC} + 1")], "Error at index 0: Operation between types "
                              "[<ChannelDtype.VECTOR: 'vector'>, 'scalar'] not supported"),
])
def test_validate_errors(srv, fns, msg):
    r = validate(srv, fns)
    assert r.status_code == 400
    assert r.json() == {"detail": msg}


def test_validate_names_are_stripped(srv):
    assert validate(srv, [fn("  a ", " 1 ")]).json() == ["scalar"]


def test_validate_422(srv):
    r = validate(srv, [fn("", "  ")])
    assert r.status_code == 422
    d = r.json()["detail"]
    assert len(d) == 2
    assert [e["loc"] for e in d] == [["body", 0, "name"], ["body", 0, "expression"]]
    assert all(e["msg"] == "String should have at least 1 character" for e in d)
    r = validate(srv, [{"name": "a"}])
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"] == "Field required"
    assert r.json()["detail"][0]["loc"] == ["body", 0, "expression"]
    r = srv.request("POST", "/functions/validate", data="[{", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"
    r = validate(srv, {"name": "a", "expression": "1"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "list_type"


def test_validate_hostile(srv):
    r = validate(srv, [fn("a", "(" * 5000 + "1" + ")" * 5000)])
    assert r.status_code == 400
    assert r.json()["detail"] == "Error at index 0: expression is longer than 1000 characters"
    r = validate(srv, [fn("a", "(" * 200 + "1" + ")" * 200)])
    assert r.status_code == 400
    assert "nested too deeply" in r.json()["detail"]
    r = validate(srv, [fn("a%d" % i, "1") for i in range(101)])
    assert r.status_code == 400
    assert "At most 100 functions" in r.json()["detail"]
    # the worker is still there
    assert validate(srv, [fn("a", "1 / 3")]).json() == ["scalar"]
