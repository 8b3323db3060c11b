/*
 * oidc.c: OIDC login (docs/auth.md §6, docs/api.md §6.4-§6.5): GET /oidc_providers and
 * POST /oidc_login/{provider_id}, which takes an id_token from the configured identity
 * provider as the bearer credential and answers with ogd's own tokens, as /login does.
 *
 * Per worker, an oidc_state holds one HTTP client (auth/fetch.h: libcurl on the loop, 5 s
 * timeout, 1 MiB cap) and, per provider, the discovery document (cached 24 h) and its JWKS
 * (cached 2 h), fetched when first needed; concurrent logins that miss the cache each
 * fetch. The id_token's signature is checked with the JWK its `kid` names, with the key's
 * algorithm (never the token's); then issuer, audience (client_id), expiry (5 s leeway)
 * and not-before; the user is the one whose `email` equals the configured claim.
 */
#include "api/control.h"
#include "api/handlers.h"

#include "auth/fetch.h"
#include "auth/jwt.h"
#include "util/taskgroup.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define OIDC_TIMEOUT_MS 5000
#define OIDC_MAX_DOC_BYTES ((size_t)1 << 20)
#define DISCOVERY_TTL_S (24 * 3600)
#define JWKS_TTL_S (2 * 3600)
#define OIDC_LEEWAY_S 5

typedef struct provider_cache {
    json_t *discovery;
    int64_t discovery_at;
    json_t *jwks;
    int64_t jwks_at;
} provider_cache;

typedef struct oidc_state {
    fetcher_t *fetcher;
    size_t n;
    provider_cache *cache;
} oidc_state;

struct oidc_state *oidc_state_new(uv_loop_t *loop, size_t nproviders)
{
    oidc_state *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->fetcher = fetcher_new(loop);
    s->n = nproviders;
    s->cache = calloc(nproviders ? nproviders : 1, sizeof(provider_cache));
    if (!s->fetcher || !s->cache) {
        fetcher_close(s->fetcher);
        free(s->cache);
        free(s);
        return NULL;
    }
    return s;
}

