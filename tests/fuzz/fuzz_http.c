/*
 * fuzz_http: the HTTP/1.1 connection glue of src/http/server.c (accepting, reading,
 * the llhttp callbacks, the strict-framing checks, chunked bodies, file-backed upload
 * bodies, pipelining, limits, CORS, the router and the fairness gate of gate.c) on raw
 * bytes from one or two clients, with the real server on a libuv loop.
 *
 * Each execution creates an http_server on a dup of a listening abstract unix socket
 * (made once; unix sockets leave no TIME_WAIT behind), with the route table below: a
 * handler answering at once, one answering from a zero timer, a heavy one (the gate,
 * one slot per user) answering later, a chunked stream (http_stream_*, optionally cut),
 * an echo of the body, a large-upload route (memfd bodies), an OPTIONS handler and a
 * trailing-slash route; an authorizer that refuses (401/403) or accepts and sets
 * req->username from X-User. The clients connect, write their bytes in 1..4 writes at
 * positions taken from the input (the loop runs until quiet between writes, so each
 * write is a separate read of the server), then half-close, close or stay, as the input
 * says; the loop runs until quiet; then the server is drained and/or closed, the loop runs
 * until the close callback, and the server is freed. (Closing without waiting for quiet
 * runs one loop turn first, so the last bytes are read and their requests are in flight.) No real
 * time passes: the server's timeouts are an hour, and handlers wait on zero timers only.
 *
 * Input: 15 bytes of parameters, then the bytes of client 1 [FZ_SEP the bytes of client 2]:
 *   [0] bits 0-1 / 2-3: how client 1 / 2 ends (0 half-close once quiet, 1 close once
 *       quiet, 2 stay until the server closes, 3 half-close right after its last write);
 *       bit 4: max_connections 1 (the second client gets the busy 503); bit 5: waiting
 *       handlers finish in their abort hook (else on their timer); bit 6: close the server
 *       without waiting for quiet; bit 7: drain the server before closing it
 *   [1] limits: bits 0-1 max_header_bytes, 2-3 max_body_bytes, bit 4 heavy_per_user 1
 *       (else no cap), bit 5 url_prefix "/api", bit 6 a CORS origin, bit 7 max_upload_bytes
 *   [2] bits 0-1 / 2-3: extra writes of client 1 / 2; bit 4: client 2 writes first; bit 5:
 *       both clients write before the loop runs (their heavy requests meet in the gate);
 *       bit 6: client 1's bytes are followed by 1 MiB + 4 KiB of 'x' (large uploads)
 *   [3..8], [9..14]: three 16-bit cut positions for client 1, and for client 2
 *
 * Checks besides memory errors, UB and leaks: every handler sees a consistent request
 * (path, query, lower-case header names, one Host in HTTP/1.1, parameters, a body as long
 * as its Content-Length, NUL-terminated, a file-backed body aligned as promised); each
 * client's output is a sequence of well-formed HTTP/1.1 responses (status line, header
 * lines, exactly one of Content-Length and chunked framing, none for 204/304 and none
 * for answers to HEAD), answering in order the requests the server finished for that
 * connection (same statuses); at most as many responses as the input holds header
 * blocks, plus one; nothing after a `Connection: close` answer, and the connection
 * closes after it; output ends on a response boundary unless the client or the harness
 * cut the connection or a stream was aborted; the close callback runs, no request is
 * left running, every handler context is freed and no handle is left on the loop.
 */
#include "harness.h"

#include "http/http.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

#define NCLIENTS 2
#define HTTP_HEAD_METHOD 2 /* llhttp's HTTP_HEAD */
#define OUT_MAX ((size_t)1 << 20)
#define MAX_RECORDS 256
/* Bytes after client 1's input when asked (split bit 6): enough for an upload body of
 * HTTP_UPLOAD_FILE_MIN and a little more to complete. */
#define FILL (((size_t)1 << 20) + 4096)

static uv_loop_t loop;
static int listen_fd = -1;
static struct sockaddr_un client_addr[NCLIENTS];
static socklen_t client_addr_len[NCLIENTS];

/* ---- per execution state ---- */

typedef struct client {
    int fd; /* -1 once closed by the harness */
    const uint8_t *in;
    size_t inlen;
    size_t cut[5]; /* segment k is in[cut[k] .. cut[k+1]) */
    int nseg, seg; /* segments, next segment to write */
    size_t wpos;   /* bytes of in written so far */
    int end_mode;
    bool shut; /* half-closed by the harness */
    bool eof;  /* the server closed its side */
    bool cut_by_harness;
    size_t quiet_len; /* output and end seen before the harness closed the server */
    bool quiet_eof;
    bool settled; /* the loop ran until quiet after the last write */
    char *out;
    size_t outlen, outcap;
} client;

