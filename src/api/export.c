/*
 * api/export.c: GET /export (docs/export.md, docs/api.md §5.16), the HTTP adapter of the
 * export pipeline (export/export.c): parses and checks the query parameters, gives the
 * pipeline the app's loop, store, object store and configuration with the request as the
 * arena and object-store owner, and a sink that writes to the request (the whole answer,
 * or the chunked stream with one write in flight), maps the pipeline's failures to
 * statuses, and passes the client's going away on as export_cancel.
 */
#include "api/api.h"
#include "api/functions.h"
#include "api/handlers.h"

#include "export/export.h"

/* ---- the sink: the request ---- */

/* The sink's data: the request and the write in flight (one at a time). */
typedef struct export_http {
    http_request_t *req;
    export_written_cb done;
    void *done_data;
} export_http;

static void sink_answer(void *data, int status, const char *content_type, char *body, size_t len)
{
    export_http *h = data;
    http_respond_take(h->req, status, content_type, body, len);
}

static void sink_fail(void *data, const export_failure *f)
{
    http_request_t *req = ((export_http *)data)->req;
    const char *detail = f->message;
    int status = 500;
    switch (f->error) {
    case EXPORT_EINVAL:
        status = 400;
        break;
    case EXPORT_ESTORE:
        api_respond_store_status(req, f->code, f->message, f->detail500);
        return;
    case EXPORT_EOBJECT:
        status = api_error_answer(f->code, NULL, "Unknown error", &detail);
        break;
    case EXPORT_EFUNCTIONS:
        status = api_fneval_error_status(f->fn_error, f->code, &detail);
        break;
    case EXPORT_EINTERNAL:
        break;
    }
    http_respond_error(req, status, detail ? detail : "Unknown error");
}

static void sink_disposition(void *data, const char *value)
{
    http_add_header(((export_http *)data)->req, "Content-Disposition", value);
}

static void sink_start(void *data, int status, const char *content_type)
{
    http_stream_start(((export_http *)data)->req, status, content_type);
}

static void sink_written(http_request_t *req, int status, void *data)
{
    export_http *h = data;
    (void)req;
    h->done(status, h->done_data);
}

static int sink_write_take(void *data, char *bytes, size_t len, export_written_cb done,
                           void *done_data)
{
    export_http *h = data;
    h->done = done;
    h->done_data = done_data;
    return http_stream_write_take(h->req, bytes, len, sink_written, h);
}

static void sink_end(void *data)
{
    http_stream_end(((export_http *)data)->req);
}

static void sink_abort(void *data)
{
    http_stream_abort(((export_http *)data)->req);
}

static void sink_detach(void *data)
{
    http_set_abort(((export_http *)data)->req, NULL, NULL);
}

static void on_abort(http_request_t *req, void *data)
{
    (void)req;
    export_cancel(data);
}

/* ---- the parameters ---- */

static bool bool_param(http_request_t *req, const char *name, bool def, bool *out)
{
    return api_query_bool(req, name, def, out);
}

void api_export(http_request_t *req)
{
    export_params p = {0};
    store_op_t q; /* the records query's parameters, as the list routes parse them */
    store_op_init(&q, STORE_RECORDS_FIND);
    int64_t lo, up, bits;
    if (!api_list_params(req, &q, &p.filter) ||
        !api_query_int_range(req, "lower_level", 0, 0, 65535, &lo) ||
        !api_query_int_range(req, "upper_level", 255, 0, 65535, &up) ||
        !api_query_int_range(req, "limit_bit_depth", 8, 0, 16, &bits) ||
        !bool_param(req, "export_scalars", true, &p.export_scalars) ||
        !bool_param(req, "export_images", true, &p.export_images) ||
        !bool_param(req, "export_float_images", true, &p.export_float_images) ||
        !bool_param(req, "export_waveform_csvs", true, &p.export_waveform_csvs) ||
        !bool_param(req, "export_waveform_images", false, &p.export_waveform_images) ||
        !bool_param(req, "export_vector_csvs", true, &p.export_vector_csvs) ||
        !bool_param(req, "export_vector_images", false, &p.export_vector_images) ||
        !api_functions_from_query(req, &p.fns)) {
        filter_free(p.filter);
        store_op_cleanup(&q);
        return;
    }
    if (q.nprojection == 0) {
        http_respond_error(req, 400, "No channels specified to export");
        filter_free(p.filter);
        store_op_cleanup(&q);
        return;
    }
    p.order = q.order;
    p.norder = q.norder;
    p.projection = q.projection;
    p.nprojection = q.nprojection;
    p.skip = q.skip;
    p.limit = q.limit;
    p.max_documents = q.max_documents;
    store_op_cleanup(&q);
    p.lower_level = lo;
    p.upper_level = up;
    p.limit_bit_depth = bits;
    p.colourmap_name = http_query_get(req, "colourmap_name");

    export_ctx ctx;
    api_fneval_context(req, &ctx);
    export_http *h = arena_alloc(&req->arena, sizeof(*h));
    if (!h) {
        filter_free(p.filter);
        http_respond_error(req, 500, "Unknown error");
        return;
    }
    *h = (export_http){.req = req};
    export_sink sink = {
        .data = h,
        .answer = sink_answer,
        .fail = sink_fail,
        .disposition = sink_disposition,
        .start = sink_start,
        .write_take = sink_write_take,
        .end = sink_end,
        .abort = sink_abort,
        .detach = sink_detach,
    };
    export_job *x = export_new(&ctx, &p, &sink);
    if (!x) {
        http_respond_error(req, 500, "Unknown error");
        return;
    }
    http_set_abort(req, on_abort, x);
    export_run(x);
}
