/*
 * users.c: the user documents (docs/api.md §6.6-§6.9): /users (POST, PATCH, GET,
 * DELETE), and the round trip on one user's document (api/users.h) that these and the
 * favourite filters (filters.c) and preferences (prefs.c) handlers share: load -> change
 * on the loop -> store only if nobody stored it meanwhile (STORE_USER_UPDATE on the
 * document's "_rev" counter), redone on a fresh copy on a clash (up to
 * USER_UPDATE_TRIES times).
 *
 * New passwords are hashed (argon2id) on the thread pool, once per request; a new FedID
 * user's e-mail is looked up in the directory (auth/fedid.h) on the thread pool too.
 */
#include "api/handlers.h"
#include "api/users.h"

#include "auth/permissions.h"
#include "util/taskgroup.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USER_UPDATE_TRIES 64 /* each round one writer wins: enough for 64 at once */

/* ================================================================ the user round trip */

void api_user_ctx_free(api_user_ctx *c)
{
    json_decref(c->body);
    json_decref(c->user);
    if (c->password) {
        OPENSSL_cleanse(c->password, strlen(c->password));
        free(c->password);
    }
    OPENSSL_cleanse(c->hash, sizeof(c->hash));
}

api_user_ctx *api_user_ctx_new(http_request_t *req)
{
    api_user_ctx *c = api_ctx_new(req, sizeof(*c));
    if (!c)
        return NULL;
    c->req = req;
    return c;
}

static void user_stored(store_op_t *op)
{
    api_user_ctx *c = op->data;
    http_set_abort(c->req, NULL, NULL);
    int st = op->status;
    if (st == 0 && !c->insert && op->count == 0) {
        /* stored by someone else since we read it: redo the change on a fresh copy */
        store_op_cleanup(op);
        if (++c->tries >= USER_UPDATE_TRIES) {
            http_add_header(c->req, "Retry-After", "1");
            http_respond_error(c->req, 503, "Too many concurrent changes to this user, try again");
            api_user_ctx_free(c);
            return;
        }
        json_decref(c->user);
        c->user = NULL;
        api_user_load(c, c->apply, c->stored);
        return;
    }
    if (st == -EEXIST)
        http_respond_error(c->req, 400, "Session name already exists for this user.");
    else if (st != 0)
        api_respond_store_error(c->req, op, "Unknown error");
    store_op_cleanup(op);
    if (st == 0)
        c->stored(c);
    api_user_ctx_free(c);
}

static void user_store(api_user_ctx *c)
{
    store_op_t *op = api_store_op(c->req, c->insert ? STORE_USER_PUT : STORE_USER_UPDATE);
    if (!op) {
        api_user_ctx_free(c);
        return;
    }
    if (!c->insert) {
        op->lo = c->rev;
        json_object_set_new(c->user, "_rev", json_integer(c->rev + 1));
    }
    op->doc = c->user;
    if (!api_store_submit(c->req, op, user_stored, c))
        api_user_ctx_free(c);
}

static void user_loaded(store_op_t *op)
{
    api_user_ctx *c = op->data;
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
        api_user_ctx_free(c);
        return;
    }
    store_op_cleanup(op);
    switch (c->apply(c)) {
    case API_USER_DONE:
        api_user_ctx_free(c);
        break;
    case API_USER_STORE:
        user_store(c);
        break;
    case API_USER_PENDING:
        break;
    }
}

void api_user_load(api_user_ctx *c, api_user_apply apply, void (*stored)(api_user_ctx *c))
{
    c->status = 0;
    c->apply = apply;
    c->stored = stored;
    store_op_t *op = api_store_op(c->req, STORE_USER_GET);
    if (!op) {
        api_user_ctx_free(c);
        return;
    }
    op->id = c->id;
    if (!api_store_submit(c->req, op, user_loaded, c))
        api_user_ctx_free(c);
}

void api_user_no_content(api_user_ctx *c)
{
    http_respond(c->req, 204, NULL, "", 0);
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
    api_user_ctx *c = data;
    c->hash_failed = password_hash(c->password, c->hash) != 0;
    OPENSSL_cleanse(c->password, strlen(c->password));
}

/* The checks POST and PATCH /users end with (the id, the password's length), then the
 * load -> apply -> compare-and-set round trip; empty_id: that route's text for an empty
 * id. Takes c (freed on failure). */
static void user_write(api_user_ctx *c, const char *id, const char *pw, const char *empty_id,
                       api_user_apply apply, void (*stored)(api_user_ctx *c))
{
    if (!*id) {
        http_respond_error(c->req, 400, empty_id);
        api_user_ctx_free(c);
        return;
    }
    if (pw && strlen(pw) > PASSWORD_MAX_BYTES) {
        http_respond_error(c->req, 400, "the password is too long");
        api_user_ctx_free(c);
        return;
    }
    c->password = pw ? strdup(pw) : NULL;
    c->id = id;
    api_user_load(c, apply, stored);
}

/* ================================================================ POST /users */

