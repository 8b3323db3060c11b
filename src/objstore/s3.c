/*
 * s3.c: the S3 back end of the object store (Ceph RADOS Gateway, AWS S3, MinIO), on
 * libcurl's multi interface driven by the worker's libuv loop. This file is the back end
 * itself (open/start/cancel/close/stats/prepare) and the transfers and steps that carry
 * out each op; the S3 protocol is s3_proto.c, the scheduling s3_sched.c (s3_internal.h).
 *
 * One curl multi handle per objstore (so per worker), made at open and kept until
 * close: its connection cache keeps up to max_connections connections warm, so a
 * request never pays for a connection another one already made. The multi handle runs
 * on the loop through net/curl_uv.h (sockets as uv_polls, curl's timeout as a
 * uv_timer); finished transfers are collected with curl_multi_info_read after each
 * socket action. Nothing here blocks the
 * loop; only objstore_prepare (start-up, before serving) uses curl_easy_perform.
 *
 * An op (objstore_op) becomes an *xfer*: one or more HTTP exchanges ("steps") run one
 * after the other: GET, HEAD, PUT and DELETE are one step; a put above the multipart
 * threshold is initiate, the parts, complete (abort on failure); delete_prefix is
 * list, batch delete, repeated while the listing is truncated. Each exchange waits for
 * a transfer slot in its owner's queue (s3_sched.c).
 *
 * Failures: 5xx, 429, connection errors, resets and timeouts are retried (every step
 * here is idempotent) with backoff within the call's deadline (request_timeout_ms from
 * the first attempt) and the retry budget (s3_sched.c). A stalled exchange is cut by a
 * low-speed limit and retried while the deadline allows. 404 -> -ENOENT, 401/403 ->
 * -EACCES (never retried), anything else -> -EIO, -ETIMEDOUT, -ECONNRESET,
 * -ECONNREFUSED. Failures are logged with the method, key, status and S3 error code;
 * never with credentials or signatures.
 */
#include "objstore/s3_internal.h"

#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S3_DEFAULT_CONNECTIONS 128
#define S3_DEFAULT_TIMEOUT_MS 30000
#define S3_DEFAULT_MULTIPART ((size_t)64 << 20)
#define S3_DEFAULT_PART ((size_t)16 << 20)
#define S3_MIN_PART ((size_t)5 << 20)
#define S3_MAX_OBJECT ((size_t)4 << 30) /* larger GETs fail with -EFBIG */
#define S3_MAX_XML ((size_t)16 << 20)   /* listing / error bodies we keep */
#define S3_GET_BUFFER (16L << 10)       /* curl's receive buffer for GETs (per transfer) */

static const char *const s3_schemes[] = {"http", "https", NULL};

/* ---- small helpers ---- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Splits an endpoint URL; *endpoint is malloc'd without a trailing '/'. */
static int parse_endpoint(const char *url, char **endpoint, char *err, size_t errlen)
{
    const char *host = strstr(url, "://");
    if (!host || !host[3] || host[3] == '/') {
        set_err(err, errlen, "echo.url: no host in \"%.200s\"", url);
        return -EINVAL;
    }
    if (strchr(url, '?') || strchr(url, '#')) {
        set_err(err, errlen, "echo.url: no query or fragment allowed in \"%.200s\"", url);
        return -EINVAL;
    }
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    *endpoint = strndup(url, n);
    return *endpoint ? 0 : -ENOMEM;
}

/* ---- blocking helpers for objstore_prepare ---- */

typedef struct sink {
    buf_t b;
} sink;

static size_t sink_write(char *p, size_t size, size_t n, void *u)
{
    sink *k = u;
    return buf_append(&k->b, p, size * n) == 0 ? size * n : 0;
}

