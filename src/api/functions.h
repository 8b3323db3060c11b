/*
 * api/functions.h: what the API handlers share about user functions: the parsed list of
 * {"name","expression"} objects, the validate-style vetting of such a list against the
 * channel manifest, and the hook that evaluates functions over a page of records
 * (records_functions.c).
 */
#ifndef OGD_API_FUNCTIONS_H
#define OGD_API_FUNCTIONS_H

#include <jansson.h>
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

#endif
