/*
 * cron.c: see cron.h. Parsing fills one bit set per field; cron_next walks forward from
 * the next whole minute, skipping a whole month, day or hour at a time when that field
 * does not match, and lets mktime normalise the broken-down time (so a local time that
 * does not exist on a DST change never matches: that occurrence is skipped; in a repeated
 * hour the first instance matches).
 */
#include "util/cron.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

typedef struct field_spec {
    const char *name;
    int lo, hi;
    const char *const *names; /* value = index + name_base */
    int nnames, name_base;
} field_spec;

static const field_spec fields[6] = {
    {"minute", 0, 59, NULL, 0, 0},          {"hour", 0, 23, NULL, 0, 0},
    {"day of month", 1, 31, NULL, 0, 0},    {"month", 1, 12, month_names, 12, 1},
    {"day of week", 0, 7, day_names, 7, 0}, {"second", 0, 59, NULL, 0, 0},
};

/* Reads a number or a name at *p; advances *p. */
static bool read_value(const field_spec *f, const char **p, int *out)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long v = 0;
        while (isdigit((unsigned char)*s) && v < 1000)
            v = v * 10 + (*s++ - '0');
        if (isdigit((unsigned char)*s))
            return false;
        *out = (int)v;
        *p = s;
        return true;
    }
    for (int i = 0; i < f->nnames; i++) {
        if (strncasecmp(s, f->names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
            *out = i + f->name_base;
            *p = s + 3;
            return true;
        }
    }
    return false;
}

static int parse_field(const field_spec *f, const char *text, uint64_t *bits, bool *star, char *err,
                       size_t errlen)
{
    *bits = 0;
    *star = false;
    const char *p = text;
    for (;;) {
        int lo, hi, step = 1;
        bool whole = false;
        if (*p == '*') {
            lo = f->lo;
            hi = f->hi == 7 ? 6 : f->hi;
            whole = true;
            p++;
        } else {
            if (!read_value(f, &p, &lo))
                goto bad;
            hi = lo;
            if (*p == '-') {
                p++;
                if (!read_value(f, &p, &hi))
                    goto bad;
            }
            if (lo < f->lo || lo > f->hi || hi < f->lo || hi > f->hi) {
                snprintf(err, errlen, "cron %s field: %d is outside %d-%d", f->name,
                         lo < f->lo || lo > f->hi ? lo : hi, f->lo, f->hi);
                return -1;
            }
            if (hi < lo) {
                snprintf(err, errlen, "cron %s field: range %d-%d goes backwards", f->name, lo, hi);
                return -1;
            }
        }
        if (*p == '/') {
            p++;
            if (!isdigit((unsigned char)*p) || !read_value(f, &p, &step) || step < 1 ||
                step > f->hi + 1)
                goto bad;
            if (!whole && lo == hi)
                hi = f->hi; /* "a/n" means a-max/n */
        }
        for (int v = lo; v <= hi; v += step)
            *bits |= 1ULL << v;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p)
            goto bad;
        break;
    }
    *star = text[0] == '*'; /* with or without a step, as Vixie cron */
    return 0;
bad:
    snprintf(err, errlen, "cron %s field: cannot read \"%.40s\"", f->name, text);
    return -1;
}

int cron_parse(const char *text, cron_expr *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!text) {
        snprintf(err, errlen, "cron expression is empty");
        return -1;
    }
    char part[6][64];
    int n = 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        if (n == 6) {
            snprintf(err, errlen, "cron expression \"%.60s\": expected 5 fields, got more", text);
            return -1;
        }
        size_t len = 0;
        while (p[len] && p[len] != ' ' && p[len] != '\t')
            len++;
        if (len >= sizeof(part[0])) {
            snprintf(err, errlen, "cron expression: field %d is too long", n + 1);
            return -1;
        }
        memcpy(part[n], p, len);
        part[n][len] = '\0';
        n++;
        p += len;
    }
    if (n != 5 && n != 6) {
        snprintf(err, errlen, "cron expression \"%.60s\": expected 5 fields, got %d", text, n);
        return -1;
    }
    uint64_t bits[6] = {0, 0, 0, 0, 0, 1};
    bool star[6] = {false};
    for (int i = 0; i < n; i++)
        if (parse_field(&fields[i], part[i], &bits[i], &star[i], err, errlen) != 0)
            return -1;
    out->seconds = bits[5];
    out->minutes = bits[0];
    out->hours = (uint32_t)bits[1];
    out->mdays = (uint32_t)bits[2];
    out->months = (uint16_t)bits[3];
    uint64_t w = bits[4];
    if (w & (1ULL << 7))
        w = (w | 1ULL) & ~(1ULL << 7);
    out->wdays = (uint8_t)w;
    out->mday_star = star[2];
    out->wday_star = star[4];
    return 0;
}

static bool day_matches(const cron_expr *c, const struct tm *tm)
{
    bool md = (c->mdays >> tm->tm_mday) & 1;
    bool wd = (c->wdays >> tm->tm_wday) & 1;
    if (c->mday_star || c->wday_star)
        return md && wd;
    return md || wd;
}

time_t cron_next(const cron_expr *c, time_t after)
{
    struct tm tm;
    time_t t = after + 1;
    localtime_r(&t, &tm);
    tm.tm_isdst = -1;
    int start_year = tm.tm_year;
    for (int guard = 0; guard < 400000; guard++) {
        t = mktime(&tm);
        if (t == (time_t)-1 || tm.tm_year - start_year > 8)
            return -1;
        if (!((c->months >> (tm.tm_mon + 1)) & 1)) {
            tm.tm_mon++;
            tm.tm_mday = 1;
            tm.tm_hour = 0;
            tm.tm_min = 0;
            tm.tm_sec = 0;
            tm.tm_isdst = -1;
            continue;
        }
        if (!day_matches(c, &tm)) {
            tm.tm_mday++;
            tm.tm_hour = 0;
            tm.tm_min = 0;
            tm.tm_sec = 0;
            tm.tm_isdst = -1;
            continue;
        }
        if (!((c->hours >> tm.tm_hour) & 1)) {
            tm.tm_hour++;
            tm.tm_min = 0;
            tm.tm_sec = 0;
            tm.tm_isdst = -1;
            continue;
        }
        if (!((c->minutes >> tm.tm_min) & 1)) {
            tm.tm_min++;
            tm.tm_sec = 0;
            tm.tm_isdst = -1;
            continue;
        }
        if (!((c->seconds >> tm.tm_sec) & 1)) {
            tm.tm_sec++;
            tm.tm_isdst = -1;
            continue;
        }
        if (t > after)
            return t;
        tm.tm_sec++;
        tm.tm_isdst = -1;
    }
    return -1;
}
