/*
 * auth.c: authentication and nothing else (control.h): the authorizer every protected
 * route passes through, POST /login, /verify and /refresh (docs/auth.md, docs/api.md
 * §6.1-§6.3), the FedID directory calls the handlers queue on the thread pool
 * (api_fedid_submit), and the issuing of access and refresh tokens (api_issue_tokens,
 * api_respond_tokens). The request plumbing the handlers share (JSON bodies, 422s, store
 * ops) is in common.c (api.h).
 *
 * Token types are distinct (a fix, docs/security.md): access tokens carry
 * "token_type":"access" and are the only bearer tokens; refresh tokens carry
 * "token_type":"refresh" and are only accepted from the refresh cookie. /refresh re-reads
 * the user, so deleted users and revoked permissions stop at the next refresh.
 *
 * FedID users log in by a bind to the LDAP directory (auth/fedid.h), run on the thread
 * pool like the rest of the blocking work.
 *
 * CPU work is off the loop: password checks (argon2id, ~50 ms) and RSA signatures run on
 * the thread pool (work_submit); only the RSA *verification* of a bearer token (tens of
 * microseconds) runs on the loop, as parsing does. Secrets (passwords, tokens, cookies)
 * are never logged.
 */
#include "api/control.h"
#include "api/handlers.h"

#include "auth/fedid.h"
#include "auth/jwt.h"
#include "auth/password.h"
#include "auth/ratelimit.h"
#include "util/taskgroup.h"
#include "util/log.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Login attempts: failures allowed per user / per client address in the window. */
#define LOGIN_USER_FAILURES 10
#define LOGIN_ADDR_FAILURES 50
#define REVOKED_FILE_MAX_BYTES ((size_t)16 << 20)
#define REFRESH_SESSIONS_MAX 64 /* rotation sessions kept per user */
#define REFRESH_UPDATE_TRIES 16 /* user document clashes before /refresh gives up */

