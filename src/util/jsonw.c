/* jsonw.c: see jsonw.h. */
#include "util/jsonw.h"

#include "util/dtoa.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char hexdigits[] = "0123456789abcdef";

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned int min;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0) {
        len = 2;
        min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    unsigned int cp = c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

int jsonw_string(buf_t *b, const char *s, size_t len)
{
    int rc = buf_reserve(b, len + 2);
    if (rc)
        return rc;
    buf_putc(b, '"');
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        const char *esc = NULL;
        char u[7];
        size_t adv = 1;
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c == '\b')
            esc = "\\b";
        else if (c == '\f')
            esc = "\\f";
        else if (c < 0x20) {
            u[0] = '\\';
            u[1] = 'u';
            u[2] = '0';
            u[3] = '0';
            u[4] = hexdigits[c >> 4];
            u[5] = hexdigits[c & 15];
            u[6] = '\0';
            esc = u;
        } else if (c >= 0x80) {
            adv = utf8_len(p + i, len - i);
            if (adv == 0) {
                esc = "\xEF\xBF\xBD";
                adv = 1;
            }
        }
        if (esc) {
            if (run) {
                rc = buf_append(b, s + i - run, run);
                if (rc)
                    return rc;
                run = 0;
            }
            rc = buf_puts(b, esc);
            if (rc)
                return rc;
        } else {
            run += adv;
        }
        i += adv;
    }
    if (run) {
        rc = buf_append(b, s + len - run, run);
        if (rc)
            return rc;
    }
    return buf_putc(b, '"');
}

void jsonw_format_double(double d, char *out)
{
    if (d == 0) {
        strcpy(out, signbit(d) ? "-0.0" : "0.0");
        return;
    }
    /* The shortest round-trip digits (15..17 of them), laid out as C's %.{prec}g would
     * (trailing zeros dropped; exponent form below 1e-4 or from 10^prec on), with the
     * exponent written 1e-5, 1e16 and ".0" on integral values. */
    char digits[17];
    int prec, x;
    dtoa_shortest(d, 15, digits, &prec, &x);
    int nd = prec;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    char *o = out;
    if (d < 0)
        *o++ = '-';
    if (x < -4 || x >= prec) {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        sprintf(o, "e%d", x);
        return;
    }
    if (x < 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -x - 1; i++)
            *o++ = '0';
        memcpy(o, digits, (size_t)nd);
        o += nd;
    } else {
        for (int i = 0; i <= x; i++)
            *o++ = i < nd ? digits[i] : '0';
        *o++ = '.';
        if (nd > x + 1) {
            memcpy(o, digits + x + 1, (size_t)(nd - x - 1));
            o += nd - x - 1;
        } else {
            *o++ = '0';
        }
    }
    *o = '\0';
}

int jsonw_double(buf_t *b, double d)
{
    if (!isfinite(d))
        return buf_puts(b, "null");
    char tmp[40];
    jsonw_format_double(d, tmp);
    return buf_puts(b, tmp);
}

int jsonw_value(buf_t *b, const json_t *v)
{
    int rc = 0;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        rc = buf_putc(b, '{');
        const char *key;
        json_t *val;
        int first = 1;
        json_object_foreach((json_t *)v, key, val)
        {
            if (!first)
                rc |= buf_putc(b, ',');
            first = 0;
            rc |= jsonw_string(b, key, strlen(key));
            rc |= buf_putc(b, ':');
            rc |= jsonw_value(b, val);
            if (rc)
                return rc;
        }
        return buf_putc(b, '}');
    }
    case JSON_ARRAY: {
        rc = buf_putc(b, '[');
        size_t i;
        json_t *val;
        json_array_foreach(v, i, val)
        {
            if (i)
                rc |= buf_putc(b, ',');
            rc |= jsonw_value(b, val);
            if (rc)
                return rc;
        }
        return buf_putc(b, ']');
    }
    case JSON_STRING:
        return jsonw_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return buf_printf(b, "%lld", (long long)json_integer_value(v));
    case JSON_REAL:
        return jsonw_double(b, json_real_value(v));
    case JSON_TRUE:
        return buf_puts(b, "true");
    case JSON_FALSE:
        return buf_puts(b, "false");
    case JSON_NULL:
        return buf_puts(b, "null");
    }
    return rc;
}

char *jsonw_dumps(const json_t *v, size_t *len)
{
    buf_t b;
    buf_init(&b, BUF_UNLIMITED);
    if (jsonw_value(&b, v)) {
        buf_free(&b);
        return NULL;
    }
    if (len)
        *len = b.len;
    return buf_take(&b);
}

int jsonw_pretty_arrays(buf_t *b, const char *const *names, const double *const *vals,
                        const size_t *lens, size_t narrays)
{
    int rc = buf_puts(b, "{\n");
    for (size_t a = 0; a < narrays && !rc; a++) {
        rc = buf_printf(b, "  \"%s\": [", names[a]);
        for (size_t k = 0; k < lens[a] && !rc; k++) {
            rc = buf_puts(b, k ? ",\n    " : "\n    ");
            if (!rc)
                rc = jsonw_double(b, vals[a][k]);
        }
        if (!rc)
            rc = buf_puts(b, lens[a] ? "\n  ]" : "]");
        if (!rc && a + 1 < narrays)
            rc = buf_puts(b, ",\n");
    }
    if (!rc)
        rc = buf_puts(b, "\n}");
    return rc;
}
