/*
 * common.c: the request plumbing every handler shares (api.h): query parameters and JSON
 * bodies parsed with FastAPI's rules, error responses, JSON answers (small ones on the
 * loop, large ones serialised on the thread pool) and one-op store calls from a handler.
 * The 422 bodies follow FastAPI/pydantic so the reference's clients parse them:
 * {"detail":[{"type","loc","msg","input"[,"ctx"]}]}.
 */
#include "api/api.h"

#include "util/taskgroup.h"
#include "util/jsonw.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

int64_t api_now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

void api_respond_422(http_request_t *req, const char *type, const char *loc_kind, const char *name,
                     const char *msg, const char *input, const char *ctx_json)
{
    buf_t b;
    buf_init(&b, 1 << 20);
    buf_puts(&b, "{\"detail\":[{\"type\":");
    jsonw_string(&b, type, strlen(type));
    buf_puts(&b, ",\"loc\":[");
    jsonw_string(&b, loc_kind, strlen(loc_kind));
    buf_putc(&b, ',');
    jsonw_string(&b, name, strlen(name));
    buf_puts(&b, "],\"msg\":");
    jsonw_string(&b, msg, strlen(msg));
    buf_puts(&b, ",\"input\":");
    if (input) {
        size_t n = strlen(input);
        jsonw_string(&b, input, n > 1000 ? 1000 : n);
    } else {
        buf_puts(&b, "null");
    }
    if (ctx_json) {
        buf_puts(&b, ",\"ctx\":");
        buf_puts(&b, ctx_json);
    }
    buf_puts(&b, "}]}");
    size_t len = b.len;
    http_respond_take(req, 422, "application/json", buf_take(&b), len);
}

int api_error_answer(int err, const char *not_found, const char *detail500, const char **detail)
{
    if (err == OGD_EDB_UNAVAILABLE) {
        *detail = "Database unavailable";
        return 503;
    }
    if (ogd_unavailable(err)) {
        *detail = "Object storage unavailable, try again later";
        return 503;
    }
    if (err == -ENOENT && not_found) {
        *detail = not_found;
        return 404;
    }
    *detail = detail500;
    return 500;
}

void api_respond_error_code(http_request_t *req, int err, const char *not_found,
                            const char *detail500, const char *what)
{
    const char *detail;
    int status = api_error_answer(err, not_found, detail500, &detail);
    if (status >= 500 && !(err == -ECANCELED && req->aborted))
        log_warn("%s: %s (%d)", what ? what : req->path, ogd_strerror(err), err);
    http_respond_error(req, status, detail);
}

void api_respond_store_error(http_request_t *req, const store_op_t *op, const char *detail500)
{
    api_respond_store_status(req, op->status, op->err, detail500);
}

void api_respond_store_status(http_request_t *req, int status, const char *err,
                              const char *detail500)
{
    if (status == STORE_EBADQUERY) {
        http_respond_error(req, 400, err);
        return;
    }
    if (status == -ECANCELED && req->aborted) { /* its client left: nothing to say */
        http_respond_error(req, 500, detail500);
        return;
    }
    if (status != STORE_EUNAVAILABLE || !err[0]) {
        api_respond_error_code(req, status, NULL, detail500, err[0] ? err : NULL);
        return;
    }
    log_warn("database unavailable: %s", err);
    http_respond_error(req, 503, "Database unavailable");
}

typedef struct json_job {
    http_request_t *req;
    json_t *value;
    char *text;
    size_t len;
    int status;
} json_job;

static void json_job_run(void *data)
{
    json_job *j = data;
    j->text = jsonw_dumps(j->value, &j->len);
}

static void json_job_done(void *data, int status)
{
    json_job *j = data;
    (void)status;
    json_decref(j->value);
    if (!j->text)
        http_respond_error(j->req, 500, "Unknown error");
    else
        http_respond_take(j->req, j->status, "application/json", j->text, j->len);
    free(j);
}

void api_respond_json(http_request_t *req, int status, json_t *v)
{
    /* Small values are cheaper to write here than to ship to a pool thread. */
    if (!json_is_array(v) || json_array_size(v) < 8) {
        size_t len = 0;
        char *text = jsonw_dumps(v, &len);
        json_decref(v);
        if (!text) {
            http_respond_error(req, 500, "Unknown error");
            return;
        }
        http_respond_take(req, status, "application/json", text, len);
        return;
    }
    json_job *j = calloc(1, sizeof(*j));
    if (!j) {
        json_decref(v);
        http_respond_error(req, 500, "Unknown error");
        return;
    }
    j->req = req;
    j->value = v;
    j->status = status;
    app_t *app = req->app;
    if (work_submit(app->loop, json_job_run, json_job_done, j, NULL) != 0) {
        json_decref(v);
        free(j);
        http_respond_error(req, 500, "Unknown error");
    }
}

