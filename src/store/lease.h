/*
 * store/lease.h: the cluster's single-runner lock. Work that must run once per cluster
 * (the experiments refresh, the sweep of uncertain writes, database upkeep) runs only in
 * the process holding it (docs/deploy.md §3). On PostgreSQL it is a session advisory
 * lock held on a connection of its own: it ends when that connection does (the holder
 * died, its host went away, the server restarted), and another node's next try takes it.
 * On SQLite the database belongs to one node, whose jobs process already excludes others
 * with a file lock: the lease is always held.
 *
 * Blocking calls: for the jobs process, never a worker's loop.
 */
#ifndef OGD_STORE_LEASE_H
#define OGD_STORE_LEASE_H

#include <stddef.h>

typedef struct store_lease store_lease;

/* A lease on the database at url (nothing is connected yet). NULL when out of memory. */
store_lease *store_lease_new(const char *url);
/* Takes the lease, or checks that it still holds it: 1 held; 0 another process holds it;
 * a negative errno when the database cannot be reached (not held; err says why). */
int store_lease_hold(store_lease *l, char *err, size_t errlen);
/* Lets the lease go (closes its connection) and frees l. */
void store_lease_free(store_lease *l);

#endif
