/*
 * fuzz_jsonw: the JSON writer and the shortest round-trip doubles every response uses
 * (src/util/jsonw.h, src/util/dtoa.h).
 *
 * The first input byte picks the mode, the rest is its input:
 *   0  DOUBLES: each 8 bytes a double (any bits). A finite one is printed by
 *      jsonw_format_double; the text must read back with strtod to the same bits, be a
 *      JSON number jansson reads as a real (".0" or an exponent: never an integer) of
 *      the same bits, and carry exactly the digits of the obvious algorithm (the first of
 *      15, 16, 17 significant digits printf gives that reads back) which dtoa_shortest
 *      promises to reproduce; the same for dtoa_shortest from a lower start precision
 *      (the next byte picks it, 1..15). Non-finite values print as null. The CSV
 *      export's Python-style text (csv_format_double) reads back to the same bits too
 *      ("nan", "inf", "-inf" for the others).
 *   1  JSON: text jansson accepts (any value, NUL escapes allowed) is written with
 *      jsonw_dumps and must parse back to an equal value (json_equal: types included, so a
 *      real must not come back as an integer), and written again gives the same text.
 *   2  BYTES: jsonw_string of arbitrary bytes must be a JSON string jansson accepts; when
 *      the bytes are valid UTF-8 it reads back as exactly those bytes.
 *   3  DOUBLES: jsonw_pretty_arrays of two arrays must parse back to {"a": [...], "b":
 *      [...]} with every finite value's bits and null for the others.
 * Checks besides: no memory error, UB or leak.
 */
#include "harness.h"

#include <jansson.h>
#include <math.h>

#include "export/csv.h"
#include "util/dtoa.h"
#include "util/jsonw.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_silence_logs();
    return 0;
}

static bool same_bits(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

/* The obvious shortest digits: the first precision from min_prec up that reads back. */
static void obvious_digits(double d, int min_prec, char *digits, int *prec, int *exp10)
{
    for (int p = min_prec; p <= 17; p++) {
        char tmp[48];
        snprintf(tmp, sizeof(tmp), "%.*e", p - 1, fabs(d));
        if (p < 17 && strtod(tmp, NULL) != fabs(d))
            continue;
        int n = 0;
        const char *s = tmp;
        for (; *s != 'e'; s++)
            if (*s >= '0' && *s <= '9')
                digits[n++] = *s;
        *prec = n;
        *exp10 = atoi(s + 1);
        return;
    }
}

static void check_dtoa(double d, int min_prec)
{
    char want[17], got[17];
    int wp, we, gp, ge;
    obvious_digits(d, min_prec, want, &wp, &we);
    dtoa_shortest(d, min_prec, got, &gp, &ge);
    if (gp != wp || ge != we || memcmp(got, want, (size_t)wp) != 0) {
        fprintf(stderr, "%a (min_prec %d): dtoa %.*s e%d, obvious %.*s e%d\n", d, min_prec, gp, got,
                ge, wp, want, we);
        FZ_CHECK(false);
    }
}

static void check_double(double d, int min_prec)
{
    /* the CSV export's text (Python's str(float)) reads back too */
    char csv[40];
    csv_format_double(d, csv);
    FZ_CHECK(strlen(csv) < 32);
    if (isnan(d))
        FZ_CHECK(strcmp(csv, "nan") == 0);
    else if (isinf(d))
        FZ_CHECK(strcmp(csv, d > 0 ? "inf" : "-inf") == 0);
    else
        FZ_CHECK(same_bits(strtod(csv, NULL), d));
    buf_t b;
    buf_init(&b, 1024);
    FZ_CHECK(jsonw_double(&b, d) == 0);
    if (!isfinite(d)) {
        FZ_CHECK(strcmp(b.data, "null") == 0);
        buf_free(&b);
        return;
    }
    char text[40];
    jsonw_format_double(d, text);
    FZ_CHECK(strlen(text) < 32 && strcmp(text, b.data) == 0);
    char *end;
    double back = strtod(text, &end);
    FZ_CHECK(*end == '\0' && same_bits(back, d));
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    FZ_CHECK(json_is_real(j) && same_bits(json_real_value(j), d));
    json_decref(j);
    buf_free(&b);
    if (d != 0) {
        check_dtoa(d, 15);
        if (min_prec < 15)
            check_dtoa(d, min_prec);
    }
}

static void mode_doubles(fz_reader *r)
{
    int min_prec = 1 + fz_u8(r) % 15;
    for (int i = 0; i < 32 && r->left >= 8; i++)
        check_double(fz_double(r), min_prec);
}

static void mode_json(const uint8_t *data, size_t size)
{
    json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!v)
        return;
    size_t len = 0;
    char *text = jsonw_dumps(v, &len);
    FZ_CHECK(text != NULL && strlen(text) == len); /* JSON text holds no raw NUL */
    json_error_t e;
    json_t *back = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!back)
        fprintf(stderr, "jsonw output does not parse (%s): %s\n", e.text, text);
    FZ_CHECK(back != NULL);
    FZ_CHECK(json_equal(v, back));
    /* writing the value read back gives the same text: the writer is deterministic and
     * keeps keys in document order */
    size_t len2 = 0;
    char *text2 = jsonw_dumps(back, &len2);
    FZ_CHECK(text2 && len2 == len && memcmp(text, text2, len) == 0);
    free(text2);
    json_decref(back);
    free(text);
    json_decref(v);
}

