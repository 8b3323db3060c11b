/*
 * error: the one error space of ogd. Every module's operations report 0 or a negative
 * value: a negated errno (-ENOENT, -ECANCELED, -ETIMEDOUT, ...) or one of ogd's own codes
 * below, which all live in this one enum so that no two modules' codes collide (the
 * store, the object store, the HDF5 helper, the experiments client and auth use them;
 * their headers keep their historical names as aliases). ogd_strerror names any code;
 * ogd_unavailable says whether a code means "a back end could not be reached or did not
 * answer in time", which clients get as 503 with Retry-After (never as "not found"). The
 * HTTP mapping itself is api_error_answer (src/api/api.h), the only one.
 */
#ifndef OGD_UTIL_ERROR_H
#define OGD_UTIL_ERROR_H

#include <stdbool.h>

enum ogd_error {
    /* the store (metadata database) */
    OGD_EBADQUERY = -10001,       /* the query is not valid: the op's err is the client message */
    OGD_EDB = -10002,             /* the database failed: the op's err is a log message */
    OGD_EDB_UNAVAILABLE = -10003, /* the database cannot be reached */
    /* the object store */
    OGD_EOBJ_UNAVAILABLE = -10101, /* the object store answered 5xx/429 on every try, or the
                                      read's total wait (echo.max_read_wait) ran out */
    /* the HDF5 helper (ingest/parse_proc.h) */
    OGD_EHDF5_NOT_HDF5 = -10201,  /* the bytes are not HDF5 */
    OGD_EHDF5_TOO_LARGE = -10202, /* the description passed the output cap */
    OGD_EHDF5_CRASHED = -10203,   /* the helper died or failed otherwise */
    OGD_EHDF5_TIMEOUT = -10204,   /* the helper ran past its time limit */
    /* the experiments client (experiments/experiments.h) */
    OGD_EUPSTREAM = -10301, /* the user office / Scheduler failed */
    OGD_EMODEL = -10302,    /* an experiment could not be stored as given */
};

/* A short text for any code (ogd's own or a negated errno); never NULL. */
const char *ogd_strerror(int err);
/* Whether err means a back end that could not be reached or did not answer in time:
 * OGD_EDB_UNAVAILABLE, OGD_EOBJ_UNAVAILABLE, -ETIMEDOUT, -ECONNREFUSED, -ECONNRESET,
 * -EHOSTUNREACH, -ENETUNREACH, -ECONNABORTED, -ESHUTDOWN (a store that is closing). */
bool ogd_unavailable(int err);

#endif
