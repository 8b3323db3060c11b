/*
 * fetch.c: see fetch.h. One curl multi handle on the loop (net/curl_uv.h); finished
 * transfers are collected with curl_multi_info_read after each socket action.
 */
#include "auth/fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/curl_uv.h"
#include "util/buf.h"

struct fetcher {
    curl_uv cu;
    bool closing;
    list_node reqs; /* in flight: fetch_req.node */
};

typedef struct fetch_req {
    fetcher_t *f;
    list_node node; /* fetcher.reqs */
    CURL *easy;
    buf_t body;
    bool too_big;
    struct curl_slist *headers;
    char *post_body; /* the request body, kept until the transfer ends */
    fetch_cb cb;
    void *data;
} fetch_req;

static void finish(fetch_req *r, int status)
{
    long code = 0;
    if (status == 0)
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(r->f->cu.multi, r->easy);
    curl_easy_cleanup(r->easy);
    list_remove(&r->node);
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
    while ((m = curl_multi_info_read(f->cu.multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        fetch_req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        finish(r, curl_status(m->data.result, r));
    }
}

static void on_progress(curl_uv *c)
{
    check_done(c->data);
}

static void on_closed(curl_uv *c)
{
    free(c->data);
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
    list_init(&f->reqs);
    if (curl_uv_init(&f->cu, loop, on_progress, f) != 0) {
        free(f);
        return NULL;
    }
    return f;
}

void fetcher_close(fetcher_t *f)
{
    if (!f)
        return;
    f->closing = true;
    list_node *n;
    while ((n = list_first(&f->reqs)))
        finish(list_entry(n, fetch_req, node), -ECANCELED);
    curl_uv_close(&f->cu, on_closed);
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
    if (curl_multi_add_handle(f->cu.multi, e) != CURLM_OK) {
        req_free(r);
        return -EIO;
    }
    list_insert_head(&f->reqs, &r->node);
    return 0;
}
