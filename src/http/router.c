/*
 * router.c: see router.h. Patterns are split on '/' at match time; `{name}` segments
 * capture one non-empty path segment (already percent-decoded).
 */
#include "http/router.h"

#include <string.h>
#include <strings.h>

static bool pattern_match(const char *pattern, const char *path, arena_t *arena, route_match *m)
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
            if (m && np < HTTP_MAX_PARAMS)
                m->params[np] = arena_strndup(arena, s, sl);
            np++;
        } else if (pl != sl || memcmp(p, s, pl) != 0) {
            return false;
        }
        p += pl;
        s += sl;
    }
    if (*p || *s)
        return false;
    if (m)
        m->nparams = np;
    return true;
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

/* The first route whose pattern matches path, any method; NULL if none. */
static const http_route *path_route(const http_route *routes, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (pattern_match(routes[i].pattern, path, NULL, NULL))
            return &routes[i];
    return NULL;
}

void router_match(const http_route *routes, size_t n, http_method method, const char *path,
                  const char *query, arena_t *arena, route_match *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        if (routes[i].method != method)
            continue;
        if (pattern_match(routes[i].pattern, path, arena, out)) {
            out->outcome = ROUTE_FOUND;
            out->route = &routes[i];
            return;
        }
    }
    out->nparams = 0;
    const http_route *other = path_route(routes, n, path);
    if (other) {
        out->outcome = ROUTE_METHOD_NOT_ALLOWED;
        out->allow = http_method_name(other->method);
        return;
    }
    /* Trailing-slash variants redirect, as the reference's framework does. */
    out->outcome = ROUTE_NOT_FOUND;
    size_t len = strlen(path);
    if (len <= 1)
        return;
    char *alt = arena_alloc(arena, len + 2);
    if (!alt)
        return;
    if (path[len - 1] == '/') {
        memcpy(alt, path, len - 1);
        alt[len - 1] = '\0';
    } else {
        memcpy(alt, path, len);
        alt[len] = '/';
        alt[len + 1] = '\0';
    }
    if (!path_route(routes, n, alt))
        return;
    out->outcome = ROUTE_REDIRECT;
    size_t ql = query ? strlen(query) : 0;
    char *loc = arena_alloc(arena, strlen(alt) + ql + 2);
    if (!loc)
        return;
    strcpy(loc, alt);
    if (ql) {
        strcat(loc, "?");
        strcat(loc, query);
    }
    /* Location carries the path only; control characters were decoded away. */
    out->location = strpbrk(loc, "\r\n") ? NULL : loc;
}