typedef struct record {
    int conn;
    int method;
    int status;
    bool aborted;
    bool streaming;
} record;

static struct {
    client c[NCLIENTS];
    int nclients;
    http_server_t *server;
    bool finish_in_abort;
    unsigned live;   /* handler contexts not freed */
    uint64_t events; /* handler steps, for quiescence */
    unsigned stream_aborts;
    record rec[MAX_RECORDS];
    size_t nrec;
    void *conn_seen[NCLIENTS]; /* the server connection of each client, once seen */
    bool closed;               /* the harness closed the server */
    bool drained;
} X;

/* Client 1's bytes followed by FILL bytes of 'x', in one buffer kept from run to run:
 * the input is copied to end where the 'x's begin, which are written once (a fresh 1 MiB
 * each run, allocated and filled, was most of an execution's time). */
static const uint8_t *with_fill(const uint8_t *in, size_t len)
{
    static uint8_t *buf;
    static size_t room; /* bytes before the 'x's */
    if (!buf || len > room) {
        size_t nroom = len > 65536 ? len : 65536;
        free(buf);
        buf = malloc(nroom + FILL);
        if (!buf)
            abort();
        memset(buf + nroom, 'x', FILL);
        room = nroom;
    }
    uint8_t *start = buf + room - len;
    if (len)
        memcpy(start, in, len);
    return start;
}

/* ---- which client a request came from ---- */

typedef struct walk_find {
    void *conn;
    int fd;
} walk_find;

static void walk_cb(uv_handle_t *h, void *arg)
{
    walk_find *w = arg;
    uv_os_fd_t fd;
    if (h->type == UV_TCP && h->data == w->conn && uv_fileno(h, &fd) == 0)
        w->fd = fd;
}

/* The client index of req's connection: its socket's peer is the client's bound name. The
 * answer is remembered, for connections whose socket is already closed. -1: unknown. */
static int conn_index(http_request_t *req)
{
    walk_find w = {req->conn, -1};
    uv_walk(&loop, walk_cb, &w);
    if (w.fd >= 0) {
        struct sockaddr_un sa;
        socklen_t len = sizeof(sa);
        if (getpeername(w.fd, (struct sockaddr *)&sa, &len) == 0) {
            for (int k = 0; k < NCLIENTS; k++)
                if (len == client_addr_len[k] && memcmp(&sa, &client_addr[k], len) == 0) {
                    for (int j = 0; j < NCLIENTS; j++)
                        if (X.conn_seen[j] == req->conn)
                            X.conn_seen[j] = NULL;
                    X.conn_seen[k] = req->conn;
                    return k;
                }
        }
    }
    for (int k = 0; k < NCLIENTS; k++)
        if (X.conn_seen[k] == req->conn)
            return k;
    return -1;
}

/* ---- what every handler checks ---- */

static void check_request(http_request_t *req)
{
    FZ_CHECK(conn_index(req) >= 0); /* and remembered, for the record of an abort */
    FZ_CHECK(req->route && req->target && req->path && req->query);
    FZ_CHECK(req->path[0] == '/' || req->path[0] == '\0');
    FZ_CHECK(req->nheaders <= HTTP_MAX_HEADERS);
    int hosts = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const char *n = req->headers[i].name;
        for (const char *q = n; *q; q++)
            FZ_CHECK(!(*q >= 'A' && *q <= 'Z'));
        hosts += strcmp(n, "host") == 0;
        fz_touch(req->headers[i].value, strlen(req->headers[i].value));
    }
    FZ_CHECK(hosts <= 1);
    size_t want = 0;
    for (const char *p = req->route->pattern; *p; p++)
        want += *p == '{';
    FZ_CHECK(req->nparams == want);
    for (size_t i = 0; i < req->nparams; i++)
        FZ_CHECK(req->params[i] != NULL);
    /* the body: as announced, NUL-terminated, and a file-backed one aligned */
    if (req->body.len)
        FZ_CHECK(req->body.data && req->body.data[req->body.len] == '\0');
    const char *cl = http_header_get(req, "content-length");
    const char *te = http_header_get(req, "transfer-encoding");
    if (cl && !te)
        FZ_CHECK(strtoull(cl, NULL, 10) == req->body.len);
    if (req->body_fd >= 0) {
        FZ_CHECK(cl && req->body.len >= HTTP_UPLOAD_FILE_MIN);
        FZ_CHECK(req->body_fd_offset < 64);
        const char *hd = memmem(
            req->body.data, req->body.len < ((size_t)64 << 10) ? req->body.len : ((size_t)64 << 10),
            "\r\n\r\n", 4);
        if (hd)
            FZ_CHECK((req->body_fd_offset + (size_t)(hd + 4 - req->body.data)) % 64 == 0);
    } else {
        fz_touch(req->body.data, req->body.len);
    }
    X.events++;
}

