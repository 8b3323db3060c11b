/*
 * users.c: the user documents and what hangs off them (docs/api.md §6.6-§6.11): /users
 * (POST, PATCH, GET, DELETE), favourite filters (/users/filters...) and preferences
 * (/users/preferences...). Filters and preferences live inside the caller's user document
 * (`filters`, `user_prefs`), as in the reference, and are always scoped to the token's
 * user: a filter id the caller does not hold (none such, or another user's) is 404 naming
 * the id on GET, PATCH and DELETE, where the reference answers 500.
 *
 * Every change is load -> change on the loop -> store the whole document only if nobody
 * stored it meanwhile (STORE_USER_UPDATE on the document's "_rev" counter); on a clash
 * the change is redone on a fresh copy (up to USER_UPDATE_TRIES times), so concurrent
 * changes to one user (two preferences set at once, from two workers) are never lost.
 * New passwords are hashed (argon2id) on the thread pool, once per request; a new FedID
 * user's e-mail is looked up in the directory (auth/fedid.h) on the thread pool too.
 */
#include "api/control.h"
#include "api/handlers.h"

#include "auth/fedid.h"
#include "auth/password.h"
#include "auth/permissions.h"
#include "util/taskgroup.h"
#include "util/log.h"
#include "util/objectid.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILTERS 1000     /* favourite filters per user */
#define MAX_PREFS 1000       /* preferences per user */
#define USER_UPDATE_TRIES 64 /* each round one writer wins: enough for 64 at once */

/* ================================================================ the user round trip */

typedef struct uctx uctx;
/* Called on the loop once the user document is loaded (c->status 0 or -ENOENT). */
typedef enum {
    APPLY_DONE,    /* it has responded: free the context */
    APPLY_STORE,   /* store c->user, then call c->stored */
    APPLY_PENDING, /* it handed the context on (a pool job); nothing to do here */
} apply_result;
typedef apply_result (*uctx_apply)(uctx *c);

struct uctx {
    http_request_t *req;
    json_t *body;
    json_t *user; /* the loaded document (owned) */
    const char *id;
    int status;
    uctx_apply apply;
    void (*stored)(uctx *c);
    bool insert; /* store with insert (not conditional update) semantics */
    int64_t rev; /* the loaded document's "_rev" */
    int tries;
    /* scratch for the handlers */
    const char *name, *filter, *fid;
    char *password;
    char hash[PASSWORD_HASH_BYTES];
    bool hash_failed;
    fedid_result fedid;
    api_fedid_job fedid_job;
    char email[FEDID_MAX_EMAIL_BYTES];
    char text[600];
};

static void uctx_free(uctx *c)
{
    json_decref(c->body);
    json_decref(c->user);
    if (c->password) {
        OPENSSL_cleanse(c->password, strlen(c->password));
        free(c->password);
    }
    OPENSSL_cleanse(c->hash, sizeof(c->hash));
}

static uctx *uctx_new(http_request_t *req)
{
    uctx *c = api_ctx_new(req, sizeof(*c));
    if (!c)
        return NULL;
    c->req = req;
    return c;
}

static void user_load(uctx *c, uctx_apply apply, void (*stored)(uctx *c));

static void user_stored(store_op_t *op)
{
    uctx *c = op->data;
    http_set_abort(c->req, NULL, NULL);
    int st = op->status;
    if (st == 0 && !c->insert && op->count == 0) {
        /* stored by someone else since we read it: redo the change on a fresh copy */
        store_op_cleanup(op);
        if (++c->tries >= USER_UPDATE_TRIES) {
            http_add_header(c->req, "Retry-After", "1");
            http_respond_error(c->req, 503, "Too many concurrent changes to this user, try again");
            uctx_free(c);
            return;
        }
        json_decref(c->user);
        c->user = NULL;
        user_load(c, c->apply, c->stored);
        return;
    }
    if (st == -EEXIST)
        http_respond_error(c->req, 400, "Session name already exists for this user.");
    else if (st != 0)
        api_respond_store_error(c->req, op, "Unknown error");
    store_op_cleanup(op);
    if (st == 0)
        c->stored(c);
    uctx_free(c);
}

