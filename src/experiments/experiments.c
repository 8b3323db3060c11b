/*
 * experiments.c: see experiments.h. One heap-allocated run walks its steps through
 * callbacks: store ops (store_submit), HTTP exchanges (fetch_request on a fetcher the run
 * owns and closes) and the parsing of each answer (work_submit: the thread pool). Instruments are
 * asked one after another; experiments are stored one after another, so the answer lists them in
 * the Scheduler's sorted order.
 */
#include "experiments/experiments.h"

#include <errno.h>
#include <libxml/parser.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/fetch.h"
#include "experiments/scheduler.h"
#include "util/taskgroup.h"
#include "util/log.h"
#include "util/objectid.h"

#define EXPERIMENTS_TIMEOUT_MS 30000
#define EXPERIMENTS_MAX_BODY (16u << 20)

typedef enum stage { ST_WSDL, ST_LOGIN, ST_DATES, ST_EXPERIMENTS } stage;

typedef struct run {
    uv_loop_t *loop;
    store_t *store;
    const ogd_experiments_config *cfg;
    fetcher_t *fetcher;
    long timeout_ms;
    experiments_cb cb;
    void *data;
    store_op_t op;
    char start[40], end[40]; /* the search window as sent */
    char *location, *tns, *session_id;
    size_t instrument; /* the one being asked */
    json_t *mapping;   /* "<rb>" -> [parts], first instrument wins */
    json_t *pairs;     /* [{key, value}] */
    json_t *found;     /* selected experiments */
    size_t next;       /* the one being stored */
    json_t *results;
    stage stage; /* the HTTP exchange in flight or being parsed */
    long code;   /* its HTTP status */
    char *body;  /* its answer, until parsed */
    size_t body_len;
    int parse_rc;   /* the pool's verdict */
    json_t *parsed; /* ST_DATES: [{rb, part}] */
    char err[512];
} run;

static void run_finish(run *r, int status)
{
    if (status != 0)
        log_warn("experiments: refresh failed: %s", r->err);
    else
        log_info("experiments: refresh stored %zu experiment(s)", json_array_size(r->results));
    r->cb(status, r->err, r->results, r->data);
    fetcher_close(r->fetcher);
    free(r->location);
    free(r->tns);
    free(r->session_id);
    json_decref(r->mapping);
    json_decref(r->pairs);
    json_decref(r->found);
    json_decref(r->results);
    json_decref(r->parsed);
    free(r->body);
    free(r);
}

static void fail(run *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(run *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof(r->err), fmt, ap);
    va_end(ap);
    run_finish(r, status);
}

static void store_failed(run *r)
{
    int st = r->op.status == STORE_EUNAVAILABLE ? STORE_EUNAVAILABLE
             : r->op.status == STORE_EBADQUERY  ? EXPERIMENTS_EMODEL
                                                : STORE_EDB;
    snprintf(r->err, sizeof(r->err), "%s", r->op.err[0] ? r->op.err : "database error");
    store_op_cleanup(&r->op);
    run_finish(r, st);
}

static void submit(run *r, store_cb cb)
{
    if (store_submit(r->store, &r->op, cb, r) != 0) {
        r->op.status = STORE_EDB;
        snprintf(r->op.err, sizeof(r->op.err), "cannot submit a store operation");
        store_failed(r);
    }
}

/* The text of a transport failure for the user office login. */
static void login_transport_error(run *r, int status)
{
    if (status == -ECONNREFUSED)
        fail(r, EXPERIMENTS_EUPSTREAM, "Connection error occurred");
    else if (status == -ETIMEDOUT)
        fail(r, EXPERIMENTS_EUPSTREAM,
             "Request to /sessions to retrieve experiment data from the external system has "
             "timed out");
    else
        fail(r, EXPERIMENTS_EUPSTREAM,
             "Something went wrong when accessing /sessions to retrieve experiment data from "
             "an external system");
}

static void answered(int status, long code, const char *body, size_t len, void *data);

