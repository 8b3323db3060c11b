/*
 * gate.c: see gate.h. The users with heavy requests running or waiting are a short list
 * (entries are removed when a user has neither), each with a FIFO of waiting requests
 * linked through http_request.gate_node.
 */
#include "http/gate.h"

#include "util/pool.h"

#include <stdlib.h>
#include <string.h>

typedef struct gate_user {
    char *name;
    unsigned running;
    list_node waiting; /* http_request.gate_node, in arrival order */
    struct gate_user *next;
} gate_user;

struct http_gate {
    unsigned per_user;
    size_t max_pool_waiting;
    gate_user *users;
    size_t waiting;
    uint64_t shed;
};

http_gate_t *gate_new(unsigned per_user, size_t max_pool_waiting)
{
    http_gate_t *g = calloc(1, sizeof(*g));
    if (g) {
        g->per_user = per_user;
        g->max_pool_waiting = max_pool_waiting;
    }
    return g;
}

void gate_free(http_gate_t *g)
{
    if (!g)
        return;
    while (g->users) {
        gate_user *u = g->users;
        g->users = u->next;
        free(u->name);
        free(u);
    }
    free(g);
}

static gate_user *user_get(http_gate_t *g, const char *name)
{
    for (gate_user *u = g->users; u; u = u->next)
        if (strcmp(u->name, name) == 0)
            return u;
    gate_user *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->name = strdup(name);
    if (!u->name) {
        free(u);
        return NULL;
    }
    list_init(&u->waiting);
    u->next = g->users;
    g->users = u;
    return u;
}

static void user_drop_if_idle(http_gate_t *g, gate_user *u)
{
    if (u->running || !list_empty(&u->waiting))
        return;
    for (gate_user **p = &g->users; *p; p = &(*p)->next)
        if (*p == u) {
            *p = u->next;
            free(u->name);
            free(u);
            return;
        }
}

static void hold(gate_user *u, http_request_t *req)
{
    u->running++;
    req->gate_held = true;
}

gate_decision gate_enter(http_gate_t *g, http_request_t *req)
{
    if (!g)
        return GATE_RUN;
    if (g->max_pool_waiting && pool_waiting() > g->max_pool_waiting) {
        g->shed++;
        return GATE_SHED;
    }
    if (!g->per_user)
        return GATE_RUN;
    gate_user *u = user_get(g, req->username ? req->username : "");
    if (!u)
        return GATE_NOMEM;
    req->gate_user = u;
    if (u->running < g->per_user) {
        hold(u, req);
        return GATE_RUN;
    }
    list_insert_tail(&u->waiting, &req->gate_node);
    g->waiting++;
    return GATE_WAIT;
}

void gate_drop(http_gate_t *g, http_request_t *req)
{
    gate_user *u = req->gate_user;
    if (!g || !u || req->gate_held)
        return;
    if (list_linked(&req->gate_node)) {
        list_remove(&req->gate_node);
        g->waiting--;
    }
    req->gate_user = NULL;
    user_drop_if_idle(g, u);
}

http_request_t *gate_leave(http_gate_t *g, http_request_t *req)
{
    gate_user *u = req->gate_user;
    if (!g || !u || !req->gate_held)
        return NULL;
    req->gate_held = false;
    req->gate_user = NULL;
    u->running--;
    http_request_t *next = NULL;
    if (u->running < g->per_user && !list_empty(&u->waiting)) {
        next = list_entry(list_first(&u->waiting), http_request_t, gate_node);
        list_remove(&next->gate_node);
        g->waiting--;
        hold(u, next);
    }
    user_drop_if_idle(g, u);
    return next;
}

size_t gate_waiting(const http_gate_t *g)
{
    return g ? g->waiting : 0;
}

uint64_t gate_shed(const http_gate_t *g)
{
    return g ? g->shed : 0;
}