static void user_store(uctx *c)
{
    store_op_t *op = api_store_op(c->req, c->insert ? STORE_USER_PUT : STORE_USER_UPDATE);
    if (!op) {
        uctx_free(c);
        return;
    }
    if (!c->insert) {
        op->lo = c->rev;
        json_object_set_new(c->user, "_rev", json_integer(c->rev + 1));
    }
    op->doc = c->user;
    if (!api_store_submit(c->req, op, user_stored, c))
        uctx_free(c);
}

static void user_loaded(store_op_t *op)
{
    uctx *c = op->data;
    http_set_abort(c->req, NULL, NULL);
    c->status = op->status;
    if (op->status == 0) {
        c->user = op->result;
        op->result = NULL;
        json_t *rev = json_object_get(c->user, "_rev");
        c->rev = json_is_integer(rev) ? json_integer_value(rev) : 0;
    }
    if (op->status != 0 && op->status != -ENOENT) {
        api_respond_store_error(c->req, op, "Unknown error");
        store_op_cleanup(op);
        uctx_free(c);
        return;
    }
    store_op_cleanup(op);
    switch (c->apply(c)) {
    case APPLY_DONE:
        uctx_free(c);
        break;
    case APPLY_STORE:
        user_store(c);
        break;
    case APPLY_PENDING:
        break;
    }
}

/* Loads c->id and runs apply. */
static void user_load(uctx *c, uctx_apply apply, void (*stored)(uctx *c))
{
    c->status = 0;
    c->apply = apply;
    c->stored = stored;
    store_op_t *op = api_store_op(c->req, STORE_USER_GET);
    if (!op) {
        uctx_free(c);
        return;
    }
    op->id = c->id;
    if (!api_store_submit(c->req, op, user_loaded, c))
        uctx_free(c);
}

/* ================================================================ helpers */

/* Python's repr of a str, as the reference prints lists of them. */
static void py_repr(buf_t *b, const char *s)
{
    char q = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';
    buf_putc(b, q);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\\' || *p == (unsigned char)q) {
            buf_putc(b, '\\');
            buf_putc(b, (char)*p);
        } else if (*p == '\n') {
            buf_puts(b, "\\n");
        } else if (*p == '\t') {
            buf_puts(b, "\\t");
        } else if (*p == '\r') {
            buf_puts(b, "\\r");
        } else if (*p < 0x20 || *p == 0x7f) {
            buf_printf(b, "\\x%02x", *p);
        } else {
            buf_putc(b, (char)*p);
        }
    }
    buf_putc(b, q);
}

/* 400 when list holds strings that are not permissions; true when it is fine. A
 * non-list (present, not null) is 422. */
static bool check_routes(http_request_t *req, json_t *list, const char *field)
{
    if (!list || json_is_null(list))
        return true;
    if (!json_is_array(list)) {
        api_422_body(req, "list_type", field, "Input should be a valid list", list);
        return false;
    }
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (!json_is_string(v)) {
            api_422_body(req, "string_type", field, "Input should be a valid string", v);
            return false;
        }
    }
    buf_t b;
    buf_init(&b, 1 << 16);
    buf_puts(&b, "some of the routes entered are invalid:  [");
    int bad = 0;
    json_array_foreach(list, i, v)
    {
        if (!auth_permission_known(json_string_value(v))) {
            if (bad++)
                buf_puts(&b, ", ");
            py_repr(&b, json_string_value(v));
        }
    }
    buf_puts(&b, "] ");
    if (bad)
        http_respond_error(req, 400, b.data ? b.data : "some of the routes entered are invalid");
    buf_free(&b);
    return bad == 0;
}

