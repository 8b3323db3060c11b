/*
 * control: what authentication (auth.c, oidc.c) offers the rest: the authorizer the
 * router calls, token issuing for the login routes, the FedID directory queue the
 * /users handlers share with /login, and the per-worker OIDC state. The request plumbing
 * (JSON bodies, 422s, store ops) is in api.h.
 */
#ifndef OGD_API_CONTROL_H
#define OGD_API_CONTROL_H

#include "api/api.h"

/* The router's authorizer (http_server_set_authorizer): bearer access token, then the
 * route's permission; docs/api.md §2.4, §3.4. */
bool api_authorize(http_request_t *req);

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
