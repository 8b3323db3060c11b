/*
 * gate: fairness for expensive requests (routes marked `heavy`), per worker.
 *
 * One user's heavy requests run at most http_limits.heavy_per_user at once; the others
 * wait in that user's queue, in arrival order, and start as the user's running ones
 * finish (on the reaper's turn, never inside another request's respond call). A waiting
 * request whose client leaves is dropped from the queue and finished (logged 499). While
 * more than http_limits.max_pool_waiting thread-pool items wait for a thread, a new heavy
 * request is answered 503 with Retry-After instead of adding to the backlog. So one
 * client's burst of expensive requests takes at most its share of the pool threads, and
 * other users' requests are served meanwhile.
 *
 * Users are told apart by the name the authorizer set (http_request.username); the gate
 * runs after authorisation.
 */
#ifndef OGD_HTTP_GATE_H
#define OGD_HTTP_GATE_H

#include "http/http.h"

typedef struct http_gate http_gate_t;

http_gate_t *gate_new(unsigned per_user, size_t max_pool_waiting);
void gate_free(http_gate_t *g);
/* Runs req's handler now, queues it behind the caller's running heavy requests, or
 * answers 503 when the pool's backlog is over its bound. */
void gate_enter(http_gate_t *g, http_request_t *req);
/* req (finished) gives back its slot: the caller's next waiting requests start. */
void gate_leave(http_gate_t *g, http_request_t *req);
/* Heavy requests waiting in all queues, and answered 503 so far. */
size_t gate_waiting(const http_gate_t *g);
uint64_t gate_shed(const http_gate_t *g);

/* The server's gate (server.c). */
http_gate_t *http_server_gate(const http_server_t *s);

#endif
