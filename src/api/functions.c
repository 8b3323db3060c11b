/*
 * functions.c (api): GET /functions/tokens and POST /functions/validate
 * (docs/functions.md §4-§5, docs/api.md §5.17-§5.18).
 *
 * validate: the body (a JSON array of {"name","expression"}) is checked for shape first,
 * every problem reported at once as a pydantic-style 422; then the latest channel manifest
 * is read from the store (off the loop) and each function is vetted in order against it
 * and the earlier functions (fneval_check, fneval/check.c): name clashes, name syntax,
 * expression syntax, types. The first
 * failure answers 400 "Error at index <i>: <message>"; success is the array of result
 * types. Parsing and type checking are bounded (FN_MAX_EXPRESSION bytes each, at most
 * FNEVAL_FUNCTIONS_MAX functions), so they run on the loop thread.
 */
#include "api/api.h"
#include "api/functions.h"
#include "api/handlers.h"

#include "util/jsonw.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ---- GET /functions/tokens ---- */

void api_functions_tokens(http_request_t *req)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < fn_ntokens; i++) {
        json_t *t = json_pack("{ss ss}", "symbol", fn_tokens[i].symbol, "name", fn_tokens[i].name);
        if (fn_tokens[i].details)
            json_object_set_new(t, "details", json_string(fn_tokens[i].details));
        json_array_append_new(arr, t);
    }
    api_respond_json(req, 200, arr);
}

/* ---- shared: the function list ---- */

/* Copies s without leading/trailing whitespace (Python's str.strip) into the arena. */
static char *strip(arena_t *a, const char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return arena_strndup(a, s, n);
}

/* Appends one pydantic error; takes ownership of input and ctx. */
static void add_error(json_t *errors, const char *type, size_t index, const char *field,
                      const char *msg, json_t *input, json_t *ctx)
{
    json_t *loc = field ? json_pack("[sIs]", "body", (json_int_t)index, field)
                        : json_pack("[sI]", "body", (json_int_t)index);
    json_t *e = json_pack("{ss so ss so}", "type", type, "loc", loc, "msg", msg, "input",
                          input ? input : json_null());
    if (ctx)
        json_object_set_new(e, "ctx", ctx);
    json_array_append_new(errors, e);
}

/* Checks one string field of a function object; returns the stripped value or NULL. */
static const char *body_field(arena_t *a, json_t *errors, size_t i, json_t *obj, const char *field,
                              bool do_strip)
{
    json_t *v = json_object_get(obj, field);
    if (!v) {
        add_error(errors, "missing", i, field, "Field required", json_incref(obj), NULL);
        return NULL;
    }
    if (!json_is_string(v)) {
        add_error(errors, "string_type", i, field, "Input should be a valid string", json_incref(v),
                  NULL);
        return NULL;
    }
    const char *s = do_strip ? strip(a, json_string_value(v)) : json_string_value(v);
    if (!s || !*s) {
        add_error(errors, "string_too_short", i, field, "String should have at least 1 character",
                  json_string(s ? s : ""), json_pack("{si}", "min_length", 1));
        return NULL;
    }
    return s;
}

/* ---- POST /functions/validate ---- */

typedef struct validate_ctx {
    http_request_t *req;
    store_op_t op;
    fneval_function *fns;
    size_t nfns;
} validate_ctx;

static void validate_abort(http_request_t *req, void *data)
{
    validate_ctx *ctx = data;
    (void)req;
    store_cancel(&ctx->op);
}

