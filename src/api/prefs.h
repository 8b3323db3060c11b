/*
 * prefs: the authenticated user's display preferences as the data plane reads them
 * (docs/api.md §4.11, docs/imaging.md §9).
 *
 * Owns one thing: turning the caller's user document (`user_prefs`, written by
 * /users/preferences) into the four values the imaging paths use: the preferred colour
 * map for integer images and for float images, and the vector thumbnail skip/limit. The
 * names of the preferences come from the config (`images.preferred_colour_map_pref_name`,
 * `float_images.preferred_colour_map_pref_name`, `vectors.skip_pref_name`,
 * `vectors.limit_pref_name`). One store op (STORE_USER_GET) per request, off the loop as
 * every store op; callers that already know everything they need ask for nothing and pay
 * no round trip. Where a preference applies and in which order (query parameter, then
 * preference, then config default) is the caller's business. prefs.c also holds the
 * /users/preferences handlers that write them (handlers.h).
 */
#ifndef OGD_API_PREFS_H
#define OGD_API_PREFS_H

#include "api/api.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct api_prefs {
    const char *colourmap;       /** PREFERRED_COLOUR_MAP as text (request arena); NULL = unset */
    const char *float_colourmap; /** PREFERRED_FLOAT_COLOUR_MAP likewise */
    bool has_skip, has_limit;    /** VECTOR_SKIP / VECTOR_LIMIT set */
    int64_t skip, limit;         /** their values cast as Python's int() casts them */
    const char *bad_vector_pref; /** the vector preference int() refuses, or NULL (the
                                     route decides when that fails: api_prefs_vector_ok) */
} api_prefs;

enum {
    API_PREFS_COLOURMAP = 1u,       /* want the integer-image colour map */
    API_PREFS_FLOAT_COLOURMAP = 2u, /* want the float-image colour map */
    API_PREFS_VECTOR = 4u,          /* want the vector skip and limit */
};

/* Called on the loop thread with the preferences asked for (others unset). prefs is
 * borrowed for the call; its strings live in the request's arena. prefs is NULL when
 * the response has already been sent (a failure): release what you hold and return. */
typedef void (*api_prefs_cb)(http_request_t *req, const api_prefs *prefs, void *data);

/* Loads the preferences named by `want` for req->username and calls cb (at once, without
 * a store op, when want is 0 or the request has no user). A user without a document or
 * without a preference gets it unset. When the store fails the response is sent and cb
 * gets NULL. While the op runs the request's abort hook is the op's; it is cleared
 * before cb runs. */
void api_prefs_load(http_request_t *req, unsigned want, api_prefs_cb cb, void *data);

/* false, with 400 naming the preference sent, when prefs->bad_vector_pref is set. */
bool api_prefs_vector_ok(http_request_t *req, const api_prefs *prefs);

/* Python's int() of a stored JSON value: integers as they are, booleans 0/1, reals
 * truncated toward zero, strings of decimal digits with an optional sign, surrounding
 * whitespace and single underscores between digits. false for anything else (NaN,
 * infinities, out of int64 range, other types). Exposed for the unit tests. */
bool api_prefs_int(const json_t *v, int64_t *out);

/* The text a stored value stands for as a colour map name: a string as it is, anything
 * else as Python's str() would print it (True, 12, 1.5, JSON for containers). malloc'd,
 * caller frees; NULL on allocation failure. */
char *api_prefs_text(const json_t *v);

#endif
