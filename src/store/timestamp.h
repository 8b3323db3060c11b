/*
 * timestamp: parsing the date forms a record's metadata.timestamp arrives in (ISO-8601
 * text with optional fraction and offset, MongoDB Extended JSON {"$date": ...} as text or
 * milliseconds) into microseconds since the epoch, UTC.
 */
#ifndef OGD_STORE_TIMESTAMP_H
#define OGD_STORE_TIMESTAMP_H

#include <jansson.h>
#include <stdint.h>

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12, day 1..31). */
int64_t timestamp_days_from_civil(int64_t y, int m, int d);
/* The inverse: the proleptic Gregorian date of days since 1970-01-01 (|days| < 2^62, far
 * beyond what microseconds in an int64 reach; year 0 is 1 BC). */
void timestamp_civil_from_days(int64_t days, int64_t *y, int *m, int *d);
/* ISO-8601 "YYYY-MM-DD[T ]HH:MM:SS[.f{1,6}][Z|±HH:MM|±HHMM]"; naive = UTC. 0 or -EINVAL. */
int timestamp_parse_iso(const char *s, int64_t *us);
/* A string as above, or {"$date": string | milliseconds | {"$numberLong": "ms"}}. */
int timestamp_from_json(const json_t *v, int64_t *us);

#endif
