/*
 * filters.c: the caller's favourite filters (docs/api.md §6.10): /users/filters
 * (GET, POST) and /users/filters/{_id} (GET, PATCH, DELETE). They live in the caller's
 * user document (`filters`, at most MAX_FILTERS) and change through the user round trip
 * (api/users.h). Always scoped to the token's user: a filter id the caller does not
 * hold (none such, or another user's) is 404 naming the id on GET, PATCH and DELETE,
 * where the reference answers 500.
 */
#include "api/handlers.h"
#include "api/users.h"

#include "util/objectid.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#define MAX_FILTERS 1000 /* favourite filters per user */

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

static api_user_step filters_list_apply(api_user_ctx *c)
{
    if (c->status != 0) {
        http_respond_error(c->req, 500, "Unknown error");
        return API_USER_DONE;
    }
    json_t *out = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(c->user, "filters"), i, f)
    {
        if (!filter_ok(f)) {
            json_decref(out);
            http_respond_error(c->req, 400, "stored favourite filter is malformed");
            return API_USER_DONE;
        }
        json_array_append_new(out, shape_filter(f));
    }
    api_respond_json(c->req, 200, out);
    return API_USER_DONE;
}

void api_filters_list(http_request_t *req)
{
    api_user_ctx *c = api_user_ctx_new(req);
    if (!c)
        return;
    c->id = req->username;
    api_user_load(c, filters_list_apply, NULL);
}

/* c->fid is not among the caller's filters: it exists nowhere or is another user's, and
 * the answer does not tell which. The reference fails with 500 here (docs/api.md §8 item 7:
 * `Unknown error` on GET and PATCH, `Change to favourite filter <id> has been
 * unsuccessful` on DELETE); 404 in the style of its other "cannot be found" texts. */
static api_user_step filter_not_found(api_user_ctx *c)
{
    snprintf(c->text, sizeof(c->text), "Favourite filter %s cannot be found for user '%.400s'",
             c->fid, c->id);
    http_respond_error(c->req, 404, c->text);
    return API_USER_DONE;
}

/* The caller's filter c->fid in their loaded document, or NULL once answered: 500 when
 * the caller's own document is gone (as the reference, docs/api.md §9 item 6), 404 when
 * the filter is not there. */
static json_t *own_filter(api_user_ctx *c)
{
    if (c->status != 0) {
        http_respond_error(c->req, 500, "Unknown error");
        return NULL;
    }
    json_t *filters = json_object_get(c->user, "filters");
    ssize_t i = filter_index(filters, c->fid);
    if (i < 0) {
        filter_not_found(c);
        return NULL;
    }
    return json_array_get(filters, (size_t)i);
}

static api_user_step filter_get_apply(api_user_ctx *c)
{
    json_t *f = own_filter(c);
    if (!f)
        return API_USER_DONE;
    if (!filter_ok(f)) {
        http_respond_error(c->req, 500, "Unknown error");
        return API_USER_DONE;
    }
    api_respond_json(c->req, 200, shape_filter(f));
    return API_USER_DONE;
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
    api_user_ctx *c = api_user_ctx_new(req);
    if (!c || !check_object_id(req, req->params[0]))
        return;
    c->id = req->username;
    c->fid = req->params[0];
    api_user_load(c, filter_get_apply, NULL);
}

static void filter_created(api_user_ctx *c)
{
    char loc[64];
    snprintf(loc, sizeof(loc), "/users/filters/%.24s", c->text);
    http_add_header(c->req, "Location", loc);
    api_respond_string(c->req, 201, c->text);
}

static api_user_step filter_create_apply(api_user_ctx *c)
{
    if (c->status != 0) {
        snprintf(c->text, sizeof(c->text), "Favourite filter cannot be created for user '%.400s'",
                 c->id);
        http_respond_error(c->req, 500, c->text);
        return API_USER_DONE;
    }
    json_t *filters = json_object_get(c->user, "filters");
    if (!json_is_array(filters)) {
        filters = json_array();
        json_object_set_new(c->user, "filters", filters);
    }
    if (json_array_size(filters) >= MAX_FILTERS) {
        http_respond_error(c->req, 400, "Too many favourite filters");
        return API_USER_DONE;
    }
    objectid_new(c->text);
    json_array_append_new(filters, json_pack("{s:s, s:s, s:s}", "_id", c->text, "name", c->name,
                                             "filter", c->filter));
    return API_USER_STORE;
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
    api_user_ctx *c = api_user_ctx_new(req);
    if (!c || !required_query(req, "name", &c->name) || !required_query(req, "filter", &c->filter))
        return;
    if (!*c->name || !*c->filter) {
        http_respond_error(req, 400, "Filter and its name are required");
        return;
    }
    c->id = req->username;
    api_user_load(c, filter_create_apply, filter_created);
}

static api_user_step filter_update_apply(api_user_ctx *c)
{
    json_t *f = own_filter(c);
    if (!f)
        return API_USER_DONE;
    const char *name = c->name ? c->name : json_string_value(json_object_get(f, "name"));
    const char *filter = c->filter ? c->filter : json_string_value(json_object_get(f, "filter"));
    if (!*name || !*filter) {
        http_respond_error(c->req, 400,
                           !*name ? "Name of filter cannot be empty" : "Filter cannot be empty");
        return API_USER_DONE;
    }
    const char *old_name = json_string_value(json_object_get(f, "name"));
    const char *old_filter = json_string_value(json_object_get(f, "filter"));
    if (old_name && old_filter && strcmp(old_name, name) == 0 && strcmp(old_filter, filter) == 0) {
        snprintf(c->text, sizeof(c->text), "Change to favourite filter %s has been unsuccessful",
                 c->fid);
        http_respond_error(c->req, 500, c->text);
        return API_USER_DONE;
    }
    json_object_set_new(f, "name", json_string(name));
    json_object_set_new(f, "filter", json_string(filter));
    return API_USER_STORE;
}

static void filter_updated(api_user_ctx *c)
{
    snprintf(c->text, sizeof(c->text), "Updated %s", c->fid);
    api_respond_string(c->req, 200, c->text);
}

void api_filters_update(http_request_t *req)
{
    api_user_ctx *c = api_user_ctx_new(req);
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
    api_user_load(c, filter_update_apply, filter_updated);
}

static api_user_step filter_delete_apply(api_user_ctx *c)
{
    if (c->status != 0) {
        snprintf(c->text, sizeof(c->text), "Favourite filter cannot be found for user '%.400s'",
                 c->id);
        http_respond_error(c->req, 404, c->text);
        return API_USER_DONE;
    }
    json_t *filters = json_object_get(c->user, "filters");
    ssize_t i = filter_index(filters, c->fid);
    if (i < 0)
        return filter_not_found(c);
    json_array_remove(filters, (size_t)i);
    return API_USER_STORE;
}

void api_filters_delete(http_request_t *req)
{
    api_user_ctx *c = api_user_ctx_new(req);
    if (!c || !check_object_id(req, req->params[0]))
        return;
    c->id = req->username;
    c->fid = req->params[0];
    api_user_load(c, filter_delete_apply, api_user_no_content);
}