void oidc_state_close(struct oidc_state *s)
{
    if (!s)
        return;
    fetcher_close(s->fetcher);
    for (size_t i = 0; i < s->n; i++) {
        json_decref(s->cache[i].discovery);
        json_decref(s->cache[i].jwks);
    }
    free(s->cache);
    free(s);
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

/* ---------------------------------------------------------------- GET /oidc_providers */

void api_oidc_providers(http_request_t *req)
{
    app_t *app = req->app;
    const ogd_auth_config *a = &app->cfg->auth;
    json_t *out = json_object();
    for (size_t i = 0; i < a->oidc_providers_count; i++) {
        const ogd_oidc_provider *p = &a->oidc_providers[i];
        char scope[300];
        snprintf(scope, sizeof(scope), "openid %s",
                 p->username_claim ? p->username_claim : "email");
        json_object_set_new(out, p->id,
                            json_pack("{s:s?, s:s?, s:s?, s:b, s:s}", "display_name",
                                      p->display_name, "configuration_url", p->configuration_url,
                                      "client_id", p->client_id, "pkce", 1, "scope", scope));
    }
    api_respond_json(req, 200, out);
}

/* ---------------------------------------------------------------- POST /oidc_login */

typedef struct oidc_ctx {
    http_request_t *req;
    const ogd_oidc_provider *p;
    provider_cache *cache;
    const char *token;
    char kid[256];
    json_t *user;
    char *access, *refresh;
    char msg[600];
} oidc_ctx;

static void ctx_free(oidc_ctx *c)
{
    json_decref(c->user);
    free(c->access);
    free(c->refresh);
}

static void fail(oidc_ctx *c, int status, const char *detail)
{
    http_respond_error(c->req, status, detail);
    ctx_free(c);
}

static void step(oidc_ctx *c);

static void fetched(oidc_ctx *c, bool jwks, int status, long code, const char *body, size_t len)
{
    json_t *doc = NULL;
    const char *url = jwks ? json_string_value(json_object_get(c->cache->discovery, "jwks_uri"))
                           : c->p->configuration_url;
    if (status != 0) {
        log_warn("oidc: fetching %s failed (%s)", url, strerror(-status));
        snprintf(c->msg, sizeof(c->msg), "Request to %.500s failed", url);
        fail(c, 500, c->msg);
        return;
    }
    doc = json_loadb(body, len, 0, NULL);
    if (!json_is_object(doc)) {
        log_warn("oidc: %s answered %ld with a body that is not a JSON object", url, code);
        json_decref(doc);
        fail(c, 500, "Unknown error");
        return;
    }
    if (jwks) {
        json_decref(c->cache->jwks);
        c->cache->jwks = doc;
        c->cache->jwks_at = now_s();
    } else {
        json_decref(c->cache->discovery);
        c->cache->discovery = doc;
        c->cache->discovery_at = now_s();
        json_decref(c->cache->jwks); /* a new discovery document may name new keys */
        c->cache->jwks = NULL;
    }
    step(c);
}

static void discovery_fetched(int status, long code, const char *body, size_t len, void *data)
{
    fetched(data, false, status, code, body, len);
}

static void jwks_fetched(int status, long code, const char *body, size_t len, void *data)
{
    fetched(data, true, status, code, body, len);
}

static void issue_run(void *data)
{
    oidc_ctx *c = data;
    if (api_issue_tokens(c->req->app, c->user, &c->access, &c->refresh) != 0)
        c->access = NULL;
}

static void issue_done(void *data, int status)
{
    oidc_ctx *c = data;
    if (status != 0 || !c->access)
        http_respond_error(c->req, 500, "Unknown error");
    else
        api_respond_tokens(c->req, c->access, c->refresh);
    ctx_free(c);
}

static void user_found(store_op_t *op)
{
    oidc_ctx *c = op->data;
    http_set_abort(c->req, NULL, NULL);
    int st = op->status;
    if (st == 0) {
        c->user = op->result;
        op->result = NULL;
    } else if (st == -ENOENT) {
        http_respond_error(c->req, 401, "User not authorised");
    } else {
        api_respond_store_error(c->req, op, "Unknown error");
    }
    store_op_cleanup(op);
    if (st != 0) {
        ctx_free(c);
        return;
    }
    app_t *app = c->req->app;
    if (work_submit(app->loop, issue_run, issue_done, c, NULL) != 0)
        fail(c, 500, "Unknown error");
}

static bool audience_ok(json_t *aud, const char *client_id)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), client_id) == 0;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), client_id) == 0)
            return true;
    }
    return false;
}

/* With discovery and JWKS at hand: check the token, then find the user. */
static void verify_and_find(oidc_ctx *c)
{
    json_t *key = NULL;
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(c->cache->jwks, "keys"), i, k)
    {
        const char *kid = json_string_value(json_object_get(k, "kid"));
        const char *use = json_string_value(json_object_get(k, "use"));
        if (kid && strcmp(kid, c->kid) == 0 && (!use || strcmp(use, "sig") == 0))
            key = k;
    }
    if (!key) {
        fail(c, 500, "Unknown error"); /* as the reference (docs/api.md §9 item 6) */
        return;
    }
    if (jwt_verify_jwk(key, c->token) != 0) {
        fail(c, 403, "Invalid OIDC id_token");
        return;
    }
    json_t *claims = NULL;
    jwt_peek(c->token, NULL, &claims);
    json_t *exp = json_object_get(claims, "exp"), *nbf = json_object_get(claims, "nbf");
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    const char *want_iss = json_string_value(json_object_get(c->cache->discovery, "issuer"));
    int64_t now = now_s();
    const char *err = NULL;
    if (!json_is_number(exp) || !iss || !json_object_get(claims, "aud"))
        err = "Invalid OIDC id_token";
    else if (json_number_value(exp) + OIDC_LEEWAY_S <= (double)now)
        err = "JWT has expired";
    else if (!want_iss || strcmp(iss, want_iss) != 0 ||
             !audience_ok(json_object_get(claims, "aud"), c->p->client_id) ||
             (nbf &&
              (!json_is_number(nbf) || json_number_value(nbf) - OIDC_LEEWAY_S > (double)now)))
        err = "Invalid OIDC id_token";
    if (err) {
        json_decref(claims);
        fail(c, 403, err);
        return;
    }
    const char *claim = c->p->username_claim ? c->p->username_claim : "email";
    const char *email = json_string_value(json_object_get(claims, claim));
    if (!email) {
        json_decref(claims);
        fail(c, 500, "Unknown error"); /* as the reference (docs/api.md §9 item 6) */
        return;
    }
    char *copy = arena_strdup(&c->req->arena, email);
    json_decref(claims);
    store_op_t *op = copy ? api_store_op(c->req, STORE_USER_BY_EMAIL) : NULL;
    if (!op) {
        if (!copy)
            http_respond_error(c->req, 500, "Unknown error");
        ctx_free(c);
        return;
    }
    op->id = copy;
    if (!api_store_submit(c->req, op, user_found, c))
        ctx_free(c);
}

