/*
 * coherence: what the processes of one node (its workers and its jobs process) tell each
 * other about the objects they write, so that no worker's cache serves an object another
 * process has deleted or replaced once that write has answered (docs/deploy.md §2).
 *
 * A log in memory shared by the node's processes (mapped by the master before it forks):
 * every finished put or delete of a key appends the key's 64-bit hash, every finished
 * prefix delete bumps a "clear" count. Appends take a process-shared robust mutex (a
 * writer killed mid-append leaves the log usable); readers take nothing: a cache compares
 * the log's head with its cursor (one atomic load per lookup), and only when it moved
 * reads the new hashes and drops its entries of those keys. A reader that fell more than
 * the log's length behind, or sees a clear, drops everything. In a process that did not
 * map the log (the CLI, unit tests) publishing does nothing and the log never moves.
 */
#ifndef OGD_OBJSTORE_COHERENCE_H
#define OGD_OBJSTORE_COHERENCE_H

#include <stdbool.h>
#include <stdint.h>

/* Hashes the log holds: appends past this many overwrite the oldest. */
#define COHERENCE_LOG_SLOTS 65536

/* Maps the node's log (shared with the processes forked after it). 0 or -errno. */
int coherence_init(void);

/* The hash the log keeps of a key (64-bit FNV-1a; the object cache's hash too). */
static inline uint64_t coherence_hash(const char *key)
{
    uint64_t h = 1469598103934665603ull;
    for (; *key; key++) {
        h ^= (unsigned char)*key;
        h *= 1099511628211ull;
    }
    return h;
}

/* A put or delete of key has finished (whatever its outcome). */
void coherence_publish_key(const char *key);
/* A delete of every key under a prefix has finished. */
void coherence_publish_clear(void);

/* Where a reader stands in the log. */
typedef struct coherence_cursor {
    uint64_t at;     /** hashes read */
    uint64_t clears; /** clears seen */
} coherence_cursor;

/* The log as it stands now (a new reader, or the start of a read of the back end). */
void coherence_cursor_now(coherence_cursor *c);
/* True when nothing was published since c (the lookup's fast path). */
bool coherence_quiet(const coherence_cursor *c);
/* Reads what was published since c and moves c to now: calls fn for each key hash, in
 * order. false when that cannot be known key by key (a clear, or more appends than the
 * log holds): the caller must then treat every key as written. */
bool coherence_read(coherence_cursor *c, void (*fn)(uint64_t hash, void *data), void *data);

#endif
