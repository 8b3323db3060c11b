/*
 * experiments: one refresh of the experiments table from the facility's systems
 * (docs/experiments.md §3), asynchronous on a libuv loop. Used by POST /experiments on a
 * worker's loop and by the jobs process on its own loop (src/runtime/jobs.c).
 *
 * A run: read collection_last_updated (window start; else
 * experiments.first_scheduler_contact_start_date) -> GET the WSDL -> log in to the user
 * office -> getExperimentDatesForInstrument per configured instrument -> getExperiments
 * for the (RB number, instrument) pairs -> select the parts (scheduler.h) -> store each
 * experiment unless an identical one exists -> stamp collection_last_updated (UTC now).
 * Every HTTP call has a timeout and a body cap; nothing blocks the loop. Credentials and
 * the session id are never logged.
 */
#ifndef OGD_EXPERIMENTS_EXPERIMENTS_H
#define OGD_EXPERIMENTS_EXPERIMENTS_H

#include <jansson.h>
#include <time.h>
#include <uv.h>

#include "config/config.h"
#include "store/store.h"
#include "util/error.h"

/* The failure kinds a run reports besides store statuses (STORE_EDB, STORE_EUNAVAILABLE). */
/* (util/error.h codes) the user office / Scheduler failed: err is the client text (HTTP
 * 500); an experiment could not be stored as given (400). */
#define EXPERIMENTS_EUPSTREAM OGD_EUPSTREAM
#define EXPERIMENTS_EMODEL OGD_EMODEL

/* status 0: results is an array of strings, one per experiment found: the new _id, or
 * "Updated <_id>" when an identical document existed. Otherwise err says why. results and
 * err are borrowed for the call. */
typedef void (*experiments_cb)(int status, const char *err, json_t *results, void *data);

/* Per-call limits: each HTTP exchange gets timeout_ms (0 = experiments.request_timeout). */
typedef struct experiments_opts {
    long timeout_ms;
} experiments_opts;

/* Starts a run; window_end is the end of the search window (the next scheduled run).
 * cfg and store are borrowed until the callback. 0, or a negative errno (no callback). */
int experiments_refresh(uv_loop_t *loop, store_t *store, const ogd_experiments_config *cfg,
                        time_t window_end, const experiments_opts *opts, experiments_cb cb,
                        void *data);

#endif