/* Fetches what is missing or stale, then verifies. */
static void step(oidc_ctx *c)
{
    app_t *app = c->req->app;
    int64_t now = now_s();
    if (!c->cache->discovery || now - c->cache->discovery_at >= DISCOVERY_TTL_S) {
        int rc = fetch_get(app->oidc->fetcher, c->p->configuration_url, c->p->verify_cert,
                           OIDC_TIMEOUT_MS, OIDC_MAX_DOC_BYTES, discovery_fetched, c);
        if (rc != 0) {
            snprintf(c->msg, sizeof(c->msg), "Request to %.500s failed", c->p->configuration_url);
            fail(c, 500, c->msg);
        }
        return;
    }
    if (!c->cache->jwks || now - c->cache->jwks_at >= JWKS_TTL_S) {
        const char *uri = json_string_value(json_object_get(c->cache->discovery, "jwks_uri"));
        if (!uri) {
            fail(c, 500, "Unknown error");
            return;
        }
        int rc = fetch_get(app->oidc->fetcher, uri, c->p->verify_cert, OIDC_TIMEOUT_MS,
                           OIDC_MAX_DOC_BYTES, jwks_fetched, c);
        if (rc != 0) {
            snprintf(c->msg, sizeof(c->msg), "Request to %.500s failed", uri);
            fail(c, 500, c->msg);
        }
        return;
    }
    verify_and_find(c);
}

void api_oidc_login(http_request_t *req)
{
    app_t *app = req->app;
    const char *h = http_header_get(req, "authorization");
    const char *sp = h ? strchr(h, ' ') : NULL;
    if (!h || !sp || (size_t)(sp - h) != 6 || strncasecmp(h, "bearer", 6) != 0 || !sp[1]) {
        http_add_header(req, "WWW-Authenticate", "Bearer");
        http_respond_error(req, 401, "Not authenticated");
        return;
    }
    const ogd_auth_config *a = &app->cfg->auth;
    size_t idx = a->oidc_providers_count;
    for (size_t i = 0; i < a->oidc_providers_count; i++)
        if (strcmp(a->oidc_providers[i].id, req->params[0]) == 0)
            idx = i;
    if (idx == a->oidc_providers_count || !app->oidc || idx >= app->oidc->n) {
        http_respond_error(req, 404, "Unknown OIDC provider");
        return;
    }
    oidc_ctx *c = api_ctx_new(req, sizeof(*c));
    if (!c)
        return;
    c->req = req;
    c->p = &a->oidc_providers[idx];
    c->cache = &app->oidc->cache[idx];
    c->token = sp + 1;
    json_t *header = NULL;
    if (jwt_peek(c->token, &header, NULL) != 0) {
        fail(c, 403, "Invalid OIDC id_token");
        return;
    }
    const char *kid = json_string_value(json_object_get(header, "kid"));
    if (!kid || strlen(kid) >= sizeof(c->kid)) {
        json_decref(header);
        fail(c, 500, "Unknown error"); /* as the reference (docs/api.md §9 item 6) */
        return;
    }
    snprintf(c->kid, sizeof(c->kid), "%s", kid);
    json_decref(header);
    step(c);
}
