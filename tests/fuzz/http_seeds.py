#!/usr/bin/env python3
"""Writes the seeds of fuzz_http (tests/fuzz/corpus/http): real requests behind the
harness's 15 parameter bytes (see tests/fuzz/fuzz_http.c). Run from the repository root;
files are named after the case, so rerunning rewrites the same set."""
import os
import struct

OUT = "tests/fuzz/corpus/http"
SEP = b"\n%%\n"

# limits byte: header 8192 (2), body 4096 (2 << 2), one heavy slot per user (0x10)
LIM = 0x1A


def params(flags=0, lim=LIM, split=0, cuts1=(0, 0, 0), cuts2=(0, 0, 0)):
    return bytes([flags, lim, split]) + struct.pack("<3H", *cuts1) + struct.pack("<3H", *cuts2)


def req(line, headers=(), body=b"", host=True):
    h = line + b"\r\n"
    if host:
        h += b"Host: x\r\n"
    for x in headers:
        h += x + b"\r\n"
    return h + b"\r\n" + body


AUTH = (b"Authorization: Bearer t", b"X-User: alice")
LOGIN = b'{"username":"nobody","password":"x"}'
SECOND = b"GET /now HTTP/1.1\r\nHost: x\r\n\r\n"


def chunked(path, chunks, extra=()):
    return req(b"POST %s HTTP/1.1" % path, (b"Transfer-Encoding: chunked",) + extra) + chunks


