/*
 * objstore/s3_internal.h: what the files of the S3 back end share; nothing else includes
 * it. The back end is cut into three files with one job each:
 *   - s3.c: the back end itself: open/start/cancel/close/stats/prepare, the transfers
 *     (curl easy handles, their callbacks) and the steps that drive them;
 *   - s3_proto.c: the S3 protocol: URLs and query strings, request headers and signing
 *     set-up, request bodies, parsing of S3's answers, classification of failures; it
 *     knows nothing of the back end's state;
 *   - s3_sched.c: scheduling: owners and their round-robin queue, transfer slots,
 *     completions deferred to the next loop turn, the retry budget and backoff.
 * The types below are the back end's state (s3), one op's transfer (xfer) and the
 * accounting of one owner (owner_q); loop thread only.
 */
#ifndef OGD_OBJSTORE_S3_INTERNAL_H
#define OGD_OBJSTORE_S3_INTERNAL_H

#include "objstore/backend.h"

#include "net/curl_uv.h"
#include "util/buf.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* What the scheduler calls back into the back end (s3.c), given at s3_sched_init. */
typedef struct s3_xfer_hooks {
    void (*activate)(s3 *s, xfer *x);    /* adds x to the multi handle for one attempt */
    void (*finish)(xfer *x, int status); /* hands x's result to its op, frees x */
} s3_xfer_hooks;

struct s3 {
    uv_loop_t *loop;
    s3_xfer_hooks hooks;
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

/* ---- s3_proto.c: the protocol ---- */

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

/* A request body being uploaded (the read callback's position in it). */
typedef struct reader {
    const unsigned char *p;
    size_t len, off;
} reader;

/* RFC 3986 percent-encoding of s into b; '/' kept when keep_slash. */
int s3_uri_encode(buf_t *b, const char *s, bool keep_slash);
/* endpoint/bucket/key[?query] (path style) into u; key is encoded, bucket already is. */
int s3_object_url(buf_t *u, const char *endpoint, const char *bucket, const char *key,
                  const char *query);
/* The query of a ListObjectsV2 page of keys under prefix (token: NULL on the first). */
int s3_list_query(buf_t *q, const char *token, const char *prefix);
/* The query naming a multipart upload, with its part number when part > 0. */
int s3_upload_query(buf_t *q, unsigned part, const char *upload_id);
/* Request bodies: a quiet batch delete of keys, the completion of a multipart upload
 * (parts: the <Part> entries of s3_record_etag), a bucket's expiry rule. */
int s3_delete_body(buf_t *b, char *const *keys, size_t nkeys);
int s3_complete_body(buf_t *b, const char *parts);
int s3_lifecycle_body(buf_t *b, int expiry_days);
/* SHA-256 (hex) and MD5 (base64) of an owned request body. */
int s3_digest_body(const char *body, size_t len, char sha_hex[65], char md5_b64[32]);
/* curl read callback over a reader. */
size_t s3_read_body(char *dst, size_t size, size_t nitems, void *userdata);
/* Sets up easy for req: signing, headers, method; a PUT's body through s3_read_body over
 * read_data (a reader). The caller sets the write callback and private data. */
int s3_setup_easy(CURL *easy, const conn_opts *co, const request *req, struct curl_slist **headers,
                  void *read_data);
const char *s3_step_method(step_kind k);

/* A listing page: *truncated and, when it is, the continuation token (malloc'd, else
 * NULL); -EIO when a truncated page has no token. */
int s3_list_truncation(const char *doc, bool *truncated, char **token);
/* The keys of a listing page (malloc'd array of malloc'd strings, *nkeys of them), or
 * NULL when out of memory. */
char **s3_list_keys(const char *doc, size_t *nkeys);
/* The UploadId of an initiated multipart upload (malloc'd), or NULL. */
char *s3_upload_id(const char *doc);
/* Whether a 2xx answer carries an S3 error (batch delete, multipart completion). */
bool s3_has_error(const char *doc);
/* The S3 error code of an answer (doc may be NULL) into out, "" when none. */
void s3_error_code(const char *doc, char *out, size_t outlen);
/* The ETag of a part upload's answer, appended to etags as a <Part> entry. */
int s3_record_etag(CURL *easy, buf_t *etags, unsigned part);

/* Failures: whether an HTTP status is worth a retry, and the errno of a status (after
 * every retry) or of a curl error. */
bool s3_status_retryable(long status);
int s3_errno_for_status(long status);
int s3_errno_for_curl(CURLcode cc);

/* ---- s3_sched.c: scheduling ---- */

uint64_t s3_now_ms(s3 *s);
/* The retry budget and the scheduler's timers (open); the owners (close). */
void s3_sched_init(s3 *s, s3_xfer_hooks hooks);
void s3_owners_free(s3 *s);
/* The owner_q of owner, made on first use; each xfer holds a reference (refs++). */
owner_q *s3_owner_get(s3 *s, const void *owner);
/* Drops one xfer's reference; frees q with the last. */
void s3_owner_release(s3 *s, owner_q *q);
void s3_enqueue(s3 *s, xfer *x, bool front);
void s3_dequeue(s3 *s, xfer *x);
/* Queues a new xfer and makes sure the queue is pumped on the next loop turn. */
void s3_submit(s3 *s, xfer *x);
/* Starts queued exchanges while slots are free, round robin over the owners. */
void s3_pump(s3 *s);
/* Completes x on a later loop turn (from start() and cancel(), which must not). */
void s3_defer(s3 *s, xfer *x, int status);
/* After a retryable failure at now: puts x in backoff and returns true when its retries,
 * its deadline and the retry budget allow another attempt. */
bool s3_retry_later(xfer *x, bool is_timeout, uint64_t now);
void s3_backoff_remove(s3 *s, xfer *x);
/* A success refunds part of a retry to the budget. */
void s3_budget_refund(s3 *s);

#endif