static void validate_manifest(store_op_t *op)
{
    validate_ctx *ctx = op->data;
    http_request_t *req = ctx->req;
    http_set_abort(req, NULL, NULL);
    if (op->status != 0 && op->status != -ENOENT) {
        api_respond_store_error(req, op, "Unknown error");
        store_op_cleanup(op);
        return;
    }
    /* No manifest yet: no channels, so only constants and earlier functions resolve. */
    json_t *channels = op->status == 0 ? json_object_get(op->result, "channels") : NULL;
    char err[FN_ERR_MAX];
    size_t bad;
    if (fneval_check(&req->arena, channels, ctx->fns, ctx->nfns, &bad, err) != 0) {
        char msg[FN_ERR_MAX + 64];
        snprintf(msg, sizeof msg, "Error at index %zu: %s", bad, err);
        http_respond_error(req, 400, msg);
    } else {
        json_t *types = json_array();
        for (size_t i = 0; i < ctx->nfns; i++)
            json_array_append_new(types, json_string(fn_type_name(ctx->fns[i].type)));
        api_respond_json(req, 200, types);
    }
    store_op_cleanup(op);
}

static void respond_422_list(http_request_t *req, json_t *errors)
{
    json_t *body = json_pack("{so}", "detail", errors);
    size_t len;
    char *text = jsonw_dumps(body, &len);
    json_decref(body);
    if (!text) {
        http_respond_error(req, 500, "Unknown error");
        return;
    }
    http_respond_take(req, 422, "application/json", text, len);
}

void api_functions_validate(http_request_t *req)
{
    json_error_t jerr;
    json_t *body =
        json_loadb(req->body.data ? req->body.data : "", req->body.len, JSON_DECODE_ANY, &jerr);
    json_t *errors = json_array();
    if (!body) {
        json_t *e = json_pack("{ss s[sI] ss s{} s{ss}}", "type", "json_invalid", "loc", "body",
                              (json_int_t)jerr.position, "msg", "JSON decode error", "input", "ctx",
                              "error", jerr.text);
        json_array_append_new(errors, e);
        respond_422_list(req, errors);
        return;
    }
    if (!json_is_array(body)) {
        json_t *e = json_pack("{ss s[s] ss sO}", "type", "list_type", "loc", "body", "msg",
                              "Input should be a valid list", "input", body);
        json_array_append_new(errors, e);
        json_decref(body);
        respond_422_list(req, errors);
        return;
    }
    size_t n = json_array_size(body);
    if (n > FNEVAL_FUNCTIONS_MAX) {
        json_decref(body);
        json_decref(errors);
        char msg[96];
        snprintf(msg, sizeof msg, "At most %d functions may be given at once",
                 FNEVAL_FUNCTIONS_MAX);
        http_respond_error(req, 400, msg);
        return;
    }
    validate_ctx *ctx = arena_alloc(&req->arena, sizeof *ctx);
    fneval_function *fns = arena_alloc(&req->arena, (n ? n : 1) * sizeof *fns);
    if (!ctx || !fns) {
        json_decref(body);
        json_decref(errors);
        http_respond_error(req, 500, "Unknown error");
        return;
    }
    memset(ctx, 0, sizeof *ctx);
    memset(fns, 0, (n ? n : 1) * sizeof *fns);
    for (size_t i = 0; i < n; i++) {
        json_t *f = json_array_get(body, i);
        if (!json_is_object(f)) {
            add_error(errors, "model_attributes_type", i, NULL,
                      "Input should be a valid dictionary or object to extract fields from",
                      json_incref(f), NULL);
            continue;
        }
        fns[i].name = body_field(&req->arena, errors, i, f, "name", true);
        fns[i].expression = body_field(&req->arena, errors, i, f, "expression", true);
    }
    json_decref(body);
    if (json_array_size(errors) > 0) {
        respond_422_list(req, errors);
        return;
    }
    json_decref(errors);
    ctx->req = req;
    ctx->fns = fns;
    ctx->nfns = n;
    store_op_init(&ctx->op, STORE_MANIFEST_LATEST);
    http_set_abort(req, validate_abort, ctx);
    app_t *app = req->app;
    if (store_submit(app->store, &ctx->op, validate_manifest, ctx) != 0) {
        http_set_abort(req, NULL, NULL);
        http_respond_error(req, 500, "Unknown error");
    }
}
