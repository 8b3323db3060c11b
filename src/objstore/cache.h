/*
 * cache: the per-objstore (so per-worker) memory of object bytes, and what keeps it
 * coherent. Used by objstore.c on the loop thread only; no locking.
 *
 * It owns three things:
 *   - the LRU: key -> blob, bounded by an entry count (echo.cache_maxsize; 0 stores
 *     nothing) and a byte total. Storing evicts least-recently-used entries until both
 *     bounds hold; a blob larger than the byte bound is never stored. The cache holds one
 *     reference on each blob it stores; lookups return it borrowed.
 *   - the single-flight table: key -> the back-end read in flight for it, so concurrent
 *     misses of one key share one read. A flight is an objcache_flight embedded in its
 *     owner's struct (objstore.c's op); the table only links it.
 *   - the write barrier: puts and deletes (of a key or a prefix) in progress. A read that
 *     overlapped a write of its key may return either version, so its result is delivered
 *     but not cached: writes mark such flights stale and unlink them from the table (new
 *     readers start a fresh read), and a flight ending while a write of its key is still in
 *     progress is not cached either.
 *   - the node's other processes: their finished writes arrive through the shared write
 *     log (coherence.h) and are applied as if they were this cache's own, before every
 *     lookup and before a finished read is stored.
 */
#ifndef OGD_OBJSTORE_CACHE_H
#define OGD_OBJSTORE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "objstore/coherence.h"
#include "objstore/objstore.h"

typedef struct objcache objcache_t;

/* A node of the cache's intrusive hash tables. key is borrowed from the node's owner. */
typedef struct objcache_node {
    struct objcache_node *next;
    uint64_t hash;
    const char *key;
} objcache_node;

/* A back-end read, embedded in its owner. Zero it before objcache_flight_begin. */
typedef struct objcache_flight {
    objcache_node node;   /** private; node.key is the flight's key (borrowed) */
    bool registered;      /** in the table: new readers of the key join this flight */
    bool stale;           /** overlapped a write or a clear: its result must not be cached */
    coherence_cursor log; /** private: the node's write log when the read began */
} objcache_flight;

/* max_entries 0 makes a cache that stores nothing (flights and barriers still work).
 * NULL when out of memory. */
objcache_t *objcache_new(size_t max_entries, size_t max_bytes);
/* Frees the cache and drops its blob references. No flight may be registered. */
void objcache_free(objcache_t *c);

/* The cached blob of key (borrowed; marked most recently used), or NULL. */
const objstore_blob_t *objcache_get(objcache_t *c, const char *key);
/* Stores blob under key (takes a reference), replacing an existing entry and evicting LRU
 * entries until both bounds hold. Returns false (nothing stored) when the cache is
 * disabled, the blob is larger than the byte bound, or memory ran out. */
bool objcache_put(objcache_t *c, const char *key, const objstore_blob_t *blob);
void objcache_remove(objcache_t *c, const char *key);
/* Removes every entry whose key starts with prefix. */
void objcache_remove_prefix(objcache_t *c, const char *prefix);
/* Removes every entry and marks every flight stale (and unlinks it). */
void objcache_clear(objcache_t *c);
size_t objcache_entries(const objcache_t *c);
size_t objcache_bytes(const objcache_t *c);

/* ---- single-flight ---- */

/* The registered flight reading key, or NULL. */
objcache_flight *objcache_flight_find(objcache_t *c, const char *key);
/* Registers f (zeroed, not registered) as the read of key; key is borrowed and must live
 * until objcache_flight_end. No flight may be registered for key. 0 or -ENOMEM. */
int objcache_flight_begin(objcache_t *c, objcache_flight *f, const char *key);
/* Unlinks f from the table (new readers start their own read); it may still be cached. */
void objcache_flight_detach(objcache_t *c, objcache_flight *f);
/* Ends f. blob (borrowed; NULL for a failed read) is stored unless f is stale or a write
 * of its key is in progress. Returns whether it was stored. */
bool objcache_flight_end(objcache_t *c, objcache_flight *f, const objstore_blob_t *blob);

/* ---- write barrier ---- */

/* A put/delete of key (is_prefix false) or a delete of every key under prefix (true) is
 * starting: drops the cached entries it touches and marks overlapping flights stale.
 * 0 or -ENOMEM (then nothing is recorded; do not call objcache_write_end). */
int objcache_write_begin(objcache_t *c, const char *key, bool is_prefix);
/* It finished (successfully or not): drops the touched entries and stale flights again. */
void objcache_write_end(objcache_t *c, const char *key, bool is_prefix);

#endif