static uv_loop_t *app_loop(http_request_t *req)
{
    return ((app_t *)req->app)->loop;
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

/* ================================================================ tokens */

/* 16 random bytes as 32 hex digits: refresh-token session ids ("sid") and token ids. */
#define REFRESH_ID_HEX 33
static void random_id(char out[REFRESH_ID_HEX])
{
    unsigned char b[16];
    randombytes_buf(b, sizeof(b));
    sodium_bin2hex(out, REFRESH_ID_HEX, b, sizeof(b));
}

/* A refresh token: the reference's claims plus its type, its rotation session and id. */
static char *sign_refresh(const app_t *app, const char *username, const char *sid, const char *jti,
                          int64_t exp)
{
    json_t *r = json_pack("{s:s, s:I, s:s, s:s, s:s}", "username", username, "exp", (json_int_t)exp,
                          "token_type", "refresh", "sid", sid, "jti", jti);
    char *t = r ? jwt_sign(app->keys, r) : NULL;
    json_decref(r);
    return t;
}

int api_issue_tokens(const app_t *app, const json_t *user, char **access, char **refresh)
{
    *access = NULL;
    if (refresh)
        *refresh = NULL;
    const char *username = json_string_value(json_object_get(user, "_id"));
    if (!username)
        return -1;
    json_t *routes = json_object_get(user, "authorised_routes");
    json_t *p = json_object();
    json_object_set_new(p, "username", json_string(username));
    json_object_set_new(p, "authorised_routes",
                        json_is_array(routes) ? json_deep_copy(routes) : json_null());
    if (!json_is_array(routes)) {
        json_object_set_new(p, "userIsAdmin", json_false());
    } else {
        size_t i;
        json_t *r;
        json_array_foreach(routes, i, r)
        {
            if (json_is_string(r) && strcmp(json_string_value(r), "/users GET") == 0) {
                json_object_set_new(p, "userIsAdmin", json_true());
                break;
            }
        }
    }
    int64_t now = now_s();
    json_object_set_new(
        p, "exp", json_integer(now + (int64_t)app->cfg->auth.access_token_validity_mins * 60));
    json_object_set_new(p, "token_type", json_string("access"));
    *access = jwt_sign(app->keys, p);
    json_decref(p);
    if (refresh) {
        char sid[REFRESH_ID_HEX], jti[REFRESH_ID_HEX];
        random_id(sid);
        random_id(jti);
        *refresh = sign_refresh(app, username, sid, jti,
                                now + (int64_t)app->cfg->auth.refresh_token_validity_days * 86400);
    }
    if (!*access || (refresh && !*refresh)) {
        free(*access);
        *access = NULL;
        if (refresh) {
            free(*refresh);
            *refresh = NULL;
        }
        return -1;
    }
    return 0;
}

/* ================================================================ FedID calls */

static unsigned fedid_max_running(const app_t *app)
{
    int half = app->cfg->server.threads / 2;
    return half > 0 ? (unsigned)half : 1u;
}

static void fedid_job_run(void *data)
{
    api_fedid_job *job = data;
    job->run(job->data);
}

static void fedid_pump(app_t *app);

static void fedid_job_done(void *data, int status)
{
    api_fedid_job *job = data;
    app_t *app = job->req->app;
    app->fedid_running--;
    fedid_pump(app);
    job->done(job->data, status);
}

/* Starts waiting jobs while there is room. */
static void fedid_pump(app_t *app)
{
    while (app->fedid_head && app->fedid_running < fedid_max_running(app)) {
        api_fedid_job *job = app->fedid_head;
        app->fedid_head = job->next;
        if (!app->fedid_head)
            app->fedid_tail = NULL;
        app->fedid_waiting--;
        app->fedid_running++;
        if (work_submit(app->loop, fedid_job_run, fedid_job_done, job, NULL) != 0) {
            app->fedid_running--;
            job->done(job->data, -ENOMEM);
        }
    }
}

bool api_fedid_submit(http_request_t *req, api_fedid_job *job, void (*run)(void *data),
                      void (*done)(void *data, int status), void *data)
{
    app_t *app = req->app;
    if (app->fedid_waiting >= API_FEDID_MAX_WAITING) {
        log_warn("fedid: %u directory calls waiting, request refused", app->fedid_waiting);
        http_add_header(req, "Retry-After", "1");
        http_respond_error(req, 503, "Authentication server busy, try again later");
        return false;
    }
    *job = (api_fedid_job){.req = req, .run = run, .done = done, .data = data, .next = NULL};
    if (app->fedid_tail)
        app->fedid_tail->next = job;
    else
        app->fedid_head = job;
    app->fedid_tail = job;
    app->fedid_waiting++;
    fedid_pump(app);
    return true;
}

/* ================================================================ the authorizer */

static bool token_type_is(const json_t *claims, const char *type)
{
    const char *t = json_string_value(json_object_get(claims, "token_type"));
    return t && strcmp(t, type) == 0;
}

static bool body_method(http_method m)
{
    return m == OGD_POST || m == OGD_PUT || m == OGD_PATCH;
}

bool api_authorize(http_request_t *req)
{
    /* FastAPI decodes a JSON body before its dependencies run (docs/api.md §3.4). */
    if (body_method(req->method) && !api_body_decodes(req))
        return false;
    const char *h = http_header_get(req, "authorization");
    const char *sp = h ? strchr(h, ' ') : NULL;
    if (!h || !sp || (size_t)(sp - h) != 6 || strncasecmp(h, "bearer", 6) != 0 || !sp[1]) {
        http_add_header(req, "WWW-Authenticate", "Bearer");
        http_respond_error(req, 401, "Not authenticated");
        return false;
    }
    app_t *app = req->app;
    json_t *claims = NULL;
    if (jwt_verify(app->keys, sp + 1, true, now_s(), &claims) != 0 ||
        !token_type_is(claims, "access") || !json_is_string(json_object_get(claims, "username"))) {
        json_decref(claims);
        http_respond_error(req, 403, "Invalid token");
        return false;
    }
    const char *username = json_string_value(json_object_get(claims, "username"));
    req->username = arena_strdup(&req->arena, username);
    bool ok = req->username != NULL;
    if (ok && req->route->auth == AUTH_PERMISSION) {
        ok = false;
        json_t *routes = json_object_get(claims, "authorised_routes");
        size_t i;
        json_t *r;
        json_array_foreach(routes, i, r)
        {
            if (json_is_string(r) && strcmp(json_string_value(r), req->route->permission) == 0)
                ok = true;
        }
        if (!ok) {
            char msg[512];
            snprintf(msg, sizeof(msg), "User '%.200s' is not authorised to use endpoint '%s'",
                     username, req->route->permission);
            json_decref(claims);
            http_respond_error(req, 403, msg);
            return false;
        }
    }
    json_decref(claims);
    if (!ok)
        http_respond_error(req, 500, "Unknown error");
    return ok;
}

/* ================================================================ POST /login */

typedef struct login_ctx {
    http_request_t *req;
    json_t *body;
    const char *username;
    const char *password;
    char user_key[300], addr_key[80];
    json_t *user; /* the stored document */
    const char *stored_hash;
    /* results of the pool step */
    bool ok, upgrade, sign_failed;
    fedid_result fedid;
    api_fedid_job fedid_job;
    char new_hash[PASSWORD_HASH_BYTES];
    char *access, *refresh;
} login_ctx;

static void login_free(login_ctx *c)
{
    json_decref(c->body);
    json_decref(c->user);
    free(c->access);
    free(c->refresh);
    OPENSSL_cleanse(c->new_hash, sizeof(c->new_hash));
}

static void login_refuse(login_ctx *c, int status, const char *detail)
{
    app_t *app = c->req->app;
    if (status == 401 && app->login_limiter) {
        uint64_t now = (uint64_t)now_s();
        ratelimit_fail(app->login_limiter, c->user_key, now);
        ratelimit_fail(app->login_limiter, c->addr_key, now);
    }
    http_respond_error(c->req, status, detail);
    login_free(c);
}

void api_respond_tokens(http_request_t *req, const char *access, const char *refresh)
{
    char cookie[JWT_MAX_TOKEN_BYTES + 128];
    snprintf(cookie, sizeof(cookie),
             "refresh_token=%s; HttpOnly; Max-Age=604800; Path=/refresh; SameSite=Lax; Secure",
             refresh);
    http_add_header(req, "Set-Cookie", cookie);
    OPENSSL_cleanse(cookie, sizeof(cookie));
    api_respond_string(req, 200, access);
}

static void login_send(login_ctx *c)
{
    api_respond_tokens(c->req, c->access, c->refresh);
    login_free(c);
}

static void login_upgraded(store_op_t *op)
{
    login_ctx *c = op->data;
    http_set_abort(c->req, NULL, NULL);
    if (op->status != 0)
        log_warn("login: could not store the upgraded password hash (status %d)", op->status);
    else if (op->count == 0) /* changed meanwhile: the next login upgrades it */
        log_info("login: the user changed meanwhile; password upgrade left for the next login");
    else
        log_info("login: upgraded the stored password of a local user to argon2id");
    store_op_cleanup(op);
    login_send(c);
}

static void login_check_run(void *data)
{
    login_ctx *c = data;
    c->ok = password_verify(c->password, c->stored_hash, &c->upgrade);
    if (!c->ok)
        return;
    if (c->upgrade && password_hash(c->password, c->new_hash) != 0)
        c->upgrade = false;
    if (api_issue_tokens(c->req->app, c->user, &c->access, &c->refresh) != 0)
        c->sign_failed = true;
}

/* The start of both logins' pool callbacks: a failed run, a client gone or tokens that
 * could not be signed are 500 (c is freed, false); a refusal is 401 and counts towards
 * the limit (false); else true. */
static bool login_run_passed(login_ctx *c, int status, bool refused)
{
    http_request_t *req = c->req;
    if (status != 0 || req->aborted || c->sign_failed) {
        http_respond_error(req, 500, "Unknown error");
        login_free(c);
        return false;
    }
    if (refused) {
        login_refuse(c, 401, "User not authorised");
        return false;
    }
    return true;
}

/* A password or directory check passed: the user's failures no longer count. */
static void login_passed(login_ctx *c)
{
    app_t *app = c->req->app;
    if (app->login_limiter)
        ratelimit_clear(app->login_limiter, c->user_key);
}

static void login_check_done(void *data, int status)
{
    login_ctx *c = data;
    http_request_t *req = c->req;
    if (!login_run_passed(c, status, !c->ok))
        return;
    login_passed(c);
    if (!c->upgrade) {
        login_send(c);
        return;
    }
    json_t *doc = json_deep_copy(c->user);
    json_t *rev = json_object_get(doc, "_rev");
    int64_t r = json_is_integer(rev) ? json_integer_value(rev) : 0;
    json_object_set_new(doc, "password_hash", json_string(c->new_hash));
    json_object_del(doc, "sha256_password");
    json_object_set_new(doc, "_rev", json_integer(r + 1));
    store_op_t *op = api_store_op(req, STORE_USER_UPDATE);
    if (!op) {
        json_decref(doc);
        login_free(c);
        return;
    }
    op->lo = r;
    op->doc = doc;
    json_decref(c->body); /* the password is no longer needed */
    c->body = doc;        /* keeps the document alive until the put is done */
    c->password = NULL;
    if (!api_store_submit(req, op, login_upgraded, c))
        login_free(c);
}

/* FedID: a bind to the directory as the user (auth/fedid.h), on the thread pool. */
static void login_fedid_run(void *data)
{
    login_ctx *c = data;
    const app_t *app = c->req->app;
    c->fedid = fedid_authenticate(&app->cfg->auth, c->username, c->password);
    if (c->fedid == FEDID_OK && api_issue_tokens(app, c->user, &c->access, &c->refresh) != 0)
        c->sign_failed = true;
}

static void login_fedid_done(void *data, int status)
{
    login_ctx *c = data;
    http_request_t *req = c->req;
    if (!login_run_passed(c, status, c->fedid == FEDID_REFUSED))
        return;
    if (c->fedid != FEDID_OK) {
        http_respond_error(req, 500, "Authentication server error");
        login_free(c);
        return;
    }
    login_passed(c);
    login_send(c);
}

static void login_user_loaded(store_op_t *op)
{
    login_ctx *c = op->data;
    http_request_t *req = c->req;
    http_set_abort(req, NULL, NULL);
    int st = op->status;
    if (st == 0) {
        c->user = op->result;
        op->result = NULL;
    }
    if (st != 0 && st != -ENOENT) {
        api_respond_store_error(req, op, "Unknown error");
        store_op_cleanup(op);
        login_free(c);
        return;
    }
    store_op_cleanup(op);
    if (st == -ENOENT) {
        login_refuse(c, 401, "User not authorised");
        return;
    }
    const char *type = json_string_value(json_object_get(c->user, "auth_type"));
    char msg[512];
    if (!type) {
        http_respond_error(req, 500, "Unknown error");
        login_free(c);
        return;
    }
    if (strcmp(type, "FedID") == 0) {
        /* Empty passwords never reach a directory (an unauthenticated bind). */
        if (!*c->password) {
            login_refuse(c, 401, "User not authorised");
            return;
        }
        if (!api_fedid_submit(req, &c->fedid_job, login_fedid_run, login_fedid_done, c))
            login_free(c);
        return;
    }
    if (strcmp(type, "local") != 0) {
        snprintf(msg, sizeof(msg), "auth_type '%.100s' not recognised for user '%.200s'", type,
                 c->username);
        http_respond_error(req, 500, msg);
        login_free(c);
        return;
    }
    c->stored_hash = json_string_value(json_object_get(c->user, "password_hash"));
    if (!c->stored_hash)
        c->stored_hash = json_string_value(json_object_get(c->user, "sha256_password"));
    if (!c->stored_hash) {
        snprintf(msg, sizeof(msg), "Encoded password missing in record for user '%.200s'",
                 c->username);
        http_respond_error(req, 500, msg);
        login_free(c);
        return;
    }
    if (work_submit(app_loop(req), login_check_run, login_check_done, c, NULL) != 0) {
        http_respond_error(req, 500, "Unknown error");
        login_free(c);
    }
}

void api_login(http_request_t *req)
{
    app_t *app = req->app;
    login_ctx *c = api_ctx_new(req, sizeof(*c));
    if (!c)
        return;
    c->req = req;
    c->body = api_body_json(req, true);
    if (!c->body)
        return;
    if (!(c->username = api_body_string(req, c->body, "username")) ||
        !(c->password = api_body_string(req, c->body, "password"))) {
        login_free(c);
        return;
    }
    if (!app->keys) {
        http_respond_error(req, 500, "Authentication server error");
        login_free(c);
        return;
    }
    char addr[64];
    http_request_peer(req, addr, sizeof(addr));
    snprintf(c->user_key, sizeof(c->user_key), "u:%.256s", c->username);
    snprintf(c->addr_key, sizeof(c->addr_key), "a:%s", addr);
    unsigned wait = 0;
    uint64_t now = (uint64_t)now_s();
    if (app->login_limiter &&
        (ratelimit_blocked(app->login_limiter, c->user_key, LOGIN_USER_FAILURES, now, &wait) ||
         ratelimit_blocked(app->login_limiter, c->addr_key, LOGIN_ADDR_FAILURES, now, &wait))) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%u", wait);
        http_add_header(req, "Retry-After", ra);
        log_warn("login: too many failed attempts (user or client address), refused");
        http_respond_error(req, 429, "Too many failed login attempts, try again later");
        login_free(c);
        return;
    }
    store_op_t *op = api_store_op(req, STORE_USER_GET);
    if (!op) {
        login_free(c);
        return;
    }
    op->id = c->username;
    if (!api_store_submit(req, op, login_user_loaded, c))
        login_free(c);
}