static long perform_blocking(const conn_opts *co, const request *req, unsigned timeout_ms,
                             sink *out, CURLcode *cc)
{
    CURL *easy = curl_easy_init();
    if (!easy) {
        *cc = CURLE_OUT_OF_MEMORY;
        return 0;
    }
    struct curl_slist *h = NULL;
    reader rd = {req->body, req->body_len, 0};
    long code = 0;
    if (s3_setup_easy(easy, co, req, &h, &rd) != 0) {
        *cc = CURLE_OUT_OF_MEMORY;
    } else {
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, sink_write);
        curl_easy_setopt(easy, CURLOPT_WRITEDATA, out);
        curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
        *cc = curl_easy_perform(easy);
        if (*cc == CURLE_OK)
            curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(easy);
    return code;
}

static int s3_prepare(const char *url, const objstore_options *opts, char *err, size_t errlen)
{
    if (!opts->bucket || !*opts->bucket || !opts->access_key || !opts->secret_key) {
        set_err(err, errlen, "echo: bucket_name, access_key and secret_key are required for S3");
        return -EINVAL;
    }
    char *endpoint = NULL;
    int rc = parse_endpoint(url, &endpoint, err, errlen);
    if (rc)
        return rc;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    conn_opts co = {NULL, opts->access_key, opts->secret_key};
    char sigv4[128];
    snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:s3", opts->region ? opts->region : "us-east-1");
    co.sigv4 = sigv4;
    buf_t u;
    buf_init(&u, 4096);
    buf_printf(&u, "%s/", endpoint);
    s3_uri_encode(&u, opts->bucket, false);
    unsigned timeout = opts->request_timeout_ms ? opts->request_timeout_ms : S3_DEFAULT_TIMEOUT_MS;
    sink out;
    buf_init(&out.b, 1 << 16);
    CURLcode cc;
    request req = {.method = "HEAD", .url = u.data};
    long code = perform_blocking(&co, &req, timeout, &out, &cc);
    if (cc != CURLE_OK) {
        set_err(err, errlen, "echo.url: cannot reach the object store at %s: %s", endpoint,
                curl_easy_strerror(cc));
        rc = -EIO;
    } else if (code == 404 && opts->create_bucket) {
        req.method = "PUT";
        code = perform_blocking(&co, &req, timeout, &out, &cc);
        if (cc != CURLE_OK || (code != 200 && code != 409)) {
            set_err(err, errlen, "echo.bucket_name: cannot create bucket '%s' (HTTP %ld%s%s)",
                    opts->bucket, code, cc != CURLE_OK ? ": " : "",
                    cc != CURLE_OK ? curl_easy_strerror(cc) : "");
            rc = -EIO;
        } else {
            log_info("objstore: created bucket '%s'", opts->bucket);
        }
    } else if (code == 404) {
        set_err(err, errlen, "Bucket for object storage cannot be found");
        rc = -ENOENT;
    } else if (code == 401 || code == 403) {
        set_err(err, errlen,
                "echo: access to bucket '%s' denied (HTTP %ld): check echo.access_key and "
                "echo.secret_key",
                opts->bucket, code);
        rc = -EACCES;
    } else if (code != 200) {
        set_err(err, errlen, "echo: the object store answered HTTP %ld for bucket '%s'", code,
                opts->bucket);
        rc = -EIO;
    }
    if (rc == 0 && opts->expiry_days > 0) {
        buf_t body;
        buf_init(&body, 4096);
        s3_lifecycle_body(&body, opts->expiry_days);
        char sha[65], md5[32];
        buf_t lu;
        buf_init(&lu, 4096);
        buf_printf(&lu, "%s?lifecycle=", u.data);
        if (s3_digest_body(body.data, body.len, sha, md5) == 0) {
            request lr = {.method = "PUT",
                          .url = lu.data,
                          .body = (const unsigned char *)body.data,
                          .body_len = body.len,
                          .sha256 = sha,
                          .md5 = md5,
                          .content_type = "application/xml"};
            buf_reset(&out.b);
            code = perform_blocking(&co, &lr, timeout, &out, &cc);
            if (cc != CURLE_OK || code != 200)
                log_warn("objstore: could not put the lifecycle rule (expiry %d days) on "
                         "bucket '%s': HTTP %ld",
                         opts->expiry_days, opts->bucket, code);
        }
        buf_free(&lu);
        buf_free(&body);
    }
    buf_free(&out.b);
    buf_free(&u);
    free(endpoint);
    return rc;
}

