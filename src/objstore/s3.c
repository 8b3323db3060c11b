/*
 * s3.c: the S3 back end of the object store (Ceph RADOS Gateway, AWS S3, MinIO), on
 * libcurl's multi interface driven by the worker's libuv loop.
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
 * list, batch delete, repeated while the listing is truncated. Each exchange waits in
 * its owner's queue until a transfer slot is free; slots go round robin over the owners
 * with queued work, and one owner holds at most max_per_owner of them, so one export
 * cannot starve the other requests of the worker.
 *
 * Requests are signed by curl (CURLOPT_AWS_SIGV4) with x-amz-content-sha256 always
 * sent (curl 7.88 does not add it; servers refuse SigV4 without it), query strings
 * built sorted and RFC 3986-encoded (curl 7.88 signs them as given), credentials via
 * CURLOPT_USERNAME/PASSWORD (keys may contain ':'), path-style URLs, and no "Header:"
 * removal entries (curl 7.88 would sign an empty header it does not send).
 *
 * Failures: 5xx, 429, connection errors, resets and timeouts are retried (every step
 * here is idempotent) with exponential backoff and jitter, within the call's deadline
 * (request_timeout_ms from the first attempt) and a per-worker retry budget (a token
 * bucket: a retry costs tokens, a success refunds a few), so an outage does not turn
 * into a retry storm. A stalled exchange is cut by a low-speed limit and retried while
 * the deadline allows. 404 -> -ENOENT, 401/403 -> -EACCES (never retried), anything
 * else -> -EIO, -ETIMEDOUT, -ECONNRESET, -ECONNREFUSED. Failures are logged with the
 * method, key, status and S3 error code; never with credentials or signatures.
 */
#include "objstore/backend.h"

#include "net/curl_uv.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S3_DEFAULT_CONNECTIONS 128
#define S3_DEFAULT_TIMEOUT_MS 30000
#define S3_DEFAULT_MULTIPART ((size_t)64 << 20)
#define S3_DEFAULT_PART ((size_t)16 << 20)
#define S3_MIN_PART ((size_t)5 << 20)
#define S3_MAX_OBJECT ((size_t)4 << 30) /* larger GETs fail with -EFBIG */
#define S3_MAX_XML ((size_t)16 << 20)   /* listing / error bodies we keep */
#define S3_GET_BUFFER (16L << 10)       /* curl's receive buffer for GETs (per transfer) */
#define S3_LIST_PAGE 1000               /* keys per listing page and per batch delete */
#define S3_BACKOFF_BASE_MS 50
#define S3_BACKOFF_CAP_MS 2000
/* Retry budget, in tenths of a retry. */
#define S3_BUDGET_MAX 500
#define S3_BUDGET_RETRY 50
#define S3_BUDGET_TIMEOUT 100
#define S3_BUDGET_REFUND 10
#define S3_OWNER_BUCKETS 64

typedef struct s3 s3;
typedef struct xfer xfer;
typedef struct owner_q owner_q;

typedef enum step_kind {
    STEP_GET,
    STEP_HEAD,
    STEP_PUT,
    STEP_DELETE,
    STEP_LIST,
    STEP_BATCH_DELETE,
    STEP_MP_INIT,
    STEP_MP_PART,
    STEP_MP_COMPLETE,
    STEP_MP_ABORT,
} step_kind;

typedef enum xfer_where {
    X_NONE,    /* being set up or finishing */
    X_QUEUED,  /* in its owner's queue */
    X_ACTIVE,  /* added to the multi handle */
    X_BACKOFF, /* waiting to be retried */
    X_DEFERRED /* result set, completion on the next loop turn */
} xfer_where;

/* Who transfers are accounted to. Lives while it has queued or active transfers. */
struct owner_q {
    const void *owner;
    xfer *head, *tail; /* queued, FIFO */
    unsigned active;
    unsigned refs;              /* xfers of this owner, wherever they are */
    owner_q *hnext;             /* hash chain */
    owner_q *rr_prev, *rr_next; /* ring of owners with queued transfers */
    bool in_ring;
};

