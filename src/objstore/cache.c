/*
 * cache.c: see cache.h.
 *
 * Three intrusive string-keyed hash tables (chained, power-of-two slots, FNV-1a):
 * cached entries, registered flights, and keys with a put/delete in progress. Cached
 * entries are also on a doubly linked recency list (head = most recently used) that
 * eviction consumes from the tail. Prefix deletes in progress are a short linked list:
 * they are rare (DELETE /records) and checked only when a read ends.
 *
 * The node's write log (coherence.h) carries the other processes' writes: every lookup
 * first checks it (one atomic load when nothing was written) and drops the entries and
 * flights of keys written since; a read that ends checks the writes made since it began
 * before its bytes are stored. This cache's own writes go into the log when they end.
 */
#include "objstore/cache.h"

#include "objstore/coherence.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- intrusive hash table ---- */

typedef struct htable {
    objcache_node **slots;
    size_t nslots; /* 0 or a power of two */
    size_t count;
} htable;

static objcache_node *ht_find(const htable *t, const char *key)
{
    if (t->nslots == 0)
        return NULL;
    uint64_t h = coherence_hash(key);
    for (objcache_node *n = t->slots[h & (t->nslots - 1)]; n; n = n->next)
        if (n->hash == h && strcmp(n->key, key) == 0)
            return n;
    return NULL;
}

static int ht_grow(htable *t)
{
    size_t nslots = t->nslots ? t->nslots * 2 : 16;
    objcache_node **slots = calloc(nslots, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < t->nslots; i++) {
        objcache_node *n = t->slots[i];
        while (n) {
            objcache_node *next = n->next;
            size_t idx = n->hash & (nslots - 1);
            n->next = slots[idx];
            slots[idx] = n;
            n = next;
        }
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = nslots;
    return 0;
}

/* Links n (its key set, not in the table). 0 or -ENOMEM. */
static int ht_insert(htable *t, objcache_node *n)
{
    if (t->count + 1 > t->nslots) {
        int rc = ht_grow(t);
        if (rc != 0)
            return rc;
    }
    n->hash = coherence_hash(n->key);
    size_t idx = n->hash & (t->nslots - 1);
    n->next = t->slots[idx];
    t->slots[idx] = n;
    t->count++;
    return 0;
}

static void ht_remove(htable *t, objcache_node *n)
{
    objcache_node **pp = &t->slots[n->hash & (t->nslots - 1)];
    while (*pp && *pp != n)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = n->next;
        n->next = NULL;
        t->count--;
    }
}