/* ---- transfers ---- */

static CURL *easy_get(s3 *s)
{
    if (s->neasy)
        return s->easy_pool[--s->neasy];
    return curl_easy_init();
}

static void easy_put(s3 *s, CURL *e)
{
    if (!e)
        return;
    curl_easy_reset(e);
    if (s->neasy == s->easy_cap) {
        size_t cap = s->easy_cap ? s->easy_cap * 2 : 16;
        CURL **p = realloc(s->easy_pool, cap * sizeof(*p));
        if (!p) {
            curl_easy_cleanup(e);
            return;
        }
        s->easy_pool = p;
        s->easy_cap = cap;
    }
    s->easy_pool[s->neasy++] = e;
}

static size_t xfer_read(char *dst, size_t size, size_t nitems, void *userdata)
{
    xfer *x = userdata;
    reader r = {x->body, x->body_len, x->body_off};
    size_t n = s3_read_body(dst, size, nitems, &r);
    x->body_off = r.off;
    return n;
}

static size_t xfer_write(char *p, size_t size, size_t n, void *userdata)
{
    xfer *x = userdata;
    size_t len = size * n;
    if (x->status == 0) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
        x->is_error_body = x->status < 200 || x->status >= 300;
        if (x->step == STEP_GET && !x->is_error_body) {
            curl_off_t cl = -1;
            curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
            if (cl > (curl_off_t)S3_MAX_OBJECT) {
                x->local_err = -EFBIG;
                return 0;
            }
            if (cl >= 0) {
                x->blob = objstore_blob_new((size_t)cl);
                if (!x->blob) {
                    x->local_err = -ENOMEM;
                    return 0;
                }
            }
        }
    }
    if (x->blob && !x->is_error_body) {
        if (len > x->blob->len - x->got) {
            x->local_err = -EIO; /* more than Content-Length */
            return 0;
        }
        memcpy(x->blob->data + x->got, p, len);
        x->got += len;
        return len;
    }
    if (buf_append(&x->resp, p, len) != 0) {
        x->local_err = x->is_error_body ? 0 : (x->step == STEP_GET ? -EFBIG : -EIO);
        if (x->is_error_body)
            return len; /* keep the start of an error body, drop the rest */
        return 0;
    }
    return len;
}

static void xfer_finish(xfer *x, int status);

/* Adds x to the multi handle for one attempt of its current step. */
static void xfer_activate(s3 *s, xfer *x)
{
    uint64_t now = s3_now_ms(s);
    if (!x->deadline_ms) {
        x->deadline_ms = now + s->timeout_ms;
        /* a read also ends when its whole wait (queueing included) is over */
        if ((x->step == STEP_GET || x->step == STEP_HEAD) &&
            x->created_ms + s->max_read_wait_ms < x->deadline_ms)
            x->deadline_ms = x->created_ms + s->max_read_wait_ms;
    }
    if (now >= x->deadline_ms) {
        xfer_finish(x, x->last_err ? x->last_err : -ETIMEDOUT);
        return;
    }
    x->easy = easy_get(s);
    if (!x->easy) {
        xfer_finish(x, -ENOMEM);
        return;
    }
    request req = {.method = s3_step_method(x->step),
                   .url = x->url,
                   .body = x->body,
                   .body_len = x->body_len,
                   .sha256 = x->own_body ? x->sha256 : NULL,
                   .md5 = x->own_body && x->step == STEP_BATCH_DELETE ? x->md5 : NULL,
                   .content_type = x->own_body ? "application/xml" : NULL};
    conn_opts co = {s->sigv4, s->access_key, s->secret_key};
    x->body_off = 0;
    x->status = 0;
    x->got = 0;
    x->local_err = 0;
    x->is_error_body = false;
    buf_reset(&x->resp);
    objstore_blob_unref(x->blob);
    x->blob = NULL;
    if (s3_setup_easy(x->easy, &co, &req, &x->headers, x) != 0) {
        easy_put(s, x->easy);
        x->easy = NULL;
        xfer_finish(x, -ENOMEM);
        return;
    }
    if (x->step == STEP_PUT || x->step == STEP_MP_PART)
        curl_easy_setopt(x->easy, CURLOPT_READFUNCTION, xfer_read);
    if (x->step == STEP_GET) /* fewer, larger reads for object bodies */
        curl_easy_setopt(x->easy, CURLOPT_BUFFERSIZE, S3_GET_BUFFER);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, xfer_write);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)(x->deadline_ms - now));
    curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(x->deadline_ms - now < 10000 ? x->deadline_ms - now : 10000));
    /* A stalled exchange (no byte for a while) is cut and retried while time remains. */
    long stall_s = (long)(s->timeout_ms / 1000 / (s->max_retries + 1));
    curl_easy_setopt(x->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(x->easy, CURLOPT_LOW_SPEED_TIME, stall_s < 1 ? 1L : stall_s);
    if (curl_multi_add_handle(s->cu.multi, x->easy) != CURLM_OK) {
        curl_slist_free_all(x->headers);
        x->headers = NULL;
        easy_put(s, x->easy);
        x->easy = NULL;
        xfer_finish(x, -EIO);
        return;
    }
    x->where = X_ACTIVE;
    x->oq->active++;
    s->active++;
    s->calls++;
}