struct xfer {
    s3 *s;
    objstore_op *op;
    owner_q *oq;
    xfer_where where;
    xfer *prev, *next; /* queue, backoff list, deferred list */
    CURL *easy;
    struct curl_slist *headers;
    step_kind step;
    char *url;                 /* this step's URL */
    const unsigned char *body; /* request body of this step (borrowed or owned) */
    size_t body_len, body_off;
    char *own_body;  /* owned request body (XML) */
    char sha256[65]; /* hex SHA-256 of own_body */
    char md5[32];    /* base64 MD5 of own_body (Content-MD5) */
    /* response */
    long status;
    objstore_blob_t *blob; /* GET: preallocated from Content-Length */
    size_t got;
    buf_t resp;    /* GET without Content-Length, error and XML bodies */
    int local_err; /* set by a callback that aborted the transfer */
    bool is_error_body;
    /* retries */
    unsigned attempt;
    uint64_t created_ms;  /* when the call was made (a read's whole wait counts from it) */
    uint64_t deadline_ms; /* 0 until the first attempt starts */
    uint64_t retry_at_ms;
    int last_err;
    char s3code[64];
    /* delete_prefix */
    char *token; /* continuation token */
    char **keys; /* the keys of the last listing page */
    size_t nkeys;
    bool truncated;
    /* multipart */
    char *upload_id;
    unsigned part;
    size_t part_off, part_len;
    buf_t etags; /* <Part>...</Part> entries */
};

struct s3 {
    uv_loop_t *loop;
    curl_uv cu; /* the multi handle on the loop */
    uv_timer_t retry_timer;
    uv_timer_t defer_timer; /* completions deferred out of start()/cancel() */
    char *endpoint;         /* scheme://host[:port][/path], no trailing '/' */
    char *bucket;           /* URL-encoded */
    char *bucket_raw;
    char *access_key, *secret_key;
    char sigv4[128];
    unsigned max_connections, max_per_owner;
    unsigned timeout_ms, max_retries;
    unsigned max_read_wait_ms; /* GET/HEAD: the whole wait from the call */
    uint64_t warned_ms;        /* the last failure logged at warn */
    unsigned quiet_failures;   /* failures since then, logged at debug only */
    size_t multipart_threshold, part_size;
    unsigned active; /* transfers in the multi handle */
    unsigned queued;
    unsigned open_handles; /* uv handles not yet closed (close sequence) */
    bool closing;
    int budget;
    owner_q *owners[S3_OWNER_BUCKETS];
    owner_q *ring; /* round-robin cursor */
    xfer *backoff; /* sorted by retry_at_ms */
    xfer *deferred_head, *deferred_tail;
    CURL **easy_pool;
    size_t neasy, easy_cap;
    uint64_t calls, retries, retries_denied;
};

static const char *const s3_schemes[] = {"http", "https", NULL};

/* ---- small helpers ---- */

static uint64_t now_ms(s3 *s)
{
    uv_update_time(s->loop);
    return uv_now(s->loop);
}

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

/* RFC 3986 percent-encoding of s into b; '/' kept when keep_slash. */
static int uri_encode(buf_t *b, const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
        int rc = plain ? buf_putc(b, (char)c) : buf_printf(b, "%%%c%c", hex[c >> 4], hex[c & 15]);
        if (rc)
            return rc;
    }
    return 0;
}

static int xml_escape(buf_t *b, const char *s)
{
    int rc = 0;
    for (; *s && !rc; s++) {
        switch (*s) {
        case '&':
            rc = buf_puts(b, "&amp;");
            break;
        case '<':
            rc = buf_puts(b, "&lt;");
            break;
        case '>':
            rc = buf_puts(b, "&gt;");
            break;
        case '"':
            rc = buf_puts(b, "&quot;");
            break;
        case '\'':
            rc = buf_puts(b, "&apos;");
            break;
        default:
            rc = buf_putc(b, *s);
        }
    }
    return rc;
}

/* The text of the first <tag>...</tag> at or after *pos, XML-unescaped (malloc'd), and
 * *pos moved past it; NULL when there is none. Only the five named entities and
 * numeric character references occur in S3 answers. */
