/*
 * api/functions.h: what the API handlers share about user functions: the parsed list of
 * {"name","expression"} objects, the validate-style vetting of such a list against the
 * channel manifest, and the hook that evaluates functions over a page of records
 * (records_functions.c).
 */
#ifndef OGD_API_FUNCTIONS_H
#define OGD_API_FUNCTIONS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "functions/functions.h"
#include "http/http.h"

/* Most functions one request may carry. */
#define API_FUNCTIONS_MAX 100

typedef struct api_function {
    const char *name;       /** arena memory */
    const char *expression; /** arena memory */
    fn_node *tree;          /** set by api_functions_check / parsing */
    fn_type_t type;         /** result type, set by api_functions_check */
} api_function;

/* Vets fns[0..n) in order as POST /functions/validate does (spec/functions.md §B4 steps
 * 1-6): parses each expression into fns[i].tree and sets fns[i].type. manifest_channels:
 * the manifest's "channels" object (borrowed, may be NULL). 0, or -EINVAL with the failing
 * index and message. Trees are allocated from a. */
int api_functions_check(arena_t *a, json_t *manifest_channels, api_function *fns, size_t n,
                        size_t *bad_index, char *err);

/* The parsed `functions` query parameter of a request (records_functions.c). */
typedef struct api_fn_list api_fn_list;

/* Parses the repeated `functions` query parameter: each value a JSON object
 * {"name","expression"}, each expression parsed. *out is NULL when there is none. On
 * false the 4xx has been sent. Everything lives in the request arena. */
bool api_functions_from_query(http_request_t *req, api_fn_list **out);
/* Widens a projection so every channel the functions name comes back whole (as the
 * reference's extra lookup does): adds "channels.<v>", drops "channels.<v>.<sub>" entries.
 * Unchanged when there is no projection. Arena memory. */
void api_functions_projection(http_request_t *req, const api_fn_list *list,
                              const char *const **projection, size_t *n);
/* Evaluates the functions over a page of records (takes ownership of `records`, a JSON
 * array), adds the result channels and responds to req: 200 with the page (or, when
 * `single`, with its one record: GET /records/{id_}), or the error. */
void api_functions_respond(http_request_t *req, api_fn_list *list, json_t *records, bool single);

#endif