static const int statuses[] = {200, 201, 204, 304, 307, 400, 404, 409, 413, 500, 503, 299};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]))

static int pick_status(const char *s)
{
    return statuses[s ? strtoul(s, NULL, 10) % NSTATUS : 0];
}

/* GET /now, DELETE /items/{a}/{b}, PATCH /items/{a}, GET /dir/: answers at once, with an
 * X-Echo header from the query (the header-injection guard drops CR/LF) and a body. */
static void h_now(http_request_t *req)
{
    check_request(req);
    const char **xs;
    size_t nx = http_query_all(req, "x", &xs);
    for (size_t i = 0; i < nx; i++)
        http_add_header(req, "X-Echo", xs[i]);
    char body[256];
    int n = snprintf(body, sizeof(body), "%s %s %zu", req->method_name, req->path, req->nparams);
    http_respond(req, pick_status(http_query_get(req, "status")), "text/plain", body,
                 (size_t)(n < (int)sizeof(body) ? n : (int)sizeof(body) - 1));
}

/* GET /later/{status}, POST /heavy, GET /heavy/{n}: answers from a zero timer. */
typedef struct later_ctx {
    uv_timer_t timer;
    http_request_t *req; /* NULL once answered */
    int status;
} later_ctx;

static void later_closed(uv_handle_t *h)
{
    free(h->data);
    X.live--;
}

static void later_fired(uv_timer_t *t)
{
    later_ctx *l = t->data;
    X.events++;
    if (l->req) {
        http_set_abort(l->req, NULL, NULL);
        http_respond_error(l->req, l->status, "later");
        l->req = NULL;
    }
    uv_close((uv_handle_t *)&l->timer, later_closed);
}

static void later_abort(http_request_t *req, void *data)
{
    later_ctx *l = data;
    X.events++;
    FZ_CHECK(req->aborted && l->req == req);
    if (X.finish_in_abort) {
        http_respond_error(req, l->status, "gone"); /* writes nothing */
        l->req = NULL;
    }
}

static void h_later(http_request_t *req)
{
    check_request(req);
    later_ctx *l = calloc(1, sizeof(*l));
    if (!l)
        abort();
    X.live++;
    l->req = req;
    l->status = pick_status(req->nparams ? req->params[0] : http_query_get(req, "status"));
    uv_timer_init(&loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, later_fired, 0, 0);
    http_set_abort(req, later_abort, l);
}

static void h_heavy(http_request_t *req)
{
    FZ_CHECK(req->route->heavy);
    h_later(req);
}

/* GET /stream?n=&size=&abort=: n chunks of size bytes, one write at a time; cut after
 * `abort` chunks when given. */
typedef struct stream_ctx {
    unsigned n, size, sent;
    int abort_at;
} stream_ctx;

static void stream_next(http_request_t *req, stream_ctx *sc);

static void stream_done(http_request_t *req, stream_ctx *sc, bool cut)
{
    if (cut) {
        X.stream_aborts++;
        http_stream_abort(req);
    } else {
        http_stream_end(req);
    }
    http_set_abort(req, NULL, NULL);
    free(sc);
    X.live--;
}

static void stream_written(http_request_t *req, int status, void *data)
{
    X.events++;
    if (status < 0) {
        stream_done(req, data, false);
        return;
    }
    stream_next(req, data);
}

static void stream_next(http_request_t *req, stream_ctx *sc)
{
    if (sc->sent == sc->n) {
        stream_done(req, sc, false);
        return;
    }
    if (sc->abort_at == (int)sc->sent) {
        stream_done(req, sc, true);
        return;
    }
    char data[300];
    memset(data, 'a' + (int)(sc->sent % 26), sc->size);
    sc->sent++;
    /* on failure no callback comes (the export's convention) */
    if (http_stream_write(req, data, sc->size, stream_written, sc) != 0)
        stream_done(req, sc, false);
}

static void stream_abort_hook(http_request_t *req, void *data)
{
    (void)data;
    X.events++;
    FZ_CHECK(req->aborted); /* the pending write's callback ends the stream */
}