/* Takes x out of the multi handle (after it finished or to cancel it). */
static void xfer_detach(s3 *s, xfer *x)
{
    curl_multi_remove_handle(s->cu.multi, x->easy);
    curl_slist_free_all(x->headers);
    x->headers = NULL;
    easy_put(s, x->easy);
    x->easy = NULL;
    x->where = X_NONE;
    x->oq->active--;
    s->active--;
}

static void xfer_free(xfer *x)
{
    s3 *s = x->s;
    free(x->url);
    free(x->own_body);
    objstore_blob_unref(x->blob);
    buf_free(&x->resp);
    buf_free(&x->etags);
    free(x->token);
    for (size_t i = 0; i < x->nkeys; i++)
        free(x->keys[i]);
    free(x->keys);
    free(x->upload_id);
    owner_q *q = x->oq;
    free(x);
    if (q)
        s3_owner_release(s, q);
}

/* Hands x's result to its op, frees x and completes the op. */
static void xfer_finish(xfer *x, int status)
{
    objstore_op *op = x->op;
    op->status = status;
    if (status == 0 && op->kind == OBJSTORE_OP_GET) {
        op->blob = x->blob;
        x->blob = NULL;
    }
    xfer_free(x);
    objstore_op_done(op);
}

/* ---- steps ---- */

static int url_for_key(s3 *s, xfer *x, const char *key, const char *query)
{
    buf_t u;
    buf_init(&u, 8192);
    int rc = s3_object_url(&u, s->endpoint, s->bucket, key, query);
    if (rc) {
        buf_free(&u);
        return rc;
    }
    free(x->url);
    x->url = buf_take(&u);
    return 0;
}

static int own_body(xfer *x, buf_t *b)
{
    free(x->own_body);
    x->own_body = buf_take(b);
    x->body = (const unsigned char *)x->own_body;
    x->body_len = strlen(x->own_body);
    return s3_digest_body(x->own_body, x->body_len, x->sha256, x->md5);
}

static void clear_body(xfer *x)
{
    free(x->own_body);
    x->own_body = NULL;
    x->body = NULL;
    x->body_len = 0;
}