static void ht_free(htable *t)
{
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

/* ---- the cache ---- */

typedef struct centry {
    objcache_node node;
    const objstore_blob_t *blob; /* one reference held */
    struct centry *prev, *next;  /* recency list */
    char key[];
} centry;

typedef struct wentry { /* a key with puts/deletes in progress */
    objcache_node node;
    size_t count;
    char key[];
} wentry;

typedef struct pentry { /* a prefix delete in progress */
    struct pentry *next;
    char prefix[];
} pentry;

struct objcache {
    htable entries, flights, writes;
    centry *head, *tail;
    size_t nbytes, max_entries, max_bytes;
    pentry *prefix_writes;
    coherence_cursor log; /* the node's writes applied so far */
};

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

objcache_t *objcache_new(size_t max_entries, size_t max_bytes)
{
    objcache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->max_entries = max_entries;
    c->max_bytes = max_bytes;
    coherence_cursor_now(&c->log);
    return c;
}

static void list_unlink(objcache_t *c, centry *e)
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

static void list_push_front(objcache_t *c, centry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static void entry_drop(objcache_t *c, centry *e)
{
    list_unlink(c, e);
    ht_remove(&c->entries, &e->node);
    c->nbytes -= e->blob->len;
    objstore_blob_unref(e->blob);
    free(e);
}

static void log_sync(objcache_t *c);

const objstore_blob_t *objcache_get(objcache_t *c, const char *key)
{
    log_sync(c);
    centry *e = (centry *)ht_find(&c->entries, key);
    if (!e)
        return NULL;
    list_unlink(c, e);
    list_push_front(c, e);
    return e->blob;
}

void objcache_remove(objcache_t *c, const char *key)
{
    centry *e = (centry *)ht_find(&c->entries, key);
    if (e)
        entry_drop(c, e);
}

bool objcache_put(objcache_t *c, const char *key, const objstore_blob_t *blob)
{
    if (c->max_entries == 0 || blob->len > c->max_bytes)
        return false;
    objcache_remove(c, key);
    while (c->tail &&
           (c->entries.count + 1 > c->max_entries || c->nbytes + blob->len > c->max_bytes))
        entry_drop(c, c->tail);
    size_t klen = strlen(key);
    centry *e = malloc(sizeof(*e) + klen + 1);
    if (!e)
        return false;
    memcpy(e->key, key, klen + 1);
    e->node.key = e->key;
    if (ht_insert(&c->entries, &e->node) != 0) {
        free(e);
        return false;
    }
    e->blob = objstore_blob_ref(blob);
    c->nbytes += blob->len;
    list_push_front(c, e);
    return true;
}

void objcache_remove_prefix(objcache_t *c, const char *prefix)
{
    centry *e = c->head;
    while (e) {
        centry *next = e->next;
        if (has_prefix(e->key, prefix))
            entry_drop(c, e);
        e = next;
    }
}

size_t objcache_entries(const objcache_t *c)
{
    return c->entries.count;
}

size_t objcache_bytes(const objcache_t *c)
{
    return c->nbytes;
}

/* ---- flights ---- */

objcache_flight *objcache_flight_find(objcache_t *c, const char *key)
{
    log_sync(c);
    return (objcache_flight *)ht_find(&c->flights, key);
}

int objcache_flight_begin(objcache_t *c, objcache_flight *f, const char *key)
{
    f->node.key = key;
    f->stale = false;
    coherence_cursor_now(&f->log);
    int rc = ht_insert(&c->flights, &f->node);
    f->registered = rc == 0;
    return rc;
}

void objcache_flight_detach(objcache_t *c, objcache_flight *f)
{
    if (f->registered) {
        ht_remove(&c->flights, &f->node);
        f->registered = false;
    }
}

/* Marks stale and unlinks every flight whose key is key (or starts with it). */
static void flights_stale(objcache_t *c, const char *key, bool is_prefix)
{
    if (!is_prefix) {
        objcache_flight *f = objcache_flight_find(c, key);
        if (f) {
            f->stale = true;
            objcache_flight_detach(c, f);
        }
        return;
    }
    for (size_t i = 0; i < c->flights.nslots; i++) {
        objcache_node *n = c->flights.slots[i];
        while (n) {
            objcache_node *next = n->next;
            if (key == NULL || has_prefix(n->key, key)) {
                objcache_flight *f = (objcache_flight *)n;
                f->stale = true;
                objcache_flight_detach(c, f);
            }
            n = next;
        }
    }
}

static bool write_pending(const objcache_t *c, const char *key)
{
    if (ht_find(&c->writes, key))
        return true;
    for (const pentry *p = c->prefix_writes; p; p = p->next)
        if (has_prefix(key, p->prefix))
            return true;
    return false;
}

typedef struct hash_match {
    uint64_t hash;
    bool seen;
} hash_match;

static void match_hash(uint64_t h, void *data)
{
    hash_match *m = data;
    if (h == m->hash)
        m->seen = true;
}

/* Whether another process of the node wrote key while f was reading it. */
static bool written_during(objcache_flight *f)
{
    hash_match m = {coherence_hash(f->node.key), false};
    return !coherence_read(&f->log, match_hash, &m) || m.seen;
}

bool objcache_flight_end(objcache_t *c, objcache_flight *f, const objstore_blob_t *blob)
{
    objcache_flight_detach(c, f);
    if (!blob || c->max_entries == 0 || f->stale || write_pending(c, f->node.key) ||
        written_during(f))
        return false;
    log_sync(c);
    return objcache_put(c, f->node.key, blob);
}

void objcache_clear(objcache_t *c)
{
    while (c->head)
        entry_drop(c, c->head);
    flights_stale(c, NULL, true);
}

/* Drops the entries and flights of the key(s) with hash h (a collision drops a neighbour
 * too, which costs only a read). */
static void drop_hash(uint64_t h, void *data)
{
    objcache_t *c = data;
    if (c->entries.nslots) {
        objcache_node *n = c->entries.slots[h & (c->entries.nslots - 1)];
        while (n) {
            objcache_node *next = n->next;
            if (n->hash == h)
                entry_drop(c, (centry *)n);
            n = next;
        }
    }
    if (c->flights.nslots) {
        objcache_node *n = c->flights.slots[h & (c->flights.nslots - 1)];
        while (n) {
            objcache_node *next = n->next;
            if (n->hash == h) {
                objcache_flight *f = (objcache_flight *)n;
                f->stale = true;
                objcache_flight_detach(c, f);
            }
            n = next;
        }
    }
}

/* Applies what the node's other processes wrote since the last look. */
static void log_sync(objcache_t *c)
{
    if (coherence_quiet(&c->log))
        return;
    if (!coherence_read(&c->log, drop_hash, c))
        objcache_clear(c);
}

/* ---- write barrier ---- */

static void invalidate(objcache_t *c, const char *key, bool is_prefix)
{
    if (is_prefix)
        objcache_remove_prefix(c, key);
    else
        objcache_remove(c, key);
    flights_stale(c, key, is_prefix);
}

int objcache_write_begin(objcache_t *c, const char *key, bool is_prefix)
{
    size_t klen = strlen(key);
    if (is_prefix) {
        pentry *p = malloc(sizeof(*p) + klen + 1);
        if (!p)
            return -ENOMEM;
        memcpy(p->prefix, key, klen + 1);
        p->next = c->prefix_writes;
        c->prefix_writes = p;
    } else {
        wentry *w = (wentry *)ht_find(&c->writes, key);
        if (w) {
            w->count++;
        } else {
            w = malloc(sizeof(*w) + klen + 1);
            if (!w)
                return -ENOMEM;
            memcpy(w->key, key, klen + 1);
            w->node.key = w->key;
            w->count = 1;
            if (ht_insert(&c->writes, &w->node) != 0) {
                free(w);
                return -ENOMEM;
            }
        }
    }
    invalidate(c, key, is_prefix);
    return 0;
}

void objcache_write_end(objcache_t *c, const char *key, bool is_prefix)
{
    if (is_prefix)
        coherence_publish_clear();
    else
        coherence_publish_key(key);
    if (is_prefix) {
        for (pentry **pp = &c->prefix_writes; *pp; pp = &(*pp)->next) {
            if (strcmp((*pp)->prefix, key) == 0) {
                pentry *p = *pp;
                *pp = p->next;
                free(p);
                break;
            }
        }
    } else {
        wentry *w = (wentry *)ht_find(&c->writes, key);
        if (w && --w->count == 0) {
            ht_remove(&c->writes, &w->node);
            free(w);
        }
    }
    invalidate(c, key, is_prefix);
}

void objcache_free(objcache_t *c)
{
    if (!c)
        return;
    while (c->head)
        entry_drop(c, c->head);
    for (size_t i = 0; i < c->writes.nslots; i++) {
        objcache_node *n = c->writes.slots[i];
        while (n) {
            objcache_node *next = n->next;
            free(n);
            n = next;
        }
    }
    while (c->prefix_writes) {
        pentry *p = c->prefix_writes;
        c->prefix_writes = p->next;
        free(p);
    }
    ht_free(&c->entries);
    ht_free(&c->flights);
    ht_free(&c->writes);
    free(c);
}
