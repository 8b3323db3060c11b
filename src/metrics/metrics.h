/*
 * metrics: the counters behind GET /metrics (Prometheus text format), shared by every
 * worker of one master.
 *
 * The master maps one shared, anonymous memory region before it forks (metrics_init);
 * every worker inherits it. Counters there are process-shared atomics that only grow:
 * HTTP requests by route and status class with a latency histogram, and the object
 * store's totals (calls, retries, bytes, cache use), which each worker adds as deltas of
 * its own objstore_stats on every heartbeat. Gauges (transfers on the wire, queued,
 * cache bytes) are kept per worker slot and summed over the live ones; the master clears
 * a slot's gauges when it reaps or replaces its worker. So a scrape of any worker sees
 * the whole server, and the totals stay monotonic across worker restarts.
 *
 * Without metrics_init (CLI tools, unit tests) every call is a no-op and the render
 * says that no counters are kept.
 */
#ifndef OGD_METRICS_METRICS_H
#define OGD_METRICS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http.h"
#include "objstore/objstore.h"
#include "util/buf.h"

/* Routes beyond this many (in table order) are counted under route="other". */
#define METRICS_MAX_ROUTES 192

/* Master, before forking: maps the region for nslots worker slots. 0 or -errno. */
int metrics_init(size_t nslots);
/* Master: clears slot's gauges (its worker is gone or about to be replaced). */
void metrics_slot_reset(size_t slot);
/* Worker, first thing after the fork: the slot its gauges go to. */
void metrics_worker_attach(size_t slot);

/* Worker: one finished request. route_index: its index in the route table, or -1 when
 * no route matched. aborted: the client went away before the answer. */
void metrics_record_request(int route_index, int status, bool aborted, uint64_t duration_ns);
/* Worker: publishes the object store's counters (adds what grew since the last call)
 * and sets this slot's gauges. */
void metrics_publish_objstore(const objstore_stats *st);
/* Worker: the thread pool's backlog, the heavy requests waiting their user's turn, the
 * count shed so far, and the connections dropped to make room and refused so far
 * (http_server_conn_stats); published with the next metrics_publish_objstore. */
void metrics_set_runtime(size_t pool_waiting, size_t heavy_waiting, uint64_t shed,
                         uint64_t conns_dropped, uint64_t conns_refused);

/* Appends the Prometheus text exposition to out. */
int metrics_render(buf_t *out, const http_route *routes, size_t nroutes);

#endif