/* ================================================================ POST /verify */

void api_verify(http_request_t *req)
{
    json_t *body = api_body_json(req, true);
    if (!body)
        return;
    const char *token = api_body_string(req, body, "token");
    if (token) {
        app_t *app = req->app;
        json_t *claims = NULL;
        if (jwt_verify(app->keys, token, true, now_s(), &claims) == 0 &&
            token_type_is(claims, "access"))
            http_respond(req, 200, NULL, "", 0);
        else
            http_respond_error(req, 403, "Invalid token");
        json_decref(claims);
    }
    json_decref(body);
}

/* ================================================================ POST /refresh */

typedef struct refresh_ctx {
    http_request_t *req;
    json_t *body;
    const char *access_in;
    char *cookie;
    const char *revoked_path;
    const char *error; /* set by the pool step */
    char username[256];
    /* rotation: the cookie token's session, id and expiry; the successor's id */
    char sid[REFRESH_ID_HEX], jti[REFRESH_ID_HEX], next_jti[REFRESH_ID_HEX];
    int64_t exp;
    json_t *user; /* the loaded user document */
    json_t *doc;  /* the document to store (sessions updated) */
    bool reused;  /* the cookie token was already rotated: its session is revoked */
    int tries;
    char *access, *refresh;
} refresh_ctx;

