/*
 * fetch.c: see fetch.h. The usual libcurl-multi-on-libuv shape: curl says which sockets
 * to watch (socket callback -> uv_poll per socket) and when to wake it (timer callback ->
 * one uv_timer); events go back through curl_multi_socket_action; finished transfers are
 * collected with curl_multi_info_read.
 */
#include "auth/fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

struct fetcher {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    int open_handles; /* the timer + polls not yet closed */
    bool closing;
    struct fetch_req *reqs; /* in flight */
};

typedef struct fetch_req {
    fetcher_t *f;
    struct fetch_req *prev, *next;
    CURL *easy;
    buf_t body;
    bool too_big;
    struct curl_slist *headers;
    char *post_body; /* the request body, kept until the transfer ends */
    fetch_cb cb;
    void *data;
} fetch_req;

typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    fetcher_t *f;
} sock_ctx;

static void maybe_free(fetcher_t *f)
{
    if (f->closing && f->open_handles == 0) {
        curl_multi_cleanup(f->multi);
        free(f);
    }
}

static void handle_closed(uv_handle_t *h)
{
    fetcher_t *f = h->data;
    if (h->type == UV_POLL)
        free(((sock_ctx *)((char *)h - offsetof(sock_ctx, poll))));
    f->open_handles--;
    maybe_free(f);
}

static void finish(fetch_req *r, int status)
{
    long code = 0;
    if (status == 0)
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(r->f->multi, r->easy);
    curl_easy_cleanup(r->easy);
    if (r->prev)
        r->prev->next = r->next;
    else
        r->f->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->cb(status, code, r->body.data ? r->body.data : "", r->body.len, r->data);
    buf_free(&r->body);
    curl_slist_free_all(r->headers);
    free(r->post_body);
    free(r);
}

static int curl_status(CURLcode rc, const fetch_req *r)
{
    if (rc == CURLE_OK)
        return 0;
    if (r->too_big)
        return -E2BIG;
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return -ETIMEDOUT;
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
        return -ECONNREFUSED;
    return -EIO;
}

static void check_done(fetcher_t *f)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(f->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        fetch_req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        finish(r, curl_status(m->data.result, r));
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_ctx *s = (sock_ctx *)p;
    int flags = status < 0 ? CURL_CSELECT_ERR : 0;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    fetcher_t *f = s->f;
    curl_multi_socket_action(f->multi, s->fd, flags, &running);
    check_done(f);
}

static void on_timer(uv_timer_t *t)
{
    fetcher_t *f = t->data;
    int running;
    curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(f);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    fetcher_t *f = userp;
    sock_ctx *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            curl_multi_assign(f->multi, fd, NULL);
            uv_close((uv_handle_t *)&s->poll, handle_closed);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        s->fd = fd;
        s->f = f;
        if (uv_poll_init_socket(f->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = f;
        f->open_handles++;
        curl_multi_assign(f->multi, fd, s);
    }
    int ev = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        ev |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    fetcher_t *f = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&f->timer);
    else
        uv_timer_start(&f->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static size_t write_cb(char *ptr, size_t size, size_t n, void *userdata)
{
    fetch_req *r = userdata;
    if (buf_append(&r->body, ptr, size * n) != 0) {
        r->too_big = true;
        return 0;
    }
    return size * n;
}

fetcher_t *fetcher_new(uv_loop_t *loop)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NULL;
    fetcher_t *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->loop = loop;
    f->multi = curl_multi_init();
    if (!f->multi) {
        free(f);
        return NULL;
    }
    uv_timer_init(loop, &f->timer);
    f->timer.data = f;
    f->open_handles = 1;
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
    return f;
}

void fetcher_close(fetcher_t *f)
{
    if (!f)
        return;
    f->closing = true;
    while (f->reqs)
        finish(f->reqs, -ECANCELED);
    uv_timer_stop(&f->timer);
    if (!uv_is_closing((uv_handle_t *)&f->timer))
        uv_close((uv_handle_t *)&f->timer, handle_closed);
}

int fetch_get(fetcher_t *f, const char *url, bool verify_cert, long timeout_ms, size_t max_bytes,
              fetch_cb cb, void *data)
{
    fetch_opts o = {.verify_cert = verify_cert, .timeout_ms = timeout_ms, .max_bytes = max_bytes};
    return fetch_request(f, url, &o, cb, data);
}

static void req_free(fetch_req *r)
{
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->post_body);
    free(r);
}

int fetch_request(fetcher_t *f, const char *url, const fetch_opts *o, fetch_cb cb, void *data)
{
    if (!f || f->closing)
        return -ECANCELED;
    fetch_req *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->f = f;
    r->cb = cb;
    r->data = data;
    buf_init(&r->body, o->max_bytes);
    r->easy = curl_easy_init();
    if (!r->easy) {
        req_free(r);
        return -ENOMEM;
    }
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, o->verify_cert ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, o->verify_cert ? 2L : 0L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    if (o->method && strcmp(o->method, "POST") == 0) {
        r->post_body = malloc(o->body_len ? o->body_len : 1);
        if (!r->post_body) {
            req_free(r);
            return -ENOMEM;
        }
        if (o->body_len)
            memcpy(r->post_body, o->body, o->body_len);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->post_body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
        /* no "Expect: 100-continue" round trip */
        r->headers = curl_slist_append(r->headers, "Expect:");
    }
    char line[256];
    if (o->content_type) {
        snprintf(line, sizeof(line), "Content-Type: %s", o->content_type);
        r->headers = curl_slist_append(r->headers, line);
    }
    if (o->extra_header)
        r->headers = curl_slist_append(r->headers, o->extra_header);
    if (r->headers)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    if (curl_multi_add_handle(f->multi, e) != CURLM_OK) {
        req_free(r);
        return -EIO;
    }
    r->next = f->reqs;
    if (f->reqs)
        f->reqs->prev = r;
    f->reqs = r;
    return 0;
}
