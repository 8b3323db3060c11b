/*
 * prefs.c: the caller's preferences, kept in their user document (`user_prefs`, at most
 * MAX_PREFS). Both sides are here: /users/preferences (docs/api.md §6.11: POST, and GET
 * and DELETE of /users/preferences/{name}), which change them through the user round
 * trip (api/users.h), and the read the data plane makes of the display preferences
 * (api/prefs.h): one STORE_USER_GET per request; the document is picked apart on the
 * loop thread (a handful of keys), the strings copied into the request's arena.
 */
#include "api/prefs.h"
#include "api/handlers.h"
#include "api/users.h"

#include "util/buf.h"
#include "util/jsonw.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PREFS 1000 /* preferences per user */

/* ================================================================ the display preferences */

typedef struct prefs_ctx {
    http_request_t *req;
    store_op_t op;
    unsigned want;
    api_prefs_cb cb;
    void *data;
} prefs_ctx;

bool api_prefs_int(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v) ? 1 : 0;
        return true;
    }
    if (json_is_real(v)) {
        double d = trunc(json_real_value(v));
        if (!isfinite(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
            return false;
        *out = (int64_t)d;
        return true;
    }
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    size_t i = 0;
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    while (n > i && isspace((unsigned char)s[n - 1]))
        n--;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i >= n || !isdigit((unsigned char)s[i]))
        return false;
    /* Accumulate as a negative number so INT64_MIN fits. */
    int64_t acc = 0;
    for (; i < n; i++) {
        if (s[i] == '_') {
            if (i + 1 >= n || !isdigit((unsigned char)s[i + 1]))
                return false;
            continue;
        }
        if (!isdigit((unsigned char)s[i]))
            return false;
        int d = s[i] - '0';
        if (acc < (INT64_MIN + d) / 10)
            return false;
        acc = acc * 10 - d;
    }
    if (!neg && acc == INT64_MIN)
        return false;
    *out = neg ? acc : -acc;
    return true;
}

char *api_prefs_text(const json_t *v)
{
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_boolean(v))
        return strdup(json_is_true(v) ? "True" : "False");
    if (json_is_real(v)) {
        buf_t b;
        buf_init(&b, 64);
        if (jsonw_double(&b, json_real_value(v)) != 0 || buf_putc(&b, 0) != 0) {
            buf_free(&b);
            return NULL;
        }
        return buf_take(&b);
    }
    return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_PRESERVE_ORDER);
}

/* The colour-map preference `name` as arena text; false on allocation failure. */
static bool pref_text(http_request_t *req, const json_t *prefs, const char *name, const char **out)
{
    const json_t *v = name ? json_object_get(prefs, name) : NULL;
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    char *text = api_prefs_text(v);
    if (!text)
        return false;
    *out = arena_strdup(&req->arena, text);
    free(text);
    return *out != NULL;
}

/* A vector preference; an unusable value is named in p->bad_vector_pref. */
static void pref_int(const json_t *prefs, const char *name, bool *has, int64_t *out, api_prefs *p)
{
    const json_t *v = name ? json_object_get(prefs, name) : NULL;
    *has = false;
    if (!v || json_is_null(v))
        return;
    if (!api_prefs_int(v, out)) {
        if (!p->bad_vector_pref)
            p->bad_vector_pref = name;
        return;
    }
    *has = true;
}

bool api_prefs_vector_ok(http_request_t *req, const api_prefs *prefs)
{
    if (!prefs->bad_vector_pref)
        return true;
    char msg[512];
    snprintf(msg, sizeof(msg),
             "The %.200s preference must be an integer: change or delete it (/users/preferences)",
             prefs->bad_vector_pref);
    http_respond_error(req, 400, msg);
    return false;
}

static void abort_op(http_request_t *req, void *data)
{
    prefs_ctx *c = data;
    (void)req;
    store_cancel(&c->op);
}

static void user_loaded(store_op_t *op)
{
    prefs_ctx *c = op->data;
    http_request_t *req = c->req;
    const ogd_config *cfg = ((app_t *)req->app)->cfg;
    http_set_abort(req, NULL, NULL);
    api_prefs p = {0};
    if (op->status != 0 && op->status != -ENOENT) {
        api_respond_store_error(req, op, "Unknown error");
        store_op_cleanup(op);
        c->cb(req, NULL, c->data);
        return;
    }
    const json_t *prefs = op->status == 0 ? json_object_get(op->result, "user_prefs") : NULL;
    if (!json_is_object(prefs))
        prefs = NULL;
    bool ok = true;
    if (prefs && (c->want & API_PREFS_COLOURMAP))
        ok = pref_text(req, prefs, cfg->images.preferred_colour_map_pref_name, &p.colourmap);
    if (ok && prefs && (c->want & API_PREFS_FLOAT_COLOURMAP))
        ok = pref_text(req, prefs, cfg->float_images.preferred_colour_map_pref_name,
                       &p.float_colourmap);
    if (!ok) {
        http_respond_error(req, 500, "Unknown error");
        store_op_cleanup(op);
        c->cb(req, NULL, c->data);
        return;
    }
    if (prefs && (c->want & API_PREFS_VECTOR)) {
        pref_int(prefs, cfg->vectors.skip_pref_name, &p.has_skip, &p.skip, &p);
        pref_int(prefs, cfg->vectors.limit_pref_name, &p.has_limit, &p.limit, &p);
    }
    store_op_cleanup(op);
    c->cb(req, &p, c->data);
}

