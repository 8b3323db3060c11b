/*
 * sessions.c: saved web-client sessions (docs/api.md §6.12): /sessions/list, GET,
 * POST, PATCH and DELETE /sessions/{id_}. Documents are
 * {_id, username, name, summary, timestamp, auto_saved, session}; (username, name) is
 * unique. Every route checks ownership: the reference checks it on DELETE only, so any
 * user can read, overwrite and take over any session (a fix, docs/security.md).
 */
#include "api/api.h"
#include "api/handlers.h"
#include "util/objectid.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct sctx sctx;
typedef void (*loaded_fn)(sctx *c);

struct sctx {
    http_request_t *req;
    loaded_fn next; /* what runs once the session is loaded */
    json_t *body;   /* the session object (POST, PATCH) */
    json_t *doc;    /* the document to store / the loaded one */
    const char *id;
    const char *name, *summary;
    bool auto_saved;
    char oid[OBJECTID_LEN + 1];
    char text[256];
};

static void sctx_free(sctx *c)
{
    json_decref(c->body);
    json_decref(c->doc);
}

static sctx *sctx_new(http_request_t *req)
{
    sctx *c = api_ctx_new(req, sizeof(*c));
    if (!c)
        return NULL;
    c->req = req;
    return c;
}

static bool check_id(http_request_t *req, const char *id)
{
    if (objectid_valid(id))
        return true;
    http_respond_error(req, 400, "ID provided is not a valid ObjectId");
    return false;
}

/* Server local time, whole seconds, no zone (as the reference stores it). */
static void local_timestamp(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
}

static bool owned(const sctx *c)
{
    const char *u = json_string_value(json_object_get(c->doc, "username"));
    return u && strcmp(u, c->req->username) == 0;
}

/* ---------------------------------------------------------------- list */

static const char *const LIST_KEYS[] = {"_id", "name", "summary", "timestamp", "auto_saved", NULL};

void api_sessions_list(http_request_t *req)
{
    store_op_t *op = api_store_op(req, STORE_SESSIONS_LIST);
    if (!op)
        return;
    app_t *app = req->app;
    op->id = req->username;
    op->max_documents = app->cfg->mongodb.max_documents;
    op->post_data = (void *)LIST_KEYS; /* read by api_store_list_done, not a post step */
    api_store_submit(req, op, api_store_list_done, req);
}

/* ---------------------------------------------------------------- get one, then act */

static void update_loaded(sctx *c);

static void session_loaded(store_op_t *op)
{
    sctx *c = op->data;
    loaded_fn next = c->next;
    http_set_abort(c->req, NULL, NULL);
    int st = op->status;
    if (st == 0) {
        c->doc = op->result;
        op->result = NULL;
    } else if (st == -ENOENT) {
        http_respond_error(c->req, 404,
                           next == update_loaded ? "User session cannot be found in the database"
                                                 : "User session cannot be found");
    } else {
        api_respond_store_error(c->req, op, "Unknown error");
    }
    store_op_cleanup(op);
    if (st != 0) {
        sctx_free(c);
        return;
    }
    next(c);
}

static void session_load(sctx *c, loaded_fn next)
{
    store_op_t *op = api_store_op(c->req, STORE_SESSION_GET);
    if (!op) {
        sctx_free(c);
        return;
    }
    c->next = next;
    op->id = c->id;
    if (!api_store_submit(c->req, op, session_loaded, c))
        sctx_free(c);
}

static void get_loaded(sctx *c)
{
    if (!owned(c)) {
        http_respond_error(c->req, 403,
                           "Session attempting to be read does not belong to current user");
        sctx_free(c);
        return;
    }
    json_t *out = json_object();
    const char *keys[] = {"_id",       "username",   "name",   "summary",
                          "timestamp", "auto_saved", "session"};
    for (size_t k = 0; k < 7; k++) {
        json_t *v = json_object_get(c->doc, keys[k]);
        json_object_set(out, keys[k], v ? v : json_null());
    }
    api_respond_json(c->req, 200, out);
    sctx_free(c);
}

void api_sessions_get(http_request_t *req)
{
    sctx *c = sctx_new(req);
    if (!c || !check_id(req, req->params[0]))
        return;
    c->id = req->params[0];
    session_load(c, get_loaded);
}

/* ---------------------------------------------------------------- delete */

static void deleted(store_op_t *op)
{
    sctx *c = op->data;
    http_set_abort(c->req, NULL, NULL);
    if (op->status != 0) {
        api_respond_store_error(c->req, op, "Unknown error");
    } else if (op->count != 1) {
        snprintf(c->text, sizeof(c->text),
                 "Unexpected result when deleting. Number of results deleted: %lld",
                 (long long)op->count);
        http_respond_error(c->req, 500, c->text);
    } else {
        http_respond(c->req, 204, NULL, "", 0);
    }
    store_op_cleanup(op);
    sctx_free(c);
}

static void delete_loaded(sctx *c)
{
    if (!owned(c)) {
        http_respond_error(c->req, 403,
                           "Session attempting to be deleted does not belong to current user");
        sctx_free(c);
        return;
    }
    store_op_t *op = api_store_op(c->req, STORE_SESSION_DELETE);
    if (!op) {
        sctx_free(c);
        return;
    }
    op->id = c->id;
    if (!api_store_submit(c->req, op, deleted, c))
        sctx_free(c);
}