/* An optional string field: absent/null -> *out NULL; other types -> 422. */
static bool opt_string(http_request_t *req, json_t *body, const char *field, const char **out)
{
    json_t *v = json_object_get(body, field);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        api_422_body(req, "string_type", field, "Input should be a valid string", v);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool valid_email(const char *s)
{
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@') || strlen(s) > 254)
        return false;
    const char *dot = strrchr(at + 1, '.');
    if (!dot || dot == at + 1 || !dot[1])
        return false;
    for (const char *p = s; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

static void hash_run(void *data)
{
    uctx *c = data;
    c->hash_failed = password_hash(c->password, c->hash) != 0;
    OPENSSL_cleanse(c->password, strlen(c->password));
}

/* The checks POST and PATCH /users end with (the id, the password's length), then the
 * load -> apply -> compare-and-set round trip; empty_id: that route's text for an empty
 * id. Takes c (freed on failure). */
static void user_write(uctx *c, const char *id, const char *pw, const char *empty_id,
                       uctx_apply apply, void (*stored)(uctx *c))
{
    if (!*id) {
        http_respond_error(c->req, 400, empty_id);
        uctx_free(c);
        return;
    }
    if (pw && strlen(pw) > PASSWORD_MAX_BYTES) {
        http_respond_error(c->req, 400, "the password is too long");
        uctx_free(c);
        return;
    }
    c->password = pw ? strdup(pw) : NULL;
    c->id = id;
    user_load(c, apply, stored);
}

/* ================================================================ POST /users */

static void user_created(uctx *c)
{
    api_respond_string(c->req, 201, c->id);
}

/* After the new password was hashed on the pool (POST and PATCH): the argon2id hash
 * replaces any legacy SHA-256 one, then the document is stored. */
static void password_hashed(void *data, int status)
{
    uctx *c = data;
    if (status != 0 || c->hash_failed) {
        http_respond_error(c->req, 500, "Unknown error");
        uctx_free(c);
        return;
    }
    json_object_set_new(c->user, "password_hash", json_string(c->hash));
    json_object_del(c->user, "sha256_password");
    user_store(c);
}

static void email_run(void *data)
{
    uctx *c = data;
    const app_t *app = c->req->app;
    c->fedid = fedid_find_email(&app->cfg->auth, c->id, c->email);
}

static void create_email_found(void *data, int status)
{
    uctx *c = data;
    if (status != 0 || c->fedid == FEDID_SERVER_ERROR) {
        http_respond_error(c->req, 500,
                           status != 0 ? "Unknown error" : "Authentication server error");
        uctx_free(c);
        return;
    }
    if (c->fedid != FEDID_OK) {
        snprintf(c->text, sizeof(c->text), "No email found for FedID username '%.400s'", c->id);
        http_respond_error(c->req, 400, c->text);
        uctx_free(c);
        return;
    }
    json_object_set_new(c->user, "sha256_password", json_null());
    json_object_set_new(c->user, "email", json_string(c->email));
    user_store(c);
}

static apply_result create_apply(uctx *c)
{
    if (c->status == 0) {
        snprintf(c->text, sizeof(c->text),
                 "username field must not be the same as a pre existing user. You put: '%.400s' ",
                 c->id);
        http_respond_error(c->req, 400, c->text);
        return APPLY_DONE;
    }
    /* The stored document: the request's fields, the password as argon2id. */
    json_t *doc = json_object();
    const char *keys[] = {"_id", "auth_type", "authorised_routes", "email"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = json_object_get(c->body, keys[i]);
        if (v)
            json_object_set(doc, keys[i], v);
    }
    c->user = doc;
    c->insert = true;
    app_t *app = c->req->app;
    if (strcmp(json_string_value(json_object_get(doc, "auth_type")), "FedID") == 0) {
        /* The e-mail comes from the FedID directory (a client-supplied one is replaced). */
        if (!api_fedid_submit(c->req, &c->fedid_job, email_run, create_email_found, c))
            return APPLY_DONE;
        return APPLY_PENDING;
    }
    if (work_submit(app->loop, hash_run, password_hashed, c, NULL) != 0) {
        http_respond_error(c->req, 500, "Unknown error");
        return APPLY_DONE;
    }
    return APPLY_PENDING;
}

void api_users_create(http_request_t *req)
{
    uctx *c = uctx_new(req);
    if (!c || !(c->body = api_body_json(req, true)))
        return;
    json_t *b = c->body;
    const char *id, *type, *pw, *email;
    if (!(id = api_body_string(req, b, "_id")) || !(type = api_body_string(req, b, "auth_type")) ||
        !opt_string(req, b, "sha256_password", &pw) || !opt_string(req, b, "email", &email)) {
        uctx_free(c);
        return;
    }
    json_t *routes = json_object_get(b, "authorised_routes");
    if (routes && !json_is_null(routes) && !json_is_array(routes)) {
        api_422_body(req, "list_type", "authorised_routes", "Input should be a valid list", routes);
        uctx_free(c);
        return;
    }
    if (email && !valid_email(email)) {
        api_422_body(req, "value_error", "email",
                     "value is not a valid email address: The email address is not valid.",
                     json_object_get(b, "email"));
        uctx_free(c);
        return;
    }
    const char *err = NULL;
    bool local = strcmp(type, "local") == 0, fedid = strcmp(type, "FedID") == 0;
    if (pw && !*pw)
        err = "you must have a password with the password field";
    else if (!local && !fedid)
        snprintf(c->text, sizeof(c->text),
                 "auth_type must be either 'local' or 'FedID'. You put: '%.400s' ", type),
            err = c->text;
    else if (fedid && pw)
        err = "for the auth_type you put (FedID), no password is required. Please remove this "
              "field";
    else if (local && !pw)
        err = "for the auth_type you put (local), a password is required. Please add this field";
    if (err) {
        http_respond_error(req, 400, err);
        uctx_free(c);
        return;
    }
    if (!check_routes(req, routes, "authorised_routes")) {
        uctx_free(c);
        return;
    }
    user_write(c, id, pw, "username field must not be filled. You put: '' ", create_apply,
               user_created);
}

/* ================================================================ PATCH /users */

static void user_updated(uctx *c)
{
    snprintf(c->text, sizeof(c->text), "Updated %.500s", c->id);
    api_respond_string(c->req, 200, c->text);
}

static bool has_string(json_t *a, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return true;
    }
    return false;
}

static apply_result update_apply(uctx *c)
{
    const char *type = json_string_value(json_object_get(c->user, "auth_type"));
    if (c->status != 0 || !type) {
        http_respond_error(c->req, 400, "Problem with query parameter input");
        return APPLY_DONE;
    }
    json_t *add = json_object_get(c->body, "add_authorised_routes");
    json_t *del = json_object_get(c->body, "remove_authorised_routes");
    json_t *routes = json_object_get(c->user, "authorised_routes");
    if (json_is_array(add)) {
        if (!json_is_array(routes)) {
            routes = json_array();
            json_object_set_new(c->user, "authorised_routes", routes);
        }
        size_t i;
        json_t *v;
        json_array_foreach(add, i, v)
        {
            if (!has_string(routes, json_string_value(v)))
                json_array_append(routes, v);
        }
    }
    /* Removing from a user without permissions leaves none (the reference grants the
     * list it was asked to remove: docs/security.md). */
    if (json_is_array(del) && json_is_array(routes)) {
        for (size_t k = json_array_size(routes); k-- > 0;) {
            json_t *v = json_array_get(routes, k);
            if (json_is_string(v) && has_string(del, json_string_value(v)))
                json_array_remove(routes, k);
        }
    }
    /* An omitted password keeps the old one (the reference erases it: docs/security.md). */
    if (c->password && strcmp(type, "local") == 0) {
        if (c->hash[0]) { /* a retry: the password was hashed the first time */
            json_object_set_new(c->user, "password_hash", json_string(c->hash));
            json_object_del(c->user, "sha256_password");
            return APPLY_STORE;
        }
        app_t *app = c->req->app;
        if (work_submit(app->loop, hash_run, password_hashed, c, NULL) != 0) {
            http_respond_error(c->req, 500, "Unknown error");
            return APPLY_DONE;
        }
        return APPLY_PENDING;
    }
    return APPLY_STORE;
}

void api_users_update(http_request_t *req)
{
    uctx *c = uctx_new(req);
    if (!c || !(c->body = api_body_json(req, true)))
        return;
    json_t *b = c->body;
    const char *id, *pw;
    if (!(id = api_body_string(req, b, "_id")) || !opt_string(req, b, "updated_password", &pw)) {
        uctx_free(c);
        return;
    }
    if (pw && !*pw) {
        http_respond_error(req, 400, "you must have a password with the password field");
        uctx_free(c);
        return;
    }
    if (!check_routes(req, json_object_get(b, "add_authorised_routes"), "add_authorised_routes") ||
        !check_routes(req, json_object_get(b, "remove_authorised_routes"),
                      "remove_authorised_routes")) {
        uctx_free(c);
        return;
    }
    user_write(c, id, pw, "Problem with query parameter input", update_apply, user_updated);
}

/* ================================================================ GET /users */

static void users_listed(store_op_t *op)
{
    http_request_t *req = op->data;
    http_set_abort(req, NULL, NULL);
    if (op->status != 0) {
        api_respond_store_error(req, op, "Unknown error");
        store_op_cleanup(op);
        return;
    }
    json_t *users = json_array();
    size_t i;
    json_t *u;
    json_array_foreach(op->result, i, u)
    {
        json_t *id = json_object_get(u, "_id");
        const char *type = json_string_value(json_object_get(u, "auth_type"));
        if (!json_is_string(id) || !type ||
            (strcmp(type, "local") != 0 && strcmp(type, "FedID") != 0))
            continue;
        json_t *routes = json_object_get(u, "authorised_routes");
        json_array_append_new(users, json_pack("{s:O, s:s, s:o}", "username", id, "auth_type", type,
                                               "authorised_routes",
                                               routes ? json_incref(routes) : json_array()));
    }
    store_op_cleanup(op);
    api_respond_json(req, 200, json_pack("{s:o}", "users", users));
}

void api_users_list(http_request_t *req)
{
    store_op_t *op = api_store_op(req, STORE_USERS_LIST);
    if (op)
        api_store_submit(req, op, users_listed, req);
}

/* ================================================================ DELETE /users/{id_} */

static void user_deleted(store_op_t *op)
{
    http_request_t *req = op->data;
    http_set_abort(req, NULL, NULL);
    if (op->status != 0) {
        api_respond_store_error(req, op, "Unknown error");
    } else if (op->count == 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "username field must exist in the database. You put: '%.500s'",
                 op->id);
        http_respond_error(req, 400, msg);
    } else {
        http_respond(req, 204, NULL, "", 0);
    }
    store_op_cleanup(op);
}

void api_users_delete(http_request_t *req)
{
    store_op_t *op = api_store_op(req, STORE_USER_DELETE);
    if (!op)
        return;
    op->id = req->params[0];
    api_store_submit(req, op, user_deleted, req);
}

/* ================================================================ preferences */

static apply_result pref_get_apply(uctx *c)
{
    if (c->status != 0) {
        http_respond_error(c->req, 500, "Unknown error");
        return APPLY_DONE;
    }
    json_t *v = json_object_get(json_object_get(c->user, "user_prefs"), c->name);
    if (!v) {
        http_respond_error(c->req, 404, "No such attribute in database");
        return APPLY_DONE;
    }
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        http_respond_error(c->req, 500, "Unknown error");
    else
        http_respond_take(c->req, 200, "application/json", text, strlen(text));
    return APPLY_DONE;
}

void api_prefs_get(http_request_t *req)
{
    uctx *c = uctx_new(req);
    if (!c)
        return;
    c->id = req->username;
    c->name = req->params[0];
    user_load(c, pref_get_apply, NULL);
}

static void pref_set_stored(uctx *c)
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

static apply_result pref_set_apply(uctx *c)
{
    if (c->status != 0) { /* the reference succeeds silently for a vanished user */
        pref_set_stored(c);
        return APPLY_DONE;
    }
    json_t *prefs = json_object_get(c->user, "user_prefs");
    if (!json_is_object(prefs)) {
        prefs = json_object();
        json_object_set_new(c->user, "user_prefs", prefs);
    }
    if (!json_object_get(prefs, c->name) && json_object_size(prefs) >= MAX_PREFS) {
        http_respond_error(c->req, 400, "Too many preferences");
        return APPLY_DONE;
    }
    json_object_set(prefs, c->name, json_object_get(c->body, "value"));
    return APPLY_STORE;
}

void api_prefs_set(http_request_t *req)
{
    uctx *c = uctx_new(req);
    if (!c || !(c->body = api_body_json(req, true)))
        return;
    json_t *value = json_object_get(c->body, "value");
    if (!(c->name = api_body_string(req, c->body, "name"))) {
        uctx_free(c);
        return;
    }
    if (!value || json_is_null(value)) {
        api_422_body(req, "missing", "value", "Field required", c->body);
        uctx_free(c);
        return;
    }
    c->id = req->username;
    user_load(c, pref_set_apply, pref_set_stored);
}

static void no_content(uctx *c)
{
    http_respond(c->req, 204, NULL, "", 0);
}

static apply_result pref_delete_apply(uctx *c)
{
    json_t *prefs = json_object_get(c->user, "user_prefs");
    if (c->status != 0 || !json_object_get(prefs, c->name)) {
        http_respond_error(c->req, 404, "No such attribute in database");
        return APPLY_DONE;
    }
    json_object_del(prefs, c->name);
    return APPLY_STORE;
}

void api_prefs_delete(http_request_t *req)
{
    uctx *c = uctx_new(req);
    if (!c)
        return;
    c->id = req->username;
    c->name = req->params[0];
    user_load(c, pref_delete_apply, no_content);
}

/* ================================================================ favourite filters */

/* The index of filter id in the user's list, or -1. */
static ssize_t filter_index(json_t *filters, const char *id)
{
    size_t i;
    json_t *f;
    json_array_foreach(filters, i, f)
    {
        const char *fid = json_string_value(json_object_get(f, "_id"));
        if (fid && strcasecmp(fid, id) == 0)
            return (ssize_t)i;
    }
    return -1;
}

static json_t *shape_filter(json_t *f)
{
    return json_pack("{s:O, s:O, s:O}", "_id", json_object_get(f, "_id"), "name",
                     json_object_get(f, "name"), "filter", json_object_get(f, "filter"));
}

static bool filter_ok(json_t *f)
{
    return json_is_string(json_object_get(f, "_id")) &&
           json_is_string(json_object_get(f, "name")) &&
           json_is_string(json_object_get(f, "filter"));
}

static apply_result filters_list_apply(uctx *c)
{
    if (c->status != 0) {
        http_respond_error(c->req, 500, "Unknown error");
        return APPLY_DONE;
    }
    json_t *out = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(c->user, "filters"), i, f)
    {
        if (!filter_ok(f)) {
            json_decref(out);
            http_respond_error(c->req, 400, "stored favourite filter is malformed");
            return APPLY_DONE;
        }
        json_array_append_new(out, shape_filter(f));
    }
    api_respond_json(c->req, 200, out);
    return APPLY_DONE;
}

