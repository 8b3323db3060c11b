/*
 * experiments.c: GET /experiments (the stored experiments, by _id, at most
 * mongodb.max_documents, shaped by the reference's response model) and POST /experiments
 * (one refresh from the user office and Scheduler, src/experiments/experiments.h, on this
 * worker's loop; answers the list of new ids and "Updated <id>" strings).
 */
#include "api/control.h"
#include "api/handlers.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "experiments/cron.h"
#include "experiments/experiments.h"

static void listed(store_op_t *op)
{
    http_request_t *req = op->data;
    http_set_abort(req, NULL, NULL);
    if (op->status != 0) {
        api_respond_store_error(req, op, "Unknown error");
        store_op_cleanup(op);
        return;
    }
    json_t *out = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(op->result, i, d)
    {
        json_t *m = json_object();
        static const char *const keys[] = {"_id", "experiment_id", "part", "start_date",
                                           "end_date"};
        for (size_t k = 0; k < 5; k++) {
            json_t *v = json_object_get(d, keys[k]);
            json_object_set(m, keys[k], v ? v : json_null());
        }
        json_array_append_new(out, m);
    }
    store_op_cleanup(op);
    api_respond_json(req, 200, out);
}

void api_experiments_list(http_request_t *req)
{
    store_op_t *op = api_store_op(req, STORE_EXPERIMENTS_LIST);
    if (!op)
        return;
    app_t *app = req->app;
    op->max_documents = app->cfg->mongodb.max_documents;
    api_store_submit(req, op, listed, req);
}

static void refreshed(int status, const char *err, json_t *results, void *data)
{
    http_request_t *req = data;
    if (status == 0) {
        api_respond_json(req, 200, json_incref(results));
    } else if (status == EXPERIMENTS_EUPSTREAM) {
        http_respond_error(req, 500, err);
    } else if (status == EXPERIMENTS_EMODEL) {
        http_respond_error(req, 400, "Model creation error");
    } else if (status == STORE_EUNAVAILABLE) {
        http_respond_error(req, 503, "Database unavailable");
    } else {
        http_respond_error(req, 500, "Database error");
    }
}

void api_experiments_refresh(http_request_t *req)
{
    app_t *app = req->app;
    const ogd_experiments_config *cfg = &app->cfg->experiments;
    /* The window ends at the next scheduled run (in this process's time zone; the jobs
     * process evaluates the schedule in scheduler_background_timezone). */
    time_t now = time(NULL), end = now;
    cron_expr cron;
    char err[160];
    if (cron_parse(cfg->scheduler_background_frequency, &cron, err, sizeof(err)) == 0) {
        time_t next = cron_next(&cron, now);
        if (next > 0)
            end = next;
    }
    if (experiments_refresh(app->loop, app->store, cfg, end, NULL, refreshed, req) != 0)
        http_respond_error(req, 500, "Error during handling of experiments");
}
