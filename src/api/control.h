/*
 * control: what the control-plane handlers (auth.c, users.c, sessions.c,
 * maintenance.c) share: the authorizer the router calls, JSON bodies with FastAPI's 422
 * shapes, and one-op store calls from a handler.
 */
#ifndef OGD_API_CONTROL_H
#define OGD_API_CONTROL_H

#include "api/api.h"

/* The router's authorizer (http_server_set_authorizer): bearer access token, then the
 * route's permission; docs/api.md §2.4, §3.4. */
bool api_authorize(http_request_t *req);

/* Parses the request body as JSON (FastAPI's rules: no or a JSON content type). Empty or
 * unparsable -> 422 sent, NULL. The result is a new reference. want_object: a non-object
 * is 422 too. */
json_t *api_body_json(http_request_t *req, bool want_object);
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

/* Issues the access token (and the refresh token when refresh is non-NULL) for a user
 * document. Thread-safe (runs on the pool). Strings are malloc'd. 0 or -1. */
int api_issue_tokens(const app_t *app, const json_t *user, char **access, char **refresh);

/* A blocking FedID directory call (auth/fedid.h) for the thread pool. At most half the
 * pool's threads (at least one) run such calls at once in a worker, so a slow directory
 * cannot take the threads image, hashing and store work need; the rest wait in order, up
 * to API_FEDID_MAX_WAITING, beyond which the request gets 503 (Retry-After: 1). The job
 * lives in the caller's context (request arena); run/done as work_submit's. false (the
 * 503 or a 500 sent, done never called) when it is not accepted. */
#define API_FEDID_MAX_WAITING 256
typedef struct api_fedid_job {
    http_request_t *req;
    void (*run)(void *data);
    void (*done)(void *data, int status);
    void *data;
    struct api_fedid_job *next;
} api_fedid_job;
bool api_fedid_submit(http_request_t *req, api_fedid_job *job, void (*run)(void *data),
                      void (*done)(void *data, int status), void *data);

/* 200 with the access token as a JSON string and the refresh cookie (docs/auth.md §3). */
void api_respond_tokens(http_request_t *req, const char *access, const char *refresh);

/* OIDC per-worker state (oidc.c): made by the worker, closed before its loop stops. */
struct oidc_state *oidc_state_new(uv_loop_t *loop, size_t nproviders);
void oidc_state_close(struct oidc_state *s);

#endif
