/*
 * ratelimit: counts failed login attempts per key (a user name, a client address) in a
 * fixed window and says when a key has used up its allowance.
 *
 * Fixed size (no growth from input): keys are hashed with a keyed SipHash (libsodium
 * crypto_shorthash, random key per table), so a client cannot choose keys that collide;
 * when the probe run is full the stalest entry is reused.
 *
 * A private table (ratelimit_new) is for one thread. The shared table
 * (ratelimit_shared_init, made by the master before it forks) lives in a MAP_SHARED
 * mapping that every worker inherits, so all workers of a server count together; it is
 * guarded by a process-shared *robust* mutex, so a worker that dies holding it cannot
 * wedge the others (the next locker takes it over; a torn entry costs one count).
 */
#ifndef OGD_AUTH_RATELIMIT_H
#define OGD_AUTH_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct ratelimit ratelimit_t;

/* Failures count within a window of window_s seconds from the first one. */
ratelimit_t *ratelimit_new(unsigned window_s);
/* Frees a private table; a shared one is only unmapped in this process. */
void ratelimit_free(ratelimit_t *r);
/* Makes the process-wide shared table (call once, before fork). 0 or -errno. */
int ratelimit_shared_init(unsigned window_s);
/* The shared table made by ratelimit_shared_init in this process or a parent, or NULL. */
ratelimit_t *ratelimit_shared(void);
/* True when key has max_failures failures in its window: it may not try until the window
 * ends (*retry_after seconds). */
bool ratelimit_blocked(ratelimit_t *r, const char *key, unsigned max_failures, uint64_t now_s,
                       unsigned *retry_after);
void ratelimit_fail(ratelimit_t *r, const char *key, uint64_t now_s);
void ratelimit_clear(ratelimit_t *r, const char *key);

#endif
