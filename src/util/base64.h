/*
 * base64: the standard alphabet (RFC 4648 section 4, "+/") with "=" padding.
 *
 * Owns nothing beyond the buffers it returns. Encoding turns bytes into text (thumbnails
 * are stored in records as base64 text of a PNG); decoding is strict: the text must be a
 * whole number of 4-character groups, no whitespace, "=" only as one or two trailing pad
 * characters. Bits left over in the last group (non-canonical encodings) are ignored, as
 * most decoders do. Output sizes are computed before allocating, with overflow checks.
 */
#ifndef OGD_UTIL_BASE64_H
#define OGD_UTIL_BASE64_H

#include <jansson.h>
#include <stddef.h>

#include "util/buf.h"

/* Length of the encoding of len bytes (without terminator); SIZE_MAX on overflow. */
size_t base64_encoded_len(size_t len);

/* Encodes data[0..len) into a new NUL-terminated string (caller frees); *outlen (may be
 * NULL) gets its length. NULL on allocation failure or overflow. data is borrowed. */
char *base64_encode(const void *data, size_t len, size_t *outlen);

/* Takes png (malloc'd, len bytes; freed here whatever happens): its encoding as a JSON
 * string (how thumbnails are stored), or NULL when memory runs out. */
json_t *base64_json_take(unsigned char *png, size_t len);

/* Appends the encoding of data[0..len) to b (which keeps its cap). 0, -E2BIG or -ENOMEM. */
int base64_encode_append(buf_t *b, const void *data, size_t len);

/* Decodes text[0..len) into *out (caller frees; NUL-terminated for convenience, the
 * terminator is not counted in *outlen). 0, -EINVAL on malformed input, -ENOMEM.
 * On error *out is NULL. */
int base64_decode(const char *text, size_t len, unsigned char **out, size_t *outlen);

#endif
