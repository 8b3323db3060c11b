/*
 * jsonw: writes JSON text the way the API's clients expect it: compact, UTF-8 kept raw,
 * doubles in shortest round-trip form with a ".0" on integral values (645.0, 9.05e-5),
 * NaN and +-Infinity as null, object keys in document order. Works from jansson values
 * (jsonw_value) or piecewise for streaming (jsonw_string, jsonw_double).
 */
#ifndef OGD_UTIL_JSONW_H
#define OGD_UTIL_JSONW_H

#include <jansson.h>
#include <stddef.h>

#include "util/buf.h"

/* Appends a JSON string literal for s[0..len) (invalid UTF-8 bytes become U+FFFD). */
int jsonw_string(buf_t *b, const char *s, size_t len);
/* Appends a double: shortest round-trip text, null for non-finite values. */
int jsonw_double(buf_t *b, double d);
/* Appends an object of named number arrays, two-space indent, one value per line (the
 * layout of the stored waveform and vector objects); non-finite values are null. */
int jsonw_pretty_arrays(buf_t *b, const char *const *names, const double *const *vals,
                        const size_t *lens, size_t narrays);
/* Formats a finite double into out (at least 32 bytes), shortest round-trip. */
void jsonw_format_double(double d, char *out);
/* Appends the serialisation of v. */
int jsonw_value(buf_t *b, const json_t *v);
/* Serialises v into a new string (caller frees); NULL on allocation failure. */
char *jsonw_dumps(const json_t *v, size_t *len);

#endif
