/*
 * server.c: connections, llhttp glue, limits, timers, dispatch and the response writer.
 * See http.h for the request life cycle.
 *
 * Per connection: bytes read are appended to an input buffer and fed to llhttp. The
 * parser is paused at the end of each header section (to check how it ended) and of each
 * message, where the request is dispatched; when its
 * response has been queued (or its stream ended) parsing resumes on the bytes already
 * buffered, so pipelined requests are answered in order. While a request is dispatched
 * the socket is still read, without parsing: pipelined bytes wait in the buffer (up to
 * PIPELINE_MAX, then reading pauses until the request is done), and an end of stream or
 * a reset is seen at once, so the request is aborted and its handler cancels its work
 * (a client that half-closes after its request counts as gone, as in nginx). One
 * uv_timer per connection enforces the header, body and keep-alive timeouts; it is
 * stopped while a handler works (a long export is not a slow client).
 *
 * Connection slots. A worker holds at most limits.max_connections open connections, and
 * one client address at most limits.max_conns_per_client of them. A new connection beyond
 * either cap takes the place of one that can be dropped: the one idle the longest
 * (between keep-alive requests, or lingering after its last answer), else the oldest that
 * has not completed a request header (new, or slow: what a slowloris flood holds; one
 * that had begun a header is answered 503). At the client cap only that client's own
 * connections are candidates. A connection whose header is complete, whose request is
 * being served or whose answer is still being written is never dropped; when no
 * connection can be, the new one is answered 503 and closed (conn_admit). The client is
 * the TCP peer, known at accept; for a connection from a trusted proxy
 * (limits.forwarded_allow_ips) it becomes, once a request's header is complete, the
 * client X-Forwarded-For names (conn_attribute), and the proxies' own addresses are not
 * capped. The candidates wait in two lists (droppable[], by drop class) in the order they
 * became droppable; the clients are a hash table with a secret SipHash key, as their
 * addresses are the attacker's choice.
 */
#include "http/http.h"

#include "http/gate.h"
#include "http/router.h"
#include "util/ipaddr.h"
#include "util/jsonw.h"
#include "util/log.h"
#include "util/pool.h"

#include <ctype.h>
#include <errno.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#define READ_CHUNK 65536
/* Largest read straight into a file-backed body. */
#define BODY_READ_MAX ((size_t)4 << 20)
#define REQUEST_ARENA_MAX (64u << 20)
/* Unparsed bytes held while a request is dispatched (pipelined requests); beyond this,
 * reading pauses until the request is done. */
#define PIPELINE_MAX ((size_t)64 << 10)

typedef enum { CONN_IDLE, CONN_HEADERS, CONN_BODY, CONN_PROCESSING } conn_state;

/* Which connections may give up their slot to a new one, in order of preference. */
enum {
    DROP_NEVER,      /* header complete, being served, or an answer still being written */
    DROP_IDLE,       /* between keep-alive requests, or lingering after its last answer */
    DROP_UNFINISHED, /* new, or its request header incomplete */
    DROP_CLASSES
};

/* At most one warning about dropped or refused connections per worker this often. */
#define FLOOD_LOG_NS ((uint64_t)10 * 1000000000)

/* A client address and the open connections counted for it (in one worker). */
typedef struct http_client {
    ip_addr addr;
    bool trusted;       /* a trusted proxy: not capped */
    unsigned nconns;    /* connections in conns */
    http_conn_t *conns; /* linked by cprev/cnext */
    struct http_client *hnext;
} http_client;

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    http_server_t *server;
    llhttp_t parser;
    char *in;
    size_t inlen, inpos, incap;
    http_request_t *req;
    conn_state state;
    size_t header_bytes;
    size_t max_body;
    buf_t field, value;
    bool in_value;
    int handles; /* open uv handles */
    bool closing;
    bool reading;
    bool parse_error_pending;
    unsigned served;        /* requests finished on this connection */
    const char *exec_start; /* first byte of the current llhttp_execute call */
    char prev_tail[64];     /* the last bytes fed to the previous calls, newest last */
    size_t prev_tail_len;
    bool obs_fold;
    bool head_paused; /* llhttp paused at the end of a header section */
    bool lingering;   /* response sent, discarding input until the peer closes */
    uv_shutdown_t shutdown_req;
    http_conn_t *prev, *next;
    unsigned writes; /* uv_writes in flight */
    /* connection slots (see the header comment) */
    ip_addr peer;                  /* the TCP peer */
    bool peer_trusted;             /* in limits.forwarded_allow_ips */
    http_client *client;           /* counted for; NULL before admission and once closing */
    http_conn_t *cprev, *cnext;    /* client->conns */
    char client_text[IP_TEXT_MAX]; /* the client's address (http_request_peer) */
    int drop_class;                /* DROP_*; not DROP_NEVER: in droppable[drop_class] */
    uint64_t drop_seq;             /* when it joined that list (smaller: longer ago) */
    http_conn_t *dprev, *dnext;
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listening;
    const http_route *routes;
    size_t nroutes;
    http_limits limits;
    char *url_prefix;
    char **cors_origins;
    size_t ncors;
    void *app;
    http_conn_t *conns;
    unsigned nconns;
    uint64_t requests;
    uint64_t next_id;
    bool draining;
    void (*drain_done)(void *);
    void *drain_data;
    bool closed;                /* http_server_close was called */
    void (*close_done)(void *); /* once every connection is freed after the close */
    void *close_data;
    void (*on_done)(http_request_t *req, void *data);
    void *on_done_data;
    uv_timer_t reaper; /* frees finished requests on the next loop turn */
    bool reaper_closed;
    http_request_t *dead; /* finished requests waiting for the reaper */
    http_authorizer authorizer;
    http_gate_t *gate; /* fairness for heavy routes */
    /* connection slots (see the header comment) */
    ip_net *trusted; /* limits.forwarded_allow_ips, parsed */
    size_t ntrusted;
    http_client **clients; /* hash buckets */
    size_t nbuckets;       /* a power of two */
    size_t nclients;
    unsigned char client_key[crypto_shorthash_KEYBYTES];
    struct {
        http_conn_t *head, *tail; /* head: droppable the longest */
    } droppable[DROP_CLASSES];
    uint64_t drop_seq;
    unsigned nopen; /* connections counted for a client (admitted, not closing) */
    uint64_t conns_dropped, conns_refused;
    uint64_t flood_logged_ns; /* the last warning about them */
};

typedef struct write_req {
    uv_write_t w;
    http_conn_t *conn;
    http_request_t *req; /* for stream write callbacks */
    char *head;
    char *body;
    uv_buf_t bufs[3];
    http_write_cb cb;
    void *cbdata;
    bool close_after;
} write_req;

static void conn_close(http_conn_t *c);
static void conn_linger(http_conn_t *c);
static void conn_free_if_done(http_conn_t *c);
static void reaper_fired(uv_timer_t *t);
static void conn_continue(http_conn_t *c);
static void request_free(http_request_t *req);
static void conn_slot_update(http_conn_t *c);

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

const char *http_status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

