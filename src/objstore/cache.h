/*
 * cache: an LRU map from object key to blob, bounded in entries and in bytes. Used by
 * objstore.c on the loop thread only (no locking). The cache holds one reference on each
 * blob it stores; lookups return a borrowed blob.
 */
#ifndef OGD_OBJSTORE_CACHE_H
#define OGD_OBJSTORE_CACHE_H

#include <stddef.h>

#include "objstore/objstore.h"

typedef struct objcache objcache_t;

/* max_entries 0 makes a cache that stores nothing. */
objcache_t *objcache_new(size_t max_entries, size_t max_bytes);
void objcache_free(objcache_t *c);
/* Borrowed blob, marked most recently used; NULL on a miss. */
const objstore_blob_t *objcache_get(objcache_t *c, const char *key);
/* Stores blob (takes a reference) unless it is larger than max_bytes; evicts LRU entries
 * until both bounds hold. Replaces an existing entry for key. */
void objcache_put(objcache_t *c, const char *key, const objstore_blob_t *blob);
void objcache_remove(objcache_t *c, const char *key);
/* Removes every key starting with prefix. */
void objcache_remove_prefix(objcache_t *c, const char *prefix);
void objcache_clear(objcache_t *c);
size_t objcache_entries(const objcache_t *c);
size_t objcache_bytes(const objcache_t *c);

/* A string-keyed chained hash map, shared by the cache and the in-flight table. */
typedef struct strmap_entry {
    char *key;
    void *value;
    struct strmap_entry *next;
} strmap_entry;

typedef struct strmap {
    strmap_entry **buckets;
    size_t nbuckets, count;
} strmap;

void strmap_init(strmap *m);
void strmap_free(strmap *m); /* frees entries and keys, not values */
void *strmap_get(const strmap *m, const char *key);
int strmap_put(strmap *m, const char *key, void *value); /* 0 or -ENOMEM */
void *strmap_remove(strmap *m, const char *key);

#endif
