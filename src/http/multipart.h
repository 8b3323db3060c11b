/*
 * multipart: finds one file part of a multipart/form-data body (RFC 7578), in place.
 * A pure function over the buffered body: no copies, bounded header scanning (a part's
 * headers may take at most MULTIPART_MAX_HEADERS bytes), so it can be fuzzed directly.
 */
#ifndef OGD_HTTP_MULTIPART_H
#define OGD_HTTP_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>

#define MULTIPART_MAX_HEADERS 8192

typedef enum multipart_status {
    MULTIPART_OK = 0,
    MULTIPART_NOT_MULTIPART, /* no multipart/form-data content type or no boundary */
    MULTIPART_MALFORMED,     /* the body does not follow the boundary structure */
    MULTIPART_MISSING,       /* no part with that name */
    MULTIPART_NOT_FILE,      /* the part is a plain field (no filename) */
    MULTIPART_BAD_BOUNDARY,  /* multipart/form-data with a boundary that is empty or longer
                                than MULTIPART_MAX_BOUNDARY (RFC 2046: 1..70 characters) */
} multipart_status;

#define MULTIPART_MAX_BOUNDARY 70

/* Finds the part named `name` in body[0..len) given the Content-Type header value.
 * On MULTIPART_OK, *data and *data_len point into body. */
multipart_status multipart_find_file(const char *content_type, const char *body, size_t len,
                                     const char *name, const char **data, size_t *data_len);

#endif
