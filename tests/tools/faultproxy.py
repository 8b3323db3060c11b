#!/usr/bin/python3
"""An HTTP/1.1 proxy for fault tests of the S3 back end.

    faultproxy.py --listen 127.0.0.1:PORT --upstream 127.0.0.1:7480

Forwards every request to the upstream S3 server (keep-alive on both sides) unless a
fault is armed. Faults are armed by requests to the proxy itself, which never reach the
upstream:

    POST /__fault__?mode=status&code=503&count=2   answer the next 2 requests with 503
                                                   and an S3 XML error body
    POST /__fault__?mode=reset&count=1             reset the connection (RST) instead
                                                   of answering the next request
    POST /__fault__?mode=stall&count=1             read the next request, never answer
    POST /__fault__?mode=lost&code=503&count=1     forward the next request (so the upstream
                                                   does it) but answer the client with 503:
                                                   a write that landed although its client
                                                   saw it fail
    POST /__fault__?mode=pass                      disarm
    GET  /__fault__                                JSON: requests seen, faults served

`count=-1` arms a fault for every request until disarmed. Only requests whose path
starts with `match` (optional, e.g. `match=/bucket/images/`), and whose method is
`method` when given (e.g. `method=GET`), are affected. The proxy
prints "ready PORT" on stdout once it listens (PORT 0 picks a free one).
"""
import argparse
import json
import socket
import socketserver
import struct
import threading
import urllib.parse

STATE = {"mode": "pass", "code": 503, "count": 0, "match": "", "method": "", "seen": 0,
         "faults": 0}
LOCK = threading.Lock()
UPSTREAM = ("127.0.0.1", 7480)
CODES = {500: "InternalError", 503: "SlowDown", 429: "SlowDown", 403: "AccessDenied",
         404: "NoSuchKey"}


def read_head(f):
    lines = []
    while True:
        line = f.readline(65537)
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            return lines
        lines.append(line)


def headers_of(lines):
    h = {}
    for line in lines[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        h[k.strip().lower()] = v.strip()
    return h


def read_body(f, h, method=None, status=None):
    """Reads a message body (raw bytes, chunked framing kept)."""
    if method == "HEAD" or status in (204, 304) or (status is not None and 100 <= status < 200):
        return b""
    if h.get("transfer-encoding", "").lower() == "chunked":
        out = b""
        while True:
            size_line = f.readline()
            out += size_line
            n = int(size_line.split(b";")[0].strip() or b"0", 16)
            if n == 0:
                while True:
                    t = f.readline()
                    out += t
                    if t in (b"\r\n", b"\n", b""):
                        return out
            out += f.read(n + 2)
    n = int(h.get("content-length", "0") or 0)
    return f.read(n) if n else b""


def take_fault(path, method=""):
    with LOCK:
        STATE["seen"] += 1
        if STATE["mode"] == "pass" or STATE["count"] == 0:
            return None
        if STATE["match"] and not path.startswith(STATE["match"]):
            return None
        if STATE["method"] and method != STATE["method"]:
            return None
        if STATE["count"] > 0:
            STATE["count"] -= 1
        STATE["faults"] += 1
        return (STATE["mode"], STATE["code"])


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        up = None
        upf = None
        try:
            while True:
                head = read_head(self.rfile)
                if not head:
                    return
                method, target, _ = head[0].decode("latin-1").split(" ", 2)
                h = headers_of(head)
                body = read_body(self.rfile, h)
                if target.startswith("/__fault__"):
                    self.control(method, target)
                    continue
                fault = take_fault(target, method)
                if fault and fault[0] == "status":
                    self.answer_error(method, fault[1])
                    continue
                if fault and fault[0] == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    return
                if fault and fault[0] == "stall":
                    while self.connection.recv(65536):
                        pass
                    return
                if up is None:
                    up = socket.create_connection(UPSTREAM)
                    up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    upf = up.makefile("rb")
                up.sendall(b"".join(head) + b"\r\n" + body)
                while True:  # interim 1xx answers (100 Continue), then the final one
                    rhead = read_head(upf)
                    if rhead is None:
                        return
                    status = int(rhead[0].split()[1])
                    rbody = read_body(upf, headers_of(rhead), method, status)
                    if fault and fault[0] == "lost" and status >= 200:
                        self.answer_error(method, fault[1])
                        break
                    self.wfile.write(b"".join(rhead) + b"\r\n" + rbody)
                    self.wfile.flush()
                    if status >= 200:
                        break
        except (ConnectionError, OSError, ValueError):
            return
        finally:
            if up is not None:
                up.close()

    def answer_error(self, method, code):
        xml = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s</Code>"
               "<Message>injected</Message></Error>" % CODES.get(code, "Injected"))
        out = xml.encode() if method != "HEAD" else b""
        self.wfile.write(("HTTP/1.1 %d Injected\r\nContent-Type: application/xml\r\n"
                          "Content-Length: %d\r\n\r\n" % (code, len(xml))).encode() + out)
        self.wfile.flush()

    def control(self, method, target):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)
        if method == "POST":
            with LOCK:
                STATE["mode"] = q.get("mode", ["pass"])[0]
                STATE["code"] = int(q.get("code", ["503"])[0])
                STATE["count"] = int(q.get("count", ["1"])[0])
                STATE["match"] = q.get("match", [""])[0]
                STATE["method"] = q.get("method", [""])[0]
        with LOCK:
            out = json.dumps(STATE).encode()
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(out) + out)
        self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def main():
    global UPSTREAM
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--upstream", default="127.0.0.1:7480")
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    uh, up = a.upstream.rsplit(":", 1)
    UPSTREAM = (uh, int(up))
    srv = Server((host, int(port)), Handler)
    print("ready", srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
