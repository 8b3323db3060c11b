/*
 * experiments.c: GET /experiments (the stored experiments, by _id, at most
 * mongodb.max_documents, shaped by the reference's response model) and POST /experiments
 * (one refresh from the user office and Scheduler, src/experiments/experiments.h, on this
 * worker's loop; answers the list of new ids and "Updated <id>" strings).
 */
#include "api/api.h"
#include "api/handlers.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/cron.h"
#include "experiments/experiments.h"

static const char *const LIST_KEYS[] = {"_id",        "experiment_id", "part",
                                        "start_date", "end_date",      NULL};

void api_experiments_list(http_request_t *req)
{
    store_op_t *op = api_store_op(req, STORE_EXPERIMENTS_LIST);
    if (!op)
        return;
    app_t *app = req->app;
    op->max_documents = app->cfg->mongodb.max_documents;
    op->post_data = (void *)LIST_KEYS; /* read by api_store_list_done, not a post step */
    api_store_submit(req, op, api_store_list_done, req);
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
    } else {
        api_respond_error_code(req, status, NULL, "Database error", "experiments refresh");
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
