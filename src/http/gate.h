/*
 * gate: fairness for expensive requests (routes marked `heavy`), per worker; a pure
 * bookkeeping module (it answers nothing and runs no handler: the server does, from its
 * decisions).
 *
 * One user's heavy requests run at most `per_user` at once; the others wait in that
 * user's queue, in arrival order, and start as the user's running ones finish. While
 * more than `max_pool_waiting` thread-pool items wait for a thread (util/pool.h), a new
 * heavy request is shed (the server answers 503 with Retry-After) instead of adding to
 * the backlog. So one client's burst of expensive requests takes at most its share of
 * the pool threads, and other users' requests are served meanwhile. Users are told apart
 * by the name the authorizer set (http_request.username): the gate comes after
 * authorisation.
 */
#ifndef OGD_HTTP_GATE_H
#define OGD_HTTP_GATE_H

#include "http/http.h"

typedef struct http_gate http_gate_t;

typedef enum {
    GATE_RUN,   /** run the handler now: the request holds one of its user's slots */
    GATE_WAIT,  /** queued behind the user's running ones (gate_leave hands it back) */
    GATE_SHED,  /** the pool's backlog is over its bound: answer 503 */
    GATE_NOMEM, /** answer 500 */
} gate_decision;

/* per_user 0: no cap; max_pool_waiting 0: no bound. NULL when out of memory. */
http_gate_t *gate_new(unsigned per_user, size_t max_pool_waiting);
void gate_free(http_gate_t *g);
gate_decision gate_enter(http_gate_t *g, http_request_t *req);
/* A waiting request leaves the queue (its client went away). */
void gate_drop(http_gate_t *g, http_request_t *req);
/* A finished request gives back its slot (nothing when it held none): returns the user's
 * next waiting request, which now holds the slot and must be run, or NULL. */
http_request_t *gate_leave(http_gate_t *g, http_request_t *req);
/* Heavy requests waiting in all queues, and shed so far. */
size_t gate_waiting(const http_gate_t *g);
uint64_t gate_shed(const http_gate_t *g);

#endif