/* Prepares x->step's URL and body. */
static int step_prepare(xfer *x)
{
    s3 *s = x->s;
    const char *key = x->op->key;
    buf_t q;
    buf_init(&q, 8192);
    int rc = 0;
    switch (x->step) {
    case STEP_GET:
    case STEP_HEAD:
    case STEP_DELETE:
        clear_body(x);
        rc = url_for_key(s, x, key, NULL);
        break;
    case STEP_PUT:
        clear_body(x);
        x->body = x->op->bytes;
        x->body_len = x->op->len;
        rc = url_for_key(s, x, key, NULL);
        break;
    case STEP_LIST:
        clear_body(x);
        rc = s3_list_query(&q, x->token, key);
        if (!rc)
            rc = url_for_key(s, x, NULL, q.data);
        break;
    case STEP_BATCH_DELETE: {
        buf_t b;
        buf_init(&b, S3_MAX_XML);
        rc = s3_delete_body(&b, x->keys, x->nkeys);
        if (!rc)
            rc = own_body(x, &b);
        buf_free(&b);
        if (!rc)
            rc = url_for_key(s, x, NULL, "delete=");
        break;
    }
    case STEP_MP_INIT:
        clear_body(x);
        rc = url_for_key(s, x, key, "uploads=");
        break;
    case STEP_MP_PART:
    case STEP_MP_COMPLETE:
    case STEP_MP_ABORT:
        if (x->step == STEP_MP_PART) {
            clear_body(x);
            x->part_len =
                x->op->len - x->part_off < s->part_size ? x->op->len - x->part_off : s->part_size;
            x->body = x->op->bytes + x->part_off;
            x->body_len = x->part_len;
        } else if (x->step == STEP_MP_COMPLETE) {
            buf_t b;
            buf_init(&b, S3_MAX_XML);
            rc = s3_complete_body(&b, x->etags.data ? x->etags.data : "");
            if (!rc)
                rc = own_body(x, &b);
            buf_free(&b);
        } else {
            clear_body(x);
        }
        if (!rc)
            rc = s3_upload_query(&q, x->step == STEP_MP_PART ? x->part : 0, x->upload_id);
        if (!rc)
            rc = url_for_key(s, x, key, q.data);
        break;
    }
    buf_free(&q);
    return rc;
}

static void step_begin(xfer *x)
{
    int rc = step_prepare(x);
    if (rc) {
        xfer_finish(x, rc == -E2BIG ? -ENAMETOOLONG : rc);
        return;
    }
    x->attempt = 0;
    s3_enqueue(x->s, x, true);
}

/* A failed attempt, logged: at debug always, at warn at most once per 10 s per worker
 * with the count of those in between, so an outage under load (thousands of failing
 * calls) writes a line every 10 s, not a line per call. */