void api_sessions_delete(http_request_t *req)
{
    sctx *c = sctx_new(req);
    if (!c || !check_id(req, req->params[0]))
        return;
    c->id = req->params[0];
    session_load(c, delete_loaded);
}

/* ---------------------------------------------------------------- save / update */

/* auto_saved: the boolean spellings pydantic accepts. */
static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "t", "1", "yes", "y", "on"};
    static const char *const no[] = {"false", "f", "0", "no", "n", "off"};
    for (size_t i = 0; i < 6; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = true, true;
        if (strcasecmp(s, no[i]) == 0)
            return *out = false, true;
    }
    return false;
}

/* Reads name, summary, auto_saved and the body; false when a response went out. */
static bool read_params(sctx *c, bool summary_required_400)
{
    http_request_t *req = c->req;
    const char *as = http_query_get(req, "auto_saved");
    if (!as) {
        api_respond_422(req, "missing", "query", "auto_saved", "Field required", NULL, NULL);
        return false;
    }
    if (!parse_bool(as, &c->auto_saved)) {
        api_respond_422(req, "bool_parsing", "query", "auto_saved",
                        "Input should be a valid boolean, unable to interpret input", as, NULL);
        return false;
    }
    if (!(c->body = api_body_json(req, true)))
        return false;
    c->name = http_query_get(req, "name");
    if (!c->name)
        c->name = "";
    c->summary = http_query_get(req, "summary");
    if (!c->summary) {
        if (summary_required_400)
            http_respond_error(req, 400, "summary: Field required");
        else /* as the reference (docs/api.md §9 item 6) */
            http_respond_error(req, 500, "Unknown error");
        return false;
    }
    return true;
}

static json_t *make_doc(sctx *c, const char *id)
{
    char ts[32];
    local_timestamp(ts);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:O}", "_id", id, "username", c->req->username,
                     "name", c->name, "summary", c->summary, "timestamp", ts, "auto_saved",
                     c->auto_saved, "session", c->body);
}

static void saved(store_op_t *op)
{
    sctx *c = op->data;
    http_set_abort(c->req, NULL, NULL);
    if (op->status == -EEXIST) {
        http_respond_error(c->req, 400, "Session name already exists for this user.");
    } else if (op->status != 0) {
        api_respond_store_error(c->req, op, "Unknown error");
    } else {
        char loc[64];
        snprintf(loc, sizeof(loc), "/sessions/%s", c->oid);
        http_add_header(c->req, "Location", loc);
        api_respond_string(c->req, 201, c->oid);
    }
    store_op_cleanup(op);
    sctx_free(c);
}

void api_sessions_save(http_request_t *req)
{
    sctx *c = sctx_new(req);
    if (!c)
        return;
    if (!read_params(c, false)) {
        sctx_free(c);
        return;
    }
    objectid_new(c->oid);
    c->doc = make_doc(c, c->oid);
    store_op_t *op = c->doc ? api_store_op(req, STORE_SESSION_PUT) : NULL;
    if (!op) {
        if (!c->doc)
            http_respond_error(req, 500, "Unknown error");
        sctx_free(c);
        return;
    }
    op->doc = c->doc;
    if (!api_store_submit(req, op, saved, c))
        sctx_free(c);
}

static void updated(store_op_t *op)
{
    sctx *c = op->data;
    http_set_abort(c->req, NULL, NULL);
    if (op->status == -EEXIST) {
        http_respond_error(c->req, 500,
                           "Error when updating single document in sessions collection");
    } else if (op->status != 0) {
        api_respond_store_error(c->req, op, "Unknown error");
    } else {
        snprintf(c->text, sizeof(c->text), "Updated %s", c->id);
        api_respond_string(c->req, 200, c->text);
    }
    store_op_cleanup(op);
    sctx_free(c);
}

static void update_loaded(sctx *c)
{
    if (!owned(c)) {
        http_respond_error(c->req, 403,
                           "Session attempting to be updated does not belong to current user");
        sctx_free(c);
        return;
    }
    json_t *doc = make_doc(c, c->id);
    if (!doc || json_equal(doc, c->doc)) {
        snprintf(c->text, sizeof(c->text), "Update to %s has been unsuccessful", c->id);
        http_respond_error(c->req, 500, c->text);
        json_decref(doc);
        sctx_free(c);
        return;
    }
    json_decref(c->doc);
    c->doc = doc;
    store_op_t *op = api_store_op(c->req, STORE_SESSION_PUT);
    if (!op) {
        sctx_free(c);
        return;
    }
    op->doc = c->doc;
    op->replace = true;
    if (!api_store_submit(c->req, op, updated, c))
        sctx_free(c);
}

void api_sessions_update(http_request_t *req)
{
    sctx *c = sctx_new(req);
    if (!c || !check_id(req, req->params[0]))
        return;
    if (!read_params(c, true)) {
        sctx_free(c);
        return;
    }
    c->id = req->params[0];
    session_load(c, update_loaded);
}