void api_prefs_load(http_request_t *req, unsigned want, api_prefs_cb cb, void *data)
{
    if (want == 0 || !req->username) {
        api_prefs none = {0};
        cb(req, &none, data);
        return;
    }
    prefs_ctx *c = arena_alloc(&req->arena, sizeof(*c));
    if (!c) {
        http_respond_error(req, 500, "Unknown error");
        cb(req, NULL, data);
        return;
    }
    memset(c, 0, sizeof(*c));
    c->req = req;
    c->want = want;
    c->cb = cb;
    c->data = data;
    store_op_init(&c->op, STORE_USER_GET);
    c->op.id = req->username;
    http_set_abort(req, abort_op, c);
    app_t *app = req->app;
    if (store_submit(app->store, &c->op, user_loaded, c) != 0) {
        http_set_abort(req, NULL, NULL);
        http_respond_error(req, 500, "Unknown error");
        cb(req, NULL, data);
    }
}

/* ================================================================ /users/preferences */

static api_user_step pref_get_apply(api_user_ctx *c)
{
    if (c->status != 0) {
        http_respond_error(c->req, 500, "Unknown error");
        return API_USER_DONE;
    }
    json_t *v = json_object_get(json_object_get(c->user, "user_prefs"), c->name);
    if (!v) {
        http_respond_error(c->req, 404, "No such attribute in database");
        return API_USER_DONE;
    }
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        http_respond_error(c->req, 500, "Unknown error");
    else
        http_respond_take(c->req, 200, "application/json", text, strlen(text));
    return API_USER_DONE;
}

void api_prefs_get(http_request_t *req)
{
    api_user_ctx *c = api_user_ctx_new(req);
    if (!c)
        return;
    c->id = req->username;
    c->name = req->params[0];
    api_user_load(c, pref_get_apply, NULL);
}

static void pref_set_stored(api_user_ctx *c)
{
    buf_t loc;
    buf_init(&loc, 4096);
    buf_puts(&loc, "/users/preferences/");
    buf_puts(&loc, c->name);
    if (loc.data && !strpbrk(loc.data, "\r\n"))
        http_add_header(c->req, "Location", loc.data);
    buf_free(&loc);
    http_respond(c->req, 201, NULL, "", 0);
}

static api_user_step pref_set_apply(api_user_ctx *c)
{
    if (c->status != 0) { /* the reference succeeds silently for a vanished user */
        pref_set_stored(c);
        return API_USER_DONE;
    }
    json_t *prefs = json_object_get(c->user, "user_prefs");
    if (!json_is_object(prefs)) {
        prefs = json_object();
        json_object_set_new(c->user, "user_prefs", prefs);
    }
    if (!json_object_get(prefs, c->name) && json_object_size(prefs) >= MAX_PREFS) {
        http_respond_error(c->req, 400, "Too many preferences");
        return API_USER_DONE;
    }
    json_object_set(prefs, c->name, json_object_get(c->body, "value"));
    return API_USER_STORE;
}

void api_prefs_set(http_request_t *req)
{
    api_user_ctx *c = api_user_ctx_new(req);
    if (!c || !(c->body = api_body_json(req, true)))
        return;
    json_t *value = json_object_get(c->body, "value");
    if (!(c->name = api_body_string(req, c->body, "name"))) {
        api_user_ctx_free(c);
        return;
    }
    if (!value || json_is_null(value)) {
        api_422_body(req, "missing", "value", "Field required", c->body);
        api_user_ctx_free(c);
        return;
    }
    c->id = req->username;
    api_user_load(c, pref_set_apply, pref_set_stored);
}

static api_user_step pref_delete_apply(api_user_ctx *c)
{
    json_t *prefs = json_object_get(c->user, "user_prefs");
    if (c->status != 0 || !json_object_get(prefs, c->name)) {
        http_respond_error(c->req, 404, "No such attribute in database");
        return API_USER_DONE;
    }
    json_object_del(prefs, c->name);
    return API_USER_STORE;
}

void api_prefs_delete(http_request_t *req)
{
    api_user_ctx *c = api_user_ctx_new(req);
    if (!c)
        return;
    c->id = req->username;
    c->name = req->params[0];
    api_user_load(c, pref_delete_apply, api_user_no_content);
}
