/*
 * api: the HTTP handlers of the OperationsGateway API and what they share.
 *
 * app_t is one worker's context (config, store, object store, loop); every handler
 * reaches it through req->app. Handlers parse and validate parameters on the loop thread
 * (cheap, bounded), hand the slow part to the store / object store (off the loop), and
 * serialise large results on the thread pool (api_respond_json). Errors go out as
 * {"detail": ...} with the statuses of the reference (docs/api.md §3); query-parameter
 * validation failures as 422 in FastAPI's shape.
 */
#ifndef OGD_API_API_H
#define OGD_API_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "http/http.h"
#include "objstore/objstore.h"
#include "store/store.h"

#define OGD_VERSION "0.1.0"

typedef struct app {
    const ogd_config *cfg; /** borrowed, lives as long as the worker */
    uv_loop_t *loop;
    store_t *store;
    objstore_t *objstore;
    struct jwt_keys *keys;           /** the JWT key pair (auth); NULL = no login */
    struct ratelimit *login_limiter; /** failed logins per user and per client address */
    struct oidc_state *oidc;         /** OIDC discovery/JWKS cache and its HTTP client */
    /** FedID directory calls: running on the pool, and waiting (api_fedid_submit) */
    unsigned fedid_running, fedid_waiting;
    struct api_fedid_job *fedid_head, *fedid_tail;
} app_t;

extern const http_route api_routes[];
extern const size_t api_nroutes;

/* 422 in FastAPI's shape for one query parameter. ctx_json: e.g. {"ge":0} or NULL. */
void api_respond_422(http_request_t *req, const char *type, const char *loc_kind, const char *name,
                     const char *msg, const char *input, const char *ctx_json);
/* The one mapping of errors (util/error.h) to answers. err != 0. Sets *detail to the
 * text to send and returns the status:
 *   - a back end that cannot be reached or did not answer in time (ogd_unavailable):
 *     503, "Database unavailable" or "Object storage unavailable, try again later"
 *     (the object store: OGD_EOBJ_UNAVAILABLE and the connection errnos; the database:
 *     OGD_EDB_UNAVAILABLE); the HTTP server adds Retry-After to every 503;
 *   - -ENOENT: 404 with not_found (a route's own text), or 500 when not_found is NULL;
 *   - anything else (OGD_EDB, -EIO, -ENOMEM, -ECANCELED, ...): 500 with detail500.
 * A "not found" is never made of an unavailable back end. */
int api_error_answer(int err, const char *not_found, const char *detail500, const char **detail);
/* Answers err as api_error_answer says, and logs it once, at
 * warn for 5xx, naming `what` (e.g. "image 2023.../CAM-1"); nothing is logged for a
 * request whose client has gone (-ECANCELED). */
void api_respond_error_code(http_request_t *req, int err, const char *not_found,
                            const char *detail500, const char *what);
/* Responds with the store op's error: 400 for bad queries (the op's message), else as
 * api_respond_error_code (503 unavailable, 500 with `detail500`). */
void api_respond_store_error(http_request_t *req, const store_op_t *op, const char *detail500);
/* The same from a store op's status and error text (err: "" when none). */
void api_respond_store_status(http_request_t *req, int status, const char *err,
                              const char *detail500);
/* Serialises v (takes ownership) on the thread pool and responds with it. */
void api_respond_json(http_request_t *req, int status, json_t *v);

/* Parses the request body as JSON (FastAPI's rules: no or a JSON content type). Empty or
 * unparsable -> 422 sent, NULL. The result is a new reference. want_object: a non-object
 * is 422 too. */
json_t *api_body_json(http_request_t *req, bool want_object);
/* The check FastAPI makes before a route's dependencies (the authorizer) run: a non-empty
 * body with no or a JSON content type must parse. false with the 422 sent when not. */
bool api_body_decodes(http_request_t *req);
/* 422 for a body field: type "missing"/"string_type"/..., the field, the message. */
void api_422_body(http_request_t *req, const char *type, const char *field, const char *msg,
                  json_t *input);
/* A required string field of body; NULL (and 422 sent) when missing or not a string. */
const char *api_body_string(http_request_t *req, json_t *body, const char *field);

/* A JSON string body ("text"), status given. */
void api_respond_string(http_request_t *req, int status, const char *text);

/* One store op for a handler: api_store_op makes it (request arena; NULL and 500 sent on
 * failure), the caller fills its inputs, api_store_submit runs it: cb gets it back on the
 * loop with op->data = data. Canceled when the client goes away. false (500 sent) when it
 * cannot be submitted. */
store_op_t *api_store_op(http_request_t *req, store_op_kind kind);
bool api_store_submit(http_request_t *req, store_op_t *op, store_cb cb, void *data);
/* A store_cb for list ops submitted with data = the request: answers 200 with the result
 * array, each document cut to the keys in op->post_data (a NULL-terminated array of key
 * names, missing ones as null), or the store's error; then cleans the op up. */
void api_store_list_done(store_op_t *op);

/* Query parameter parsers. Each returns true when the value is usable; on false the
 * 422 response has been sent. `present` tells whether the parameter was given. */
bool api_query_int(http_request_t *req, const char *name, int64_t def, int64_t *out);
bool api_query_int_range(http_request_t *req, const char *name, int64_t def, int64_t lo, int64_t hi,
                         int64_t *out);
bool api_query_bool(http_request_t *req, const char *name, bool def, bool *out);
/* Parses a JSON parameter; absent -> def_text parsed. Returns a new reference. */
bool api_query_json(http_request_t *req, const char *name, const char *def_text, json_t **out);

/* Compiles a `conditions` value (must be a JSON object) into *out (the caller frees it
 * with filter_free); on false the 400 has been sent. */
bool api_compile_conditions(http_request_t *req, json_t *cond, bool convert_dates, filter_t **out);
/* The list parameters /records and /export share (conditions, skip, limit, order,
 * projection, and the max_documents cap) into op; *filter receives the compiled filter
 * (the caller frees it, also on false). On false the error response has been sent. */
bool api_list_params(http_request_t *req, store_op_t *op, filter_t **filter);

/* A handler's context: size zeroed bytes in the request's arena (they live until the
 * request is finished). NULL with the 500 sent when out of memory. */
void *api_ctx_new(http_request_t *req, size_t size);

/* Seconds-since-epoch microseconds now. */
int64_t api_now_us(void);

#endif