static void h_stream(http_request_t *req)
{
    check_request(req);
    stream_ctx *sc = calloc(1, sizeof(*sc));
    if (!sc)
        abort();
    X.live++;
    const char *q;
    sc->n = (q = http_query_get(req, "n")) ? (unsigned)(strtoul(q, NULL, 10) % 9) : 2;
    sc->size = (q = http_query_get(req, "size")) ? (unsigned)(strtoul(q, NULL, 10) % 300) : 5;
    sc->abort_at = (q = http_query_get(req, "abort")) ? (int)(strtoul(q, NULL, 10) % 9) : -1;
    http_set_abort(req, stream_abort_hook, sc);
    http_stream_start(req, pick_status(http_query_get(req, "status")), "text/plain");
    stream_next(req, sc);
}

/* POST /echo (64 bytes at most), PUT /echo: the body back. */
static void h_echo(http_request_t *req)
{
    check_request(req);
    if (req->route->max_body)
        FZ_CHECK(req->body.len <= req->route->max_body);
    http_respond(req, 200, "application/octet-stream", req->body.data, req->body.len);
}

/* POST /upload: a large-upload route (memfd bodies from 1 MiB of Content-Length). */
static void h_upload(http_request_t *req)
{
    check_request(req);
    char body[64];
    int n = snprintf(body, sizeof(body), "%zu %d", req->body.len, req->body_fd >= 0);
    http_respond(req, 201, "text/plain", body, (size_t)n);
}

/* OPTIONS /opt: status 0 means 200 for OPTIONS. */
static void h_opt(http_request_t *req)
{
    check_request(req);
    http_respond(req, 0, NULL, "", 0);
}

static const http_route routes[] = {
    {OGD_GET, "/now", h_now, AUTH_NONE, NULL, 0, NULL, false},
    {OGD_GET, "/later/{status}", h_later, AUTH_NONE, NULL, 0, NULL, false},
    {OGD_POST, "/heavy", h_heavy, AUTH_TOKEN, NULL, 0, NULL, true},
    {OGD_GET, "/heavy/{n}", h_heavy, AUTH_PERMISSION, "/heavy/{n} GET", 0, NULL, true},
    {OGD_GET, "/stream", h_stream, AUTH_NONE, NULL, 0, NULL, false},
    {OGD_POST, "/echo", h_echo, AUTH_NONE, NULL, 64, "echo", false},
    {OGD_PUT, "/echo", h_echo, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_POST, "/upload", h_upload, AUTH_TOKEN, NULL, HTTP_BODY_UPLOAD, NULL, false},
    {OGD_DELETE, "/items/{a}/{b}", h_now, AUTH_PERMISSION, "items", 0, NULL, false},
    {OGD_PATCH, "/items/{a}", h_now, AUTH_TOKEN, NULL, 0, NULL, false},
    {OGD_OPTIONS, "/opt", h_opt, AUTH_NONE, NULL, 0, NULL, false},
    {OGD_GET, "/dir/", h_now, AUTH_NONE, NULL, 0, NULL, false},
};

/* X-Deny: 403; no Authorization: 401; else the caller is X-User (NULL if none). */
static bool authorize(http_request_t *req)
{
    FZ_CHECK(req->route && req->route->auth != AUTH_NONE);
    FZ_CHECK(conn_index(req) >= 0);
    X.events++;
    if (http_header_get(req, "x-deny")) {
        http_respond_error(req, 403, "denied");
        return false;
    }
    if (!http_header_get(req, "authorization")) {
        http_add_header(req, "WWW-Authenticate", "Bearer");
        http_respond_error(req, 401, "Not authenticated");
        return false;
    }
    const char *u = http_header_get(req, "x-user");
    req->username = u ? arena_strdup(&req->arena, u) : NULL;
    return true;
}

static void request_done(http_request_t *req, void *data)
{
    (void)data;
    FZ_CHECK(req->finished);
    if (X.nrec < MAX_RECORDS)
        X.rec[X.nrec++] =
            (record){conn_index(req), (int)req->method, req->status, req->aborted, req->streaming};
    X.events++;
}

/* ---- the clients ---- */