static bool http(run *r, const char *url, const char *content_type, const char *body,
                 const char *extra)
{
    fetch_opts o = {.method = body ? "POST" : "GET",
                    .content_type = content_type,
                    .body = body,
                    .body_len = body ? strlen(body) : 0,
                    .extra_header = extra,
                    .verify_cert = true,
                    .timeout_ms = r->timeout_ms,
                    .max_bytes = EXPERIMENTS_MAX_BODY};
    int rc = fetch_request(r->fetcher, url, &o, answered, r);
    if (rc != 0) {
        fail(r, EXPERIMENTS_EUPSTREAM, "Unexpected error from contacting the Scheduler");
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- steps, last first */

static void stamped(store_op_t *op)
{
    run *r = op->data;
    if (op->status != 0) {
        store_failed(r);
        return;
    }
    store_op_cleanup(op);
    r->err[0] = '\0';
    run_finish(r, 0);
}

static void store_next(run *r);

static void stored(store_op_t *op)
{
    run *r = op->data;
    if (op->status != 0) {
        store_failed(r);
        return;
    }
    const char *id = json_string_value(op->result);
    char text[64];
    snprintf(text, sizeof(text), op->count == 1 ? "%s" : "Updated %s", id ? id : "");
    json_array_append_new(r->results, json_string(text));
    store_op_cleanup(op);
    r->next++;
    store_next(r);
}

static void store_next(run *r)
{
    if (r->next < json_array_size(r->found)) {
        json_t *e = json_array_get(r->found, r->next);
        char oid[OBJECTID_LEN + 1];
        objectid_new(oid);
        json_t *doc = json_pack(
            "{sssOsOsOsO}", "_id", oid, "experiment_id", json_object_get(e, "experiment_id"),
            "part", json_object_get(e, "part"), "start_date", json_object_get(e, "start_date"),
            "end_date", json_object_get(e, "end_date"));
        store_op_init(&r->op, STORE_EXPERIMENT_PUT);
        /* the op borrows doc: keep it alive in the found list */
        json_object_set_new(e, "_doc", doc);
        r->op.doc = doc;
        submit(r, stored);
        return;
    }
    /* Bookkeeping, as naive UTC (the stored dates are naive UTC too). */
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char *stamp = r->start; /* reuse: the window start is no longer needed */
    strftime(stamp, sizeof(r->start), "%Y-%m-%dT%H:%M:%S", &tm);
    store_op_init(&r->op, STORE_EXPERIMENTS_STAMP_PUT);
    r->op.id = stamp;
    submit(r, stamped);
}

/* ---------------------------------------------------------------- HTTP answers
 *
 * Every answer is copied and parsed on the thread pool (XML and JSON of up to the body
 * cap are CPU work); `parsed` continues on the loop according to the stage. */

static void login(run *r);
static void ask_dates(run *r);

static void answered(int status, long code, const char *body, size_t len, void *data);

static void transport_error(run *r, int status)
{
    if (r->stage == ST_LOGIN)
        login_transport_error(r, status);
    else
        fail(r, EXPERIMENTS_EUPSTREAM, "Unexpected error from contacting the Scheduler");
}

static void parse_on_pool(void *data)
{
    run *r = data;
    r->parse_rc = -1;
    switch (r->stage) {
    case ST_WSDL:
        if (r->code != 200)
            snprintf(r->err, sizeof(r->err), "Unexpected error from contacting the Scheduler");
        else
            r->parse_rc = sched_parse_wsdl(r->body, r->body_len, &r->location, &r->tns, r->err,
                                           sizeof(r->err));
        break;
    case ST_LOGIN:
        r->parse_rc = sched_parse_login(r->code, r->body, r->body_len, &r->session_id, r->err,
                                        sizeof(r->err));
        break;
    case ST_DATES:
        r->parse_rc =
            sched_parse_dates(r->code, r->body, r->body_len, &r->parsed, r->err, sizeof(r->err));
        break;
    case ST_EXPERIMENTS: {
        json_t *parts = NULL;
        r->parse_rc =
            sched_parse_experiments(r->code, r->body, r->body_len, &parts, r->err, sizeof(r->err));
        if (r->parse_rc == 0)
            r->parse_rc = sched_select(parts, r->mapping, &r->found, r->err, sizeof(r->err));
        json_decref(parts);
        break;
    }
    }
    free(r->body);
    r->body = NULL;
}

/* Adds one instrument's dates to the (RB, instrument) pairs and the part mapping (the
 * first instrument that lists an RB number gives its parts). */
static void merge_dates(run *r)
{
    const char *instrument = r->cfg->instrument_names[r->instrument];
    json_t *local = json_object();
    size_t i;
    json_t *d;
    json_array_foreach(r->parsed, i, d)
    {
        char key[32];
        json_int_t rb = json_integer_value(json_object_get(d, "rb"));
        snprintf(key, sizeof(key), "%" JSON_INTEGER_FORMAT, rb);
        json_t *list = json_object_get(local, key);
        if (!list) {
            list = json_array();
            json_object_set_new(local, key, list);
            bool seen = false;
            size_t j;
            json_t *p;
            json_array_foreach(r->pairs, j, p)
            {
                if (json_integer_value(json_object_get(p, "key")) == rb &&
                    strcmp(json_string_value(json_object_get(p, "value")), instrument) == 0)
                    seen = true;
            }
            if (!seen)
                json_array_append_new(r->pairs,
                                      json_pack("{sIss}", "key", rb, "value", instrument));
        }
        json_array_append(list, json_object_get(d, "part"));
    }
    const char *k;
    json_t *list;
    json_object_foreach(local, k, list)
    {
        if (!json_object_get(r->mapping, k))
            json_object_set(r->mapping, k, list);
    }
    json_decref(local);
    json_decref(r->parsed);
    r->parsed = NULL;
}

static void parsed(void *data, int status)
{
    run *r = data;
    if (status != 0) {
        fail(r, EXPERIMENTS_EUPSTREAM, "Unexpected error from contacting the Scheduler");
        return;
    }
    if (r->parse_rc != 0) {
        if (r->stage == ST_LOGIN)
            log_warn("experiments: user office login answered HTTP %ld", r->code);
        else if (r->stage == ST_WSDL && r->code != 200)
            log_warn("experiments: the Scheduler's WSDL answered HTTP %ld", r->code);
        run_finish(r, EXPERIMENTS_EUPSTREAM);
        return;
    }
    switch (r->stage) {
    case ST_WSDL:
        login(r);
        break;
    case ST_LOGIN:
        ask_dates(r);
        break;
    case ST_DATES:
        merge_dates(r);
        r->instrument++;
        ask_dates(r);
        break;
    case ST_EXPERIMENTS:
        store_next(r);
        break;
    }
}

static void answered(int status, long code, const char *body, size_t len, void *data)
{
    run *r = data;
    if (status == -ECANCELED)
        return; /* the fetcher closed under us: finishing is under way elsewhere */
    if (status != 0) {
        transport_error(r, status);
        return;
    }
    r->code = code;
    r->body = malloc(len + 1);
    if (!r->body) {
        fail(r, STORE_EDB, "out of memory");
        return;
    }
    memcpy(r->body, body, len);
    r->body[len] = '\0';
    r->body_len = len;
    if (work_submit(r->loop, parse_on_pool, parsed, r, NULL) != 0) {
        free(r->body);
        r->body = NULL;
        fail(r, STORE_EDB, "cannot queue work on the thread pool");
    }
}

/* ---------------------------------------------------------------- requests */

static int by_key(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "key"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "key"));
    return (x > y) - (x < y);
}