void api_filters_list(http_request_t *req)
{
    uctx *c = uctx_new(req);
    if (!c)
        return;
    c->id = req->username;
    user_load(c, filters_list_apply, NULL);
}

/* c->fid is not among the caller's filters: it exists nowhere or is another user's, and
 * the answer does not tell which. The reference fails with 500 here (docs/api.md §8 item 7:
 * `Unknown error` on GET and PATCH, `Change to favourite filter <id> has been
 * unsuccessful` on DELETE); 404 in the style of its other "cannot be found" texts. */
static apply_result filter_not_found(uctx *c)
{
    snprintf(c->text, sizeof(c->text), "Favourite filter %s cannot be found for user '%.400s'",
             c->fid, c->id);
    http_respond_error(c->req, 404, c->text);
    return APPLY_DONE;
}

static apply_result filter_get_apply(uctx *c)
{
    if (c->status != 0) {
        /* the caller's own document is gone: as the reference (docs/api.md §9 item 6) */
        http_respond_error(c->req, 500, "Unknown error");
        return APPLY_DONE;
    }
    json_t *filters = json_object_get(c->user, "filters");
    ssize_t i = filter_index(filters, c->fid);
    if (i < 0)
        return filter_not_found(c);
    if (!filter_ok(json_array_get(filters, (size_t)i))) {
        http_respond_error(c->req, 500, "Unknown error");
        return APPLY_DONE;
    }
    api_respond_json(c->req, 200, shape_filter(json_array_get(filters, (size_t)i)));
    return APPLY_DONE;
}