static void refresh_free(refresh_ctx *c)
{
    json_decref(c->body);
    json_decref(c->user);
    json_decref(c->doc);
    free(c->access);
    free(c->refresh);
}

/* True when token is a line of the revocation file (lines may end in CR LF). */
static bool is_revoked(const char *path, const char *token)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t tlen = strlen(token), total = 0;
    char line[JWT_MAX_TOKEN_BYTES + 4];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        size_t n = strlen(line);
        total += n;
        if (total > REVOKED_FILE_MAX_BYTES)
            break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        found = n == tlen && memcmp(line, token, n) == 0;
    }
    fclose(f);
    return found;
}

static void refresh_check_run(void *data)
{
    refresh_ctx *c = data;
    app_t *app = c->req->app;
    json_t *rc = NULL, *ac = NULL;
    int64_t now = now_s();
    if (jwt_verify(app->keys, c->cookie, true, now, &rc) != 0 || !token_type_is(rc, "refresh"))
        c->error = "Invalid token";
    else if (is_revoked(c->revoked_path, c->cookie))
        c->error = "Token is blacklisted";
    else if (jwt_verify(app->keys, c->access_in, false, now, &ac) != 0 ||
             !token_type_is(ac, "access"))
        c->error = "Unable to refresh token";
    else {
        const char *ru = json_string_value(json_object_get(rc, "username"));
        const char *au = json_string_value(json_object_get(ac, "username"));
        const char *sid = json_string_value(json_object_get(rc, "sid"));
        const char *jti = json_string_value(json_object_get(rc, "jti"));
        json_t *exp = json_object_get(rc, "exp");
        if (!ru || !au || strcmp(ru, au) != 0 || strlen(ru) >= sizeof(c->username))
            c->error = "Refresh token does not match access token user";
        else if (!sid || !jti || strlen(sid) != REFRESH_ID_HEX - 1 ||
                 strlen(jti) != REFRESH_ID_HEX - 1 || !json_is_integer(exp))
            c->error = "Invalid token"; /* not one of ours (made before rotation existed) */
        else {
            snprintf(c->username, sizeof(c->username), "%s", ru);
            memcpy(c->sid, sid, REFRESH_ID_HEX);
            memcpy(c->jti, jti, REFRESH_ID_HEX);
            c->exp = json_integer_value(exp);
        }
    }
    json_decref(rc);
    json_decref(ac);
}

