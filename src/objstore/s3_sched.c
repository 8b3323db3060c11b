/*
 * s3_sched.c: the scheduling of the S3 back end (see s3_internal.h): who gets a transfer
 * slot when, and when a failed exchange may try again.
 *
 * Each exchange waits in its owner's queue until a transfer slot is free (at most
 * max_connections transfers in the multi handle); slots go round robin over the owners
 * with queued work, and one owner holds at most max_per_owner of them, so one export
 * cannot starve the other requests of the worker. Owners are found by a small hash
 * table and live while they have transfers.
 *
 * Retries wait in a backoff list sorted by time (one uv_timer) with exponential backoff
 * and jitter, within the call's deadline and a per-worker retry budget (a token bucket:
 * a retry costs tokens, a timeout more, a success refunds a few), so an outage does not
 * turn into a retry storm. Completions that must not run inside start() or cancel() are
 * deferred to the next loop turn (another uv_timer), which also pumps the queue.
 */
#include "objstore/s3_internal.h"

#include <stdlib.h>

#define S3_BACKOFF_BASE_MS 50
#define S3_BACKOFF_CAP_MS 2000
/* Retry budget, in tenths of a retry. */
#define S3_BUDGET_MAX 500
#define S3_BUDGET_RETRY 50
#define S3_BUDGET_TIMEOUT 100
#define S3_BUDGET_REFUND 10

uint64_t s3_now_ms(s3 *s)
{
    uv_update_time(s->loop);
    return uv_now(s->loop);
}

void s3_sched_init(s3 *s, s3_xfer_hooks hooks)
{
    s->hooks = hooks;
    s->budget = S3_BUDGET_MAX;
    uv_timer_init(s->loop, &s->retry_timer);
    uv_timer_init(s->loop, &s->defer_timer);
    s->retry_timer.data = s->defer_timer.data = s;
}

/* ---- owners and the queue ---- */

static size_t owner_hash(const void *owner)
{
    uintptr_t v = (uintptr_t)owner;
    v ^= v >> 17;
    v *= 0x9E3779B97F4A7C15ull;
    return (size_t)(v >> 32) % S3_OWNER_BUCKETS;
}

owner_q *s3_owner_get(s3 *s, const void *owner)
{
    size_t h = owner_hash(owner);
    for (owner_q *q = s->owners[h]; q; q = q->hnext)
        if (q->owner == owner)
            return q;
    owner_q *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->owner = owner;
    q->hnext = s->owners[h];
    s->owners[h] = q;
    return q;
}

void s3_owner_release(s3 *s, owner_q *q)
{
    if (--q->refs)
        return;
    owner_q **pp = &s->owners[owner_hash(q->owner)];
    while (*pp != q)
        pp = &(*pp)->hnext;
    *pp = q->hnext;
    free(q);
}

void s3_owners_free(s3 *s)
{
    for (size_t i = 0; i < S3_OWNER_BUCKETS; i++)
        while (s->owners[i]) {
            owner_q *q = s->owners[i];
            s->owners[i] = q->hnext;
            free(q);
        }
}

static void ring_add(s3 *s, owner_q *q)
{
    if (q->in_ring)
        return;
    q->in_ring = true;
    if (!s->ring) {
        q->rr_prev = q->rr_next = q;
        s->ring = q;
        return;
    }
    /* just behind the cursor: served after everyone already waiting */
    q->rr_next = s->ring;
    q->rr_prev = s->ring->rr_prev;
    q->rr_prev->rr_next = q;
    s->ring->rr_prev = q;
}

static void ring_remove(s3 *s, owner_q *q)
{
    if (!q->in_ring)
        return;
    q->in_ring = false;
    if (q->rr_next == q) {
        s->ring = NULL;
    } else {
        q->rr_prev->rr_next = q->rr_next;
        q->rr_next->rr_prev = q->rr_prev;
        if (s->ring == q)
            s->ring = q->rr_next;
    }
    q->rr_prev = q->rr_next = NULL;
}

void s3_enqueue(s3 *s, xfer *x, bool front)
{
    owner_q *q = x->oq;
    x->where = X_QUEUED;
    x->prev = x->next = NULL;
    if (front) {
        x->next = q->head;
        if (q->head)
            q->head->prev = x;
        else
            q->tail = x;
        q->head = x;
    } else {
        x->prev = q->tail;
        if (q->tail)
            q->tail->next = x;
        else
            q->head = x;
        q->tail = x;
    }
    s->queued++;
    ring_add(s, q);
}

