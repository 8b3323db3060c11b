/*
 * http: the HTTP/1.1 server of a worker: connections, parsing (llhttp), limits, routing,
 * and the response writer. One instance per worker loop.
 *
 * Flow: uv listener -> http_conn (read buffer, llhttp parser, timers) -> on a complete
 * request: CORS preflight, router match (404/405/307), body limits per route -> handler.
 * A handler gets an http_request_t and must finish it exactly once with one of the
 * http_respond* calls, or start a stream (http_stream_*) and end it. Requests on a
 * connection are served one at a time (pipelined requests wait, parsed in order).
 *
 * If the client goes away while a handler is working, the request is marked aborted and
 * its abort hook runs (handlers cancel their pending store/object-store work there); the
 * handler must still finish the request, which then writes nothing. Memory a handler
 * takes from req->arena lives until the loop turn after the request is finished, so code
 * that runs on after a respond call in the same callback may still use it.
 */
#ifndef OGD_HTTP_HTTP_H
#define OGD_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/arena.h"
#include "util/buf.h"
#include "util/list.h"

#define HTTP_MAX_HEADERS 100
#define HTTP_MAX_PARAMS 4

typedef struct http_server http_server_t;
typedef struct http_conn http_conn_t;
typedef struct http_request http_request_t;
typedef void (*http_handler)(http_request_t *req);
typedef void (*http_abort_cb)(http_request_t *req, void *data);
typedef void (*http_write_cb)(http_request_t *req, int status, void *data);

typedef enum {
    OGD_GET = 1,
    OGD_POST = 3,
    OGD_PUT = 4,
    OGD_DELETE = 0,
    OGD_OPTIONS = 6,
    OGD_PATCH = 28,
} http_method; /* values are llhttp's */

typedef enum {
    AUTH_NONE,       /** anyone */
    AUTH_TOKEN,      /** any valid bearer token */
    AUTH_PERMISSION, /** a token whose authorised_routes holds route->permission */
} http_auth;

typedef struct http_route {
    http_method method;
    const char *pattern; /** "/records/{id_}": {x} matches one non-empty segment */
    http_handler handler;
    http_auth auth;
    const char *permission; /** for AUTH_PERMISSION, e.g. "/records/{id_} DELETE" */
    size_t max_body;        /** 0 = server.max_body_bytes; HTTP_BODY_UPLOAD = the upload cap */
    const char *name;       /** label for logs and metrics; defaults to pattern */
    /** Expensive (thread-pool CPU or many object reads): admitted through the fairness
     * gate (http_limits.heavy_per_user, max_pool_waiting; src/http/gate.h). */
    bool heavy;
} http_route;

/* http_route.max_body for file uploads: http_limits.max_upload_bytes applies. */
#define HTTP_BODY_UPLOAD ((size_t)-1)
/* Upload bodies from this size on go to a memfd (http_request.body_fd). */
#define HTTP_UPLOAD_FILE_MIN ((size_t)1 << 20)

typedef struct http_header {
    char *name; /** lower-cased */
    char *value;
} http_header;

typedef struct http_limits {
    size_t max_header_bytes;
    size_t max_body_bytes;
    unsigned header_timeout_ms;
    unsigned body_timeout_ms;
    unsigned keepalive_ms;
    unsigned max_connections;      /** open connections (see "Connection slots" in server.c) */
    unsigned max_conns_per_client; /** open connections of one client address (0 = no cap) */
    /** Peers whose X-Forwarded-For names the client (addresses or networks, text as
     * ip_net_parse takes it; copied by http_server_create). Never capped themselves. */
    const char *const *forwarded_allow_ips;
    size_t nforwarded_allow_ips;
    size_t max_upload_bytes; /** routes with max_body HTTP_BODY_UPLOAD (0 = max_body_bytes) */
    unsigned heavy_per_user; /** heavy requests one user runs at once (0 = no cap) */
    size_t max_pool_waiting; /** thread-pool backlog beyond which heavy requests get 503 (0 =
                                no bound) */
} http_limits;

struct http_request {
    http_conn_t *conn;
    http_server_t *server;
    arena_t arena;
    http_method method;
    const char *method_name;
    char *target; /** raw request target */
    char *path;   /** percent-decoded path, url_prefix removed */
    char *query;  /** raw query string without '?', "" if none */
    http_header headers[HTTP_MAX_HEADERS];
    size_t nheaders;
    buf_t body;
    /** Upload routes (HTTP_BODY_UPLOAD) with a Content-Length of at least
     * HTTP_UPLOAD_FILE_MIN: the body lives in a memfd, at body_fd_offset in it, mapped at
     * body.data (read straight into it from the socket, NUL after the last byte as in the
     * heap form), so a handler can hand the file to another process without copying it.
     * -1 otherwise. The offset puts the first part's content of a multipart body (the
     * bytes after the first blank line) on a 64-byte boundary of the file and the
     * mapping, so the binary data of an uploaded file is aligned for typed reads. */
    int body_fd;
    size_t body_fd_offset;
    void *body_map;      /** private: the mapping (body_fd >= 0) */
    size_t body_map_len; /** private */
    bool body_file_wait; /** private: the memfd comes once the first part's start is seen */
    const http_route *route;
    char *params[HTTP_MAX_PARAMS]; /** decoded path parameters, in pattern order */
    size_t nparams;
    uint64_t start_ns;
    char id[17];  /** request id for logs */
    bool aborted; /** the client went away */
    bool finished;
    bool streaming;
    bool keep_alive;
    int status;
    uint64_t bytes_out;
    buf_t resp_headers; /** extra headers added by the handler, CRLF-terminated lines */
    http_abort_cb on_abort;
    void *abort_data;
    void *app;                 /** the worker's application context */
    char *username;            /** set by the authorizer from a verified access token (arena) */
    http_request_t *dead_next; /** private: the server's list of finished requests */
    struct {
        char *key, *value;
    } * qparams; /** private: the decoded query, parsed on first use */
    size_t nqparams;
    bool query_parsed;
    void *gate_user;     /** private: the fairness gate's entry for the caller */
    list_node gate_node; /** private: in the caller's queue of waiting heavy requests */
    bool gate_held;      /** private: the request holds one of its caller's slots */
    /* private: how the router answered when route is NULL (router.h): 405 with this
     * Allow, or 307 to route_location (NULL: the other form cannot be a header) */
    const char *route_allow;
    bool route_redirect;
    char *route_location;
};