static bool check_object_id(http_request_t *req, const char *id)
{
    if (objectid_valid(id))
        return true;
    http_respond_error(req, 400, "ID provided is not a valid ObjectId");
    return false;
}

void api_filters_get(http_request_t *req)
{
    uctx *c = uctx_new(req);
    if (!c || !check_object_id(req, req->params[0]))
        return;
    c->id = req->username;
    c->fid = req->params[0];
    user_load(c, filter_get_apply, NULL);
}

static void filter_created(uctx *c)
{
    char loc[64];
    snprintf(loc, sizeof(loc), "/users/filters/%.24s", c->text);
    http_add_header(c->req, "Location", loc);
    api_respond_string(c->req, 201, c->text);
}

static apply_result filter_create_apply(uctx *c)
{
    if (c->status != 0) {
        snprintf(c->text, sizeof(c->text), "Favourite filter cannot be created for user '%.400s'",
                 c->id);
        http_respond_error(c->req, 500, c->text);
        return APPLY_DONE;
    }
    json_t *filters = json_object_get(c->user, "filters");
    if (!json_is_array(filters)) {
        filters = json_array();
        json_object_set_new(c->user, "filters", filters);
    }
    if (json_array_size(filters) >= MAX_FILTERS) {
        http_respond_error(c->req, 400, "Too many favourite filters");
        return APPLY_DONE;
    }
    objectid_new(c->text);
    json_array_append_new(filters, json_pack("{s:s, s:s, s:s}", "_id", c->text, "name", c->name,
                                             "filter", c->filter));
    return APPLY_STORE;
}