static void user_created(api_user_ctx *c)
{
    api_respond_string(c->req, 201, c->id);
}

/* After the new password was hashed on the pool (POST and PATCH): the argon2id hash
 * replaces any legacy SHA-256 one, then the document is stored. */
static void password_hashed(void *data, int status)
{
    api_user_ctx *c = data;
    if (status != 0 || c->hash_failed) {
        http_respond_error(c->req, 500, "Unknown error");
        api_user_ctx_free(c);
        return;
    }
    json_object_set_new(c->user, "password_hash", json_string(c->hash));
    json_object_del(c->user, "sha256_password");
    user_store(c);
}

static void email_run(void *data)
{
    api_user_ctx *c = data;
    const app_t *app = c->req->app;
    c->fedid = fedid_find_email(&app->cfg->auth, c->id, c->email);
}

static void create_email_found(void *data, int status)
{
    api_user_ctx *c = data;
    if (status != 0 || c->fedid == FEDID_SERVER_ERROR) {
        http_respond_error(c->req, 500,
                           status != 0 ? "Unknown error" : "Authentication server error");
        api_user_ctx_free(c);
        return;
    }
    if (c->fedid != FEDID_OK) {
        snprintf(c->text, sizeof(c->text), "No email found for FedID username '%.400s'", c->id);
        http_respond_error(c->req, 400, c->text);
        api_user_ctx_free(c);
        return;
    }
    json_object_set_new(c->user, "sha256_password", json_null());
    json_object_set_new(c->user, "email", json_string(c->email));
    user_store(c);
}

static api_user_step create_apply(api_user_ctx *c)
{
    if (c->status == 0) {
        snprintf(c->text, sizeof(c->text),
                 "username field must not be the same as a pre existing user. You put: '%.400s' ",
                 c->id);
        http_respond_error(c->req, 400, c->text);
        return API_USER_DONE;
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
            return API_USER_DONE;
        return API_USER_PENDING;
    }
    if (work_submit(app->loop, hash_run, password_hashed, c, NULL) != 0) {
        http_respond_error(c->req, 500, "Unknown error");
        return API_USER_DONE;
    }
    return API_USER_PENDING;
}

void api_users_create(http_request_t *req)
{
    api_user_ctx *c = api_user_ctx_new(req);
    if (!c || !(c->body = api_body_json(req, true)))
        return;
    json_t *b = c->body;
    const char *id, *type, *pw, *email;
    if (!(id = api_body_string(req, b, "_id")) || !(type = api_body_string(req, b, "auth_type")) ||
        !opt_string(req, b, "sha256_password", &pw) || !opt_string(req, b, "email", &email)) {
        api_user_ctx_free(c);
        return;
    }
    json_t *routes = json_object_get(b, "authorised_routes");
    if (routes && !json_is_null(routes) && !json_is_array(routes)) {
        api_422_body(req, "list_type", "authorised_routes", "Input should be a valid list", routes);
        api_user_ctx_free(c);
        return;
    }
    if (email && !valid_email(email)) {
        api_422_body(req, "value_error", "email",
                     "value is not a valid email address: The email address is not valid.",
                     json_object_get(b, "email"));
        api_user_ctx_free(c);
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
        api_user_ctx_free(c);
        return;
    }
    if (!check_routes(req, routes, "authorised_routes")) {
        api_user_ctx_free(c);
        return;
    }
    user_write(c, id, pw, "username field must not be filled. You put: '' ", create_apply,
               user_created);
}

/* ================================================================ PATCH /users */

static void user_updated(api_user_ctx *c)
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

static api_user_step update_apply(api_user_ctx *c)
{
    const char *type = json_string_value(json_object_get(c->user, "auth_type"));
    if (c->status != 0 || !type) {
        http_respond_error(c->req, 400, "Problem with query parameter input");
        return API_USER_DONE;
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
            return API_USER_STORE;
        }
        app_t *app = c->req->app;
        if (work_submit(app->loop, hash_run, password_hashed, c, NULL) != 0) {
            http_respond_error(c->req, 500, "Unknown error");
            return API_USER_DONE;
        }
        return API_USER_PENDING;
    }
    return API_USER_STORE;
}

void api_users_update(http_request_t *req)
{
    api_user_ctx *c = api_user_ctx_new(req);
    if (!c || !(c->body = api_body_json(req, true)))
        return;
    json_t *b = c->body;
    const char *id, *pw;
    if (!(id = api_body_string(req, b, "_id")) || !opt_string(req, b, "updated_password", &pw)) {
        api_user_ctx_free(c);
        return;
    }
    if (pw && !*pw) {
        http_respond_error(req, 400, "you must have a password with the password field");
        api_user_ctx_free(c);
        return;
    }
    if (!check_routes(req, json_object_get(b, "add_authorised_routes"), "add_authorised_routes") ||
        !check_routes(req, json_object_get(b, "remove_authorised_routes"),
                      "remove_authorised_routes")) {
        api_user_ctx_free(c);
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