void api_respond_string(http_request_t *req, int status, const char *text)
{
    json_t *s = json_string(text ? text : "");
    char *body = s ? json_dumps(s, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(s);
    if (!body) {
        http_respond_error(req, 500, "Unknown error");
        return;
    }
    http_respond_take(req, status, "application/json", body, strlen(body));
}

static bool parse_int64(const char *s, int64_t *out)
{
    if (!*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    /* pydantic accepts surrounding whitespace and a leading +; nothing else. */
    while (*end == ' ')
        end++;
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

bool api_query_int(http_request_t *req, const char *name, int64_t def, int64_t *out)
{
    const char *v = http_query_get(req, name);
    if (!v) {
        *out = def;
        return true;
    }
    if (!parse_int64(v, out)) {
        api_respond_422(req, "int_parsing", "query", name,
                        "Input should be a valid integer, unable to parse string as an integer", v,
                        NULL);
        return false;
    }
    return true;
}

bool api_query_int_range(http_request_t *req, const char *name, int64_t def, int64_t lo, int64_t hi,
                         int64_t *out)
{
    if (!api_query_int(req, name, def, out))
        return false;
    char msg[96], ctx[48];
    if (*out < lo) {
        snprintf(msg, sizeof(msg), "Input should be greater than or equal to %lld", (long long)lo);
        snprintf(ctx, sizeof(ctx), "{\"ge\":%lld}", (long long)lo);
        api_respond_422(req, "greater_than_equal", "query", name, msg, http_query_get(req, name),
                        ctx);
        return false;
    }
    if (*out > hi) {
        snprintf(msg, sizeof(msg), "Input should be less than or equal to %lld", (long long)hi);
        snprintf(ctx, sizeof(ctx), "{\"le\":%lld}", (long long)hi);
        api_respond_422(req, "less_than_equal", "query", name, msg, http_query_get(req, name), ctx);
        return false;
    }
    return true;
}

bool api_query_bool(http_request_t *req, const char *name, bool def, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on", "t", "y"};
    static const char *const no[] = {"false", "0", "no", "off", "f", "n"};
    const char *v = http_query_get(req, name);
    if (!v) {
        *out = def;
        return true;
    }
    for (int i = 0; i < 6; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    api_respond_422(req, "bool_parsing", "query", name,
                    "Input should be a valid boolean, unable to interpret input", v, NULL);
    return false;
}

bool api_query_json(http_request_t *req, const char *name, const char *def_text, json_t **out)
{
    const char *v = http_query_get(req, name);
    const char *text = v ? v : def_text;
    json_error_t e;
    /* Depth is bounded by jansson (2048); the body size by the header limit. */
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        char ctx[300];
        buf_t cb;
        buf_init(&cb, 1024);
        buf_puts(&cb, "{\"error\":");
        jsonw_string(&cb, e.text, strlen(e.text));
        buf_putc(&cb, '}');
        snprintf(ctx, sizeof(ctx), "%s", cb.data);
        buf_free(&cb);
        api_respond_422(req, "json_invalid", "query", name, "Invalid JSON", text, ctx);
        return false;
    }
    *out = j;
    return true;
}

bool api_compile_conditions(http_request_t *req, json_t *cond, bool convert_dates, filter_t **out)
{
    char err[256];
    if (!json_is_object(cond)) {
        http_respond_error(req, 400, "conditions must be a JSON object");
        return false;
    }
    if (filter_compile(cond, convert_dates, out, err, sizeof(err)) != 0) {
        http_respond_error(req, 400, err);
        return false;
    }
    return true;
}

bool api_list_params(http_request_t *req, store_op_t *op, filter_t **filter)
{
    app_t *app = req->app;
    json_t *cond = NULL;
    int64_t skip, limit;
    if (!api_query_json(req, "conditions", "{}", &cond))
        return false;
    bool ok = api_compile_conditions(req, cond, true, filter);
    json_decref(cond);
    if (!ok)
        return false;
    if (!api_query_int(req, "skip", 0, &skip) || !api_query_int(req, "limit", 0, &limit))
        return false;
    if (skip < 0) {
        http_respond_error(req, 400, "skip must be zero or positive");
        return false;
    }
    op->filter = *filter;
    op->skip = skip;
    op->limit = limit;
    op->max_documents = app->cfg->mongodb.max_documents;
    const char **order, **projection;
    op->norder = http_query_all(req, "order", &order);
    op->order = order;
    op->nprojection = http_query_all(req, "projection", &projection);
    op->projection = projection;
    return true;
}

/* ================================================================ JSON bodies */

void api_422_body(http_request_t *req, const char *type, const char *field, const char *msg,
                  json_t *input)
{
    json_t *loc = json_pack("[s]", "body");
    if (field)
        json_array_append_new(loc, json_string(field));
    json_t *err = json_pack("{s:s, s:o, s:s, s:O}", "type", type, "loc", loc, "msg", msg, "input",
                            input ? input : json_null());
    json_t *detail = json_pack("{s:[o]}", "detail", err);
    char *body = json_dumps(detail, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(detail);
    if (!body) {
        http_respond_error(req, 500, "Unknown error");
        return;
    }
    http_respond_take(req, 422, "application/json", body, strlen(body));
}

static bool json_content_type(const http_request_t *req)
{
    const char *ct = http_header_get(req, "content-type");
    if (!ct)
        return true;
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return true;
    return n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
           strncasecmp(ct + n - 5, "+json", 5) == 0;
}

/* FastAPI's json_invalid 422; decode errors are reported before authorisation. */
static void respond_json_invalid(http_request_t *req, const json_error_t *e)
{
    char buf[512];
    snprintf(buf, sizeof(buf),
             "{\"detail\":[{\"type\":\"json_invalid\",\"loc\":[\"body\",%d],\"msg\":\"JSON decode "
             "error\",\"input\":{},\"ctx\":{\"error\":\"Expecting value\"}}]}",
             e ? e->position : 0);
    http_respond(req, 422, "application/json", buf, strlen(buf));
}

bool api_body_decodes(http_request_t *req)
{
    if (req->body.len == 0 || !json_content_type(req))
        return true;
    json_error_t e;
    json_t *v = json_loadb(req->body.data, req->body.len, JSON_DECODE_ANY, &e);
    if (!v) {
        respond_json_invalid(req, &e);
        return false;
    }
    json_decref(v);
    return true;
}

json_t *api_body_json(http_request_t *req, bool want_object)
{
    if (req->body.len == 0 || !json_content_type(req)) {
        api_422_body(req, "missing", NULL, "Field required", NULL);
        return NULL;
    }
    json_error_t e;
    json_t *v = json_loadb(req->body.data, req->body.len, JSON_DECODE_ANY, &e);
    if (!v) {
        respond_json_invalid(req, &e);
        return NULL;
    }
    if (want_object && !json_is_object(v)) {
        api_422_body(req, "model_attributes_type", NULL,
                     "Input should be a valid dictionary or object to extract fields from", v);
        json_decref(v);
        return NULL;
    }
    return v;
}

const char *api_body_string(http_request_t *req, json_t *body, const char *field)
{
    json_t *v = json_object_get(body, field);
    if (!v || json_is_null(v)) {
        api_422_body(req, "missing", field, "Field required", body);
        return NULL;
    }
    if (!json_is_string(v)) {
        api_422_body(req, "string_type", field, "Input should be a valid string", v);
        return NULL;
    }
    return json_string_value(v);
}

/* ================================================================ one-op store calls */

static void abort_op(http_request_t *req, void *data)
{
    (void)req;
    store_cancel(data);
}

store_op_t *api_store_op(http_request_t *req, store_op_kind kind)
{
    store_op_t *op = arena_alloc(&req->arena, sizeof(*op));
    if (!op) {
        http_respond_error(req, 500, "Unknown error");
        return NULL;
    }
    store_op_init(op, kind);
    return op;
}

bool api_store_submit(http_request_t *req, store_op_t *op, store_cb cb, void *data)
{
    app_t *app = req->app;
    http_set_abort(req, abort_op, op);
    if (store_submit(app->store, op, cb, data) != 0) {
        http_set_abort(req, NULL, NULL);
        store_op_cleanup(op);
        http_respond_error(req, 500, "Unknown error");
        return false;
    }
    return true;
}

void api_store_list_done(store_op_t *op)
{
    http_request_t *req = op->data;
    const char *const *keys = op->post_data;
    http_set_abort(req, NULL, NULL);
    if (op->status != 0) {
        api_respond_store_error(req, op, "Unknown error");
        store_op_cleanup(op);
        return;
    }
    json_t *out = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(op->result, i, d)
    {
        json_t *m = json_object();
        for (size_t k = 0; keys[k]; k++) {
            json_t *v = json_object_get(d, keys[k]);
            json_object_set(m, keys[k], v ? v : json_null());
        }
        json_array_append_new(out, m);
    }
    store_op_cleanup(op);
    api_respond_json(req, 200, out);
}

void *api_ctx_new(http_request_t *req, size_t size)
{
    void *c = arena_alloc(&req->arena, size);
    if (!c) {
        http_respond_error(req, 500, "Unknown error");
        return NULL;
    }
    memset(c, 0, size);
    return c;
}
