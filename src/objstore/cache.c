/*
 * cache.c: see cache.h. Entries live in a strmap for lookup and in a doubly linked list
 * for recency (head = most recent).
 */
#include "objstore/cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

void strmap_init(strmap *m)
{
    m->buckets = NULL;
    m->nbuckets = 0;
    m->count = 0;
}

void strmap_free(strmap *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        strmap_entry *e = m->buckets[i];
        while (e) {
            strmap_entry *next = e->next;
            free(e->key);
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    strmap_init(m);
}

void *strmap_get(const strmap *m, const char *key)
{
    if (!m->nbuckets)
        return NULL;
    for (strmap_entry *e = m->buckets[hash_str(key) & (m->nbuckets - 1)]; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e->value;
    return NULL;
}

static int grow(strmap *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 64;
    strmap_entry **b = calloc(n, sizeof(*b));
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < m->nbuckets; i++) {
        strmap_entry *e = m->buckets[i];
        while (e) {
            strmap_entry *next = e->next;
            size_t idx = hash_str(e->key) & (n - 1);
            e->next = b[idx];
            b[idx] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
    return 0;
}

int strmap_put(strmap *m, const char *key, void *value)
{
    if (m->count + 1 > m->nbuckets && grow(m) != 0)
        return -ENOMEM;
    size_t idx = hash_str(key) & (m->nbuckets - 1);
    for (strmap_entry *e = m->buckets[idx]; e; e = e->next) {
        if (strcmp(e->key, key) == 0) {
            e->value = value;
            return 0;
        }
    }
    strmap_entry *e = malloc(sizeof(*e));
    char *k = strdup(key);
    if (!e || !k) {
        free(e);
        free(k);
        return -ENOMEM;
    }
    e->key = k;
    e->value = value;
    e->next = m->buckets[idx];
    m->buckets[idx] = e;
    m->count++;
    return 0;
}

void *strmap_remove(strmap *m, const char *key)
{
    if (!m->nbuckets)
        return NULL;
    strmap_entry **pp = &m->buckets[hash_str(key) & (m->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) == 0) {
            strmap_entry *e = *pp;
            void *v = e->value;
            *pp = e->next;
            free(e->key);
            free(e);
            m->count--;
            return v;
        }
    }
    return NULL;
}

typedef struct centry {
    char *key;
    const objstore_blob_t *blob;
    struct centry *prev, *next;
} centry;

struct objcache {
    strmap map;
    centry *head, *tail;
    size_t entries, bytes, max_entries, max_bytes;
};

objcache_t *objcache_new(size_t max_entries, size_t max_bytes)
{
    objcache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    strmap_init(&c->map);
    c->max_entries = max_entries;
    c->max_bytes = max_bytes;
    return c;
}

static void unlink_entry(objcache_t *c, centry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void push_front(objcache_t *c, centry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static void drop(objcache_t *c, centry *e)
{
    unlink_entry(c, e);
    strmap_remove(&c->map, e->key);
    c->entries--;
    c->bytes -= e->blob->len;
    objstore_blob_unref(e->blob);
    free(e->key);
    free(e);
}

const objstore_blob_t *objcache_get(objcache_t *c, const char *key)
{
    centry *e = strmap_get(&c->map, key);
    if (!e)
        return NULL;
    unlink_entry(c, e);
    push_front(c, e);
    return e->blob;
}

void objcache_remove(objcache_t *c, const char *key)
{
    centry *e = strmap_get(&c->map, key);
    if (e)
        drop(c, e);
}

void objcache_put(objcache_t *c, const char *key, const objstore_blob_t *blob)
{
    if (c->max_entries == 0 || blob->len > c->max_bytes)
        return;
    objcache_remove(c, key);
    while (c->tail && (c->entries + 1 > c->max_entries || c->bytes + blob->len > c->max_bytes))
        drop(c, c->tail);
    centry *e = calloc(1, sizeof(*e));
    if (!e)
        return;
    e->key = strdup(key);
    if (!e->key || strmap_put(&c->map, key, e) != 0) {
        free(e->key);
        free(e);
        return;
    }
    objstore_blob_ref(blob);
    e->blob = blob;
    push_front(c, e);
    c->entries++;
    c->bytes += blob->len;
}

void objcache_remove_prefix(objcache_t *c, const char *prefix)
{
    size_t n = strlen(prefix);
    centry *e = c->head;
    while (e) {
        centry *next = e->next;
        if (strncmp(e->key, prefix, n) == 0)
            drop(c, e);
        e = next;
    }
}

void objcache_clear(objcache_t *c)
{
    while (c->head)
        drop(c, c->head);
}

void objcache_free(objcache_t *c)
{
    if (!c)
        return;
    objcache_clear(c);
    strmap_free(&c->map);
    free(c);
}

size_t objcache_entries(const objcache_t *c)
{
    return c->entries;
}

size_t objcache_bytes(const objcache_t *c)
{
    return c->bytes;
}
