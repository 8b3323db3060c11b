/*
 * coherence.c: the node's write log (see coherence.h). A slot holds a hash and the
 * sequence number it was written for (its tag, the slot's index in the log + 1); a reader
 * reads tag, hash, tag again and takes the hash only when both tags are the one it
 * expects, so a slot overwritten under it (the log wrapped) reads as an overflow.
 */
#include "objstore/coherence.h"

#include "util/pshared.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

typedef struct slot {
    _Atomic uint64_t tag;
    _Atomic uint64_t hash;
} slot;

typedef struct region {
    pthread_mutex_t lock;  /* appenders only */
    _Atomic uint64_t head; /* hashes appended */
    _Atomic uint64_t clears;
    slot slots[COHERENCE_LOG_SLOTS];
} region;

static region *shared;

int coherence_init(void)
{
    if (shared)
        return 0;
    void *p = mmap(NULL, sizeof(region), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    region *r = p; /* zero-filled: head 0, clears 0, every tag 0 */
    int rc = pshared_mutex_init(&r->lock);
    if (rc != 0) {
        munmap(p, sizeof(region));
        return -rc;
    }
    shared = r;
    return 0;
}

void coherence_publish_key(const char *key)
{
    if (!shared)
        return;
    uint64_t h = coherence_hash(key);
    pshared_mutex_lock(&shared->lock); /* a dead holder's append never became visible */
    uint64_t n = atomic_load_explicit(&shared->head, memory_order_relaxed);
    slot *s = &shared->slots[n % COHERENCE_LOG_SLOTS];
    /* tag 0 while the hash changes, so a reader of the old entry sees the change */
    atomic_store_explicit(&s->tag, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&s->hash, h, memory_order_relaxed);
    atomic_store_explicit(&s->tag, n + 1, memory_order_release);
    atomic_store_explicit(&shared->head, n + 1, memory_order_release);
    pthread_mutex_unlock(&shared->lock);
}

void coherence_publish_clear(void)
{
    if (shared)
        atomic_fetch_add_explicit(&shared->clears, 1, memory_order_acq_rel);
}

void coherence_cursor_now(coherence_cursor *c)
{
    if (!shared) {
        *c = (coherence_cursor){0};
        return;
    }
    c->clears = atomic_load_explicit(&shared->clears, memory_order_acquire);
    c->at = atomic_load_explicit(&shared->head, memory_order_acquire);
}

bool coherence_quiet(const coherence_cursor *c)
{
    return !shared || (atomic_load_explicit(&shared->head, memory_order_acquire) == c->at &&
                       atomic_load_explicit(&shared->clears, memory_order_acquire) == c->clears);
}

bool coherence_read(coherence_cursor *c, void (*fn)(uint64_t hash, void *data), void *data)
{
    if (!shared)
        return true;
    uint64_t clears = atomic_load_explicit(&shared->clears, memory_order_acquire);
    uint64_t head = atomic_load_explicit(&shared->head, memory_order_acquire);
    bool whole = clears == c->clears && head - c->at <= COHERENCE_LOG_SLOTS;
    for (uint64_t i = c->at; whole && i < head; i++) {
        slot *s = &shared->slots[i % COHERENCE_LOG_SLOTS];
        uint64_t t1 = atomic_load_explicit(&s->tag, memory_order_acquire);
        uint64_t h = atomic_load_explicit(&s->hash, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        uint64_t t2 = atomic_load_explicit(&s->tag, memory_order_relaxed);
        if (t1 != i + 1 || t2 != i + 1)
            whole = false; /* overwritten: the log wrapped past this reader */
        else
            fn(h, data);
    }
    c->at = head;
    c->clears = clears;
    return whole;
}