static bool required_query(http_request_t *req, const char *name, const char **out)
{
    *out = http_query_get(req, name);
    if (*out)
        return true;
    api_respond_422(req, "missing", "query", name, "Field required", NULL, NULL);
    return false;
}

void api_filters_create(http_request_t *req)
{
    uctx *c = uctx_new(req);
    if (!c || !required_query(req, "name", &c->name) || !required_query(req, "filter", &c->filter))
        return;
    if (!*c->name || !*c->filter) {
        http_respond_error(req, 400, "Filter and its name are required");
        return;
    }
    c->id = req->username;
    user_load(c, filter_create_apply, filter_created);
}

static apply_result filter_update_apply(uctx *c)
{
    if (c->status != 0) {
        /* the caller's own document is gone: as the reference (docs/api.md §9 item 6) */
        http_respond_error(c->req, 500, "Unknown error");
        return APPLY_DONE;
    }
    json_t *filters = json_object_get(c->user, "filters");
    ssize_t i = filter_index(filters, c->fid);
    if (i < 0)
        return filter_not_found(c);
    json_t *f = json_array_get(filters, (size_t)i);
    const char *name = c->name ? c->name : json_string_value(json_object_get(f, "name"));
    const char *filter = c->filter ? c->filter : json_string_value(json_object_get(f, "filter"));
    if (!*name || !*filter) {
        http_respond_error(c->req, 400,
                           !*name ? "Name of filter cannot be empty" : "Filter cannot be empty");
        return APPLY_DONE;
    }
    const char *old_name = json_string_value(json_object_get(f, "name"));
    const char *old_filter = json_string_value(json_object_get(f, "filter"));
    if (old_name && old_filter && strcmp(old_name, name) == 0 && strcmp(old_filter, filter) == 0) {
        snprintf(c->text, sizeof(c->text), "Change to favourite filter %s has been unsuccessful",
                 c->fid);
        http_respond_error(c->req, 500, c->text);
        return APPLY_DONE;
    }
    json_object_set_new(f, "name", json_string(name));
    json_object_set_new(f, "filter", json_string(filter));
    return APPLY_STORE;
}

