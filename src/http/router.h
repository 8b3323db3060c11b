/*
 * router: matches a request's method and path against the static route table (first
 * match wins, so registration order decides between /records/count and /records/{id_}),
 * answers CORS preflights, 404, 405 (with Allow) and trailing-slash redirects (307) as the
 * reference does, and calls the handler.
 */
#ifndef OGD_HTTP_ROUTER_H
#define OGD_HTTP_ROUTER_H

#include "http/http.h"

/* Sets req->route and req->params when a route's pattern and method match. */
void router_match(const http_route *routes, size_t n, http_request_t *req);
/* Runs the matched handler, or answers the request itself. */
void router_dispatch(http_request_t *req);

#endif
