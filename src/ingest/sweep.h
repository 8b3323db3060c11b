/*
 * sweep: deleting the objects of failed uploads that landed late (docs/design.md §6.5).
 *
 * An ingest notes every key whose PUT failed after it was sent (STORE_UNCERTAIN_NOTE):
 * the object store may still store it, under a key no record names. The jobs process
 * calls uncertain_sweep now and then. For each note old enough (noted at least `grace`
 * seconds before `now`, oldest first) it claims the note (STORE_UNCERTAIN_CLAIM: an
 * ingest that writes that key meanwhile renews the note, or, once claimed, leaves the key
 * alone), asks whether the record has that channel (STORE_CHANNEL_COUNT), and either
 * drops the note (the record refers to the object: it is live) or deletes the object and
 * then the note. A delete that fails keeps the note; the claim expires and a later sweep
 * tries again. The store is used synchronously (store_run_sync: the jobs process has no
 * loop of its own), the object store on `loop`, which the sweep runs until each delete
 * is done.
 */
#ifndef OGD_INGEST_SWEEP_H
#define OGD_INGEST_SWEEP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "objstore/objstore.h"
#include "store/store.h"

typedef struct uncertain_sweep_stats {
    size_t due;      /* notes old enough */
    size_t deleted;  /* objects deleted (or already absent), notes dropped */
    size_t live;     /* a record refers to the key: note dropped, object kept */
    size_t skipped;  /* claimed elsewhere or renewed by an ingest meanwhile */
    size_t failures; /* store or object store errors: the note stays */
} uncertain_sweep_stats;

/* At most `max` notes are looked at. Returns 0, or the store's error when the notes
 * cannot be listed. */
int uncertain_sweep(store_t *store, objstore_t *os, uv_loop_t *loop, int64_t now, int64_t grace,
                    size_t max, uncertain_sweep_stats *stats);

/* Whether any note is old enough (so that the caller opens the object store only then);
 * false also when the store cannot be read. */
bool uncertain_sweep_due(store_t *store, int64_t now, int64_t grace);

#endif