char *http_decode(arena_t *a, const char *s, size_t len, bool plus_as_space)
{
    char *out = arena_alloc(a, len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len + 0 && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else if (s[i] == '+' && plus_as_space) {
            out[o++] = ' ';
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* ---- request accessors ---- */

const char *http_header_get(const http_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

/* Splits and decodes the query string once per request, into arena memory. */
static void query_parse(http_request_t *req)
{
    req->query_parsed = true;
    size_t n = 1;
    for (const char *q = req->query; *q; q++)
        n += *q == '&';
    req->qparams = arena_alloc(&req->arena, n * sizeof(*req->qparams));
    if (!req->qparams)
        return;
    const char *q = req->query;
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t plen = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', plen);
        size_t klen = eq ? (size_t)(eq - q) : plen;
        char *key = http_decode(&req->arena, q, klen, true);
        char *value = eq ? http_decode(&req->arena, eq + 1, plen - klen - 1, true) : "";
        if (key && value) {
            req->qparams[req->nqparams].key = key;
            req->qparams[req->nqparams].value = value;
            req->nqparams++;
        }
        if (!amp)
            break;
        q = amp + 1;
    }
}

size_t http_query_all(http_request_t *req, const char *name, const char ***out)
{
    if (!req->query_parsed)
        query_parse(req);
    size_t n = 0;
    for (size_t i = 0; i < req->nqparams; i++)
        n += strcmp(req->qparams[i].key, name) == 0;
    const char **vals = n ? arena_alloc(&req->arena, n * sizeof(*vals)) : NULL;
    if (!vals)
        n = 0;
    for (size_t i = 0, k = 0; k < n; i++)
        if (strcmp(req->qparams[i].key, name) == 0)
            vals[k++] = req->qparams[i].value;
    *out = vals;
    return n;
}

const char *http_query_get(http_request_t *req, const char *name)
{
    const char **vals;
    size_t n = http_query_all(req, name, &vals);
    return n ? vals[0] : NULL;
}

void http_set_abort(http_request_t *req, http_abort_cb cb, void *data)
{
    req->on_abort = cb;
    req->abort_data = data;
}

void http_add_header(http_request_t *req, const char *name, const char *value)
{
    /* Header injection guard: no CR/LF in what handlers pass through. */
    if (strpbrk(name, "\r\n") || strpbrk(value, "\r\n"))
        return;
    buf_printf(&req->resp_headers, "%s: %s\r\n", name, value);
}

/* ---- response writing ---- */

static bool origin_allowed(http_server_t *s, const char *origin)
{
    for (size_t i = 0; i < s->ncors; i++)
        if (strcmp(s->cors_origins[i], origin) == 0)
            return true;
    return false;
}

static void cors_headers(http_request_t *req, buf_t *h)
{
    const char *origin = http_header_get(req, "origin");
    if (!origin)
        return;
    http_server_t *s = req->server;
    if (origin_allowed(s, origin) && !strpbrk(origin, "\r\n")) {
        buf_printf(h,
                   "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n"
                   "Access-Control-Allow-Credentials: true\r\n",
                   origin);
    } else {
        buf_puts(h, "Access-Control-Allow-Origin: *\r\n");
    }
    buf_puts(h, "Access-Control-Expose-Headers: Content-Disposition\r\n");
}

/* Whether the CRLF-terminated header lines in b hold one named name. */
static bool has_header_line(const buf_t *b, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; b->data && i < b->len;) {
        if (b->len - i > n && strncasecmp(b->data + i, name, n) == 0 && b->data[i + n] == ':')
            return true;
        const char *nl = memchr(b->data + i, '\n', b->len - i);
        if (!nl)
            break;
        i = (size_t)(nl - b->data) + 1;
    }
    return false;
}

static void build_head(http_request_t *req, buf_t *h, int status, const char *content_type,
                       long long content_length, bool chunked)
{
    buf_printf(h, "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
    if (content_type)
        buf_printf(h, "Content-Type: %s\r\n", content_type);
    if (chunked)
        buf_puts(h, "Transfer-Encoding: chunked\r\n");
    else if (content_length >= 0 && status != 204 && status != 304)
        buf_printf(h, "Content-Length: %lld\r\n", content_length);
    if (!req->keep_alive)
        buf_puts(h, "Connection: close\r\n");
    cors_headers(req, h);
    if (req->resp_headers.len)
        buf_append(h, req->resp_headers.data, req->resp_headers.len);
    /* Every 503 says when to come back (unless the handler set its own Retry-After). */
    if (status == 503 && !has_header_line(&req->resp_headers, "Retry-After"))
        buf_puts(h, "Retry-After: 1\r\n");
    buf_puts(h, "\r\n");
}

static void access_log(http_request_t *req)
{
    char fields[512];
    double ms = (double)(now_ns() - req->start_ns) / 1e6;
    buf_t f;
    buf_init(&f, 1024);
    buf_printf(&f, "\"rid\":\"%s\",\"method\":\"%s\",\"route\":", req->id,
               req->method_name ? req->method_name : "?");
    const char *rname =
        req->route ? (req->route->name ? req->route->name : req->route->pattern) : "-";
    jsonw_string(&f, rname, strlen(rname));
    buf_printf(&f, ",\"status\":%d,\"bytes\":%llu,\"duration_ms\":%.3f%s", req->status,
               (unsigned long long)req->bytes_out, ms, req->aborted ? ",\"aborted\":true" : "");
    snprintf(fields, sizeof(fields), "%s", f.data ? f.data : "");
    buf_free(&f);
    log_write(LOG_INFO, fields, "request");
}

static void write_done(uv_write_t *w, int status)
{
    write_req *wr = (write_req *)w;
    http_conn_t *c = wr->conn;
    if (wr->cb)
        wr->cb(wr->req, status < 0 ? status : 0, wr->cbdata);
    free(wr->head);
    free(wr->body);
    c->writes--;
    if (wr->close_after && !c->closing)
        conn_linger(c);
    else
        conn_slot_update(c); /* the answer is out: an idle connection may be dropped */
    free(wr);
}

static int queue_write(http_conn_t *c, http_request_t *req, char *head, size_t hlen, char *body,
                       size_t blen, const char *tail, http_write_cb cb, void *cbdata,
                       bool close_after)
{
    write_req *wr = calloc(1, sizeof(*wr));
    if (!wr) {
        free(head);
        free(body);
        return -ENOMEM;
    }
    wr->conn = c;
    wr->req = req;
    wr->head = head;
    wr->body = body;
    wr->cb = cb;
    wr->cbdata = cbdata;
    wr->close_after = close_after;
    unsigned n = 0;
    if (hlen)
        wr->bufs[n++] = uv_buf_init(head, (unsigned)hlen);
    if (blen)
        wr->bufs[n++] = uv_buf_init(body, (unsigned)blen);
    if (tail)
        wr->bufs[n++] = uv_buf_init((char *)tail, (unsigned)strlen(tail));
    if (c->closing || n == 0) {
        /* Nothing to send, or the peer is gone: complete asynchronously-safe now. */
        if (cb)
            cb(req, c->closing ? UV_ECANCELED : 0, cbdata);
        free(head);
        free(body);
        free(wr);
        if (close_after && !c->closing)
            conn_close(c);
        return 0;
    }
    int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, wr->bufs, n, write_done);
    if (rc == 0)
        c->writes++;
    if (rc < 0) {
        if (cb)
            cb(req, rc, cbdata);
        free(head);
        free(body);
        free(wr);
        conn_close(c);
        return rc;
    }
    return 0;
}

/* Ends the request: logs it and queues it for the reaper. The request (and its arena)
 * is freed on the next loop turn, not here, so a handler may still touch its own
 * arena memory after it has responded; the connection then goes on or closes. */
static void request_finish(http_request_t *req)
{
    http_conn_t *c = req->conn;
    http_server_t *s = req->server;
    req->finished = true;
    if (req->aborted)
        req->status = 499; /* nginx's "client closed request": no answer was sent */
    access_log(req);
    s->requests++;
    c->served++;
    req->dead_next = s->dead;
    s->dead = req;
    if (!uv_is_closing((uv_handle_t *)&s->reaper))
        uv_timer_start(&s->reaper, reaper_fired, 0, 0);
    if (s->on_done)
        s->on_done(req, s->on_done_data);
}

/* Frees finished requests and lets their connections continue, close or be freed. */
static void reap_dead(http_server_t *s)
{
    http_request_t *req = s->dead;
    s->dead = NULL;
    while (req) {
        http_request_t *next = req->dead_next;
        http_conn_t *c = req->conn;
        bool keep = req->keep_alive && !req->aborted;
        /* the caller's next heavy request may start */
        http_request_t *turn = gate_leave(s->gate, req);
        c->req = NULL;
        request_free(req);
        if (c->closing) {
            conn_free_if_done(c);
        } else if (keep) {
            /* Not keep-alive: the close happens after the last write (close_after). */
            c->state = CONN_IDLE;
            conn_slot_update(c);
            conn_continue(c);
        }
        if (turn) {
            http_set_abort(turn, NULL, NULL);
            turn->route->handler(turn);
        }
        req = next;
    }
}

static void reaper_fired(uv_timer_t *t)
{
    reap_dead(t->data);
}

void http_respond_take(http_request_t *req, int status, const char *content_type, char *body,
                       size_t len)
{
    if (req->finished || req->streaming) {
        free(body);
        return;
    }
    http_conn_t *c = req->conn;
    req->status = status;
    if (req->aborted || c->closing) {
        free(body);
        request_finish(req);
        return;
    }
    if (req->method == OGD_OPTIONS && status == 0)
        status = 200;
    if (req->server->draining)
        req->keep_alive = false;
    bool no_body = status == 204 || status == 304;
    /* The answer to a HEAD request (only the router's and the protocol errors': no route
     * serves HEAD) ends with its header section, Content-Length included (RFC 9110 9.3.2):
     * the client reads no content, so bytes sent anyway would be taken for the next
     * answer on the connection. */
    bool head_only = no_body || req->method == (http_method)HTTP_HEAD;
    buf_t h;
    buf_init(&h, 1 << 20);
    build_head(req, &h, status, no_body ? NULL : content_type, no_body ? -1 : (long long)len,
               false);
    size_t hlen = h.len;
    req->bytes_out = head_only ? 0 : len;
    bool close_after = !req->keep_alive;
    /* Finished (logged, counted) before the bytes go out: a client that has its answer
     * finds the request in the metrics. */
    request_finish(req);
    queue_write(c, req, buf_take(&h), hlen, head_only ? (free(body), NULL) : body,
                head_only ? 0 : len, NULL, NULL, NULL, close_after);
}

void http_respond(http_request_t *req, int status, const char *content_type, const void *body,
                  size_t len)
{
    char *copy = malloc(len ? len : 1);
    if (!copy) {
        req->keep_alive = false;
        http_respond_take(req, 500, "text/plain", NULL, 0);
        return;
    }
    if (len)
        memcpy(copy, body, len);
    http_respond_take(req, status, content_type, copy, len);
}

void http_respond_error(http_request_t *req, int status, const char *detail)
{
    buf_t b;
    buf_init(&b, 1 << 20);
    buf_puts(&b, "{\"detail\":");
    jsonw_string(&b, detail, strlen(detail));
    buf_putc(&b, '}');
    size_t len = b.len;
    http_respond_take(req, status, "application/json", buf_take(&b), len);
}

void http_stream_start(http_request_t *req, int status, const char *content_type)
{
    if (req->finished || req->streaming)
        return;
    req->streaming = true;
    req->status = status;
    if (req->aborted || req->conn->closing)
        return;
    if (req->server->draining)
        req->keep_alive = false;
    buf_t h;
    buf_init(&h, 1 << 20);
    build_head(req, &h, status, content_type, -1, true);
    size_t hlen = h.len;
    queue_write(req->conn, req, buf_take(&h), hlen, NULL, 0, NULL, NULL, NULL, false);
}

int http_stream_write_take(http_request_t *req, char *data, size_t len, http_write_cb cb,
                           void *cbdata)
{
    if (!req->streaming || req->finished) {
        free(data);
        return -EINVAL;
    }
    if (req->aborted || req->conn->closing) {
        free(data);
        return -ECANCELED;
    }
    if (len == 0) {
        free(data);
        if (cb)
            cb(req, 0, cbdata);
        return 0;
    }
    char head[24];
    int hl = snprintf(head, sizeof(head), "%zx\r\n", len);
    char *h = malloc((size_t)hl);
    if (!h) {
        free(data);
        return -ENOMEM;
    }
    memcpy(h, head, (size_t)hl);
    req->bytes_out += len;
    return queue_write(req->conn, req, h, (size_t)hl, data, len, "\r\n", cb, cbdata, false);
}

int http_stream_write(http_request_t *req, const void *data, size_t len, http_write_cb cb,
                      void *cbdata)
{
    if (!req->streaming || req->finished)
        return -EINVAL;
    if (req->aborted || req->conn->closing)
        return -ECANCELED;
    char *body = malloc(len ? len : 1);
    if (!body)
        return -ENOMEM;
    if (len)
        memcpy(body, data, len);
    return http_stream_write_take(req, body, len, cb, cbdata);
}

void http_stream_end(http_request_t *req)
{
    if (!req->streaming || req->finished)
        return;
    http_conn_t *c = req->conn;
    bool send = !req->aborted && !c->closing;
    request_finish(req); /* before the last bytes, as in http_respond_take */
    if (send) {
        char *tail = malloc(5);
        if (tail) {
            memcpy(tail, "0\r\n\r\n", 5);
            queue_write(c, req, tail, 5, NULL, 0, NULL, NULL, NULL, !req->keep_alive);
        }
    }
}

void http_stream_abort(http_request_t *req)
{
    if (!req->streaming || req->finished)
        return;
    http_conn_t *c = req->conn;
    req->keep_alive = false;
    request_finish(req);
    /* No terminating chunk: the client sees a truncated body, never a complete one. */
    if (!c->closing)
        conn_close(c);
}

/* ---- connection ---- */

/* A file-backed body is released on the thread pool: unmapping and freeing the pages
 * of a large upload takes tens of milliseconds (~75 ms for 424 MB), too long for the
 * loop. */
typedef struct body_release {
    uv_work_t work;
    void *map;
    size_t len;
    int fd;
} body_release;

static void body_release_run(uv_work_t *w)
{
    pool_work_begins();
    body_release *r = w->data;
    munmap(r->map, r->len);
    close(r->fd);
}

static void body_release_done(uv_work_t *w, int status)
{
    pool_work_ends(status);
    free(w->data);
}

static void request_free(http_request_t *req)
{
    if (req->body_fd >= 0) {
        body_release *r = malloc(sizeof(*r));
        if (r) {
            *r = (body_release){.map = req->body_map, .len = req->body_map_len, .fd = req->body_fd};
            r->work.data = r;
        }
        if (!r || pool_queue_work(req->server->loop, &r->work, body_release_run,
                                  body_release_done) != 0) {
            free(r);
            munmap(req->body_map, req->body_map_len);
            close(req->body_fd);
        }
        memset(&req->body, 0, sizeof(req->body));
    }
    buf_free(&req->body);
    buf_free(&req->resp_headers);
    arena_free(&req->arena);
    free(req);
}

static http_request_t *request_new(http_conn_t *c)
{
    http_request_t *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->conn = c;
    req->server = c->server;
    req->app = c->server->app;
    arena_init(&req->arena, REQUEST_ARENA_MAX);
    buf_init(&req->body, c->server->limits.max_body_bytes);
    req->body_fd = -1;
    list_init(&req->gate_node);
    buf_init(&req->resp_headers, 64 * 1024);
    req->start_ns = now_ns();
    req->keep_alive = true;
    snprintf(req->id, sizeof(req->id), "%08x%08llx", (unsigned)getpid(),
             (unsigned long long)++c->server->next_id);
    return req;
}

static void reaper_handle_closed(uv_handle_t *h)
{
    http_server_t *s = h->data;
    s->reaper_closed = true;
    if (s->close_done) {
        void (*done)(void *) = s->close_done;
        s->close_done = NULL;
        done(s->close_data);
    }
}

/* After a close, once the last connection is gone: the reaper has nothing left to do. */
static void close_finished(http_server_t *s)
{
    if (!uv_is_closing((uv_handle_t *)&s->reaper))
        uv_close((uv_handle_t *)&s->reaper, reaper_handle_closed);
}

/* ---- connection slots (see the header comment) ---- */

static const char busy_response[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                                    "application/json\r\nRetry-After: 1\r\nContent-Length: "
                                    "41\r\nConnection: close\r\n\r\n"
                                    "{\"detail\":\"Server busy, try again later\"}";

static void try_write_busy(http_conn_t *c)
{
    uv_buf_t b = uv_buf_init((char *)busy_response, sizeof(busy_response) - 1);
    uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
}

static size_t client_bucket(const http_server_t *s, const ip_addr *a)
{
    uint64_t h;
    crypto_shorthash((unsigned char *)&h, a->b, sizeof(a->b), s->client_key);
    return (size_t)h & (s->nbuckets - 1);
}

/* Doubles the buckets (as many as clients); on failure the chains just grow longer. */
static void clients_grow(http_server_t *s)
{
    size_t n = s->nbuckets * 2;
    http_client **t = calloc(n, sizeof(*t));
    if (!t)
        return;
    http_client **old = s->clients;
    size_t oldn = s->nbuckets;
    s->clients = t;
    s->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        for (http_client *cl = old[i], *next; cl; cl = next) {
            next = cl->hnext;
            size_t b = client_bucket(s, &cl->addr);
            cl->hnext = t[b];
            t[b] = cl;
        }
    }
    free(old);
}

/* The client of address a, made if it has no connection yet (NULL: out of memory). */
static http_client *client_get(http_server_t *s, const ip_addr *a)
{
    for (http_client *cl = s->clients[client_bucket(s, a)]; cl; cl = cl->hnext)
        if (ip_equal(&cl->addr, a))
            return cl;
    if (s->nclients >= s->nbuckets)
        clients_grow(s);
    http_client *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return NULL;
    cl->addr = *a;
    cl->trusted = ip_nets_contain(s->trusted, s->ntrusted, a);
    size_t b = client_bucket(s, a);
    cl->hnext = s->clients[b];
    s->clients[b] = cl;
    s->nclients++;
    return cl;
}

/* Forgets a client without connections. */
static void client_release(http_server_t *s, http_client *cl)
{
    if (cl->nconns > 0)
        return;
    http_client **pp = &s->clients[client_bucket(s, &cl->addr)];
    while (*pp && *pp != cl)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = cl->hnext;
    s->nclients--;
    free(cl);
}

static void client_attach(http_conn_t *c, http_client *cl)
{
    c->client = cl;
    c->cprev = NULL;
    c->cnext = cl->conns;
    if (cl->conns)
        cl->conns->cprev = c;
    cl->conns = c;
    cl->nconns++;
    c->server->nopen++;
    ip_format(&cl->addr, c->client_text, sizeof(c->client_text));
}

/* The connection no longer counts for its client (which goes once it has none). */
static void client_detach(http_conn_t *c)
{
    http_client *cl = c->client;
    if (!cl)
        return;
    if (c->cprev)
        c->cprev->cnext = c->cnext;
    else
        cl->conns = c->cnext;
    if (c->cnext)
        c->cnext->cprev = c->cprev;
    c->cprev = c->cnext = NULL;
    c->client = NULL;
    cl->nconns--;
    c->server->nopen--;
    client_release(c->server, cl);
}

static void drop_unlink(http_conn_t *c)
{
    if (c->drop_class == DROP_NEVER)
        return;
    http_server_t *s = c->server;
    if (c->dprev)
        c->dprev->dnext = c->dnext;
    else
        s->droppable[c->drop_class].head = c->dnext;
    if (c->dnext)
        c->dnext->dprev = c->dprev;
    else
        s->droppable[c->drop_class].tail = c->dprev;
    c->dprev = c->dnext = NULL;
    c->drop_class = DROP_NEVER;
}

/* Puts the connection in the drop class its state gives it. A connection that stays in
 * its class keeps its place: a new connection that starts its header is as old as when
 * it was accepted. */
static void conn_slot_update(http_conn_t *c)
{
    int cls = DROP_NEVER;
    if (!c->closing && c->client && c->writes == 0) {
        if (c->lingering)
            cls = DROP_IDLE;
        else if (c->state == CONN_IDLE)
            cls = c->served ? DROP_IDLE : DROP_UNFINISHED;
        else if (c->state == CONN_HEADERS)
            cls = DROP_UNFINISHED;
    }
    if (cls == c->drop_class)
        return;
    drop_unlink(c);
    if (cls == DROP_NEVER)
        return;
    http_server_t *s = c->server;
    c->drop_class = cls;
    c->drop_seq = ++s->drop_seq;
    c->dprev = s->droppable[cls].tail;
    if (c->dprev)
        c->dprev->dnext = c;
    else
        s->droppable[cls].head = c;
    s->droppable[cls].tail = c;
}

/* A closing connection holds no slot. */
static void conn_forget(http_conn_t *c)
{
    drop_unlink(c);
    client_detach(c);
}

static bool drops_before(const http_conn_t *a, const http_conn_t *b)
{
    return a->drop_class < b->drop_class ||
           (a->drop_class == b->drop_class && a->drop_seq < b->drop_seq);
}

static http_conn_t *oldest_droppable(http_server_t *s)
{
    if (s->droppable[DROP_IDLE].head)
        return s->droppable[DROP_IDLE].head;
    return s->droppable[DROP_UNFINISHED].head;
}

/* The client's own connection to drop first (not except), or NULL. */
static http_conn_t *client_oldest_droppable(const http_client *cl, const http_conn_t *except)
{
    http_conn_t *best = NULL;
    for (http_conn_t *c = cl->conns; c; c = c->cnext)
        if (c != except && c->drop_class != DROP_NEVER && (!best || drops_before(c, best)))
            best = c;
    return best;
}

/* One warning per FLOOD_LOG_NS at most while slots are taken back or refused. */
static void flood_note(http_server_t *s, const char *cap, const http_client *cl)
{
    uint64_t now = now_ns();
    if (s->flood_logged_ns && now - s->flood_logged_ns < FLOOD_LOG_NS)
        return;
    s->flood_logged_ns = now;
    char addr[IP_TEXT_MAX];
    ip_format(&cl->addr, addr, sizeof(addr));
    log_warn("connections: %s reached (a new connection of %s); so far %llu idle or "
             "unfinished connections dropped to make room, %llu new ones refused (503)",
             cap, addr, (unsigned long long)s->conns_dropped, (unsigned long long)s->conns_refused);
}

/* Takes a slot back: a connection that had begun a request header is told why. */
static void conn_drop(http_conn_t *c)
{
    c->server->conns_dropped++;
    if (c->state == CONN_HEADERS)
        try_write_busy(c);
    conn_close(c);
}

/* Gives a new connection its slot, or answers it 503 and closes it (false). */
static bool conn_admit(http_conn_t *c)
{
    http_server_t *s = c->server;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0 ||
        !ip_from_sockaddr((struct sockaddr *)&ss, &c->peer)) {
        conn_close(c); /* gone already */
        return false;
    }
    c->peer_trusted = ip_nets_contain(s->trusted, s->ntrusted, &c->peer);
    http_client *cl = client_get(s, &c->peer);
    if (!cl) {
        conn_close(c);
        return false;
    }
    unsigned cap = s->limits.max_conns_per_client;
    const char *full = NULL;
    http_conn_t *victim = NULL;
    if (cap && !cl->trusted && cl->nconns >= cap) {
        full = "max_connections_per_client";
        victim = client_oldest_droppable(cl, NULL);
    } else if (s->nopen >= s->limits.max_connections) {
        full = "worker_connections";
        victim = oldest_droppable(s);
    }
    if (full && !victim) {
        s->conns_refused++;
        flood_note(s, full, cl);
        client_release(s, cl);
        try_write_busy(c);
        conn_close(c);
        return false;
    }
    client_attach(c, cl); /* first: the victim may be the client's only other one */
    if (victim) {
        conn_drop(victim);
        flood_note(s, full, cl);
    }
    return true;
}

/* One X-Forwarded-For entry, s[0..len) trimmed: an address, with a port as some proxies
 * write it ("192.0.2.1:443", "[2001:db8::1]:443"). */
static bool forwarded_entry(const char *s, size_t len, ip_addr *out)
{
    if (s[0] == '[') {
        const char *end = memchr(s, ']', len);
        return end && ip_parse(s + 1, (size_t)(end - s - 1), out);
    }
    const char *colon = memchr(s, ':', len);
    if (colon && !memchr(colon + 1, ':', len - (size_t)(colon + 1 - s)))
        len = (size_t)(colon - s); /* IPv4 and a port */
    return ip_parse(s, len, out);
}

/* The client of a request from a trusted proxy: X-Forwarded-For read from the right (the
 * last header line first; each proxy appends the address it got the request from), the
 * first entry that is not a trusted proxy itself, or the left-most when all are (as
 * gunicorn and uvicorn read it). False without the header, or when that entry is not an
 * address ("unknown"): the request then counts for the peer. */
static bool forwarded_client(const http_server_t *s, const http_request_t *req, ip_addr *out)
{
    bool found = false;
    for (size_t i = req->nheaders; i-- > 0;) {
        if (strcmp(req->headers[i].name, "x-forwarded-for") != 0)
            continue;
        const char *v = req->headers[i].value;
        size_t end = strlen(v);
        for (;;) {
            size_t start = end;
            while (start > 0 && v[start - 1] != ',')
                start--;
            size_t a = start, b = end;
            while (a < b && (v[a] == ' ' || v[a] == '\t'))
                a++;
            while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
                b--;
            if (b > a) {
                if (!forwarded_entry(v + a, b - a, out))
                    return false;
                found = true;
                if (!ip_nets_contain(s->trusted, s->ntrusted, out))
                    return true;
            }
            if (start == 0)
                break;
            end = start - 1;
        }
    }
    return found;
}

/* A request header from a trusted proxy is complete: the connection now counts for the
 * client the request names (or the proxy, without X-Forwarded-For). A capped client over
 * its cap loses its own oldest idle or unfinished connection; the request itself is
 * complete and is served either way. */
static void conn_attribute(http_conn_t *c, const http_request_t *req)
{
    http_server_t *s = c->server;
    if (!c->peer_trusted || !c->client)
        return;
    ip_addr a;
    if (!forwarded_client(s, req, &a))
        a = c->peer;
    if (ip_equal(&a, &c->client->addr))
        return;
    http_client *cl = client_get(s, &a);
    if (!cl)
        return;
    client_detach(c);
    client_attach(c, cl);
    unsigned cap = s->limits.max_conns_per_client;
    if (cap && !cl->trusted && cl->nconns > cap) {
        http_conn_t *victim = client_oldest_droppable(cl, c);
        if (victim) {
            conn_drop(victim);
            flood_note(s, "max_connections_per_client", cl);
        }
    }
}

static void conn_free_if_done(http_conn_t *c)
{
    if (c->handles > 0 || c->req)
        return;
    http_server_t *s = c->server;
    conn_forget(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    buf_free(&c->field);
    buf_free(&c->value);
    free(c->in);
    free(c);
    if (s->draining && s->nconns == 0 && s->drain_done) {
        void (*done)(void *) = s->drain_done;
        s->drain_done = NULL;
        done(s->drain_data);
    }
    if (s->closed && s->nconns == 0)
        close_finished(s);
}

static void handle_closed(uv_handle_t *h)
{
    http_conn_t *c = h->data;
    c->handles--;
    conn_free_if_done(c);
}

static void conn_close(http_conn_t *c)
{
    if (c->closing) {
        conn_free_if_done(c);
        return;
    }
    c->closing = true;
    conn_forget(c);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->tcp, handle_closed);
    uv_close((uv_handle_t *)&c->timer, handle_closed);
    if (c->req && !c->req->finished) {
        http_request_t *req = c->req;
        req->aborted = true;
        if (c->state == CONN_PROCESSING) {
            if (req->on_abort)
                req->on_abort(req, req->abort_data);
        } else {
            /* Still being parsed: no handler owns it. */
            c->req = NULL;
            request_free(req);
        }
    }
}

static void timer_fired(uv_timer_t *t)
{
    http_conn_t *c = t->data;
    if (c->state == CONN_HEADERS || c->state == CONN_BODY) {
        /* A client that stalls mid-request gets 408 and the connection closes. */
        static const char resp[] = "HTTP/1.1 408 Request Timeout\r\nContent-Type: "
                                   "application/json\r\nContent-Length: 28\r\nConnection: "
                                   "close\r\n\r\n{\"detail\":\"Request Timeout\"}";
        uv_buf_t b = uv_buf_init((char *)resp, sizeof(resp) - 1);
        uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
    conn_close(c);
}

static void arm_timer(http_conn_t *c, unsigned ms)
{
    if (!c->closing)
        uv_timer_start(&c->timer, timer_fired, ms, 0);
}

/* Answers a protocol error directly (no handler) and closes. */
static void reject(http_conn_t *c, int status, const char *detail)
{
    if (c->closing)
        return;
    http_request_t *req = c->req;
    if (!req) {
        req = request_new(c);
        if (!req) {
            conn_close(c);
            return;
        }
        c->req = req;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    uv_timer_stop(&c->timer);
    c->state = CONN_PROCESSING;
    conn_slot_update(c);
    req->keep_alive = false;
    http_respond_error(req, status, detail);
}

static int on_message_begin(llhttp_t *p)
{
    http_conn_t *c = p->data;
    c->req = request_new(c);
    if (!c->req)
        return -1;
    c->state = CONN_HEADERS;
    conn_slot_update(c);
    c->header_bytes = 0;
    c->in_value = false;
    buf_reset(&c->field);
    buf_reset(&c->value);
    arm_timer(c, c->server->limits.header_timeout_ms);
    return 0;
}

static int count_header_bytes(http_conn_t *c, size_t n)
{
    c->header_bytes += n;
    if (c->header_bytes > c->server->limits.max_header_bytes) {
        c->parse_error_pending = true;
        return -1;
    }
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    http_conn_t *c = p->data;
    if (count_header_bytes(c, len))
        return -1;
    return buf_append(&c->value, at, len) ? -1 : 0;
}

static int on_url_complete(llhttp_t *p)
{
    http_conn_t *c = p->data;
    c->req->target =
        arena_strndup(&c->req->arena, c->value.data ? c->value.data : "", c->value.len);
    buf_reset(&c->value);
    return c->req->target ? 0 : -1;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    http_conn_t *c = p->data;
    if (count_header_bytes(c, len))
        return -1;
    return buf_append(&c->field, at, len) ? -1 : 0;
}

/* Whether the bytes before a header value chunk at `at` are a line feed and then only
 * blanks: the value continues on a folded line (obs-fold), also when it was empty before
 * the fold ("Transfer-Encoding:\r\n chunked": llhttp 8 then hands over "chunked"). Looks
 * back through the current llhttp_execute input and the tail of the previous ones. */
static bool continues_a_line(const http_conn_t *c, const char *at)
{
    const char *p = at;
    size_t tail = c->prev_tail_len;
    bool blank = false;
    for (;;) {
        char ch;
        if (p > c->exec_start)
            ch = *--p;
        else if (tail > 0)
            ch = c->prev_tail[--tail];
        else
            return false; /* the start of the connection's input */
        if (ch == '\n')
            return blank || (at[0] == ' ' || at[0] == '\t');
        if (ch != ' ' && ch != '\t')
            return false;
        blank = true;
    }
}

/* Keeps the last bytes of an llhttp_execute input for continues_a_line. */
static void remember_tail(http_conn_t *c, const char *data, size_t n)
{
    size_t cap = sizeof(c->prev_tail);
    if (n >= cap) {
        memcpy(c->prev_tail, data + n - cap, cap);
        c->prev_tail_len = cap;
        return;
    }
    size_t keep = c->prev_tail_len + n > cap ? cap - n : c->prev_tail_len;
    memmove(c->prev_tail, c->prev_tail + c->prev_tail_len - keep, keep);
    memcpy(c->prev_tail + keep, data, n);
    c->prev_tail_len = keep + n;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    http_conn_t *c = p->data;
    /* llhttp 8 accepts obs-fold (a value continued on a line that starts with SP/HT) and
     * hands the continuation over as more value. Smuggling rules: reject it. A value
     * chunk starting with whitespace right after a line feed is such a continuation. */
    if (len && continues_a_line(c, at)) {
        c->obs_fold = true;
        return -1;
    }
    if (count_header_bytes(c, len))
        return -1;
    return buf_append(&c->value, at, len) ? -1 : 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    http_conn_t *c = p->data;
    http_request_t *req = c->req;
    if (c->state == CONN_BODY) {
        /* A field of a chunked body's trailer section: not a header (RFC 9110 6.5.1),
         * so it cannot add a Host, an Authorization or a Content-Type that the header
         * section, and whatever checked it on the way, did not have. Counted in the
         * header bytes, then dropped. */
        buf_reset(&c->field);
        buf_reset(&c->value);
        return 0;
    }
    if (req->nheaders >= HTTP_MAX_HEADERS) {
        c->parse_error_pending = true;
        return -1;
    }

    char *name = arena_strndup(&req->arena, c->field.data ? c->field.data : "", c->field.len);
    char *value = arena_strndup(&req->arena, c->value.data ? c->value.data : "", c->value.len);
    if (!name || !value)
        return -1;
    for (char *q = name; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    req->headers[req->nheaders].name = name;
    req->headers[req->nheaders].value = value;
    req->nheaders++;
    buf_reset(&c->field);
    buf_reset(&c->value);
    return 0;
}

/* Body bytes held in the heap before a large upload's memfd is made: enough for the
 * first part's headers of a multipart body. */
#define BODY_HEAD_MAX ((size_t)64 << 10)

/* A large upload's body goes to a memfd of its announced size (plus a NUL and up to 63
 * bytes in front), mapped where the heap buffer would be: the rest of the body arrives
 * straight from the socket (alloc_cb) and a handler may pass the fd on. The first body
 * bytes (up to the end of the first part's headers, at most BODY_HEAD_MAX) are held in
 * the heap until the memfd's leading gap is known. Pages are allocated as bytes arrive,
 * as with the heap. On any failure the body stays in the heap. */
static void body_to_file(http_request_t *req)
{
    req->body_file_wait = false;
    size_t len = req->body.max, gap = 0;
    const char *hd = req->body.data ? memmem(req->body.data, req->body.len, "\r\n\r\n", 4) : NULL;
    if (hd)
        gap = (64 - (size_t)(hd + 4 - req->body.data) % 64) % 64;
    int fd = memfd_create("ogd-request-body", MFD_CLOEXEC);
    if (fd < 0)
        return;
    void *map = MAP_FAILED;
    if (ftruncate(fd, (off_t)(gap + len + 1)) == 0)
        map = mmap(NULL, gap + len + 1, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        close(fd);
        return;
    }
    char *data = (char *)map + gap;
    size_t have = req->body.len;
    if (have)
        memcpy(data, req->body.data, have);
    buf_free(&req->body);
    req->body.data = data;
    req->body.len = have;
    req->body.cap = 0;
    req->body.max = len;
    req->body_fd = fd;
    req->body_fd_offset = gap;
    req->body_map = map;
    req->body_map_len = gap + len + 1;
}

static int on_headers_complete(llhttp_t *p)
{
    http_conn_t *c = p->data;
    http_request_t *req = c->req;
    http_server_t *s = c->server;
    req->method = (http_method)llhttp_get_method(p);
    req->method_name = llhttp_method_name(llhttp_get_method(p));
    req->keep_alive = llhttp_should_keep_alive(p) != 0;
    int host_count = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcmp(req->headers[i].name, "host") == 0)
            host_count++;
    /* RFC 9112: exactly one Host in HTTP/1.1 (3.2), none of HTTP/0.9's version-less
     * request lines (a message without headers that some servers read differently). */
    if (host_count > 1 || (p->http_major == 1 && p->http_minor == 1 && host_count == 0) ||
        p->http_major != 1) {
        c->parse_error_pending = true;
        return -1;
    }
    conn_attribute(c, req);

    /* Split target into path and query; strip the url_prefix. */
    const char *t = req->target;
    const char *qm = strchr(t, '?');
    size_t plen = qm ? (size_t)(qm - t) : strlen(t);
    req->query = arena_strdup(&req->arena, qm ? qm + 1 : "");
    req->path = http_decode(&req->arena, t, plen, false);
    if (!req->path || !req->query)
        return -1;
    size_t pre = strlen(s->url_prefix);
    if (pre && strncmp(req->path, s->url_prefix, pre) == 0 &&
        (req->path[pre] == '/' || req->path[pre] == '\0')) {
        req->path += pre;
        if (!*req->path)
            req->path = "/";
    }
    route_match m;
    router_match(s->routes, s->nroutes, req->method, req->path, req->query, &req->arena, &m);
    req->route = m.route;
    memcpy(req->params, m.params, sizeof(req->params));
    req->nparams = m.nparams;
    req->route_allow = m.outcome == ROUTE_METHOD_NOT_ALLOWED ? m.allow : NULL;
    req->route_redirect = m.outcome == ROUTE_REDIRECT;
    req->route_location = m.location;
    c->max_body = s->limits.max_body_bytes;
    if (req->route && req->route->max_body)
        c->max_body = req->route->max_body;
    if (req->route && req->route->max_body == HTTP_BODY_UPLOAD)
        c->max_body =
            s->limits.max_upload_bytes ? s->limits.max_upload_bytes : s->limits.max_body_bytes;
    req->body.max = c->max_body;
    if (p->flags & F_CONTENT_LENGTH && p->content_length > c->max_body) {
        c->parse_error_pending = true;
        return -1;
    }
    if (req->route && req->route->max_body == HTTP_BODY_UPLOAD && p->flags & F_CONTENT_LENGTH &&
        p->content_length >= HTTP_UPLOAD_FILE_MIN) {
        req->body_file_wait = true; /* body_to_file, once the first part's start is seen */
        req->body.max = (size_t)p->content_length;
    }
    c->state = CONN_BODY; /* not droppable from here on */
    conn_slot_update(c);
    arm_timer(c, s->limits.body_timeout_ms);
    /* Paused, so conn_parse sees where the header section ended (ends_with_crlf). */
    c->head_paused = true;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    http_conn_t *c = p->data;
    http_request_t *req = c->req;
    if (req->body_fd >= 0) {
        /* llhttp counts the announced length; checked again all the same */
        if (len > req->body.max - req->body.len) {
            c->parse_error_pending = true;
            return -1;
        }
        if (at != req->body.data + req->body.len) /* else read there already (alloc_cb) */
            memcpy(req->body.data + req->body.len, at, len);
        req->body.len += len;
        return 0;
    }
    if (buf_append(&req->body, at, len)) {
        c->parse_error_pending = true;
        return -1;
    }
    if (req->body_file_wait &&
        (req->body.len >= BODY_HEAD_MAX || req->body.len == req->body.max ||
         memmem(req->body.data + (req->body.len - len > 3 ? req->body.len - len - 3 : 0),
                req->body.len - (req->body.len - len > 3 ? req->body.len - len - 3 : 0), "\r\n\r\n",
                4)))
        body_to_file(req);
    return 0;
}

/* A chunk's size is known before its data: one that would take the body past the
 * route's limit is refused at once (413), not after the client has sent it. */
static int on_chunk_header(llhttp_t *p)
{
    http_conn_t *c = p->data;
    http_request_t *req = c->req;
    if (req && p->content_length > req->body.max - req->body.len) {
        c->parse_error_pending = true;
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    http_conn_t *c = p->data;
    c->state = CONN_PROCESSING;
    conn_slot_update(c);
    uv_timer_stop(&c->timer);
    return HPE_PAUSED;
}

static llhttp_settings_t parser_settings;

/* A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered
 * here for any path, as the reference's CORS middleware does, before routing. */
static void preflight(http_request_t *req)
{
    static const char *const allowed[] = {"DELETE", "GET",  "HEAD", "OPTIONS",
                                          "PATCH",  "POST", "PUT"};
    const char *want = http_header_get(req, "access-control-request-method");
    bool ok = false;
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        if (strcmp(want, allowed[i]) == 0)
            ok = true;
    http_add_header(req, "Access-Control-Allow-Methods",
                    "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT");
    http_add_header(req, "Access-Control-Max-Age", "600");
    const char *hdrs = http_header_get(req, "access-control-request-headers");
    if (hdrs)
        http_add_header(req, "Access-Control-Allow-Headers", hdrs);
    if (!ok) {
        http_respond(req, 400, "text/plain; charset=utf-8", "Disallowed CORS method", 22);
        return;
    }
    http_respond(req, 200, "text/plain; charset=utf-8", "OK", 2);
}

/* A heavy request waiting for its user's turn whose client went away: out of the queue,
 * and finished (the 503 writes nothing: the connection is gone). */
static void gate_waiting_abort(http_request_t *req, void *data)
{
    http_gate_t *g = data;
    gate_drop(g, req);
    http_set_abort(req, NULL, NULL);
    http_respond_error(req, 503, "Client closed the request");
}

/* Runs a matched, authorised request: heavy routes pass the fairness gate first. */
static void run_route(http_server_t *s, http_request_t *req)
{
    if (!req->route->heavy) {
        req->route->handler(req);
        return;
    }
    switch (gate_enter(s->gate, req)) {
    case GATE_RUN:
        req->route->handler(req);
        return;
    case GATE_WAIT:
        http_set_abort(req, gate_waiting_abort, s->gate);
        return;
    case GATE_SHED:
        http_add_header(req, "Retry-After", "1");
        http_respond_error(req, 503, "Server busy, try again later");
        return;
    case GATE_NOMEM:
        http_respond_error(req, 500, "Unknown error");
        return;
    }
}

/* A complete request: the preflight, the router's outcome, authorisation, the handler. */
static void dispatch(http_conn_t *c)
{
    http_request_t *req = c->req;
    http_server_t *s = c->server;
    if (req->method == OGD_OPTIONS && http_header_get(req, "origin") &&
        http_header_get(req, "access-control-request-method")) {
        preflight(req);
        return;
    }
    if (!req->route) {
        if (req->route_allow) {
            http_add_header(req, "Allow", req->route_allow);
            http_respond_error(req, 405, "Method Not Allowed");
        } else if (req->route_redirect) {
            if (req->route_location)
                http_add_header(req, "Location", req->route_location);
            http_respond(req, 307, NULL, "", 0);
        } else {
            http_respond_error(req, 404, "Not Found");
        }
        return;
    }
    if (req->route->auth != AUTH_NONE) {
        if (!s->authorizer) {
            http_add_header(req, "WWW-Authenticate", "Bearer");
            http_respond_error(req, 401, "Not authenticated");
            return;
        }
        if (!s->authorizer(req))
            return;
    }
    run_route(s, req);
}

/* Answers a parse error: the limits we set, or malformed / smuggling-shaped input. */
static void parse_failed(http_conn_t *c, llhttp_errno_t err)
{
    if (c->parse_error_pending && c->req) {
        c->parse_error_pending = false;
        if (c->state == CONN_BODY ||
            (c->parser.flags & F_CONTENT_LENGTH && c->parser.content_length > c->max_body))
            reject(c, 413, "Request body too large");
        else if (c->req->nheaders >= HTTP_MAX_HEADERS ||
                 c->header_bytes > c->server->limits.max_header_bytes)
            reject(c, 431, "Request header fields too large");
        else
            reject(c, 400, "Bad request");
    } else {
        char msg[160];
        snprintf(msg, sizeof(msg), "Bad request: %s",
                 llhttp_get_error_reason(&c->parser) ? llhttp_get_error_reason(&c->parser)
                                                     : llhttp_errno_name(err));
        reject(c, 400, msg);
    }
}

/* Bytes read straight into a file-backed body (alloc_cb never asks for more than the
 * body still lacks, so they are body bytes only): parsed in place. */
static void body_parse_in_place(http_conn_t *c, const char *at, size_t n)
{
    c->exec_start = at;
    llhttp_errno_t err = llhttp_execute(&c->parser, at, n);
    remember_tail(c, at, n);
    if (err == HPE_OK)
        return;
    if (err == HPE_PAUSED && llhttp_get_error_pos(&c->parser) == at + n) {
        llhttp_resume(&c->parser);
        dispatch(c);
        return;
    }
    if (err == HPE_PAUSED) { /* cannot happen: the message ends with the body */
        conn_close(c);
        return;
    }
    parse_failed(c, err);
}

/* While a request is dispatched: reading goes on (to see the client leave) unless the
 * pipelined bytes waiting behind it have reached PIPELINE_MAX. */
static void hold_pipelined(http_conn_t *c)
{
    if (c->reading && c->inlen - c->inpos >= PIPELINE_MAX) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* Whether the bytes parsed so far end with CRLF. llhttp 8 (strict) refuses a bare LF at
 * the end of the request line, of a header line, of a chunk line, but takes one for the
 * empty line that ends the header section or the trailer section ("Host: x\r\n\n",
 * "0\r\n\n"): checked here, at the pauses that end those sections. */
static bool ends_with_crlf(const http_conn_t *c)
{
    return c->prev_tail_len >= 2 && c->prev_tail[c->prev_tail_len - 2] == '\r' &&
           c->prev_tail[c->prev_tail_len - 1] == '\n';
}

/* Feeds buffered input to the parser until a request is complete, input runs out, or an
 * error closes the connection. */
static void conn_parse(http_conn_t *c)
{
    bool resume = false; /* llhttp goes on from a pause without needing more bytes */
    while (!c->closing && (c->inpos < c->inlen || resume)) {
        resume = false;
        const char *start = c->in + c->inpos;
        size_t n = c->inlen - c->inpos;
        c->exec_start = start;
        llhttp_errno_t err = llhttp_execute(&c->parser, start, n);
        if (err == HPE_OK) {
            remember_tail(c, start, n);
            c->inpos = c->inlen;
            break;
        }
        if (err == HPE_PAUSED) {
            const char *pos = llhttp_get_error_pos(&c->parser);
            remember_tail(c, start, (size_t)(pos - start)); /* what was parsed */
            c->inpos = (size_t)(pos - c->in);
            llhttp_resume(&c->parser);
            if (c->head_paused) { /* the end of a header section */
                c->head_paused = false;
                if (!ends_with_crlf(c)) {
                    reject(c, 400, "Bad request: a bare LF ends the header section");
                    return;
                }
                resume = true;
                continue;
            }
            if (c->parser.flags & F_CHUNKED && !ends_with_crlf(c)) {
                reject(c, 400, "Bad request: a bare LF ends the chunked body");
                return;
            }
            hold_pipelined(c);
            dispatch(c);
            return;
        }
        remember_tail(c, start, n);
        parse_failed(c, err);
        return;
    }
    /* All input consumed; compact the buffer. */
    if (c->inpos == c->inlen) {
        c->inpos = c->inlen = 0;
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    http_conn_t *c = h->data;
    (void)suggested;
    http_request_t *req = c->req;
    if (c->state == CONN_BODY && req && req->body_fd >= 0 && c->inpos == c->inlen &&
        !c->lingering && req->body.len < req->body.max) {
        /* the rest of a file-backed body: straight into it (read_cb parses it there) */
        size_t n = req->body.max - req->body.len;
        *b = uv_buf_init(req->body.data + req->body.len,
                         (unsigned)(n < BODY_READ_MAX ? n : BODY_READ_MAX));
        return;
    }
    if (c->incap - c->inlen < READ_CHUNK) {
        if (c->inpos > 0) {
            memmove(c->in, c->in + c->inpos, c->inlen - c->inpos);
            c->inlen -= c->inpos;
            c->inpos = 0;
        }
        if (c->incap - c->inlen < READ_CHUNK) {
            size_t ncap = c->inlen + READ_CHUNK;
            char *n = realloc(c->in, ncap);
            if (!n) {
                *b = uv_buf_init(NULL, 0);
                return;
            }
            c->in = n;
            c->incap = ncap;
        }
    }
    *b = uv_buf_init(c->in + c->inlen, (unsigned)(c->incap - c->inlen));
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    http_conn_t *c = st->data;
    (void)b;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (c->lingering) {
        c->inlen = c->inpos = 0; /* discard */
        return;
    }
    if (n == 0)
        return;
    if (c->req && c->req->body_fd >= 0 && b->base == c->req->body.data + c->req->body.len &&
        c->state == CONN_BODY) {
        body_parse_in_place(c, b->base, (size_t)n);
        return;
    }
    c->inlen += (size_t)n;
    if (c->state == CONN_PROCESSING) { /* pipelined: parsed once the request is done */
        hold_pipelined(c);
        return;
    }
    if (c->state == CONN_IDLE)
        arm_timer(c, c->server->limits.header_timeout_ms);
    conn_parse(c);
}

static void conn_continue(http_conn_t *c)
{
    if (c->closing)
        return;
    if (c->server->draining && c->inpos == c->inlen) {
        conn_close(c);
        return;
    }
    arm_timer(c, c->server->limits.keepalive_ms);
    if (c->inpos < c->inlen) {
        conn_parse(c);
        if (c->state == CONN_PROCESSING || c->closing)
            return;
    }
    if (!c->reading && !c->closing) {
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
        c->reading = true;
    }
}

static void linger_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void shutdown_done(uv_shutdown_t *req, int status)
{
    http_conn_t *c = req->data;
    if (status < 0 || c->closing) {
        conn_close(c);
        return;
    }
    /* Keep reading (and dropping) what the client still sends, so that closing does not
     * turn unread input into a reset that destroys the response before it is read. */
    if (!c->reading) {
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
        c->reading = true;
    }
    uv_timer_start(&c->timer, linger_timeout, 2000, 0);
}

/* Closes after the response: half-close, drain input briefly, then close. */
static void conn_linger(http_conn_t *c)
{
    if (c->closing || c->lingering)
        return;
    c->lingering = true;
    conn_slot_update(c);
    uv_timer_stop(&c->timer);
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, shutdown_done) != 0)
        conn_close(c);
}

static void on_connection(uv_stream_t *listener, int status)
{
    http_server_t *s = listener->data;
    if (status < 0)
        return;
    http_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->server = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->handles = 2;
    c->tcp.data = c;
    c->timer.data = c;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    buf_init(&c->field, s->limits.max_header_bytes);
    buf_init(&c->value, s->limits.max_header_bytes);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (!conn_admit(c))
        return;
    uv_tcp_nodelay(&c->tcp, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
    c->parser.data = c;
    c->state = CONN_IDLE;
    conn_slot_update(c);
    arm_timer(c, s->limits.keepalive_ms);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    c->reading = true;
}

int http_server_create(uv_loop_t *loop, int listen_fd, const http_route *routes, size_t nroutes,
                       const http_limits *limits, const char *url_prefix,
                       const char *const *cors_origins, size_t ncors, void *app,
                       http_server_t **out)
{
    llhttp_settings_init(&parser_settings);
    parser_settings.on_message_begin = on_message_begin;
    parser_settings.on_url = on_url;
    parser_settings.on_url_complete = on_url_complete;
    parser_settings.on_header_field = on_header_field;
    parser_settings.on_header_value = on_header_value;
    parser_settings.on_header_value_complete = on_header_value_complete;
    parser_settings.on_headers_complete = on_headers_complete;
    parser_settings.on_body = on_body;
    parser_settings.on_chunk_header = on_chunk_header;
    parser_settings.on_message_complete = on_message_complete;

    http_server_t *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->loop = loop;
    uv_timer_init(loop, &s->reaper);
    s->reaper.data = s;
    s->routes = routes;
    s->nroutes = nroutes;
    s->limits = *limits;
    s->app = app;
    s->gate = gate_new(limits->heavy_per_user, limits->max_pool_waiting);
    if (!s->gate) {
        free(s);
        return -ENOMEM;
    }
    /* Connection slots: the trusted proxies, the clients' table and its hash key. */
    s->limits.forwarded_allow_ips = NULL; /* borrowed: parsed here */
    s->limits.nforwarded_allow_ips = 0;
    size_t nt = limits->nforwarded_allow_ips;
    s->trusted = calloc(nt ? nt : 1, sizeof(*s->trusted));
    s->nbuckets = 64;
    s->clients = calloc(s->nbuckets, sizeof(*s->clients));
    if (!s->trusted || !s->clients || sodium_init() < 0) {
        free(s->trusted);
        free(s->clients);
        gate_free(s->gate);
        free(s);
        return -ENOMEM;
    }
    for (size_t i = 0; i < nt; i++) {
        if (!ip_net_parse(limits->forwarded_allow_ips[i], &s->trusted[s->ntrusted])) {
            log_error("http: forwarded_allow_ips: not an address or network: %.80s",
                      limits->forwarded_allow_ips[i]);
            continue;
        }
        s->ntrusted++;
    }
    randombytes_buf(s->client_key, sizeof(s->client_key));
    /* A trailing slash in the prefix is ignored: "/api/" and "/api" mean the same. */
    s->url_prefix = strdup(url_prefix ? url_prefix : "");
    size_t pl = strlen(s->url_prefix);
    while (pl > 0 && s->url_prefix[pl - 1] == '/')
        s->url_prefix[--pl] = '\0';
    s->cors_origins = calloc(ncors ? ncors : 1, sizeof(char *));
    for (size_t i = 0; i < ncors; i++)
        s->cors_origins[i] = strdup(cors_origins[i]);
    s->ncors = ncors;
    if (listen_fd >= 0) {
        uv_tcp_init(loop, &s->listener);
        s->listener.data = s;
        int rc = uv_tcp_open(&s->listener, listen_fd);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection);
        if (rc < 0) {
            uv_close((uv_handle_t *)&s->listener, NULL);
            *out = s;
            return rc;
        }
        s->listening = true;
    }
    *out = s;
    return 0;
}

/* Both stops begin alike: no new connections. */
static void stop_listening(http_server_t *s)
{
    s->draining = true;
    if (s->listening) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        s->listening = false;
    }
}

void http_server_drain(http_server_t *s, void (*done)(void *), void *data)
{
    stop_listening(s);
    s->drain_done = done;
    s->drain_data = data;
    http_conn_t *c = s->conns;
    while (c) {
        http_conn_t *next = c->next;
        /* Only idle keep-alive connections close now. A fresh connection has had no
         * request yet: its client is about to send one, so it is served (bounded by the
         * header timeout) and then closed. */
        if (c->state == CONN_IDLE && c->inpos == c->inlen && !c->req && c->served > 0)
            conn_close(c);
        c = next;
    }
    if (s->nconns == 0 && s->drain_done) {
        s->drain_done = NULL;
        done(data);
    }
}

void http_server_close(http_server_t *s, void (*done)(void *), void *data)
{
    stop_listening(s);
    s->drain_done = NULL;
    s->closed = true;
    s->close_done = done;
    s->close_data = data;
    http_conn_t *c = s->conns;
    while (c) {
        http_conn_t *next = c->next;
        conn_close(c);
        c = next;
    }
    if (s->nconns == 0)
        close_finished(s);
}

unsigned http_server_requests_running(const http_server_t *s)
{
    unsigned n = 0;
    for (const http_conn_t *c = s->conns; c; c = c->next)
        if (c->req && !c->req->finished)
            n++;
    return n;
}

void http_server_free(http_server_t *s)
{
    if (!s)
        return;
    reap_dead(s);
    /* What a stop left behind (a handler that did not finish before the loop stopped):
     * nothing runs on this loop any more, so it can go. */
    while (s->conns) {
        http_conn_t *c = s->conns;
        if (c->req) {
            http_request_t *req = c->req;
            c->req = NULL;
            request_free(req);
        }
        c->handles = 0;
        c->closing = true;
        conn_free_if_done(c);
    }
    for (size_t i = 0; i < s->ncors; i++)
        free(s->cors_origins[i]);
    free(s->cors_origins);
    free(s->url_prefix);
    gate_free(s->gate);
    free(s->trusted);
    free(s->clients); /* empty: every connection has left its client */
    free(s);
}

void http_server_gate_stats(const http_server_t *s, size_t *waiting, uint64_t *shed)
{
    *waiting = gate_waiting(s->gate);
    *shed = gate_shed(s->gate);
}

void http_server_set_authorizer(http_server_t *s, http_authorizer fn)
{
    s->authorizer = fn;
}

void http_request_peer(const http_request_t *req, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = '\0';
    if (req->conn)
        snprintf(out, outlen, "%s", req->conn->client_text);
}

const http_route *http_server_routes(const http_server_t *s, size_t *n)
{
    *n = s->nroutes;
    return s->routes;
}

uint64_t http_server_requests(const http_server_t *s)
{
    return s->requests;
}

unsigned http_server_connections(const http_server_t *s)
{
    return s->nconns;
}

void http_server_conn_stats(const http_server_t *s, uint64_t *dropped, uint64_t *refused)
{
    *dropped = s->conns_dropped;
    *refused = s->conns_refused;
}

void http_server_on_request_done(http_server_t *s, void (*cb)(http_request_t *req, void *data),
                                 void *data)
{
    s->on_done = cb;
    s->on_done_data = data;
}
