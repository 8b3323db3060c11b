/*
 * metrics.c: the shared counter region and its Prometheus rendering (see metrics.h).
 */
#include "metrics/metrics.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#define NCLASS 5 /* 1xx .. 5xx */
static const double bucket_le[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKET (sizeof(bucket_le) / sizeof(bucket_le[0]))
#define NROUTE (METRICS_MAX_ROUTES + 2) /* + "other" + unmatched */

typedef struct route_counters {
    _Atomic uint64_t by_class[NCLASS];
    _Atomic uint64_t le[NBUCKET]; /* non-cumulative; +Inf is the total */
    _Atomic uint64_t duration_us;
    _Atomic uint64_t aborted;
} route_counters;

/* The object store totals, in the order of the names below. */
enum {
    OS_GETS,
    OS_HITS,
    OS_MISSES,
    OS_SHARED,
    OS_BYTES_READ,
    OS_BYTES_WRITTEN,
    OS_PUTS,
    OS_DELETES,
    OS_ERRORS,
    OS_CANCELED,
    OS_CALLS,
    OS_RETRIES,
    OS_RETRIES_DENIED,
    OS_SHED,
    OS_CONNS_DROPPED,
    OS_CONNS_REFUSED,
    OS_NCOUNTERS
};

static const struct {
    const char *name, *help;
} os_counter[OS_NCOUNTERS] = {
    {"ogd_objstore_gets_total", "Object reads asked for."},
    {"ogd_objstore_cache_hits_total", "Object reads answered from the worker's cache."},
    {"ogd_objstore_cache_misses_total", "Object reads that started a back-end read."},
    {"ogd_objstore_shared_reads_total", "Object reads that joined a read already in flight."},
    {"ogd_objstore_read_bytes_total", "Bytes read from the object store."},
    {"ogd_objstore_written_bytes_total", "Bytes written to the object store."},
    {"ogd_objstore_puts_total", "Object writes."},
    {"ogd_objstore_deletes_total", "Object and prefix deletes."},
    {"ogd_objstore_errors_total", "Object-store operations that failed."},
    {"ogd_objstore_canceled_total", "Object-store operations cancelled."},
    {"ogd_s3_calls_total", "HTTP exchanges with the S3 server, retries included."},
    {"ogd_s3_retries_total", "S3 exchanges repeated after a retryable failure."},
    {"ogd_s3_retries_denied_total", "Retryable S3 failures not retried (retry budget spent)."},
    {"ogd_http_requests_shed_total",
     "Expensive requests answered 503: the thread pool's backlog was over "
     "server.max_pool_waiting."},
    {"ogd_http_connections_dropped_total",
     "Idle or unfinished connections closed to make room for new ones (server."
     "worker_connections or max_connections_per_client reached)."},
    {"ogd_http_connections_refused_total",
     "New connections answered 503: their worker or client was at its connection cap and "
     "none of its connections could be dropped."},
};

enum {
    G_TRANSFERS,
    G_QUEUED,
    G_IN_FLIGHT,
    G_CACHE_BYTES,
    G_CACHE_ENTRIES,
    G_CONNECTIONS_MAX,
    G_POOL_WAITING,
    G_HEAVY_WAITING,
    NG
};

static const struct {
    const char *name, *help;
} gauge[NG] = {
    {"ogd_s3_transfers", "S3 exchanges on the wire now."},
    {"ogd_s3_queued", "S3 exchanges waiting for a connection now."},
    {"ogd_objstore_in_flight", "Object-store operations running now."},
    {"ogd_objstore_cache_bytes", "Bytes in the workers' object caches now."},
    {"ogd_objstore_cache_entries", "Objects in the workers' caches now."},
    {"ogd_s3_connections_max", "The S3 connection cap, summed over the workers."},
    {"ogd_pool_waiting", "Thread-pool items waiting for a thread now, summed over the workers."},
    {"ogd_heavy_requests_waiting",
     "Expensive requests waiting for their user's turn now (server.max_heavy_per_user)."},
};

typedef struct slot_gauges {
    _Atomic uint64_t v[NG];
    _Atomic uint64_t live;
} slot_gauges;

typedef struct region {
    size_t nslots;
    route_counters routes[NROUTE];
    _Atomic uint64_t os[OS_NCOUNTERS];
    slot_gauges slots[];
} region;

static region *shared;
static size_t my_slot = (size_t)-1;
static uint64_t last[OS_NCOUNTERS];        /* this worker's counters at the last publish */
static uint64_t runtime_now[OS_NCOUNTERS]; /* this worker's own counters (not the store's) */
static uint64_t runtime_gauge[NG];

int metrics_init(size_t nslots)
{
    size_t size = sizeof(region) + nslots * sizeof(slot_gauges);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    memset(p, 0, size);
    shared = p;
    shared->nslots = nslots;
    return 0;
}

void metrics_slot_reset(size_t slot)
{
    if (!shared || slot >= shared->nslots)
        return;
    for (int i = 0; i < NG; i++)
        atomic_store(&shared->slots[slot].v[i], 0);
    atomic_store(&shared->slots[slot].live, 0);
}

void metrics_worker_attach(size_t slot)
{
    my_slot = slot;
    memset(last, 0, sizeof(last));
    if (shared && slot < shared->nslots)
        atomic_store(&shared->slots[slot].live, 1);
}

void metrics_record_request(int route_index, int status, bool aborted, uint64_t duration_ns)
{
    if (!shared)
        return;
    size_t r = route_index < 0                     ? METRICS_MAX_ROUTES + 1
               : route_index >= METRICS_MAX_ROUTES ? METRICS_MAX_ROUTES
                                                   : (size_t)route_index;
    route_counters *c = &shared->routes[r];
    int cls = status / 100 - 1;
    if (cls < 0 || cls >= NCLASS)
        cls = NCLASS - 1;
    atomic_fetch_add_explicit(&c->by_class[cls], 1, memory_order_relaxed);
    if (aborted)
        atomic_fetch_add_explicit(&c->aborted, 1, memory_order_relaxed);
    double secs = (double)duration_ns / 1e9;
    for (size_t b = 0; b < NBUCKET; b++)
        if (secs <= bucket_le[b]) {
            atomic_fetch_add_explicit(&c->le[b], 1, memory_order_relaxed);
            break;
        }
    atomic_fetch_add_explicit(&c->duration_us, duration_ns / 1000, memory_order_relaxed);
}

void metrics_publish_objstore(const objstore_stats *st)
{
    if (!shared)
        return;
    const uint64_t now[OS_NCOUNTERS] = {
        [OS_GETS] = st->gets,
        [OS_HITS] = st->hits,
        [OS_MISSES] = st->misses,
        [OS_SHARED] = st->shared,
        [OS_BYTES_READ] = st->bytes_read,
        [OS_BYTES_WRITTEN] = st->bytes_written,
        [OS_PUTS] = st->puts,
        [OS_DELETES] = st->deletes,
        [OS_ERRORS] = st->errors,
        [OS_CANCELED] = st->canceled,
        [OS_CALLS] = st->calls,
        [OS_RETRIES] = st->retries,
        [OS_RETRIES_DENIED] = st->retries_denied,
        [OS_SHED] = runtime_now[OS_SHED],
        [OS_CONNS_DROPPED] = runtime_now[OS_CONNS_DROPPED],
        [OS_CONNS_REFUSED] = runtime_now[OS_CONNS_REFUSED],
    };
    for (int i = 0; i < OS_NCOUNTERS; i++) {
        if (now[i] > last[i])
            atomic_fetch_add_explicit(&shared->os[i], now[i] - last[i], memory_order_relaxed);
        last[i] = now[i];
    }
    if (my_slot >= shared->nslots)
        return;
    const uint64_t g[NG] = {
        [G_TRANSFERS] = st->transfers,
        [G_QUEUED] = st->queued,
        [G_IN_FLIGHT] = st->in_flight,
        [G_CACHE_BYTES] = st->cache_bytes,
        [G_CACHE_ENTRIES] = st->cache_entries,
        [G_CONNECTIONS_MAX] = st->connections_max,
        [G_POOL_WAITING] = runtime_gauge[G_POOL_WAITING],
        [G_HEAVY_WAITING] = runtime_gauge[G_HEAVY_WAITING],
    };
    for (int i = 0; i < NG; i++)
        atomic_store_explicit(&shared->slots[my_slot].v[i], g[i], memory_order_relaxed);
}

void metrics_set_runtime(size_t pool_waiting, size_t heavy_waiting, uint64_t shed,
                         uint64_t conns_dropped, uint64_t conns_refused)
{
    runtime_gauge[G_POOL_WAITING] = pool_waiting;
    runtime_gauge[G_HEAVY_WAITING] = heavy_waiting;
    runtime_now[OS_SHED] = shed;
    runtime_now[OS_CONNS_DROPPED] = conns_dropped;
    runtime_now[OS_CONNS_REFUSED] = conns_refused;
}

/* Prometheus label value escaping: backslash, double quote, newline. */
static int label(buf_t *out, const char *s)
{
    int rc = 0;
    for (; *s && !rc; s++) {
        if (*s == '\\' || *s == '"')
            rc = buf_printf(out, "\\%c", *s);
        else if (*s == '\n')
            rc = buf_puts(out, "\\n");
        else
            rc = buf_putc(out, *s);
    }
    return rc;
}

static int route_labels(buf_t *out, const http_route *routes, size_t nroutes, size_t r)
{
    if (r < nroutes && r < METRICS_MAX_ROUTES) {
        buf_printf(out, "method=\"%s\",route=\"", http_method_name(routes[r].method));
        label(out, routes[r].pattern);
        return buf_putc(out, '"');
    }
    return buf_puts(out, r == METRICS_MAX_ROUTES ? "method=\"\",route=\"other\""
                                                 : "method=\"\",route=\"unmatched\"");
}

int metrics_render(buf_t *out, const http_route *routes, size_t nroutes)
{
    if (!shared)
        return buf_puts(out, "# ogd: no metrics are kept in this process\n");
    buf_puts(out, "# HELP ogd_http_requests_total HTTP requests finished, by route and status "
                  "class.\n# TYPE ogd_http_requests_total counter\n");
    for (size_t r = 0; r < NROUTE; r++) {
        if (r >= nroutes && r < METRICS_MAX_ROUTES)
            continue;
        for (int c = 0; c < NCLASS; c++) {
            uint64_t v = atomic_load(&shared->routes[r].by_class[c]);
            if (!v)
                continue;
            buf_puts(out, "ogd_http_requests_total{");
            route_labels(out, routes, nroutes, r);
            buf_printf(out, ",status=\"%dxx\"} %llu\n", c + 1, (unsigned long long)v);
        }
    }
    buf_puts(out, "# HELP ogd_http_requests_aborted_total HTTP requests whose client went away "
                  "before the answer (their work cancelled; also counted above, as 499).\n"
                  "# TYPE ogd_http_requests_aborted_total counter\n");
    for (size_t r = 0; r < NROUTE; r++) {
        if (r >= nroutes && r < METRICS_MAX_ROUTES)
            continue;
        uint64_t v = atomic_load(&shared->routes[r].aborted);
        if (!v)
            continue;
        buf_puts(out, "ogd_http_requests_aborted_total{");
        route_labels(out, routes, nroutes, r);
        buf_printf(out, "} %llu\n", (unsigned long long)v);
    }
    buf_puts(out, "# HELP ogd_http_request_duration_seconds Time from the request's first "
                  "byte to its end.\n# TYPE ogd_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r < NROUTE; r++) {
        if (r >= nroutes && r < METRICS_MAX_ROUTES)
            continue;
        route_counters *c = &shared->routes[r];
        uint64_t total = 0;
        for (int k = 0; k < NCLASS; k++)
            total += atomic_load(&c->by_class[k]);
        if (!total)
            continue;
        uint64_t cum = 0;
        for (size_t b = 0; b <= NBUCKET; b++) {
            cum = b < NBUCKET ? cum + atomic_load(&c->le[b]) : total;
            buf_puts(out, "ogd_http_request_duration_seconds_bucket{");
            route_labels(out, routes, nroutes, r);
            if (b < NBUCKET)
                buf_printf(out, ",le=\"%g\"} %llu\n", bucket_le[b], (unsigned long long)cum);
            else
                buf_printf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        }
        buf_puts(out, "ogd_http_request_duration_seconds_sum{");
        route_labels(out, routes, nroutes, r);
        buf_printf(out, "} %.6f\n", (double)atomic_load(&c->duration_us) / 1e6);
        buf_puts(out, "ogd_http_request_duration_seconds_count{");
        route_labels(out, routes, nroutes, r);
        buf_printf(out, "} %llu\n", (unsigned long long)total);
    }
    for (int i = 0; i < OS_NCOUNTERS; i++)
        buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", os_counter[i].name,
                   os_counter[i].help, os_counter[i].name, os_counter[i].name,
                   (unsigned long long)atomic_load(&shared->os[i]));
    uint64_t workers = 0;
    uint64_t sum[NG] = {0};
    for (size_t s = 0; s < shared->nslots; s++) {
        if (!atomic_load(&shared->slots[s].live))
            continue;
        workers++;
        for (int i = 0; i < NG; i++)
            sum[i] += atomic_load(&shared->slots[s].v[i]);
    }
    for (int i = 0; i < NG; i++)
        buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", gauge[i].name, gauge[i].help,
                   gauge[i].name, gauge[i].name, (unsigned long long)sum[i]);
    return buf_printf(out,
                      "# HELP ogd_workers Workers serving now.\n# TYPE ogd_workers gauge\n"
                      "ogd_workers %llu\n",
                      (unsigned long long)workers);
}
