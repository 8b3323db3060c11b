/*
 * csv: the text formats of GET /export (docs/export.md §4-§5), byte for byte.
 *
 * Owns how values are written: Python's str() of numbers (shortest round-trip digits,
 * fixed notation for 1e-4 <= |x| < 1e16 with at least one decimal, else d.ddde+XX;
 * nan, inf, -inf), the main CSV's cells (every cell followed by a comma, strings quoted
 * without escaping, True/False, timestamps with a space), and the per-channel CSV files
 * made from stored waveform ({"x": [...], "y": [...]}) and vector ({"data": [...]}) JSON.
 * Pure functions on caller memory; the JSON parsing ones run on the thread pool.
 */
#ifndef OGD_EXPORT_CSV_H
#define OGD_EXPORT_CSV_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/* Python's str(float): out needs at least 32 bytes. */
void csv_format_double(double d, char *out);

/* Appends one main-CSV cell and its comma. v NULL, null or "" -> an empty cell.
 * timestamp: v is the API's ISO text of metadata.timestamp (written with a space). */
int csv_cell(buf_t *b, const json_t *v, bool timestamp);
/* Appends a header cell: "name", */
int csv_header_cell(buf_t *b, const char *name);

/* Parses a stored waveform object ({"x": [...], "y": [...]}, null = NaN) into malloc'd
 * arrays of n points (the shorter array's length, as Python's zip()). 0, or -EINVAL with
 * err set, -ENOMEM. */
int csv_parse_waveform(const void *json, size_t len, double **x, double **y, size_t *n, char *err,
                       size_t errlen);
/* The same from a parsed object (e.g. a waveform function's result). */
int csv_waveform_json(const json_t *obj, double **x, double **y, size_t *n, char *err,
                      size_t errlen);
/* Parses a stored vector object ({"data": [...]}) into a malloc'd array. */
int csv_parse_vector(const void *json, size_t len, double **v, size_t *n, char *err, size_t errlen);
/* "x,y\n" per point. 0 or -E2BIG (b's cap). */
int csv_waveform_lines(const double *x, const double *y, size_t n, buf_t *b);
/* "label,value\n" per element with labels (a JSON array of strings), else "value\n".
 * -ERANGE when the label count differs from n. */
int csv_vector_lines(const double *v, size_t n, const json_t *labels, buf_t *b);

#endif