SEEDS = {
    "get_query": params() + req(b"GET /now?x=1&x=two%20words&status=0 HTTP/1.1"),
    "get_cors": params(lim=LIM | 0x40) + req(b"GET /now HTTP/1.1", (b"Origin: http://ok.example",)),
    "get_prefix": params(lim=LIM | 0x20) + req(b"GET /api/now HTTP/1.1"),
    "later_204": params() + req(b"GET /later/2 HTTP/1.1"),
    "post_length": params() + req(b"POST /echo HTTP/1.1", (b"Content-Length: 5",), b"hello"),
    "post_chunked_ext_trailer": params() + chunked(
        b"/echo", b"5;name=value\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"),
    "put_chunked_split": params(split=0x3, cuts1=(40, 60, 75)) + chunked(
        b"/echo", b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n", AUTH),
    "pipelined_pair": params() + SECOND + req(b"GET /later/0 HTTP/1.1"),
    "pipelined_close": params(flags=0x2) + SECOND + req(b"GET /now HTTP/1.1", (b"Connection: close",)),
    "pipelined_split": params(split=0x2, cuts1=(20, 33, 0)) + SECOND * 3,
    "stream": params(flags=0x2) + req(b"GET /stream?n=3&size=10 HTTP/1.1") + SECOND,
    "stream_abort": params(flags=0x2) + req(b"GET /stream?n=4&size=7&abort=2 HTTP/1.1"),
    "stream_client_gone": params(flags=0x3) + req(b"GET /stream?n=8&size=200 HTTP/1.1"),
    "heavy_two_clients": params(flags=0xA, split=0x20) + req(b"POST /heavy HTTP/1.1", AUTH + (b"Content-Length: 2",), b"{}")
    + SEP + req(b"GET /heavy/1 HTTP/1.1", AUTH) + req(b"GET /heavy/2 HTTP/1.1", AUTH),
    "upload_file_cut": params(lim=LIM | 0x80, split=0x2, cuts1=(150, 200, 0))
    + req(b"POST /upload HTTP/1.1", AUTH + (b"Content-Length: 1048600",), b"--b\r\n\r\nabc"),
    "heavy_waiting_gone": params(flags=0x4A, split=0x20) + req(b"POST /heavy HTTP/1.1", AUTH + (b"Content-Length: 0",))
    + SEP + req(b"GET /heavy/1 HTTP/1.1", AUTH),
    "heavy_abort_hook": params(flags=0x23) + req(b"GET /heavy/7 HTTP/1.1", AUTH),
    "auth_denied": params() + req(b"DELETE /items/a/b HTTP/1.1", (b"X-Deny: 1",))
    + req(b"PATCH /items/a HTTP/1.1") + req(b"DELETE /items/a/b HTTP/1.1", AUTH),
    "busy": params(flags=0x1A) + SECOND + SEP + SECOND,
    "head": params() + req(b"HEAD /now HTTP/1.1") + SECOND,
    "head_404": params() + req(b"HEAD /nope HTTP/1.1") + SECOND,
    "options_preflight": params() + req(b"OPTIONS /now HTTP/1.1", (
        b"Origin: http://a", b"Access-Control-Request-Method: GET",
        b"Access-Control-Request-Headers: authorization")) + req(b"OPTIONS /opt HTTP/1.1"),
    "options_bad_method": params() + req(b"OPTIONS /now HTTP/1.1", (
        b"Origin: http://a", b"Access-Control-Request-Method: BREW")),
    "redirect": params() + req(b"GET /dir?x=1 HTTP/1.1") + req(b"GET /now/ HTTP/1.1") + SECOND,
    "method_not_allowed": params() + req(b"POST /now HTTP/1.1", (b"Content-Length: 0",)) + SECOND,
    "http10": params() + b"GET /now HTTP/1.0\r\n\r\n",
    "http10_keepalive": params() + b"GET /now HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + SECOND,
    "upload_file_body": params(lim=LIM | 0x80, split=0x42, cuts1=(150, 200, 0))
    + req(b"POST /upload HTTP/1.1", AUTH + (b"Content-Type: multipart/form-data; boundary=b",
                                            b"Content-Length: 1048600"),
          b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.h5\"\r\n\r\n"
          + b"\x89HDF\r\n\x1a\n" * 8),
    "upload_small": params(lim=LIM | 0x80) + req(b"POST /upload HTTP/1.1", AUTH + (b"Content-Length: 3",), b"abc"),
    "header_431": params(lim=0x18) + req(b"GET /now HTTP/1.1", (b"X-Big: " + b"a" * 300,)),
    "body_413_length": params() + req(b"POST /echo HTTP/1.1", (b"Content-Length: 65",), b"a" * 65),
    "body_413_chunks": params() + chunked(b"/echo", b"20\r\n" + b"a" * 32 + b"\r\n30\r\n" + b"b" * 48 + b"\r\n0\r\n\r\n"),
    "upgrade": params() + req(b"GET /now HTTP/1.1", (b"Connection: Upgrade", b"Upgrade: websocket")) + SECOND,
    "connect": params() + b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n" + SECOND,
    "expect_continue": params() + req(b"POST /echo HTTP/1.1", (b"Expect: 100-continue", b"Content-Length: 4"), b"abcd"),
    "drain": params(flags=0x82) + req(b"GET /later/0 HTTP/1.1") + SECOND,
    "early_close": params(flags=0x42) + req(b"GET /later/0 HTTP/1.1") + req(b"GET /stream HTTP/1.1"),
    # the smuggling shapes of tests/api/test_framing.py and test_protocol.py
    "chunk_no_crlf": params() + chunked(b"/echo", b"%x\r\n%s" % (len(LOGIN), LOGIN) + b"XX0\r\n\r\n") + SECOND,
    "chunk_lf_only": params() + chunked(b"/echo", b"%x\r\n%s" % (len(LOGIN), LOGIN) + b"\n0\r\n\r\n") + SECOND,
    "obs_fold_empty_te": params() + b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + SECOND,
    "obs_fold_empty_cl": params() + b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n 5\r\n\r\nhello" + SECOND,
    "obs_fold_tab": params() + b"GET /now HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tfolded\r\n\r\n" + SECOND,
    "obs_fold_split": params(split=0x1, cuts1=(46, 0, 0)) + b"GET /now HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n" + SECOND,
    "no_host": params() + b"GET /now HTTP/1.1\r\n\r\n" + SECOND,
    "http09": params() + b"GET /now\r\n\r\n" + SECOND,
    "space_in_name": params() + b"GET /now HTTP/1.1\r\nHost: x\r\nX Foo: 1\r\n\r\n" + SECOND,
    "space_before_colon": params() + b"GET /now HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n" + SECOND,
    "chunk_over_limit": params() + chunked(b"/echo", b"FFFFFFF\r\n"),
    "chunk_overflow": params() + chunked(b"/echo", b"FFFFFFFFFFFFFFFFFF\r\n"),
    "two_hosts": params() + b"GET /now HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n" + SECOND,
    "cl_and_te": params() + b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SECOND,
    "two_cl": params() + b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "bad_chunk_size": params() + b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "lf_only": params() + b"GET /now HTTP/1.1\nHost: x\n\n",
    "bare_cr": params() + b"GET /now\rX HTTP/1.1\r\nHost: x\r\n\r\n",
    "garbage": params() + b"BLAH\r\n\r\n",
    # the findings (docs/reliability.md)
    "regress-head-body": params() + req(b"HEAD /now HTTP/1.1") + req(b"HEAD /nope HTTP/1.1") + SECOND,
    "regress-bare-lf-header-end": params() + b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\n{}" + SECOND,
    "regress-bare-lf-trailer-end": params() + chunked(b"/echo", b"2\r\n{}\r\n0\r\nX-T: 1\r\n\n") + SECOND,
    "regress-trailer-host": params() + chunked(b"/echo", b"2\r\n{}\r\n0\r\nHost: y\r\nAuthorization: x\r\n\r\n")
    + req(b"PUT /echo HTTP/1.1", (b"Transfer-Encoding: chunked",), b"0\r\nAuthorization: Bearer t\r\n\r\n"),
    "many_headers": params(lim=0x1B) + req(b"GET /now HTTP/1.1", tuple(b"X-%d: 1" % i for i in range(110))),
}

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(len(SEEDS), "seeds in", OUT)