static void refresh_load(refresh_ctx *c);

static void refresh_sign_run(void *data)
{
    refresh_ctx *c = data;
    const app_t *app = c->req->app;
    if (api_issue_tokens(app, c->user, &c->access, NULL) == 0)
        c->refresh = sign_refresh(app, c->username, c->sid, c->next_jti, c->exp);
}

static void refresh_stored(store_op_t *op)
{
    refresh_ctx *c = op->data;
    http_request_t *req = c->req;
    http_set_abort(req, NULL, NULL);
    int st = op->status;
    bool clash = st == 0 && op->count == 0;
    store_op_cleanup(op);
    if (clash && ++c->tries < REFRESH_UPDATE_TRIES) {
        /* the user changed meanwhile: decide again on a fresh copy */
        json_decref(c->user);
        json_decref(c->doc);
        c->user = c->doc = NULL;
        free(c->access);
        free(c->refresh);
        c->access = c->refresh = NULL;
        refresh_load(c);
        return;
    }
    if (st != 0 || clash) {
        http_respond_error(req, 500, "Unknown error");
    } else if (c->reused) {
        log_warn("refresh: a rotated refresh token was used again; its session is revoked");
        http_respond_error(req, 403, "Token is blacklisted");
    } else {
        api_respond_tokens(req, c->access, c->refresh);
    }
    refresh_free(c);
}

