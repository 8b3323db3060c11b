/*
 * ratelimit.c: see ratelimit.h. Open addressing over RATELIMIT_SLOTS entries with a
 * probe run of RATELIMIT_PROBE.
 */
#include "auth/ratelimit.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define RATELIMIT_SLOTS 8192
#define RATELIMIT_PROBE 8

typedef struct {
    uint64_t hash; /* 0 = free */
    uint64_t window_start;
    unsigned failures;
} rl_entry;

struct ratelimit {
    unsigned window_s;
    unsigned char key[crypto_shorthash_KEYBYTES];
    rl_entry slots[RATELIMIT_SLOTS];
};

ratelimit_t *ratelimit_new(unsigned window_s)
{
    if (sodium_init() < 0)
        return NULL;
    ratelimit_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->window_s = window_s;
    crypto_shorthash_keygen(r->key);
    return r;
}

void ratelimit_free(ratelimit_t *r)
{
    free(r);
}

static uint64_t hash_of(const ratelimit_t *r, const char *key)
{
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash(out, (const unsigned char *)key, strlen(key), r->key);
    uint64_t h;
    memcpy(&h, out, sizeof(h));
    return h ? h : 1;
}

/* The entry for key, or NULL; with create, a fresh or recycled one. */
static rl_entry *find(ratelimit_t *r, const char *key, uint64_t now, bool create)
{
    uint64_t h = hash_of(r, key);
    rl_entry *victim = NULL;
    for (unsigned i = 0; i < RATELIMIT_PROBE; i++) {
        rl_entry *e = &r->slots[(h + i) % RATELIMIT_SLOTS];
        if (e->hash == h)
            return e;
        bool stale = e->hash == 0 || now >= e->window_start + r->window_s;
        if (stale && !victim)
            victim = e;
        else if (!victim && i == RATELIMIT_PROBE - 1)
            victim = e;
    }
    if (!create)
        return NULL;
    for (unsigned i = 0; !victim && i < RATELIMIT_PROBE; i++)
        victim = &r->slots[(h + i) % RATELIMIT_SLOTS];
    victim->hash = h;
    victim->window_start = now;
    victim->failures = 0;
    return victim;
}

bool ratelimit_blocked(ratelimit_t *r, const char *key, unsigned max_failures, uint64_t now_s,
                       unsigned *retry_after)
{
    rl_entry *e = find(r, key, now_s, false);
    if (!e || now_s >= e->window_start + r->window_s || e->failures < max_failures)
        return false;
    *retry_after = (unsigned)(e->window_start + r->window_s - now_s);
    if (*retry_after == 0)
        *retry_after = 1;
    return true;
}

void ratelimit_fail(ratelimit_t *r, const char *key, uint64_t now_s)
{
    rl_entry *e = find(r, key, now_s, true);
    if (now_s >= e->window_start + r->window_s) {
        e->window_start = now_s;
        e->failures = 0;
    }
    e->failures++;
}

void ratelimit_clear(ratelimit_t *r, const char *key)
{
    rl_entry *e = find(r, key, 0, false);
    if (e)
        memset(e, 0, sizeof(*e));
}
