/*
 * cron: five-field cron expressions (minute hour day-of-month month day-of-week), the
 * format of `experiments.scheduler_background_frequency`, plus an optional sixth field of
 * seconds as croniter (the reference's library) reads it (a sixth field "0,30" runs at :00 and :30
 * of each matching minute). Fields take `*`, numbers, ranges `a-b`, steps (`*` or `a-b` followed by
 * `/n`), lists `a,b`, and the names JAN-DEC / SUN-SAT (case-insensitive); day-of-week 7 is Sunday.
 * As in Vixie cron, when both day fields are restricted a day matches if either matches. Pure: no
 * I/O, no allocation.
 */
#ifndef OGD_UTIL_CRON_H
#define OGD_UTIL_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct cron_expr {
    uint64_t seconds; /* bit s set: second s matches (0-59); {0} without a sixth field */
    uint64_t minutes; /* bit m set: minute m matches (0-59) */
    uint32_t hours;   /* 0-23 */
    uint32_t mdays;   /* 1-31 */
    uint16_t months;  /* 1-12 */
    uint8_t wdays;    /* 0-6, Sunday = 0 */
    bool mday_star;   /* the day-of-month field starts with `*` */
    bool wday_star;
} cron_expr;

/* Parses text into out. 0, or -1 with a message naming the problem in err. */
int cron_parse(const char *text, cron_expr *out, char *err, size_t errlen);

/* The first matching second (whole minute for five fields) strictly after `after`, evaluated in the
 * process's local time zone (TZ). -1 when nothing matches within eight years (e.g. "0 0 31 2 *").
 */
time_t cron_next(const cron_expr *c, time_t after);

#endif