static void refresh_store(refresh_ctx *c)
{
    store_op_t *op = api_store_op(c->req, STORE_USER_UPDATE);
    if (!op) {
        refresh_free(c);
        return;
    }
    json_t *rev = json_object_get(c->doc, "_rev");
    int64_t r = json_is_integer(rev) ? json_integer_value(rev) : 0;
    op->lo = r;
    json_object_set_new(c->doc, "_rev", json_integer(r + 1));
    op->doc = c->doc;
    if (!api_store_submit(c->req, op, refresh_stored, c))
        refresh_free(c);
}

static void refresh_signed(void *data, int status)
{
    refresh_ctx *c = data;
    if (status != 0 || !c->access || !c->refresh) {
        http_respond_error(c->req, 500, "Unknown error");
        refresh_free(c);
        return;
    }
    refresh_store(c);
}

/* The user's rotation sessions ("refresh_sessions": {sid: {"jti", "exp"}}) in doc, with
 * the expired ones dropped; made if absent. */
static json_t *refresh_sessions(json_t *doc, int64_t now)
{
    json_t *ss = json_object_get(doc, "refresh_sessions");
    if (!json_is_object(ss)) {
        ss = json_object();
        json_object_set_new(doc, "refresh_sessions", ss);
    }
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(ss, tmp, k, v)
    {
        json_t *e = json_object_get(v, "exp");
        if (!json_is_integer(e) || json_integer_value(e) <= now)
            json_object_del(ss, k);
    }
    /* bounded: the session that ends first makes room */
    while (json_object_size(ss) >= REFRESH_SESSIONS_MAX) {
        const char *oldest = NULL;
        json_int_t oldest_exp = 0;
        json_object_foreach(ss, k, v)
        {
            json_int_t e = json_integer_value(json_object_get(v, "exp"));
            if (!oldest || e < oldest_exp) {
                oldest = k;
                oldest_exp = e;
            }
        }
        json_object_del(ss, oldest);
    }
    return ss;
}

