/*
 * router: matches a method and a path against the static route table, as a pure function
 * of its inputs (no request, no server, no answer): first match wins, so registration
 * order decides between /records/count and /records/{id_}; a path some route matches
 * with another method is 405 with the Allow of the first such route, as the reference's
 * router answers; a path that matches only with or without its trailing slash is a 307
 * to that form; anything else is 404. The server (server.c) answers each outcome, CORS
 * preflights included, and runs the handler. Fuzzable on its own.
 */
#ifndef OGD_HTTP_ROUTER_H
#define OGD_HTTP_ROUTER_H

#include "http/http.h"

typedef enum {
    ROUTE_FOUND,              /** route and params are set */
    ROUTE_NOT_FOUND,          /** 404 */
    ROUTE_METHOD_NOT_ALLOWED, /** 405; allow names the methods */
    ROUTE_REDIRECT,           /** 307; location is the other form of the path (+ query) */
} route_outcome;

typedef struct route_match {
    route_outcome outcome;
    const http_route *route;
    char *params[HTTP_MAX_PARAMS]; /** decoded path parameters, in pattern order (arena) */
    size_t nparams;
    const char *allow; /** ROUTE_METHOD_NOT_ALLOWED */
    char *location;    /** ROUTE_REDIRECT (arena); NULL when it cannot be a header */
} route_match;

/* Matches method and path (percent-decoded, url_prefix removed) against routes[0..n).
 * query: the raw query string ("" if none), kept on a redirect. Memory from arena. */
void router_match(const http_route *routes, size_t n, http_method method, const char *path,
                  const char *query, arena_t *arena, route_match *out);

#endif