/* Creates the server for a loop. listen_fd: a listening socket (inherited). routes: a
 * static table, borrowed. */
int http_server_create(uv_loop_t *loop, int listen_fd, const http_route *routes, size_t nroutes,
                       const http_limits *limits, const char *url_prefix,
                       const char *const *cors_origins, size_t ncors, void *app,
                       http_server_t **out);
/* Stops accepting; open connections finish their current request and close. done is
 * called (on the loop) when the last connection has closed. */
void http_server_drain(http_server_t *s, void (*done)(void *), void *data);
/* Closes everything now (fast stop): stops accepting, closes every connection and aborts
 * the requests in flight (their abort hooks run, so their handlers cancel what they
 * started). done(data) runs on the loop once every such request has finished and every
 * connection is freed; keep running the loop until then. Call it once. */
void http_server_close(http_server_t *s, void (*done)(void *), void *data);
/* Requests dispatched to a handler and not finished yet. */
unsigned http_server_requests_running(const http_server_t *s);
/* The fairness gate (src/http/gate.h): heavy requests waiting for their user's turn now,
 * and answered 503 for the pool's backlog so far. */
void http_server_gate_stats(const http_server_t *s, size_t *waiting, uint64_t *shed);
/* Frees the server once its loop has stopped (after a close, or with requests a stop
 * could not wait for: they are freed without their handlers finishing). */
void http_server_free(http_server_t *s);
/* The route table the server was created with (borrowed). */
const http_route *http_server_routes(const http_server_t *s, size_t *n);
uint64_t http_server_requests(const http_server_t *s);
unsigned http_server_connections(const http_server_t *s);
/* Connections closed so far to make room for new ones (idle or unfinished: see
 * "Connection slots" in server.c), and new connections answered 503 for want of one. */
void http_server_conn_stats(const http_server_t *s, uint64_t *dropped, uint64_t *refused);
/* Called after each finished request (max_requests, metrics), with the request (its
 * route, status and start_ns are final). */
void http_server_on_request_done(http_server_t *s, void (*cb)(http_request_t *req, void *data),
                                 void *data);
/* "GET", "POST", ... */
const char *http_method_name(http_method m);
/* The authorizer runs before the handler of every route whose auth is not AUTH_NONE. It
 * returns true to let the handler run, or answers the request itself (401/403/422) and
 * returns false. Without one, such routes answer 401: nothing is served unchecked. */
typedef bool (*http_authorizer)(http_request_t *req);
void http_server_set_authorizer(http_server_t *s, http_authorizer fn);
/* The client's address as text ("" if unknown); out: at least 64 bytes. The TCP peer, or
 * for a request from a trusted proxy (http_limits.forwarded_allow_ips) the client its
 * X-Forwarded-For names: the address the connection caps count this request under. */
void http_request_peer(const http_request_t *req, char *out, size_t outlen);

const char *http_header_get(const http_request_t *req, const char *name);
/* Query parameters: first value of name (decoded, arena memory) or NULL. */
const char *http_query_get(http_request_t *req, const char *name);
/* All values of a repeated parameter; returns count, *out in arena memory. */
size_t http_query_all(http_request_t *req, const char *name, const char ***out);
void http_set_abort(http_request_t *req, http_abort_cb cb, void *data);

/* Adds a response header (before the response starts). */
void http_add_header(http_request_t *req, const char *name, const char *value);
/* Whole responses: the body is copied. */
void http_respond(http_request_t *req, int status, const char *content_type, const void *body,
                  size_t len);
/* Takes ownership of body (malloc'd). */
void http_respond_take(http_request_t *req, int status, const char *content_type, char *body,
                       size_t len);
/* {"detail": "<message>"} */
void http_respond_error(http_request_t *req, int status, const char *detail);

/* Streaming (chunked) responses: start, write (cb when the bytes left the process or the
 * client went away; at most one write in flight), end. */
void http_stream_start(http_request_t *req, int status, const char *content_type);
int http_stream_write(http_request_t *req, const void *data, size_t len, http_write_cb cb,
                      void *cbdata);
/* http_stream_write without the copy: takes data (malloc'd) in every case, also on error. */
int http_stream_write_take(http_request_t *req, char *data, size_t len, http_write_cb cb,
                           void *cbdata);
void http_stream_end(http_request_t *req);
/* Ends a stream that cannot be completed (an error after the first byte): the connection
 * is closed without the terminating chunk, so the client sees a failed transfer. */
void http_stream_abort(http_request_t *req);

const char *http_status_text(int status);
/* Percent-decodes s[0..len) into arena memory; plus_as_space for query strings. */
char *http_decode(arena_t *a, const char *s, size_t len, bool plus_as_space);

#endif