static void client_read(client *c)
{
    if (c->fd < 0 || c->eof)
        return;
    for (;;) {
        if (c->outcap - c->outlen < 4096) {
            size_t ncap = c->outcap ? c->outcap * 2 : 16384;
            FZ_CHECK(ncap <= OUT_MAX);
            c->out = realloc(c->out, ncap);
            if (!c->out)
                abort();
            c->outcap = ncap;
        }
        ssize_t n = recv(c->fd, c->out + c->outlen, c->outcap - c->outlen, MSG_DONTWAIT);
        if (n > 0) {
            c->outlen += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            c->eof = true; /* a reset counts as the end too */
        return;
    }
}

/* Writes what is left of the segments up to seg (the socket may take less). */
static void client_flush(client *c)
{
    if (c->fd < 0 || c->shut)
        return;
    size_t upto = c->cut[c->seg];
    while (c->wpos < upto) {
        ssize_t n = send(c->fd, c->in + c->wpos, upto - c->wpos, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0)
            return; /* full, or the server is gone */
        c->wpos += (size_t)n;
    }
}

static void client_end(client *c, bool close_it)
{
    if (c->fd < 0)
        return;
    client_read(c);
    c->cut_by_harness = true;
    if (close_it) {
        close(c->fd);
        c->fd = -1;
    } else if (!c->shut) {
        shutdown(c->fd, SHUT_WR);
        c->shut = true;
    }
}

static uint64_t signature(void)
{
    uint64_t sig = X.events * 1000003u + http_server_requests(X.server) * 7919u +
                   http_server_connections(X.server) * 31u;
    for (int k = 0; k < X.nclients; k++) {
        client *c = &X.c[k];
        int outq = 0;
        if (c->fd >= 0)
            ioctl(c->fd, SIOCOUTQ, &outq);
        sig = sig * 131 + c->outlen * 17 + (uint64_t)outq * 3 + c->eof + c->wpos * 101;
    }
    return sig;
}

/* Runs the loop, writing and reading the clients, until nothing changes for a few turns. */
static void pump(void)
{
    uint64_t last = signature();
    int quiet = 0;
    for (int i = 0; quiet < 3; i++) {
        FZ_CHECK(i < 20000); /* the server does not spin */
        uv_run(&loop, UV_RUN_NOWAIT);
        for (int k = 0; k < X.nclients; k++) {
            client_flush(&X.c[k]);
            client_read(&X.c[k]);
        }
        uint64_t sig = signature();
        quiet = sig == last ? quiet + 1 : 0;
        last = sig;
    }
}

/* ---- checking the output ---- */

static void dump_and_fail(const client *c, size_t at, const char *why)
{
    fprintf(stderr, "fuzz_http: client output malformed at byte %zu: %s\n", at, why);
    fprintf(stderr, "---- output (%zu bytes) ----\n", c->outlen);
    fwrite(c->out, 1, c->outlen < 4096 ? c->outlen : 4096, stderr);
    fprintf(stderr, "\n---- records ----\n");
    for (size_t i = 0; i < X.nrec; i++)
        fprintf(stderr, "conn %d method %d status %d aborted %d streaming %d\n", X.rec[i].conn,
                X.rec[i].method, X.rec[i].status, X.rec[i].aborted, X.rec[i].streaming);
    abort();
}

static bool is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           strchr("!#$%&'*+-.^_`|~", ch);
}

typedef enum { RESP_DONE, RESP_PARTIAL } rstate;

/* One response at out[*pos..): checks it and moves *pos past it. RESP_PARTIAL: the output
 * ends inside it (well-formed so far). */