static void mode_string(const uint8_t *data, size_t size)
{
    buf_t b;
    buf_init(&b, BUF_UNLIMITED);
    FZ_CHECK(jsonw_string(&b, (const char *)data, size) == 0);
    json_error_t e;
    json_t *s = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!s)
        fprintf(stderr, "jsonw_string output does not parse (%s)\n", e.text);
    FZ_CHECK(json_is_string(s));
    json_t *valid = json_stringn((const char *)data, size); /* NULL unless valid UTF-8 */
    if (valid)
        FZ_CHECK(json_string_length(s) == size &&
                 (size == 0 || memcmp(json_string_value(s), data, size) == 0));
    else
        FZ_CHECK(strstr(b.data, "\xEF\xBF\xBD") != NULL); /* something was replaced */
    json_decref(valid);
    json_decref(s);
    buf_free(&b);
}

static void mode_pretty(fz_reader *r)
{
    size_t n = r->left / 8;
    size_t na = n / 2, nb = n - na;
    double *v = malloc((n ? n : 1) * sizeof(double));
    FZ_CHECK(v != NULL);
    for (size_t i = 0; i < n; i++)
        v[i] = fz_double(r);
    const char *const names[2] = {"a", "b"};
    const double *const vals[2] = {v, v + na};
    const size_t lens[2] = {na, nb};
    buf_t b;
    buf_init(&b, BUF_UNLIMITED);
    FZ_CHECK(jsonw_pretty_arrays(&b, names, vals, lens, 2) == 0);
    json_t *j = json_loadb(b.data, b.len, 0, NULL);
    FZ_CHECK(json_is_object(j) && json_object_size(j) == 2);
    for (int k = 0; k < 2; k++) {
        json_t *a = json_object_get(j, names[k]);
        FZ_CHECK(json_is_array(a) && json_array_size(a) == lens[k]);
        for (size_t i = 0; i < lens[k]; i++) {
            json_t *x = json_array_get(a, i);
            if (isfinite(vals[k][i]))
                FZ_CHECK(json_is_real(x) && same_bits(json_real_value(x), vals[k][i]));
            else
                FZ_CHECK(json_is_null(x));
        }
    }
    json_decref(j);
    buf_free(&b);
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int mode = data[0] % 4;
    fz_reader r = {data + 1, size - 1};
    switch (mode) {
    case 0:
        mode_doubles(&r);
        break;
    case 1:
        mode_json(data + 1, size - 1);
        break;
    case 2:
        mode_string(data + 1, size - 1);
        break;
    default:
        mode_pretty(&r);
        break;
    }
    return 0;
}
