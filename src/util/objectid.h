/*
 * objectid: MongoDB ObjectIds, the ids the reference gives sessions, favourite filters and
 * experiments, as 24 lowercase hex digits.
 *
 * Owns the per-process part of every id this process makes: 12 bytes are 4 big-endian
 * seconds since the epoch, 5 random bytes chosen once per process, and a 3-byte
 * big-endian counter that starts at a random value and goes up by one per id (modulo
 * 2^24), as MongoDB's drivers make them. Ids one process makes therefore increase: in the
 * same second by the counter, across seconds by the timestamp (unless the counter wraps
 * within a second, once per 16M ids, or the clock steps back). Ids of different processes
 * in the same second are not ordered, so lists that must come back in creation order
 * order by the store's insertion order, not by id (store/sqlite.c, store/pg.c).
 *
 * Workers are forked from the master, so the random part belongs to a process id: the
 * first id made in a process whose getpid() differs from the one that chose it picks new
 * random bytes and a new counter start. Thread-safe and lock-free (atomics), so ids may
 * be made on pool threads; a fork in the middle of a call cannot leave a lock held.
 */
#ifndef OGD_UTIL_OBJECTID_H
#define OGD_UTIL_OBJECTID_H

#include <stdbool.h>

#define OBJECTID_LEN 24 /* hex digits, without the terminator */

/* A new id in out: 24 lowercase hex digits and a NUL. */
void objectid_new(char out[OBJECTID_LEN + 1]);

/* Whether s is an ObjectId's text: exactly 24 hex digits, either case (what the
 * reference's bson ObjectId(str) accepts). NULL is not. */
bool objectid_valid(const char *s);

#endif