static void note_failure(s3 *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note_failure(s3 *s, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    uint64_t now = s3_now_ms(s);
    if (s->warned_ms && now - s->warned_ms < 10000) {
        s->quiet_failures++;
        log_debug("objstore: %s", msg);
        return;
    }
    if (s->quiet_failures)
        log_warn("objstore: %s (and %u more failed S3 calls in the last %llu s)", msg,
                 s->quiet_failures, (unsigned long long)((now - s->warned_ms) / 1000));
    else
        log_warn("objstore: %s", msg);
    s->warned_ms = now;
    s->quiet_failures = 0;
}

/* Handles a successful exchange: the next step, or the op's result. */
static void step_ok(xfer *x)
{
    objstore_op *op = x->op;
    const char *doc = x->resp.data ? x->resp.data : "";
    switch (x->step) {
    case STEP_GET:
        if (!x->blob) { /* no Content-Length: the bytes are in resp */
            x->blob = objstore_blob_copy(x->resp.data ? x->resp.data : "", x->resp.len);
            if (!x->blob) {
                xfer_finish(x, -ENOMEM);
                return;
            }
        } else if (x->got != x->blob->len) {
            xfer_finish(x, -EIO);
            return;
        }
        xfer_finish(x, 0);
        return;
    case STEP_HEAD:
    case STEP_PUT:
    case STEP_DELETE:
        xfer_finish(x, 0);
        return;
    case STEP_LIST:
        for (size_t i = 0; i < x->nkeys; i++)
            free(x->keys[i]);
        x->nkeys = 0;
        free(x->token);
        if (s3_list_truncation(doc, &x->truncated, &x->token) != 0) {
            xfer_finish(x, -EIO);
            return;
        }
        free(x->keys);
        x->keys = s3_list_keys(doc, &x->nkeys);
        if (!x->keys) {
            xfer_finish(x, -ENOMEM);
            return;
        }
        if (x->nkeys == 0) {
            if (x->truncated) { /* an empty page that says more follow */
                step_begin(x);
                return;
            }
            xfer_finish(x, 0);
            return;
        }
        x->step = STEP_BATCH_DELETE;
        step_begin(x);
        return;
    case STEP_BATCH_DELETE:
        if (s3_has_error(doc)) {
            s3_error_code(doc, x->s3code, sizeof(x->s3code));
            log_warn("objstore: batch delete under '%s' failed for some keys: %s", op->key,
                     x->s3code);
            xfer_finish(x, -EIO);
            return;
        }
        op->removed += x->nkeys;
        if (x->truncated) {
            x->step = STEP_LIST;
            step_begin(x);
        } else {
            xfer_finish(x, 0);
        }
        return;
    case STEP_MP_INIT:
        x->upload_id = s3_upload_id(doc);
        if (!x->upload_id) {
            xfer_finish(x, -EIO);
            return;
        }
        x->part = 1;
        x->part_off = 0;
        buf_init(&x->etags, S3_MAX_XML);
        x->step = STEP_MP_PART;
        step_begin(x);
        return;
    case STEP_MP_PART: /* xfer_done has recorded the part's ETag */
        x->part_off += x->part_len;
        x->part++;
        x->step = x->part_off < op->len ? STEP_MP_PART : STEP_MP_COMPLETE;
        step_begin(x);
        return;
    case STEP_MP_COMPLETE:
        if (s3_has_error(doc)) { /* S3 may fail a complete inside a 200 */
            x->last_err = -EIO;
            x->step = STEP_MP_ABORT;
            step_begin(x);
            return;
        }
        xfer_finish(x, 0);
        return;
    case STEP_MP_ABORT:
        xfer_finish(x, x->last_err ? x->last_err : -EIO);
        return;
    }
}

/* Decides what a failed attempt leads to: a retry later, or the op's failure. */
static void step_failed(xfer *x, int err, bool retryable, bool is_timeout)
{
    x->last_err = err;
    uint64_t now = s3_now_ms(x->s);
    if (retryable && s3_retry_later(x, is_timeout, now))
        return;
    if (x->upload_id && x->step != STEP_MP_ABORT) {
        /* leave no half-uploaded parts behind */
        x->step = STEP_MP_ABORT;
        x->deadline_ms = 0;
        step_begin(x);
        return;
    }
    if (x->step == STEP_MP_ABORT)
        err = x->last_err;
    xfer_finish(x, err);
}

static void xfer_done(s3 *s, xfer *x, CURLcode cc)
{
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    uint64_t size = 0;
    if (cc == CURLE_OK && x->step == STEP_HEAD && status == 200) {
        curl_off_t cl = -1;
        curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        size = cl > 0 ? (uint64_t)cl : 0;
    }
    int etag_rc = 0;
    if (cc == CURLE_OK && x->step == STEP_MP_PART && status == 200)
        etag_rc = s3_record_etag(x->easy, &x->etags, x->part);
    const char *method = s3_step_method(x->step);
    xfer_detach(s, x);
    int local = x->local_err;

    if (cc == CURLE_OK && status >= 200 && status < 300) {
        if (etag_rc) {
            step_failed(x, -EIO, false, false);
            return;
        }
        s3_budget_refund(s);
        x->op->size = size;
        step_ok(x);
        return;
    }
    if (local) {
        step_failed(x, local, false, false);
        return;
    }
    if (cc != CURLE_OK) {
        int err = s3_errno_for_curl(cc);
        note_failure(x->s, "S3 %s %s: %s (attempt %u)", method, x->op->key, curl_easy_strerror(cc),
                     x->attempt + 1);
        step_failed(x, err, err != -ENOMEM, err == -ETIMEDOUT);
        return;
    }
    /* an HTTP error: the S3 code names it */
    s3_error_code(x->resp.data, x->s3code, sizeof(x->s3code));
    bool retryable = s3_status_retryable(status);
    if (status != 404 || (x->step != STEP_GET && x->step != STEP_HEAD))
        note_failure(x->s, "S3 %s %s: HTTP %ld %s (attempt %u)", method, x->op->key, status,
                     x->s3code, x->attempt + 1);
    if (status == 404 && (x->step == STEP_GET || x->step == STEP_HEAD || x->step == STEP_DELETE)) {
        if (x->step == STEP_DELETE) { /* deleting a missing object succeeds */
            step_ok(x);
            return;
        }
        step_failed(x, -ENOENT, false, false);
        return;
    }
    step_failed(x, s3_errno_for_status(status), retryable, false);
}

static void check_done(s3 *s)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(s->cu.multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode cc = m->data.result;
        xfer_done(s, x, cc); /* m is invalid from here on */
    }
    s3_pump(s);
}