static rstate parse_response(const client *c, size_t *pos, bool head, int *status, bool *close_it)
{
    const char *o = c->out;
    size_t n = c->outlen, p = *pos;
#define NEED(k)                                                                                    \
    do {                                                                                           \
        if (p + (k) > n)                                                                           \
            return RESP_PARTIAL;                                                                   \
    } while (0)
    /* status line */
    static const char ver[] = "HTTP/1.1 ";
    for (size_t i = 0; i < 9; i++) {
        NEED(1);
        if (o[p] != ver[i])
            dump_and_fail(c, p, "not a status line");
        p++;
    }
    NEED(4);
    for (int i = 0; i < 3; i++)
        if (o[p + i] < '0' || o[p + i] > '9')
            dump_and_fail(c, p, "status code");
    *status = (o[p] - '0') * 100 + (o[p + 1] - '0') * 10 + (o[p + 2] - '0');
    if (*status < 100 || o[p + 3] != ' ')
        dump_and_fail(c, p, "status code");
    p += 4;
    for (;;) {
        NEED(1);
        if (o[p] == '\r')
            break;
        if (o[p] == '\n' || (unsigned char)o[p] < 0x20)
            dump_and_fail(c, p, "reason phrase");
        p++;
    }
    NEED(2);
    if (o[p + 1] != '\n')
        dump_and_fail(c, p, "status line end");
    p += 2;
    /* header fields */
    long long clen = -1;
    bool chunked = false;
    *close_it = false;
    int ctypes = 0;
    for (;;) {
        NEED(2);
        if (o[p] == '\r') {
            if (o[p + 1] != '\n')
                dump_and_fail(c, p, "end of the head");
            p += 2;
            break;
        }
        size_t name = p;
        while (1) {
            NEED(1);
            if (o[p] == ':')
                break;
            if (!is_tchar((unsigned char)o[p]))
                dump_and_fail(c, p, "header name");
            p++;
        }
        size_t namelen = p - name;
        if (namelen == 0)
            dump_and_fail(c, p, "empty header name");
        p++;
        NEED(1);
        if (o[p] != ' ')
            dump_and_fail(c, p, "no space after the colon");
        p++;
        size_t val = p;
        for (;;) {
            NEED(1);
            if (o[p] == '\r')
                break;
            if (o[p] == '\n' || o[p] == '\0')
                dump_and_fail(c, p, "header value");
            p++;
        }
        size_t vallen = p - val;
        NEED(2);
        if (o[p + 1] != '\n')
            dump_and_fail(c, p, "header line end");
        p += 2;
        char v[64];
        snprintf(v, sizeof(v), "%.*s", (int)(vallen < 63 ? vallen : 63), o + val);
        if (namelen == 14 && strncasecmp(o + name, "content-length", 14) == 0) {
            if (clen >= 0)
                dump_and_fail(c, name, "two Content-Length");
            char *end;
            clen = strtoll(v, &end, 10);
            if (*end || clen < 0 || vallen == 0)
                dump_and_fail(c, val, "Content-Length value");
        } else if (namelen == 17 && strncasecmp(o + name, "transfer-encoding", 17) == 0) {
            if (chunked || strcmp(v, "chunked") != 0)
                dump_and_fail(c, val, "Transfer-Encoding");
            chunked = true;
        } else if (namelen == 10 && strncasecmp(o + name, "connection", 10) == 0) {
            if (strcmp(v, "close") != 0)
                dump_and_fail(c, val, "Connection value");
            *close_it = true;
        } else if (namelen == 12 && strncasecmp(o + name, "content-type", 12) == 0) {
            ctypes++;
        }
    }
    if (ctypes > 1)
        dump_and_fail(c, p, "two Content-Type");
    if (clen >= 0 && chunked)
        dump_and_fail(c, p, "Content-Length and chunked");
    bool no_body = head || *status == 204 || *status == 304 || *status < 200;
    if ((*status == 204 || *status == 304) && (clen >= 0 || chunked))
        dump_and_fail(c, p, "framing on a 204/304");
    if (!no_body && clen < 0 && !chunked)
        dump_and_fail(c, p, "no framing");
    if (no_body) {
        *pos = p;
        return RESP_DONE;
    }
    if (!chunked) {
        NEED((size_t)clen);
        *pos = p + (size_t)clen;
        return RESP_DONE;
    }
    for (;;) {
        size_t size = 0, digits = 0;
        for (;;) {
            NEED(1);
            int ch = (unsigned char)o[p];
            int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
            if (d < 0)
                break;
            if (++digits > 8)
                dump_and_fail(c, p, "chunk size");
            size = size * 16 + (size_t)d;
            p++;
        }
        NEED(2);
        if (digits == 0 || o[p] != '\r' || o[p + 1] != '\n')
            dump_and_fail(c, p, "chunk size line");
        p += 2;
        if (size == 0) {
            NEED(2);
            if (o[p] != '\r' || o[p + 1] != '\n')
                dump_and_fail(c, p, "end of the chunked body");
            *pos = p + 2;
            return RESP_DONE;
        }
        NEED(size + 2);
        p += size;
        if (o[p] != '\r' || o[p + 1] != '\n')
            dump_and_fail(c, p, "chunk data end");
        p += 2;
    }
#undef NEED
}

/* Header blocks in the client's input: a bound on the requests it can hold. */
static size_t header_blocks(const client *c)
{
    size_t n = 0;
    const uint8_t *p = c->in, *end = c->in + c->inlen;
    while (p < end) {
        const uint8_t *q = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!q)
            break;
        n++;
        p = q + 4;
    }
    return n;
}

