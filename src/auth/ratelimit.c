/*
 * ratelimit.c: see ratelimit.h. Open addressing over RATELIMIT_SLOTS entries with a
 * probe run of RATELIMIT_PROBE. The public calls take the table's lock when it is shared.
 */
#include "auth/ratelimit.h"

#include "util/pshared.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define RATELIMIT_SLOTS 8192
#define RATELIMIT_PROBE 8

typedef struct {
    uint64_t hash; /* 0 = free */
    uint64_t window_start;
    unsigned failures;
} rl_entry;

struct ratelimit {
    bool shared;          /* in a MAP_SHARED mapping, guarded by lock */
    pthread_mutex_t lock; /* process-shared, robust (shared tables only) */
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

static ratelimit_t *shared_table;

int ratelimit_shared_init(unsigned window_s)
{
    if (sodium_init() < 0)
        return -EIO;
    void *p =
        mmap(NULL, sizeof(ratelimit_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    ratelimit_t *r = p;
    memset(r, 0, sizeof(*r));
    int rc = pshared_mutex_init(&r->lock);
    if (rc != 0) {
        munmap(p, sizeof(*r));
        return -rc;
    }
    r->shared = true;
    r->window_s = window_s;
    crypto_shorthash_keygen(r->key);
    shared_table = r;
    return 0;
}

ratelimit_t *ratelimit_shared(void)
{
    return shared_table;
}

void ratelimit_free(ratelimit_t *r)
{
    if (!r)
        return;
    if (r->shared) {
        if (r == shared_table)
            shared_table = NULL;
        munmap(r, sizeof(*r));
    } else {
        free(r);
    }
}

static void lock(ratelimit_t *r)
{
    if (r->shared)
        pshared_mutex_lock(&r->lock); /* a worker died holding it: carry on */
}

static void unlock(ratelimit_t *r)
{
    if (r->shared)
        pthread_mutex_unlock(&r->lock);
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
    lock(r);
    rl_entry *e = find(r, key, now_s, false);
    bool blocked = e && now_s < e->window_start + r->window_s && e->failures >= max_failures;
    if (blocked) {
        *retry_after = (unsigned)(e->window_start + r->window_s - now_s);
        if (*retry_after == 0)
            *retry_after = 1;
    }
    unlock(r);
    return blocked;
}

void ratelimit_fail(ratelimit_t *r, const char *key, uint64_t now_s)
{
    lock(r);
    rl_entry *e = find(r, key, now_s, true);
    if (now_s >= e->window_start + r->window_s) {
        e->window_start = now_s;
        e->failures = 0;
    }
    e->failures++;
    unlock(r);
}

void ratelimit_clear(ratelimit_t *r, const char *key)
{
    lock(r);
    rl_entry *e = find(r, key, 0, false);
    if (e)
        memset(e, 0, sizeof(*e));
    unlock(r);
}