static void ask_experiments(run *r)
{
    size_t n = json_array_size(r->pairs);
    if (n == 0) {
        r->found = json_array();
        store_next(r);
        return;
    }
    json_t **v = malloc(n * sizeof(*v));
    if (!v) {
        fail(r, STORE_EDB, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(r->pairs, i));
    qsort(v, n, sizeof(*v), by_key);
    json_array_clear(r->pairs);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(r->pairs, v[i]);
    free(v);
    char *body = sched_experiments_request(r->tns, r->session_id, r->pairs);
    if (!body) {
        fail(r, STORE_EDB, "out of memory");
        return;
    }
    r->stage = ST_EXPERIMENTS;
    http(r, r->location, "text/xml; charset=utf-8", body, "SOAPAction: \"getExperiments\"");
    free(body);
}

static void ask_dates(run *r)
{
    if (r->instrument >= r->cfg->instrument_names_count) {
        ask_experiments(r);
        return;
    }
    char *body = sched_dates_request(r->tns, r->session_id, r->cfg->instrument_names[r->instrument],
                                     r->start, r->end);
    if (!body) {
        fail(r, STORE_EDB, "out of memory");
        return;
    }
    r->stage = ST_DATES;
    http(r, r->location, "text/xml; charset=utf-8", body,
         "SOAPAction: \"getExperimentDatesForInstrument\"");
    free(body);
}

static void login(run *r)
{
    json_t *cred = json_pack("{ssss}", "username", r->cfg->username ? r->cfg->username : "",
                             "password", r->cfg->password ? r->cfg->password : "");
    char *text = cred ? json_dumps(cred, JSON_COMPACT) : NULL;
    json_decref(cred);
    if (!text) {
        fail(r, STORE_EDB, "out of memory");
        return;
    }
    char url[2048];
    const char *base = r->cfg->user_office_rest_api_url ? r->cfg->user_office_rest_api_url : "";
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    snprintf(url, sizeof(url), "%.*s/sessions", (int)bl, base);
    r->stage = ST_LOGIN;
    http(r, url, "application/json", text, NULL);
    /* the password was copied into the request; wipe this copy */
    explicit_bzero(text, strlen(text));
    free(text);
}

/* Window start as sent: the stored stamp or the configured first date, with a Z. */
static bool window_start(run *r, const char *text)
{
    char buf[40];
    snprintf(buf, sizeof(buf), "%s", text);
    if (strlen(buf) == 10)
        strcat(buf, "T00:00:00");
    char naive[32];
    if (!sched_utc_naive(buf, naive))
        return false;
    snprintf(r->start, sizeof(r->start), "%sZ", naive);
    return true;
}

static void stamp_loaded(store_op_t *op)
{
    run *r = op->data;
    if (op->status != 0 && op->status != -ENOENT) {
        store_failed(r);
        return;
    }
    const char *stamp = op->status == 0 ? json_string_value(op->result) : NULL;
    const char *text = stamp ? stamp : r->cfg->first_scheduler_contact_start_date;
    bool ok = text && window_start(r, text);
    store_op_cleanup(op);
    if (!ok) {
        fail(r, EXPERIMENTS_EUPSTREAM,
             "experiments.first_scheduler_contact_start_date is not set or not a date-time");
        return;
    }
    if (!r->cfg->scheduler_wsdl_url || !r->cfg->user_office_rest_api_url) {
        fail(r, EXPERIMENTS_EUPSTREAM,
             "experiments.scheduler_wsdl_url and experiments.user_office_rest_api_url must be "
             "configured");
        return;
    }
    log_info("experiments: refreshing, window %s to %s", r->start, r->end);
    r->stage = ST_WSDL;
    http(r, r->cfg->scheduler_wsdl_url, NULL, NULL, NULL);
}

int experiments_refresh(uv_loop_t *loop, store_t *store, const ogd_experiments_config *cfg,
                        time_t window_end, const experiments_opts *opts, experiments_cb cb,
                        void *data)
{
    run *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->loop = loop;
    r->store = store;
    r->cfg = cfg;
    r->cb = cb;
    r->data = data;
    r->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms
                    : cfg->request_timeout > 0   ? cfg->request_timeout * 1000L
                                                 : EXPERIMENTS_TIMEOUT_MS;
    xmlInitParser(); /* once, on this thread, before pool threads parse */
    r->fetcher = fetcher_new(loop);
    r->mapping = json_object();
    r->pairs = json_array();
    r->results = json_array();
    if (!r->fetcher || !r->mapping || !r->pairs || !r->results) {
        fetcher_close(r->fetcher);
        json_decref(r->mapping);
        json_decref(r->pairs);
        json_decref(r->results);
        free(r);
        return -ENOMEM;
    }
    struct tm tm;
    gmtime_r(&window_end, &tm);
    strftime(r->end, sizeof(r->end), "%Y-%m-%dT%H:%M:%SZ", &tm);
    store_op_init(&r->op, STORE_EXPERIMENTS_STAMP_GET);
    if (store_submit(store, &r->op, stamp_loaded, r) != 0) {
        fetcher_close(r->fetcher);
        json_decref(r->mapping);
        json_decref(r->pairs);
        json_decref(r->results);
        free(r);
        return -EIO;
    }
    return 0;
}
