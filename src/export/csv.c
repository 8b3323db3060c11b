/*
 * csv.c: see csv.h.
 */
#include "export/csv.h"

#include "util/dtoa.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void csv_format_double(double d, char *out)
{
    if (isnan(d)) {
        strcpy(out, "nan");
        return;
    }
    if (isinf(d)) {
        strcpy(out, d < 0 ? "-inf" : "inf");
        return;
    }
    if (d == 0) {
        strcpy(out, signbit(d) ? "-0.0" : "0.0");
        return;
    }
    /* Shortest round-trip digits; subnormals carry fewer, so they search from 1. */
    char digits[17];
    int prec, exp10;
    dtoa_shortest(d, fabs(d) < DBL_MIN ? 1 : 15, digits, &prec, &exp10);
    char *o = out;
    if (d < 0)
        *o++ = '-';
    size_t nd = (size_t)prec;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -exp10 - 1; i++)
                *o++ = '0';
            memcpy(o, digits, nd);
            o += nd;
        } else {
            size_t whole = (size_t)exp10 + 1;
            for (size_t i = 0; i < whole; i++)
                *o++ = i < nd ? digits[i] : '0';
            *o++ = '.';
            if (nd > whole) {
                memcpy(o, digits + whole, nd - whole);
                o += nd - whole;
            } else {
                *o++ = '0';
            }
        }
        *o = '\0';
        return;
    }
    *o++ = digits[0];
    if (nd > 1) {
        *o++ = '.';
        memcpy(o, digits + 1, nd - 1);
        o += nd - 1;
    }
    sprintf(o, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
}

int csv_header_cell(buf_t *b, const char *name)
{
    return buf_printf(b, "\"%s\",", name);
}

int csv_cell(buf_t *b, const json_t *v, bool timestamp)
{
    int rc = 0;
    char num[40];
    if (!v || json_is_null(v)) {
        /* empty */
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (n == 0) {
        } else if (timestamp) {
            /* 2023-06-05T08:00:00[.ffffff] -> 2023-06-05 08:00:00[.ffffff] */
            const char *t = memchr(s, 'T', n);
            if (t) {
                rc = buf_append(b, s, (size_t)(t - s));
                rc |= buf_putc(b, ' ');
                rc |= buf_append(b, t + 1, n - (size_t)(t - s) - 1);
            } else {
                rc = buf_append(b, s, n);
            }
        } else {
            rc = buf_putc(b, '"');
            rc |= buf_append(b, s, n);
            rc |= buf_putc(b, '"');
        }
    } else if (json_is_integer(v)) {
        rc = buf_printf(b, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        csv_format_double(json_real_value(v), num);
        rc = buf_puts(b, num);
    } else if (json_is_true(v)) {
        rc = buf_puts(b, "True");
    } else if (json_is_false(v)) {
        rc = buf_puts(b, "False");
    } else {
        /* An object or array where a scalar was expected: its Python text is not
         * reproducible here; the cell stays empty rather than wrong. */
    }
    if (rc)
        return rc < 0 ? rc : -E2BIG;
    return buf_putc(b, ',');
}

static int number_of(const json_t *v, double *out)
{
    if (json_is_real(v))
        *out = json_real_value(v);
    else if (json_is_integer(v))
        *out = (double)json_integer_value(v);
    else if (json_is_null(v))
        *out = NAN; /* how a NaN was written */
    else
        return -1;
    return 0;
}

static json_t *load(const void *json, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_ALLOW_NUL, &je);
    if (!root || !json_is_object(root)) {
        snprintf(err, errlen, "stored object is not a JSON object");
        json_decref(root);
        return NULL;
    }
    return root;
}

static int numbers(const json_t *arr, size_t n, double **out, const char *what, char *err,
                   size_t errlen)
{
    *out = malloc((n ? n : 1) * sizeof(double));
    if (!*out)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (number_of(json_array_get(arr, i), &(*out)[i])) {
            snprintf(err, errlen, "%s value %zu is not a number", what, i);
            free(*out);
            *out = NULL;
            return -EINVAL;
        }
    }
    return 0;
}

int csv_waveform_json(const json_t *obj, double **x, double **y, size_t *n, char *err,
                      size_t errlen)
{
    *x = *y = NULL;
    *n = 0;
    json_t *jx = json_object_get(obj, "x"), *jy = json_object_get(obj, "y");
    if (!json_is_array(jx) || !json_is_array(jy)) {
        snprintf(err, errlen, "waveform object lacks its x and y arrays");
        return -EINVAL;
    }
    size_t m =
        json_array_size(jx) < json_array_size(jy) ? json_array_size(jx) : json_array_size(jy);
    int rc = numbers(jx, m, x, "waveform x", err, errlen);
    if (!rc) {
        rc = numbers(jy, m, y, "waveform y", err, errlen);
        if (rc) {
            free(*x);
            *x = NULL;
        }
    }
    if (!rc)
        *n = m;
    return rc;
}

int csv_parse_waveform(const void *json, size_t len, double **x, double **y, size_t *n, char *err,
                       size_t errlen)
{
    *x = *y = NULL;
    *n = 0;
    json_t *root = load(json, len, err, errlen);
    if (!root)
        return -EINVAL;
    int rc = csv_waveform_json(root, x, y, n, err, errlen);
    json_decref(root);
    return rc;
}

int csv_parse_vector(const void *json, size_t len, double **v, size_t *n, char *err, size_t errlen)
{
    *v = NULL;
    *n = 0;
    json_t *root = load(json, len, err, errlen);
    if (!root)
        return -EINVAL;
    json_t *data = json_object_get(root, "data");
    int rc;
    if (!json_is_array(data)) {
        snprintf(err, errlen, "vector object lacks its data array");
        rc = -EINVAL;
    } else {
        rc = numbers(data, json_array_size(data), v, "vector", err, errlen);
        if (!rc)
            *n = json_array_size(data);
    }
    json_decref(root);
    return rc;
}

int csv_waveform_lines(const double *x, const double *y, size_t n, buf_t *b)
{
    char a[40], c[40];
    for (size_t i = 0; i < n; i++) {
        csv_format_double(x[i], a);
        csv_format_double(y[i], c);
        int rc = buf_printf(b, "%s,%s\n", a, c);
        if (rc)
            return rc;
    }
    return 0;
}

int csv_vector_lines(const double *v, size_t n, const json_t *labels, buf_t *b)
{
    if (labels && json_array_size(labels) != n)
        return -ERANGE;
    char num[40];
    for (size_t i = 0; i < n; i++) {
        csv_format_double(v[i], num);
        int rc;
        if (labels) {
            const char *l = json_string_value(json_array_get(labels, i));
            rc = buf_printf(b, "%s,%s\n", l ? l : "", num);
        } else {
            rc = buf_printf(b, "%s\n", num);
        }
        if (rc)
            return rc;
    }
    return 0;
}
