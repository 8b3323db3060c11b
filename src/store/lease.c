/*
 * lease.c: see lease.h. The lock's key is a constant of ogd ("ogd-jobs" as eight bytes), so
 * every node of a cluster contends for the same one and nothing else in the database is
 * likely to use it.
 */
#include "store/lease.h"

#include "store/store.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEASE_KEY "8027495007033188979" /* the bytes of "ogd-jobs" as a big-endian int64 */

struct store_lease {
    char *url;
    bool pg;
    PGconn *conn;
    bool held;
};

store_lease *store_lease_new(const char *url)
{
    store_lease *l = calloc(1, sizeof *l);
    if (!l || !(l->url = strdup(url))) {
        free(l);
        return NULL;
    }
    l->pg = store_url_is_postgresql(url);
    return l;
}

static void drop(store_lease *l)
{
    if (l->conn)
        PQfinish(l->conn);
    l->conn = NULL;
    l->held = false;
}

/* One statement with one boolean answer: 1 true, 0 false, -EIO (err set). */
static int ask(store_lease *l, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(l->conn, sql);
    int rc;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        snprintf(err, errlen, "%s", PQerrorMessage(l->conn));
        rc = -EIO;
    } else {
        rc = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    }
    PQclear(r);
    return rc;
}

int store_lease_hold(store_lease *l, char *err, size_t errlen)
{
    if (!l->pg)
        return 1;
    if (l->conn && PQstatus(l->conn) != CONNECTION_OK)
        drop(l);
    if (!l->conn) {
        l->conn = PQconnectdb(l->url);
        if (PQstatus(l->conn) != CONNECTION_OK) {
            snprintf(err, errlen, "%s", PQerrorMessage(l->conn));
            drop(l);
            return -ECONNREFUSED;
        }
    }
    /* held: the session still exists (a lost connection loses the lock with it) and
     * still has it; not held: one try */
    int rc = ask(l,
                 l->held ? "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND "
                           "pid = pg_backend_pid() AND granted AND objsubid = 1 AND "
                           "((classid::bigint << 32) | objid::bigint) = " LEASE_KEY
                         : "SELECT pg_try_advisory_lock(" LEASE_KEY ")",
                 err, errlen);
    if (rc < 0) {
        drop(l);
        return rc;
    }
    l->held = rc == 1;
    return rc;
}

void store_lease_free(store_lease *l)
{
    if (!l)
        return;
    drop(l);
    free(l->url);
    free(l);
}
