/*
 * ratelimit: counts failed login attempts per key (a user name, a client address) in a
 * fixed window and says when a key has used up its allowance.
 *
 * One table per worker, fixed size (no growth from input): keys are hashed with a keyed
 * SipHash (libsodium crypto_shorthash, random key per table), so a client cannot choose
 * keys that collide; when the probe run is full the stalest entry is reused. Loop-thread
 * only (no locking).
 */
#ifndef OGD_AUTH_RATELIMIT_H
#define OGD_AUTH_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct ratelimit ratelimit_t;

/* Failures count within a window of window_s seconds from the first one. */
ratelimit_t *ratelimit_new(unsigned window_s);
void ratelimit_free(ratelimit_t *r);
/* True when key has max_failures failures in its window: it may not try until the window
 * ends (*retry_after seconds). */
bool ratelimit_blocked(ratelimit_t *r, const char *key, unsigned max_failures, uint64_t now_s,
                       unsigned *retry_after);
void ratelimit_fail(ratelimit_t *r, const char *key, uint64_t now_s);
void ratelimit_clear(ratelimit_t *r, const char *key);

#endif