static void filter_updated(uctx *c)
{
    snprintf(c->text, sizeof(c->text), "Updated %s", c->fid);
    api_respond_string(c->req, 200, c->text);
}

void api_filters_update(http_request_t *req)
{
    uctx *c = uctx_new(req);
    if (!c)
        return;
    c->name = http_query_get(req, "name");
    c->filter = http_query_get(req, "filter");
    if ((!c->name || !*c->name) && (!c->filter || !*c->filter)) {
        api_respond_string(req, 200, "No updates necessary");
        return;
    }
    if (!check_object_id(req, req->params[0]))
        return;
    c->id = req->username;
    c->fid = req->params[0];
    user_load(c, filter_update_apply, filter_updated);
}

static apply_result filter_delete_apply(uctx *c)
{
    if (c->status != 0) {
        snprintf(c->text, sizeof(c->text), "Favourite filter cannot be found for user '%.400s'",
                 c->id);
        http_respond_error(c->req, 404, c->text);
        return APPLY_DONE;
    }
    json_t *filters = json_object_get(c->user, "filters");
    ssize_t i = filter_index(filters, c->fid);
    if (i < 0)
        return filter_not_found(c);
    json_array_remove(filters, (size_t)i);
    return APPLY_STORE;
}

void api_filters_delete(http_request_t *req)
{
    uctx *c = uctx_new(req);
    if (!c || !check_object_id(req, req->params[0]))
        return;
    c->id = req->username;
    c->fid = req->params[0];
    user_load(c, filter_delete_apply, no_content);
}