static void refresh_user_loaded(store_op_t *op)
{
    refresh_ctx *c = op->data;
    http_request_t *req = c->req;
    http_set_abort(req, NULL, NULL);
    int st = op->status;
    if (st == 0) {
        c->user = op->result;
        op->result = NULL;
    }
    if (st == -ENOENT) {
        /* A deleted user's refresh token no longer refreshes (docs/security.md). */
        http_respond_error(req, 403, "Invalid token");
    } else if (st != 0) {
        api_respond_store_error(req, op, "Unknown error");
    }
    store_op_cleanup(op);
    if (st != 0) {
        refresh_free(c);
        return;
    }
    /* Rotation: each refresh token refreshes once. Its session (the "sid" all tokens of
     * one login share) remembers the id of the one token that may refresh next;
     * presenting any other token of the session (a copy of an already used one) revokes
     * the session until it expires. A session not recorded yet is one whose login token
     * has not been used. */
    c->doc = json_deep_copy(c->user);
    json_t *ss = c->doc ? refresh_sessions(c->doc, now_s()) : NULL;
    if (!ss) {
        http_respond_error(req, 500, "Unknown error");
        refresh_free(c);
        return;
    }
    json_t *cur = json_object_get(ss, c->sid);
    const char *cur_jti = json_string_value(json_object_get(cur, "jti"));
    if (cur && (!cur_jti || strlen(cur_jti) != REFRESH_ID_HEX - 1 ||
                sodium_memcmp(cur_jti, c->jti, REFRESH_ID_HEX - 1) != 0)) {
        /* The session stays recorded, without a next token, until it expires. */
        c->reused = true;
        if (!cur_jti) { /* already revoked: nothing to store */
            http_respond_error(req, 403, "Token is blacklisted");
            refresh_free(c);
            return;
        }
        json_object_set_new(ss, c->sid,
                            json_pack("{s:b, s:I}", "revoked", 1, "exp", (json_int_t)c->exp));
        refresh_store(c);
        return;
    }
    random_id(c->next_jti);
    json_object_set_new(ss, c->sid,
                        json_pack("{s:s, s:I}", "jti", c->next_jti, "exp", (json_int_t)c->exp));
    if (work_submit(app_loop(req), refresh_sign_run, refresh_signed, c, NULL) != 0) {
        http_respond_error(req, 500, "Unknown error");
        refresh_free(c);
    }
}

static void refresh_load(refresh_ctx *c)
{
    store_op_t *op = api_store_op(c->req, STORE_USER_GET);
    if (!op) {
        refresh_free(c);
        return;
    }
    op->id = c->username;
    if (!api_store_submit(c->req, op, refresh_user_loaded, c))
        refresh_free(c);
}

static void refresh_checked(void *data, int status)
{
    refresh_ctx *c = data;
    http_request_t *req = c->req;
    if (status != 0) {
        http_respond_error(req, 500, "Unknown error");
        refresh_free(c);
        return;
    }
    if (c->error) {
        http_respond_error(req, 403, c->error);
        refresh_free(c);
        return;
    }
    refresh_load(c);
}

/* The value of cookie `name`, or NULL (arena memory). */
static char *cookie_get(http_request_t *req, const char *name)
{
    const char *h = http_header_get(req, "cookie");
    size_t nl = strlen(name);
    while (h && *h) {
        while (*h == ' ' || *h == ';')
            h++;
        size_t n = strcspn(h, ";");
        if (n > nl && strncmp(h, name, nl) == 0 && h[nl] == '=') {
            size_t vl = n - nl - 1;
            while (vl > 0 && h[nl + vl] == ' ')
                vl--;
            return arena_strndup(&req->arena, h + nl + 1, vl);
        }
        h += n;
    }
    return NULL;
}

void api_refresh(http_request_t *req)
{
    app_t *app = req->app;
    refresh_ctx *c = api_ctx_new(req, sizeof(*c));
    if (!c)
        return;
    c->req = req;
    c->body = api_body_json(req, true);
    if (!c->body)
        return;
    if (!(c->access_in = api_body_string(req, c->body, "token"))) {
        refresh_free(c);
        return;
    }
    c->cookie = cookie_get(req, "refresh_token");
    if (!c->cookie) {
        http_respond_error(req, 403, "No refresh token found");
        refresh_free(c);
        return;
    }
    char *path = arena_alloc(&req->arena, strlen(app->cfg->server.data_dir) + 32);
    if (!path || !app->keys) {
        http_respond_error(req, 500, "Unknown error");
        refresh_free(c);
        return;
    }
    sprintf(path, "%s/blacklisted_tokens.txt", app->cfg->server.data_dir);
    c->revoked_path = path;
    if (work_submit(app_loop(req), refresh_check_run, refresh_checked, c, NULL) != 0) {
        http_respond_error(req, 500, "Unknown error");
        refresh_free(c);
    }
}