static void check_client(int k, bool busy_rejected)
{
    client *c = &X.c[k];
    /* this connection's answered requests, in order (aborted ones send no answer) */
    record *exp[MAX_RECORDS];
    size_t nexp = 0;
    for (size_t i = 0; i < X.nrec; i++)
        if (X.rec[i].conn == k && !X.rec[i].aborted)
            exp[nexp++] = &X.rec[i];
    size_t pos = 0, nresp = 0;
    bool closed_answer = false;
    while (pos < c->outlen) {
        if (closed_answer)
            dump_and_fail(c, pos, "bytes after a Connection: close answer");
        bool head = nresp < nexp && exp[nresp]->method == HTTP_HEAD_METHOD;
        int status;
        bool close_it;
        size_t start = pos;
        if (parse_response(c, &pos, head, &status, &close_it) == RESP_PARTIAL) {
            /* a cut answer: only where the connection was cut */
            if (c->quiet_eof && !c->cut_by_harness && !X.stream_aborts)
                dump_and_fail(c, start, "the output ends inside an answer");
            break;
        }
        if (busy_rejected) {
            if (status != 503 || !close_it)
                dump_and_fail(c, start, "busy answer");
        } else {
            if (nresp >= nexp)
                dump_and_fail(c, start, "an answer to no finished request");
            int want = exp[nresp]->status;
            if (want == 0 && exp[nresp]->method == OGD_OPTIONS)
                want = 200;
            if (status != want)
                dump_and_fail(c, start, "status differs from the handler's");
        }
        nresp++;
        closed_answer = close_it;
        /* the server closes after such an answer (half-close, then linger) */
        if (close_it && pos <= c->quiet_len && c->settled && !c->cut_by_harness && !c->quiet_eof)
            dump_and_fail(c, pos, "no close after a Connection: close answer");
    }
    if (!busy_rejected)
        FZ_CHECK(nresp <= header_blocks(c) + 1);
    else
        FZ_CHECK(nresp <= 1 && nexp == 0);
    /* every finished request was answered, unless the connection was cut */
    if (!busy_rejected && c->quiet_eof && !c->cut_by_harness && !X.stream_aborts)
        FZ_CHECK(nresp == nexp);
}

/* ---- one execution ---- */

static void close_done(void *data)
{
    *(bool *)data = true;
}

static void drain_done(void *data)
{
    *(bool *)data = true;
}

static void count_handle(uv_handle_t *h, void *arg)
{
    (void)h;
    (*(int *)arg)++;
}