static char *xml_next(const char *doc, const char **pos, const char *tag)
{
    char open[80], close[80];
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    const char *a = strstr(*pos ? *pos : doc, open);
    if (!a)
        return NULL;
    a += strlen(open);
    const char *e = strstr(a, close);
    if (!e)
        return NULL;
    *pos = e + strlen(close);
    char *out = malloc((size_t)(e - a) + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    for (const char *p = a; p < e;) {
        if (*p != '&') {
            out[n++] = *p++;
            continue;
        }
        static const struct {
            const char *ent;
            char ch;
        } ents[] = {
            {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
        bool done = false;
        for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
            size_t l = strlen(ents[i].ent);
            if ((size_t)(e - p) >= l && strncmp(p, ents[i].ent, l) == 0) {
                out[n++] = ents[i].ch;
                p += l;
                done = true;
                break;
            }
        }
        if (!done && p[1] == '#') {
            char *end;
            unsigned long cp = p[2] == 'x' ? strtoul(p + 3, &end, 16) : strtoul(p + 2, &end, 10);
            if (end < e && *end == ';' && cp > 0 && cp < 0x80) {
                out[n++] = (char)cp;
                p = end + 1;
                done = true;
            }
        }
        if (!done)
            out[n++] = *p++;
    }
    out[n] = '\0';
    return out;
}

static void hex_of(const unsigned char *d, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static void base64_of(const unsigned char *d, size_t n, char *out, size_t outlen)
{
    if (EVP_EncodeBlock((unsigned char *)out, d, (int)n) >= (int)outlen)
        out[outlen - 1] = '\0';
}

/* SHA-256 (hex) and MD5 (base64) of an owned request body. */
static int digest_body(const char *body, size_t len, char sha_hex[65], char md5_b64[32])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen;
    if (!EVP_Digest(body, len, md, &mdlen, EVP_sha256(), NULL))
        return -EIO;
    hex_of(md, mdlen, sha_hex);
    if (!EVP_Digest(body, len, md, &mdlen, EVP_md5(), NULL))
        return -EIO;
    base64_of(md, mdlen, md5_b64, 32);
    return 0;
}

/* ---- requests ---- */

/* What one exchange sends; built fresh for every attempt. */
typedef struct request {
    const char *method;
    const char *url;
    const unsigned char *body;
    size_t body_len;
    const char *sha256; /* hex digest of body, or NULL = UNSIGNED-PAYLOAD */
    const char *md5;    /* base64 Content-MD5, or NULL */
    const char *content_type;
} request;

typedef struct conn_opts {
    const char *sigv4;
    const char *access_key, *secret_key;
} conn_opts;

static size_t read_body(char *dst, size_t size, size_t nitems, void *userdata);

/* Sets up easy for req. The caller sets the write callback and private data. */
static int setup_easy(CURL *easy, const conn_opts *co, const request *req,
                      struct curl_slist **headers, void *reader)
{
    struct curl_slist *h = NULL;
    char line[160];
    snprintf(line, sizeof(line), "x-amz-content-sha256: %s",
             req->sha256 ? req->sha256 : "UNSIGNED-PAYLOAD");
    h = curl_slist_append(h, line);
    if (h && req->md5) {
        snprintf(line, sizeof(line), "Content-MD5: %s", req->md5);
        h = curl_slist_append(h, line);
    }
    if (h && req->content_type) {
        snprintf(line, sizeof(line), "Content-Type: %s", req->content_type);
        h = curl_slist_append(h, line);
    }
    if (!h)
        return -ENOMEM;
    *headers = h;
    curl_easy_setopt(easy, CURLOPT_URL, req->url);
    curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, co->sigv4);
    curl_easy_setopt(easy, CURLOPT_USERNAME, co->access_key);
    curl_easy_setopt(easy, CURLOPT_PASSWORD, co->secret_key);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(easy, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
    if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "PUT") == 0) {
        curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(easy, CURLOPT_READFUNCTION, read_body);
        curl_easy_setopt(easy, CURLOPT_READDATA, reader);
        curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
    } else if (strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(easy, CURLOPT_POST, 1L);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
    }
    return 0;
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

typedef struct reader {
    const unsigned char *p;
    size_t len, off;
} reader;

static size_t read_body(char *dst, size_t size, size_t nitems, void *userdata)
{
    reader *r = userdata;
    size_t n = size * nitems;
    if (n > r->len - r->off)
        n = r->len - r->off;
    if (n)
        memcpy(dst, r->p + r->off, n);
    r->off += n;
    return n;
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
    if (setup_easy(easy, co, req, &h, &rd) != 0) {
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
    uri_encode(&u, opts->bucket, false);
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
        buf_printf(&body,
                   "<LifecycleConfiguration><Rule><ID>expiry</ID><Filter><Prefix></Prefix>"
                   "</Filter><Status>Enabled</Status><Expiration><Days>%d</Days></Expiration>"
                   "</Rule></LifecycleConfiguration>",
                   opts->expiry_days);
        char sha[65], md5[32];
        buf_t lu;
        buf_init(&lu, 4096);
        buf_printf(&lu, "%s?lifecycle=", u.data);
        if (digest_body(body.data, body.len, sha, md5) == 0) {
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

/* ---- owners and the queue ---- */

static size_t owner_hash(const void *owner)
{
    uintptr_t v = (uintptr_t)owner;
    v ^= v >> 17;
    v *= 0x9E3779B97F4A7C15ull;
    return (size_t)(v >> 32) % S3_OWNER_BUCKETS;
}

static owner_q *owner_get(s3 *s, const void *owner)
{
    size_t h = owner_hash(owner);
    for (owner_q *q = s->owners[h]; q; q = q->hnext)
        if (q->owner == owner)
            return q;
    owner_q *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->owner = owner;
    q->hnext = s->owners[h];
    s->owners[h] = q;
    return q;
}

static void ring_add(s3 *s, owner_q *q)
{
    if (q->in_ring)
        return;
    q->in_ring = true;
    if (!s->ring) {
        q->rr_prev = q->rr_next = q;
        s->ring = q;
        return;
    }
    /* just behind the cursor: served after everyone already waiting */
    q->rr_next = s->ring;
    q->rr_prev = s->ring->rr_prev;
    q->rr_prev->rr_next = q;
    s->ring->rr_prev = q;
}

static void ring_remove(s3 *s, owner_q *q)
{
    if (!q->in_ring)
        return;
    q->in_ring = false;
    if (q->rr_next == q) {
        s->ring = NULL;
    } else {
        q->rr_prev->rr_next = q->rr_next;
        q->rr_next->rr_prev = q->rr_prev;
        if (s->ring == q)
            s->ring = q->rr_next;
    }
    q->rr_prev = q->rr_next = NULL;
}

/* Drops one xfer's reference; frees q with the last. */
static void owner_release(s3 *s, owner_q *q)
{
    if (--q->refs)
        return;
    owner_q **pp = &s->owners[owner_hash(q->owner)];
    while (*pp != q)
        pp = &(*pp)->hnext;
    *pp = q->hnext;
    free(q);
}

static void enqueue(s3 *s, xfer *x, bool front)
{
    owner_q *q = x->oq;
    x->where = X_QUEUED;
    x->prev = x->next = NULL;
    if (front) {
        x->next = q->head;
        if (q->head)
            q->head->prev = x;
        else
            q->tail = x;
        q->head = x;
    } else {
        x->prev = q->tail;
        if (q->tail)
            q->tail->next = x;
        else
            q->head = x;
        q->tail = x;
    }
    s->queued++;
    ring_add(s, q);
}

static void dequeue(s3 *s, xfer *x)
{
    owner_q *q = x->oq;
    if (x->prev)
        x->prev->next = x->next;
    else
        q->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        q->tail = x->prev;
    x->prev = x->next = NULL;
    x->where = X_NONE;
    s->queued--;
    if (!q->head)
        ring_remove(s, q);
}

/* ---- transfers ---- */

static void pump(s3 *s);
static void step_begin(xfer *x);
static void xfer_finish(xfer *x, int status);

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
    size_t n = read_body(dst, size, nitems, &r);
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

static const char *step_method(step_kind k)
{
    switch (k) {
    case STEP_GET:
    case STEP_LIST:
        return "GET";
    case STEP_HEAD:
        return "HEAD";
    case STEP_PUT:
    case STEP_MP_PART:
        return "PUT";
    case STEP_DELETE:
    case STEP_MP_ABORT:
        return "DELETE";
    case STEP_BATCH_DELETE:
    case STEP_MP_INIT:
    case STEP_MP_COMPLETE:
        return "POST";
    }
    return "GET";
}

/* Adds x to the multi handle for one attempt of its current step. */
static void xfer_activate(s3 *s, xfer *x)
{
    uint64_t now = now_ms(s);
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
    request req = {.method = step_method(x->step),
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
    if (setup_easy(x->easy, &co, &req, &x->headers, x) != 0) {
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

/* Starts queued exchanges while slots are free, round robin over the owners. */
static void pump(s3 *s)
{
    while (!s->closing && s->active < s->max_connections && s->ring) {
        owner_q *start = s->ring, *q = start;
        while (q->active >= s->max_per_owner) {
            q = q->rr_next;
            if (q == start)
                return; /* every owner with work is at its cap */
        }
        s->ring = q->rr_next;
        xfer *x = q->head;
        dequeue(s, x);
        xfer_activate(s, x);
    }
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
        owner_release(s, q);
}

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

static void defer_kick(uv_timer_t *t);

/* Completes x on a later loop turn (from start() and cancel(), which must not). */
static void xfer_defer(s3 *s, xfer *x, int status)
{
    x->op->status = status;
    x->where = X_DEFERRED;
    x->next = NULL;
    x->prev = s->deferred_tail;
    if (s->deferred_tail)
        s->deferred_tail->next = x;
    else
        s->deferred_head = x;
    s->deferred_tail = x;
    if (!uv_is_active((uv_handle_t *)&s->defer_timer) &&
        !uv_is_closing((uv_handle_t *)&s->defer_timer))
        uv_timer_start(&s->defer_timer, defer_kick, 0, 0);
}

static void defer_kick(uv_timer_t *t)
{
    s3 *s = t->data;
    xfer *list = s->deferred_head;
    s->deferred_head = s->deferred_tail = NULL;
    while (list) {
        xfer *x = list;
        list = x->next;
        xfer_finish(x, x->op->status);
    }
    pump(s);
}

/* ---- steps ---- */

static int url_for_key(s3 *s, xfer *x, const char *key, const char *query)
{
    buf_t u;
    buf_init(&u, 8192);
    int rc = buf_printf(&u, "%s/%s/", s->endpoint, s->bucket);
    if (!rc && key)
        rc = uri_encode(&u, key, true);
    if (!rc && query)
        rc = buf_printf(&u, "?%s", query);
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
    return digest_body(x->own_body, x->body_len, x->sha256, x->md5);
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
        /* Query parameters in code-point order, values RFC 3986-encoded. */
        clear_body(x);
        if (x->token) {
            rc = buf_puts(&q, "continuation-token=");
            if (!rc)
                rc = uri_encode(&q, x->token, false);
            if (!rc)
                rc = buf_putc(&q, '&');
        }
        if (!rc)
            rc = buf_printf(&q, "list-type=2&max-keys=%d&prefix=", S3_LIST_PAGE);
        if (!rc)
            rc = uri_encode(&q, key, false);
        if (!rc)
            rc = url_for_key(s, x, NULL, q.data);
        break;
    case STEP_BATCH_DELETE: {
        buf_t b;
        buf_init(&b, S3_MAX_XML);
        rc = buf_puts(&b, "<Delete><Quiet>true</Quiet>");
        for (size_t i = 0; i < x->nkeys && !rc; i++) {
            rc = buf_puts(&b, "<Object><Key>");
            if (!rc)
                rc = xml_escape(&b, x->keys[i]);
            if (!rc)
                rc = buf_puts(&b, "</Key></Object>");
        }
        if (!rc)
            rc = buf_puts(&b, "</Delete>");
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
            rc = buf_printf(&q, "partNumber=%u&uploadId=", x->part);
        } else if (x->step == STEP_MP_COMPLETE) {
            buf_t b;
            buf_init(&b, S3_MAX_XML);
            rc = buf_printf(&b, "<CompleteMultipartUpload>%s</CompleteMultipartUpload>",
                            x->etags.data ? x->etags.data : "");
            if (!rc)
                rc = own_body(x, &b);
            buf_free(&b);
            if (!rc)
                rc = buf_puts(&q, "uploadId=");
        } else {
            clear_body(x);
            rc = buf_puts(&q, "uploadId=");
        }
        if (!rc)
            rc = uri_encode(&q, x->upload_id, false);
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
    enqueue(x->s, x, true);
}

static int errno_for_status(long status)
{
    if (status == 404)
        return -ENOENT;
    if (status == 401 || status == 403)
        return -EACCES;
    if (status >= 500 || status == 429 || status == 408)
        return OGD_EOBJ_UNAVAILABLE; /* after every retry the deadline allowed */
    return -EIO;
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
    uint64_t now = now_ms(s);
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

static int errno_for_curl(CURLcode cc)
{
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
        return -EHOSTUNREACH;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return -ECONNRESET;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

/* Handles a successful exchange: the next step, or the op's result. */
static void step_ok(xfer *x)
{
    objstore_op *op = x->op;
    const char *doc = x->resp.data ? x->resp.data : "";
    const char *pos = NULL;
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
    case STEP_LIST: {
        for (size_t i = 0; i < x->nkeys; i++)
            free(x->keys[i]);
        x->nkeys = 0;
        char *t = xml_next(doc, &pos, "IsTruncated");
        x->truncated = t && strcmp(t, "true") == 0;
        free(t);
        free(x->token);
        pos = NULL;
        x->token = x->truncated ? xml_next(doc, &pos, "NextContinuationToken") : NULL;
        if (x->truncated && !x->token) {
            xfer_finish(x, -EIO);
            return;
        }
        free(x->keys);
        x->keys = calloc(S3_LIST_PAGE + 1, sizeof(char *));
        if (!x->keys) {
            xfer_finish(x, -ENOMEM);
            return;
        }
        pos = NULL;
        char *k;
        while (x->nkeys < S3_LIST_PAGE + 1 && (k = xml_next(doc, &pos, "Key")))
            x->keys[x->nkeys++] = k;
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
    }
    case STEP_BATCH_DELETE:
        if (strstr(doc, "<Error>")) {
            char *code = xml_next(doc, &pos, "Code");
            snprintf(x->s3code, sizeof(x->s3code), "%s", code ? code : "");
            free(code);
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
        x->upload_id = xml_next(doc, &pos, "UploadId");
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
        if (strstr(doc, "<Error>")) { /* S3 may fail a complete inside a 200 */
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

static void retry_kick(uv_timer_t *t);

static void backoff_insert(s3 *s, xfer *x)
{
    x->where = X_BACKOFF;
    xfer **pp = &s->backoff;
    while (*pp && (*pp)->retry_at_ms <= x->retry_at_ms)
        pp = &(*pp)->next;
    x->next = *pp;
    x->prev = NULL;
    *pp = x;
    if (s->backoff == x)
        uv_timer_start(&s->retry_timer, retry_kick, x->retry_at_ms - now_ms(s), 0);
}

static void backoff_remove(s3 *s, xfer *x)
{
    xfer **pp = &s->backoff;
    while (*pp != x)
        pp = &(*pp)->next;
    *pp = x->next;
    x->next = NULL;
    x->where = X_NONE;
}

static void retry_kick(uv_timer_t *t)
{
    s3 *s = t->data;
    uint64_t now = now_ms(s);
    while (s->backoff && s->backoff->retry_at_ms <= now) {
        xfer *x = s->backoff;
        backoff_remove(s, x);
        enqueue(s, x, true);
    }
    if (s->backoff)
        uv_timer_start(&s->retry_timer, retry_kick, s->backoff->retry_at_ms - now, 0);
    pump(s);
}

/* Decides what a failed attempt leads to: a retry later, or the op's failure. */
static void step_failed(xfer *x, int err, bool retryable, bool is_timeout)
{
    s3 *s = x->s;
    x->last_err = err;
    uint64_t now = now_ms(s);
    if (retryable && x->attempt < s->max_retries && now < x->deadline_ms) {
        int cost = is_timeout ? S3_BUDGET_TIMEOUT : S3_BUDGET_RETRY;
        if (s->budget >= cost) {
            s->budget -= cost;
            uint64_t exp = (uint64_t)S3_BACKOFF_BASE_MS << (x->attempt < 10 ? x->attempt : 10);
            if (exp > S3_BACKOFF_CAP_MS)
                exp = S3_BACKOFF_CAP_MS;
            uint64_t delay = exp / 2 + (uint64_t)(rand() % (int)(exp / 2 + 1)); /* jitter */
            if (now + delay < x->deadline_ms) {
                x->attempt++;
                s->retries++;
                x->retry_at_ms = now + delay;
                backoff_insert(s, x);
                return;
            }
        } else {
            s->retries_denied++;
        }
    }
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

/* ETag header of a part upload, appended to the completion list. */
static int record_etag(xfer *x)
{
    struct curl_header *h = NULL;
    if (curl_easy_header(x->easy, "ETag", 0, CURLH_HEADER, -1, &h) != CURLHE_OK || !h)
        return -EIO;
    int rc = buf_printf(&x->etags, "<Part><PartNumber>%u</PartNumber><ETag>", x->part);
    if (!rc)
        rc = xml_escape(&x->etags, h->value);
    if (!rc)
        rc = buf_puts(&x->etags, "</ETag></Part>");
    return rc;
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
        etag_rc = record_etag(x);
    const char *method = step_method(x->step);
    xfer_detach(s, x);
    int local = x->local_err;

    if (cc == CURLE_OK && status >= 200 && status < 300) {
        if (etag_rc) {
            step_failed(x, -EIO, false, false);
            return;
        }
        s->budget += S3_BUDGET_REFUND;
        if (s->budget > S3_BUDGET_MAX)
            s->budget = S3_BUDGET_MAX;
        x->op->size = size;
        step_ok(x);
        return;
    }
    if (local) {
        step_failed(x, local, false, false);
        return;
    }
    if (cc != CURLE_OK) {
        int err = errno_for_curl(cc);
        note_failure(x->s, "S3 %s %s: %s (attempt %u)", method, x->op->key, curl_easy_strerror(cc),
                     x->attempt + 1);
        step_failed(x, err, err != -ENOMEM, err == -ETIMEDOUT);
        return;
    }
    /* an HTTP error: the S3 code names it */
    const char *pos = NULL;
    char *code = x->resp.data ? xml_next(x->resp.data, &pos, "Code") : NULL;
    snprintf(x->s3code, sizeof(x->s3code), "%s", code ? code : "");
    free(code);
    bool retryable = status >= 500 || status == 429 || status == 408;
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
    step_failed(x, errno_for_status(status), retryable, false);
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
    pump(s);
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
        rc = uri_encode(&b, opts->bucket, false);
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
    s->budget = S3_BUDGET_MAX;
    curl_multi_setopt(s->cu.multi, CURLMOPT_MAXCONNECTS, (long)s->max_connections);
    curl_multi_setopt(s->cu.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)s->max_connections);
    uv_timer_init(loop, &s->retry_timer);
    uv_timer_init(loop, &s->defer_timer);
    s->retry_timer.data = s->defer_timer.data = s;
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
    x->created_ms = now_ms(s);
    x->oq = owner_get(s, op->owner);
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
    enqueue(s, x, false);
    /* Start on the next loop turn at the latest: curl's timer callback asks for that. */
    if (!uv_is_active((uv_handle_t *)&s->defer_timer))
        uv_timer_start(&s->defer_timer, defer_kick, 0, 0);
    return 0;
}

static int s3_cancel(void *state, objstore_op *op)
{
    s3 *s = state;
    xfer *x = op->backend_data;
    switch (x->where) {
    case X_QUEUED:
        dequeue(s, x);
        break;
    case X_ACTIVE:
        xfer_detach(s, x);
        break; /* defer_kick refills the slot */
    case X_BACKOFF:
        backoff_remove(s, x);
        break;
    case X_NONE:
    case X_DEFERRED:
        return -EALREADY;
    }
    xfer_defer(s, x, -ECANCELED);
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
    for (size_t i = 0; i < S3_OWNER_BUCKETS; i++)
        while (s->owners[i]) {
            owner_q *q = s->owners[i];
            s->owners[i] = q->hnext;
            free(q);
        }
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
