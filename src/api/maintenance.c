/*
 * maintenance.c: GET/PUT /maintenance and /scheduled_maintenance (docs/api.md §6.14):
 * the banner messages the web client shows, kept in two small JSON files
 * (app.maintenance_file, app.scheduled_maintenance_file). File I/O runs on the thread
 * pool. Writes are atomic (a temporary file in the same directory, fsync, rename), so a
 * reader sees the old or the new message, never a torn one (the reference truncates in
 * place: docs/security.md). A missing file reads as {"show": false, "message": ""}.
 */
#include "api/api.h"
#include "api/handlers.h"

#include "util/taskgroup.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAINTENANCE_MAX_BYTES (1 << 20)

typedef struct mctx {
    http_request_t *req;
    const char *path;
    bool scheduled;
    json_t *value; /* read: the file's shaped content; write: what to write */
    int status;    /* 0, or an HTTP status for a failure */
} mctx;

static json_t *shape(json_t *in, bool scheduled)
{
    json_t *show = json_object_get(in, "show");
    json_t *msg = json_object_get(in, "message");
    json_t *sev = json_object_get(in, "severity");
    if (!json_is_boolean(show) || !json_is_string(msg))
        return NULL;
    if (!scheduled)
        return json_pack("{s:O, s:O}", "show", show, "message", msg);
    const char *s = json_string_value(sev);
    if (!s || (strcmp(s, "info") != 0 && strcmp(s, "warning") != 0))
        return NULL;
    return json_pack("{s:O, s:O, s:O}", "show", show, "message", msg, "severity", sev);
}

static void read_run(void *data)
{
    mctx *c = data;
    FILE *f = fopen(c->path, "rb");
    if (!f) {
        if (errno == ENOENT)
            c->value = c->scheduled ? json_pack("{s:b, s:s, s:s}", "show", 0, "message", "",
                                                "severity", "info")
                                    : json_pack("{s:b, s:s}", "show", 0, "message", "");
        else
            c->status = 500;
        return;
    }
    json_error_t e;
    json_t *v = json_loadf(f, 0, &e);
    fclose(f);
    c->value = v ? shape(v, c->scheduled) : NULL;
    json_decref(v);
    if (!c->value)
        c->status = 500;
}

static void read_done(void *data, int status)
{
    mctx *c = data;
    if (status != 0 || c->status) {
        log_error("maintenance: %s is missing fields or not JSON", c->path);
        http_respond(c->req, 500, "text/plain; charset=utf-8", "Internal Server Error", 21);
        json_decref(c->value);
        return;
    }
    api_respond_json(c->req, 200, c->value);
}

static void write_run(void *data)
{
    mctx *c = data;
    char *text = json_dumps(c->value, JSON_COMPACT | JSON_PRESERVE_ORDER);
    size_t plen = strlen(c->path);
    char *tmp = malloc(plen + 16);
    if (!text || !tmp) {
        c->status = 500;
        goto out;
    }
    snprintf(tmp, plen + 16, "%s.tmp.%d", c->path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    size_t len = strlen(text);
    bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len;
    ok = fd >= 0 && fsync(fd) == 0 && ok;
    if (fd >= 0)
        ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, c->path) != 0) {
        log_error("maintenance: cannot write %s: %s", c->path, strerror(errno));
        unlink(tmp);
        c->status = 500;
    }
out:
    free(text);
    free(tmp);
}

static void write_done(void *data, int status)
{
    mctx *c = data;
    json_decref(c->value);
    if (status != 0 || c->status)
        http_respond(c->req, 500, "text/plain; charset=utf-8", "Internal Server Error", 21);
    else
        http_respond(c->req, 200, "application/json", "null", 4);
}

static mctx *mctx_new(http_request_t *req, bool scheduled)
{
    mctx *c = api_ctx_new(req, sizeof(*c));
    if (!c)
        return NULL;
    c->req = req;
    c->scheduled = scheduled;
    app_t *app = req->app;
    c->path = scheduled ? app->cfg->app.scheduled_maintenance_file : app->cfg->app.maintenance_file;
    return c;
}

static void get_file(http_request_t *req, bool scheduled)
{
    mctx *c = mctx_new(req, scheduled);
    app_t *app = req->app;
    if (c && work_submit(app->loop, read_run, read_done, c, NULL) != 0)
        http_respond_error(req, 500, "Unknown error");
}

/* pydantic's lax bool for a JSON body value. */
static bool lax_bool(json_t *v, bool *out)
{
    if (json_is_boolean(v))
        return *out = json_is_true(v), true;
    if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1))
        return *out = json_integer_value(v) == 1, true;
    if (json_is_real(v) && (json_real_value(v) == 0.0 || json_real_value(v) == 1.0))
        return *out = json_real_value(v) == 1.0, true;
    if (json_is_string(v)) {
        static const char *const yes[] = {"true", "t", "1", "yes", "y", "on"};
        static const char *const no[] = {"false", "f", "0", "no", "n", "off"};
        for (size_t i = 0; i < 6; i++) {
            if (strcasecmp(json_string_value(v), yes[i]) == 0)
                return *out = true, true;
            if (strcasecmp(json_string_value(v), no[i]) == 0)
                return *out = false, true;
        }
    }
    return false;
}

static void put_file(http_request_t *req, bool scheduled)
{
    json_t *body = api_body_json(req, true);
    if (!body)
        return;
    json_t *show = json_object_get(body, "show");
    json_t *msg = json_object_get(body, "message");
    json_t *sev = json_object_get(body, "severity");
    bool b = false;
    if (!show) {
        api_422_body(req, "missing", "show", "Field required", body);
    } else if (!lax_bool(show, &b)) {
        api_422_body(req, "bool_parsing", "show",
                     "Input should be a valid boolean, unable to interpret input", show);
    } else if (!msg) {
        api_422_body(req, "missing", "message", "Field required", body);
    } else if (!json_is_string(msg)) {
        api_422_body(req, "string_type", "message", "Input should be a valid string", msg);
    } else if (scheduled && !sev) {
        api_422_body(req, "missing", "severity", "Field required", body);
    } else if (scheduled &&
               (!json_is_string(sev) || (strcmp(json_string_value(sev), "info") != 0 &&
                                         strcmp(json_string_value(sev), "warning") != 0))) {
        api_422_body(req, "literal_error", "severity", "Input should be 'info' or 'warning'", sev);
    } else {
        mctx *c = mctx_new(req, scheduled);
        if (c) {
            c->value =
                scheduled ? json_pack("{s:b, s:O, s:O}", "show", b, "message", msg, "severity", sev)
                          : json_pack("{s:b, s:O}", "show", b, "message", msg);
            app_t *app = req->app;
            if (work_submit(app->loop, write_run, write_done, c, NULL) != 0) {
                json_decref(c->value);
                http_respond_error(req, 500, "Unknown error");
            }
        }
    }
    json_decref(body);
}

void api_maintenance_get(http_request_t *req)
{
    get_file(req, false);
}

void api_maintenance_put(http_request_t *req)
{
    put_file(req, false);
}

void api_scheduled_maintenance_get(http_request_t *req)
{
    get_file(req, true);
}

void api_scheduled_maintenance_put(http_request_t *req)
{
    put_file(req, true);
}