/* ---- curl <-> libuv (net/curl_uv.h) ---- */

static void on_progress(curl_uv *c)
{
    check_done(c->data);
}

static void on_cu_closed(curl_uv *c)
{
    s3 *s = c->data;
    if (--s->open_handles == 0)
        free(s);
}

/* ---- the back end ---- */

static int s3_open(uv_loop_t *loop, const char *url, const objstore_options *opts, void **state,
                   char *err, size_t errlen)
{
    if (!opts->bucket || !*opts->bucket) {
        set_err(err, errlen, "echo.bucket_name: required when echo.url is http(s)");
        return -EINVAL;
    }
    if (!opts->access_key || !opts->secret_key) {
        set_err(err, errlen,
                "echo.access_key and echo.secret_key: required when echo.url is "
                "http(s)");
        return -EINVAL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        set_err(err, errlen, "cannot initialise libcurl");
        return -EIO;
    }
    s3 *s = calloc(1, sizeof(*s));
    if (!s) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->loop = loop;
    int rc = parse_endpoint(url, &s->endpoint, err, errlen);
    buf_t b;
    buf_init(&b, 4096);
    if (!rc)
        rc = s3_uri_encode(&b, opts->bucket, false);
    s->bucket = rc ? NULL : buf_take(&b);
    buf_free(&b);
    s->bucket_raw = strdup(opts->bucket);
    s->access_key = strdup(opts->access_key);
    s->secret_key = strdup(opts->secret_key);
    if (!rc && (!s->bucket || !s->bucket_raw || !s->access_key || !s->secret_key ||
                curl_uv_init(&s->cu, loop, on_progress, s) != 0)) {
        set_err(err, errlen, "out of memory");
        rc = -ENOMEM;
    }
    if (rc) {
        free(s->endpoint);
        free(s->bucket);
        free(s->bucket_raw);
        free(s->access_key);
        free(s->secret_key);
        free(s);
        return rc;
    }
    snprintf(s->sigv4, sizeof(s->sigv4), "aws:amz:%s:s3",
             opts->region ? opts->region : "us-east-1");
    s->max_connections = opts->max_connections ? opts->max_connections : S3_DEFAULT_CONNECTIONS;
    s->max_per_owner = opts->max_per_owner && opts->max_per_owner < s->max_connections
                           ? opts->max_per_owner
                           : s->max_connections;
    s->timeout_ms = opts->request_timeout_ms ? opts->request_timeout_ms : S3_DEFAULT_TIMEOUT_MS;
    s->max_read_wait_ms = opts->max_read_wait_ms ? opts->max_read_wait_ms : s->timeout_ms + 5000;
    s->max_retries = opts->max_retries;
    s->multipart_threshold =
        opts->multipart_threshold ? opts->multipart_threshold : S3_DEFAULT_MULTIPART;
    s->part_size = opts->multipart_part_size ? opts->multipart_part_size : S3_DEFAULT_PART;
    if (s->part_size < S3_MIN_PART)
        s->part_size = S3_MIN_PART;
    curl_multi_setopt(s->cu.multi, CURLMOPT_MAXCONNECTS, (long)s->max_connections);
    curl_multi_setopt(s->cu.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)s->max_connections);
    s3_sched_init(s, (s3_xfer_hooks){.activate = xfer_activate, .finish = xfer_finish});
    s->open_handles = 3; /* cu, retry_timer, defer_timer */
    *state = s;
    return 0;
}