void s3_dequeue(s3 *s, xfer *x)
{
    owner_q *q = x->oq;
    if (x->prev)
        x->prev->next = x->next;
    else
        q->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        q->tail = x->prev;
    x->prev = x->next = NULL;
    x->where = X_NONE;
    s->queued--;
    if (!q->head)
        ring_remove(s, q);
}

/* ---- transfer slots ---- */

void s3_pump(s3 *s)
{
    while (!s->closing && s->active < s->max_connections && s->ring) {
        owner_q *start = s->ring, *q = start;
        while (q->active >= s->max_per_owner) {
            q = q->rr_next;
            if (q == start)
                return; /* every owner with work is at its cap */
        }
        s->ring = q->rr_next;
        xfer *x = q->head;
        s3_dequeue(s, x);
        s->hooks.activate(s, x);
    }
}

/* ---- the next loop turn ---- */

static void defer_kick(uv_timer_t *t)
{
    s3 *s = t->data;
    xfer *list = s->deferred_head;
    s->deferred_head = s->deferred_tail = NULL;
    while (list) {
        xfer *x = list;
        list = x->next;
        s->hooks.finish(x, x->op->status);
    }
    s3_pump(s);
}

void s3_submit(s3 *s, xfer *x)
{
    s3_enqueue(s, x, false);
    /* Start on the next loop turn at the latest: curl's timer callback asks for that. */
    if (!uv_is_active((uv_handle_t *)&s->defer_timer))
        uv_timer_start(&s->defer_timer, defer_kick, 0, 0);
}

void s3_defer(s3 *s, xfer *x, int status)
{
    x->op->status = status;
    x->where = X_DEFERRED;
    x->next = NULL;
    x->prev = s->deferred_tail;
    if (s->deferred_tail)
        s->deferred_tail->next = x;
    else
        s->deferred_head = x;
    s->deferred_tail = x;
    if (!uv_is_active((uv_handle_t *)&s->defer_timer) &&
        !uv_is_closing((uv_handle_t *)&s->defer_timer))
        uv_timer_start(&s->defer_timer, defer_kick, 0, 0);
}

/* ---- retries ---- */

static void retry_kick(uv_timer_t *t);

static void backoff_insert(s3 *s, xfer *x)
{
    x->where = X_BACKOFF;
    xfer **pp = &s->backoff;
    while (*pp && (*pp)->retry_at_ms <= x->retry_at_ms)
        pp = &(*pp)->next;
    x->next = *pp;
    x->prev = NULL;
    *pp = x;
    if (s->backoff == x)
        uv_timer_start(&s->retry_timer, retry_kick, x->retry_at_ms - s3_now_ms(s), 0);
}

void s3_backoff_remove(s3 *s, xfer *x)
{
    xfer **pp = &s->backoff;
    while (*pp != x)
        pp = &(*pp)->next;
    *pp = x->next;
    x->next = NULL;
    x->where = X_NONE;
}

static void retry_kick(uv_timer_t *t)
{
    s3 *s = t->data;
    uint64_t now = s3_now_ms(s);
    while (s->backoff && s->backoff->retry_at_ms <= now) {
        xfer *x = s->backoff;
        s3_backoff_remove(s, x);
        s3_enqueue(s, x, true);
    }
    if (s->backoff)
        uv_timer_start(&s->retry_timer, retry_kick, s->backoff->retry_at_ms - now, 0);
    s3_pump(s);
}

bool s3_retry_later(xfer *x, bool is_timeout, uint64_t now)
{
    s3 *s = x->s;
    if (x->attempt >= s->max_retries || now >= x->deadline_ms)
        return false;
    int cost = is_timeout ? S3_BUDGET_TIMEOUT : S3_BUDGET_RETRY;
    if (s->budget < cost) {
        s->retries_denied++;
        return false;
    }
    s->budget -= cost;
    uint64_t exp = (uint64_t)S3_BACKOFF_BASE_MS << (x->attempt < 10 ? x->attempt : 10);
    if (exp > S3_BACKOFF_CAP_MS)
        exp = S3_BACKOFF_CAP_MS;
    uint64_t delay = exp / 2 + (uint64_t)(rand() % (int)(exp / 2 + 1)); /* jitter */
    if (now + delay >= x->deadline_ms)
        return false;
    x->attempt++;
    s->retries++;
    x->retry_at_ms = now + delay;
    backoff_insert(s, x);
    return true;
}

void s3_budget_refund(s3 *s)
{
    s->budget += S3_BUDGET_REFUND;
    if (s->budget > S3_BUDGET_MAX)
        s->budget = S3_BUDGET_MAX;
}