static void set_cuts(client *c, fz_reader *r, unsigned extra)
{
    size_t pos[3];
    for (int i = 0; i < 3; i++)
        pos[i] = (size_t)fz_uint(r, 2) % (c->inlen + 1);
    /* sorted, the first `extra` of them */
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (pos[j] < pos[i]) {
                size_t t = pos[i];
                pos[i] = pos[j];
                pos[j] = t;
            }
    c->nseg = 0;
    c->cut[0] = 0;
    for (unsigned i = 0; i < extra; i++)
        c->cut[++c->nseg] = pos[i];
    c->cut[++c->nseg] = c->inlen;
    c->seg = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(&X, 0, sizeof(X));
    fz_reader r = {data, size};
    uint8_t flags = fz_u8(&r), lim = fz_u8(&r), split = fz_u8(&r);
    size_t hdr = size < 15 ? size : 15;
    fz_part parts[NCLIENTS];
    X.nclients = (int)fz_split(data + hdr, size - hdr, parts, NCLIENTS);
    X.finish_in_abort = flags & 0x20;

    static const size_t header_max[] = {256, 1024, 8192, 65536};
    static const size_t body_max[] = {16, 256, 4096, (size_t)1 << 20};
    http_limits limits = {
        .max_header_bytes = header_max[lim & 3],
        .max_body_bytes = body_max[(lim >> 2) & 3],
        .header_timeout_ms = 3600000,
        .body_timeout_ms = 3600000,
        .keepalive_ms = 3600000,
        .max_connections = (flags & 0x10) ? 1 : 16,
        .max_upload_bytes = (lim & 0x80) ? (size_t)2 << 20 : 0,
        .heavy_per_user = (lim & 0x10) ? 1 : 0,
        .max_pool_waiting = 0,
    };
    static const char *const origins[] = {"http://ok.example"};
    int lfd = dup(listen_fd);
    FZ_CHECK(lfd >= 0);
    int rc = http_server_create(&loop, lfd, routes, sizeof(routes) / sizeof(routes[0]), &limits,
                                (lim & 0x20) ? "/api/" : "", origins, (lim & 0x40) ? 1 : 0, NULL,
                                &X.server);
    FZ_CHECK(rc == 0);
    http_server_set_authorizer(X.server, authorize);
    http_server_on_request_done(X.server, request_done, NULL);

    for (int k = 0; k < X.nclients; k++) {
        client *c = &X.c[k];
        c->in = parts[k].data;
        c->inlen = parts[k].size;
        if (k == 0 && (split & 0x40)) { /* a large upload's body can complete */
            c->in = with_fill(c->in, c->inlen);
            c->inlen += FILL;
        }
        c->end_mode = (flags >> (2 * k)) & 3;
        set_cuts(c, &r, (split >> (2 * k)) & 3);
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        FZ_CHECK(c->fd >= 0);
        FZ_CHECK(bind(c->fd, (struct sockaddr *)&client_addr[k], client_addr_len[k]) == 0);
        struct sockaddr_un sa;
        socklen_t salen = sizeof(sa);
        FZ_CHECK(getsockname(listen_fd, (struct sockaddr *)&sa, &salen) == 0);
        FZ_CHECK(connect(c->fd, (struct sockaddr *)&sa, salen) == 0);
    }
    pump(); /* accepted */

    /* the writes, alternating between the clients, quiet in between */
    int first = (split & 0x10) ? 1 : 0;
    int rounds = 0;
    for (int k = 0; k < X.nclients; k++)
        rounds = X.c[k].nseg > rounds ? X.c[k].nseg : rounds;
    bool together = split & 0x20, early = flags & 0x40;
    for (int round = 0; round < rounds; round++) {
        bool settle = !(early && round == rounds - 1);
        for (int j = 0; j < X.nclients; j++) {
            client *c = &X.c[(first + j) % X.nclients];
            if (round >= c->nseg)
                continue;
            c->seg = round + 1;
            client_flush(c);
            if (c->seg == c->nseg && c->end_mode == 3)
                client_end(c, false);
            if (!together && settle)
                pump();
        }
        if (together && settle)
            pump();
    }
    if (early) { /* one turn: the last bytes are read and dispatched, then the close */
        uv_run(&loop, UV_RUN_NOWAIT);
        for (int k = 0; k < X.nclients; k++)
            client_read(&X.c[k]);
    }
    if (!(flags & 0x40)) {
        for (int k = 0; k < X.nclients; k++)
            if (X.c[k].end_mode == 0 || X.c[k].end_mode == 1)
                client_end(&X.c[k], X.c[k].end_mode == 1);
        pump();
    }
    if (flags & 0x80) {
        http_server_drain(X.server, drain_done, &X.drained);
        pump();
        if (X.drained)
            FZ_CHECK(http_server_connections(X.server) == 0);
    }
    for (int k = 0; k < X.nclients; k++) {
        client *c = &X.c[k];
        c->quiet_len = c->outlen;
        c->quiet_eof = c->eof;
        c->settled = !(flags & 0x40);
    }

    bool close_cb = false;
    X.closed = true;
    http_server_close(X.server, close_done, &close_cb);
    uv_run(&loop, UV_RUN_DEFAULT);
    FZ_CHECK(close_cb);
    for (int k = 0; k < X.nclients; k++)
        client_read(&X.c[k]);
    FZ_CHECK(http_server_requests_running(X.server) == 0);
    http_server_free(X.server);
    FZ_CHECK(X.live == 0);
    int handles = 0;
    uv_walk(&loop, count_handle, &handles);
    FZ_CHECK(handles == 0);

    if (getenv("FUZZ_HTTP_SHOW")) { /* what happened, for reading a finding */
        for (size_t i = 0; i < X.nrec; i++)
            fprintf(stderr, "record: conn %d method %d status %d aborted %d streaming %d\n",
                    X.rec[i].conn, X.rec[i].method, X.rec[i].status, X.rec[i].aborted,
                    X.rec[i].streaming);
        for (int k = 0; k < X.nclients; k++) {
            fprintf(stderr, "---- client %d: end mode %d, %d writes, eof %d ----\n", k,
                    X.c[k].end_mode, X.c[k].nseg, X.c[k].eof);
            fwrite(X.c[k].out, 1, X.c[k].outlen, stderr);
            fputc('\n', stderr);
        }
    }
    /* with max_connections 1, the second client (accepted second) is turned away */
    for (int k = 0; k < X.nclients; k++)
        check_client(k, (flags & 0x10) && k == 1);

    for (int k = 0; k < X.nclients; k++) {
        if (X.c[k].fd >= 0)
            close(X.c[k].fd);
        free(X.c[k].out);
    }
    /* connections the server never accepted */
    int left;
    while ((left = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
        close(left);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_silence_logs();
    if (uv_loop_init(&loop) != 0)
        abort();
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "ogd-fuzz-http-%d", getpid());
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, len) != 0 ||
        listen(listen_fd, 16) != 0)
        abort();
    for (int k = 0; k < NCLIENTS; k++) {
        client_addr[k].sun_family = AF_UNIX;
        n = snprintf(client_addr[k].sun_path + 1, sizeof(client_addr[k].sun_path) - 1,
                     "ogd-fuzz-http-%d-client-%d", getpid(), k);
        client_addr_len[k] = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    }
    return 0;
}
