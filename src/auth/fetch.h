/*
 * fetch: a small asynchronous HTTP(S) GET client on a worker's libuv loop (libcurl multi
 * driven by uv_poll and a uv_timer), for the documents login needs from elsewhere: OIDC
 * discovery documents and JWKS, and the experiments module's user-office and Scheduler
 * calls (GET or POST with a body). Every fetch has a timeout and a cap on the body size; the
 * callback runs once, on the loop.
 */
#ifndef OGD_AUTH_FETCH_H
#define OGD_AUTH_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct fetcher fetcher_t;
/* status: 0 (then http_status and the body are set) or a negative errno (-ETIMEDOUT,
 * -ECONNREFUSED, -E2BIG, -EIO, -ECANCELED when the fetcher closes). body is borrowed for
 * the call. */
typedef void (*fetch_cb)(int status, long http_status, const char *body, size_t len, void *data);

fetcher_t *fetcher_new(uv_loop_t *loop);
/* Cancels what is in flight (callbacks get -ECANCELED) and frees the fetcher once its
 * handles have closed. */
void fetcher_close(fetcher_t *f);
/* Starts a GET. 0, or a negative errno (the callback is then never called). */
int fetch_get(fetcher_t *f, const char *url, bool verify_cert, long timeout_ms, size_t max_bytes,
              fetch_cb cb, void *data);

/* A request beyond a plain GET. Strings are copied; NULL fields are left out. */
typedef struct fetch_opts {
    const char *method;       /* "GET" (default) or "POST" */
    const char *content_type; /* Content-Type of body */
    const char *body;         /* request body (POST) */
    size_t body_len;
    const char *extra_header; /* one more "Name: value" line, e.g. SOAPAction */
    bool verify_cert;
    long timeout_ms;
    size_t max_bytes; /* cap on the answer's body (-E2BIG past it) */
} fetch_opts;
/* Starts a request. 0, or a negative errno (the callback is then never called). */
int fetch_request(fetcher_t *f, const char *url, const fetch_opts *o, fetch_cb cb, void *data);

#endif
