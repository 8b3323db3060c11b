/*
 * api/functions.h: the HTTP side of user functions (the engine is fneval/fneval.h): the
 * `functions` query parameter parsed into a list, the engine's context built from a
 * request, its errors mapped to statuses, an evaluation that holds the request's abort
 * hook, and the /records answer (records_functions.c), for /records, /images, /waveforms,
 * the crosshair and /export.
 */
#ifndef OGD_API_FUNCTIONS_H
#define OGD_API_FUNCTIONS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "fneval/fneval.h"
#include "http/http.h"

/* Parses the repeated `functions` query parameter: each value a JSON object
 * {"name","expression"}, each expression parsed. *out is NULL when there is none. On
 * false the 4xx has been sent. Everything lives in the request arena. */
bool api_functions_from_query(http_request_t *req, fneval_list **out);

/* The engine's context for an evaluation on behalf of req: the app's loop, store, object
 * store and configuration, the request arena, and req as the object-store owner. */
void api_fneval_context(http_request_t *req, fneval_ctx *ctx);

/* 0 when ev succeeded; else the HTTP status, with the client message in *message (owned
 * by ev or static): a client mistake is 400, an unknown record 404, a back-end failure
 * what api_error_answer says (503 when it cannot be reached), anything else 500. */
int api_fneval_status(const fneval *ev, const char **message);
/* The same for a failure already taken out of its evaluation: the class, the code and
 * the message (in/out) as fneval_status gave them. */
int api_fneval_error_status(fneval_error e, int code, const char **message);

/* fneval_start on behalf of req, which holds the request's abort hook while evaluating
 * and chains to the one the caller had set (if the client goes away, the engine cancels
 * its work, calls the caller's hook, and still calls done with a 500); the caller's hook is
 * back in place when done runs. Always calls done exactly once, unless out of memory
 * before anything could start: then the 500 has been sent. */
void api_functions_apply(http_request_t *req, fneval_list *list, json_t *records,
                         const fneval_options *opts, fneval_done_cb done, void *data);

/* GET /records and /records/{id_}: api_functions_apply in THUMBNAILS mode, then responds
 * 200 with the page (or, when `single`, its one record) or the error. Takes `records`. */
void api_functions_respond(http_request_t *req, fneval_list *list, json_t *records,
                           const fneval_options *opts, bool single);

#endif
