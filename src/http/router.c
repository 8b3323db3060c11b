/*
 * router.c: see router.h. Patterns are split on '/' at match time; `{name}` segments
 * capture one non-empty path segment (already percent-decoded).
 */
#include "http/router.h"

#include "http/gate.h"

#include <string.h>
#include <strings.h>

static bool pattern_match(const char *pattern, const char *path, http_request_t *req, bool capture)
{
    const char *p = pattern, *s = path;
    size_t np = 0;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return false;
        p++;
        s++;
        const char *pe = strchr(p, '/');
        const char *se = strchr(s, '/');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p);
        size_t sl = se ? (size_t)(se - s) : strlen(s);
        if (pl >= 2 && p[0] == '{' && p[pl - 1] == '}') {
            if (sl == 0)
                return false;
            if (capture && np < HTTP_MAX_PARAMS)
                req->params[np] = arena_strndup(&req->arena, s, sl);
            np++;
        } else if (pl != sl || memcmp(p, s, pl) != 0) {
            return false;
        }
        p += pl;
        s += sl;
    }
    if (*p || *s)
        return false;
    if (capture)
        req->nparams = np;
    return true;
}

void router_match(const http_route *routes, size_t n, http_request_t *req)
{
    req->route = NULL;
    for (size_t i = 0; i < n; i++) {
        if (routes[i].method != req->method)
            continue;
        if (pattern_match(routes[i].pattern, req->path, req, true)) {
            req->route = &routes[i];
            return;
        }
    }
}

const char *http_method_name(http_method m)
{
    switch (m) {
    case OGD_GET:
        return "GET";
    case OGD_POST:
        return "POST";
    case OGD_PUT:
        return "PUT";
    case OGD_DELETE:
        return "DELETE";
    case OGD_PATCH:
        return "PATCH";
    case OGD_OPTIONS:
        return "OPTIONS";
    }
    return "GET";
}

/* True when some route's pattern matches path. allow gets the method of the first such
 * route: like the reference's router, the first route whose path matches answers 405 with
 * its own methods. */
static bool path_exists(const char *path, http_request_t *req, buf_t *allow)
{
    size_t n;
    const http_route *routes = http_server_routes(req->server, &n);
    for (size_t i = 0; i < n; i++) {
        if (pattern_match(routes[i].pattern, path, req, false)) {
            if (allow)
                buf_puts(allow, http_method_name(routes[i].method));
            return true;
        }
    }
    return false;
}

static void preflight(http_request_t *req)
{
    static const char *const allowed[] = {"DELETE", "GET",  "HEAD", "OPTIONS",
                                          "PATCH",  "POST", "PUT"};
    const char *want = http_header_get(req, "access-control-request-method");
    bool ok = false;
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        if (strcmp(want, allowed[i]) == 0)
            ok = true;
    http_add_header(req, "Access-Control-Allow-Methods",
                    "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT");
    http_add_header(req, "Access-Control-Max-Age", "600");
    const char *hdrs = http_header_get(req, "access-control-request-headers");
    if (hdrs)
        http_add_header(req, "Access-Control-Allow-Headers", hdrs);
    if (!ok) {
        http_respond(req, 400, "text/plain; charset=utf-8", "Disallowed CORS method", 22);
        return;
    }
    http_respond(req, 200, "text/plain; charset=utf-8", "OK", 2);
}

void router_dispatch(http_request_t *req)
{
    if (req->method == OGD_OPTIONS && http_header_get(req, "origin") &&
        http_header_get(req, "access-control-request-method")) {
        preflight(req);
        return;
    }
    if (req->route) {
        if (req->route->auth != AUTH_NONE) {
            http_authorizer check = http_server_authorizer(req->server);
            if (!check) {
                http_add_header(req, "WWW-Authenticate", "Bearer");
                http_respond_error(req, 401, "Not authenticated");
                return;
            }
            if (!check(req))
                return;
        }
        if (req->route->heavy)
            gate_enter(http_server_gate(req->server), req);
        else
            req->route->handler(req);
        return;
    }
    buf_t allow;
    buf_init(&allow, 1024);
    if (path_exists(req->path, req, &allow)) {
        http_add_header(req, "Allow", allow.data);
        buf_free(&allow);
        http_respond_error(req, 405, "Method Not Allowed");
        return;
    }
    buf_free(&allow);
    /* Trailing-slash variants redirect, as the reference's framework does. */
    size_t len = strlen(req->path);
    char *alt = arena_alloc(&req->arena, len + 2);
    if (alt && len > 1) {
        if (req->path[len - 1] == '/') {
            memcpy(alt, req->path, len - 1);
            alt[len - 1] = '\0';
        } else {
            memcpy(alt, req->path, len);
            alt[len] = '/';
            alt[len + 1] = '\0';
        }
        if (path_exists(alt, req, NULL)) {
            buf_t loc;
            buf_init(&loc, 16384);
            buf_puts(&loc, alt);
            if (*req->query) {
                buf_putc(&loc, '?');
                buf_puts(&loc, req->query);
            }
            /* Location carries the path only; control characters were decoded away. */
            if (loc.data && !strpbrk(loc.data, "\r\n"))
                http_add_header(req, "Location", loc.data);
            buf_free(&loc);
            http_respond(req, 307, NULL, "", 0);
            return;
        }
    }
    http_respond_error(req, 404, "Not Found");
}