static int s3_start(void *state, objstore_op *op)
{
    s3 *s = state;
    if (s->closing)
        return -ESHUTDOWN;
    xfer *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    x->s = s;
    x->op = op;
    x->created_ms = s3_now_ms(s);
    x->oq = s3_owner_get(s, op->owner);
    if (!x->oq) {
        free(x);
        return -ENOMEM;
    }
    x->oq->refs++;
    buf_init(&x->resp, op->kind == OBJSTORE_OP_GET ? S3_MAX_OBJECT : S3_MAX_XML);
    switch (op->kind) {
    case OBJSTORE_OP_GET:
        x->step = STEP_GET;
        break;
    case OBJSTORE_OP_HEAD:
        x->step = STEP_HEAD;
        break;
    case OBJSTORE_OP_PUT:
        x->step = op->len > s->multipart_threshold ? STEP_MP_INIT : STEP_PUT;
        break;
    case OBJSTORE_OP_DELETE:
        x->step = STEP_DELETE;
        break;
    case OBJSTORE_OP_DELETE_PREFIX:
        x->step = STEP_LIST;
        break;
    }
    op->backend_data = x;
    int rc = step_prepare(x);
    if (rc) {
        xfer_free(x);
        return rc == -E2BIG ? -ENAMETOOLONG : rc;
    }
    s3_submit(s, x);
    return 0;
}

static int s3_cancel(void *state, objstore_op *op)
{
    s3 *s = state;
    xfer *x = op->backend_data;
    switch (x->where) {
    case X_QUEUED:
        s3_dequeue(s, x);
        break;
    case X_ACTIVE:
        xfer_detach(s, x);
        break; /* the deferred completion refills the slot */
    case X_BACKOFF:
        s3_backoff_remove(s, x);
        break;
    case X_NONE:
    case X_DEFERRED:
        return -EALREADY;
    }
    s3_defer(s, x, -ECANCELED);
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    s3 *s = h->data;
    s->open_handles--;
    if (s->open_handles == 0)
        free(s);
}

static void close_handle(s3 *s, uv_handle_t *h)
{
    if (uv_is_closing(h)) /* a uv_walk closed it; objstore.c waited for that to finish */
        s->open_handles--;
    else
        uv_close(h, on_timer_closed);
}

static void s3_close(void *state)
{
    s3 *s = state;
    s->closing = true;
    s->open_handles++; /* hold s while the handles close */
    curl_uv_close(&s->cu, on_cu_closed);
    for (size_t i = 0; i < s->neasy; i++)
        curl_easy_cleanup(s->easy_pool[i]);
    free(s->easy_pool);
    s3_owners_free(s);
    free(s->endpoint);
    free(s->bucket);
    free(s->bucket_raw);
    free(s->access_key);
    free(s->secret_key);
    close_handle(s, (uv_handle_t *)&s->retry_timer);
    close_handle(s, (uv_handle_t *)&s->defer_timer);
    if (--s->open_handles == 0)
        free(s);
}

static void s3_stats(const void *state, objstore_stats *out)
{
    const s3 *s = state;
    out->calls = s->calls;
    out->retries = s->retries;
    out->retries_denied = s->retries_denied;
    out->transfers = s->active;
    out->queued = s->queued;
    out->connections_max = s->max_connections;
}

const objstore_backend objstore_s3_backend = {
    .name = "s3",
    .schemes = s3_schemes,
    .open = s3_open,
    .start = s3_start,
    .cancel = s3_cancel,
    .close = s3_close,
    .stats = s3_stats,
    .prepare = s3_prepare,
};
