/*
 * scheduler: the wire formats of the facility's user office and Scheduler, and the
 * selection of experiment parts (docs/experiments.md §3-§4). Pure functions: they build
 * request bodies and turn response bodies into jansson values or a clear error text (the
 * texts of docs/experiments.md §8); no I/O. client.c sends what this builds.
 *
 * Wire formats:
 * - login: POST <user_office_rest_api_url>/sessions with {"username","password"}; 201 and
 *   {"sessionId": "..."} expected.
 * - WSDL: GET scheduler_wsdl_url; ogd reads the service address (`soap:address location`,
 *   SOAP 1.1 or 1.2 binding) and the `targetNamespace`; the rest of the WSDL is not
 *   interpreted.
 * - SOAP 1.1 document/literal calls in the target namespace with unqualified parameters
 *   named as JAX-WS names them (arg0, arg1, ...):
 *   getExperimentDatesForInstrument(arg0 = session id, arg1 = instrument,
 *   arg2 = {startDate, endDate}) answers `return` elements {instrument, part, rbNumber,
 *   scheduledDate, timeAllocated}; getExperiments(arg0 = session id, arg1 = one
 *   {key = RB number, value = instrument} per experiment) answers `return` elements each
 *   holding experimentPartList elements {experimentStartDate, experimentEndDate,
 *   partNumber, referenceNumber, status}. Elements are matched by local name, so any
 *   namespace prefixes work. A soap:Fault becomes the reference's "Problem processing current
 *   Scheduler call (<call>): <faultstring>".
 *
 * Returned strings and json values belong to the caller.
 */
#ifndef OGD_EXPERIMENTS_SCHEDULER_H
#define OGD_EXPERIMENTS_SCHEDULER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The login answer: 0 and *session_id (malloc'd), or -1 and err (the client message). */
int sched_parse_login(long http_status, const char *body, size_t len, char **session_id, char *err,
                      size_t errlen);

/* The WSDL: 0 and *location, *tns (malloc'd), or -1 and err. */
int sched_parse_wsdl(const char *xml, size_t len, char **location, char **tns, char *err,
                     size_t errlen);

/* Request bodies (malloc'd SOAP envelopes; NULL when out of memory). Dates are ISO 8601
 * texts as sent. pairs: array of {"key": rb (integer), "value": instrument}. */
char *sched_dates_request(const char *tns, const char *session_id, const char *instrument,
                          const char *start, const char *end);
char *sched_experiments_request(const char *tns, const char *session_id, const json_t *pairs);

/* getExperimentDatesForInstrument's answer -> *out: array of {"rb": int, "part": int}.
 * 0, or -1 and err. */
int sched_parse_dates(long http_status, const char *xml, size_t len, json_t **out, char *err,
                      size_t errlen);

/* getExperiments' answer -> *out: array of parts {"rb", "part", "status", "start_date",
 * "end_date"} with the dates as naive UTC ISO texts. 0, or -1 and err. */
int sched_parse_experiments(long http_status, const char *xml, size_t len, json_t **out, char *err,
                            size_t errlen);

/* Steps 4-5 of the algorithm: parts (from sched_parse_experiments) and mapping (an object
 * "<rb>" -> array of part numbers listed for it) -> *out: array of
 * {"experiment_id": "<rb>", "part", "start_date", "end_date"} sorted by (rb, part).
 * 0, or -1 and err. */
int sched_select(const json_t *parts, const json_t *mapping, json_t **out, char *err,
                 size_t errlen);

/* "YYYY-MM-DDTHH:MM:SS[.f][Z|+hh:mm]" -> naive UTC "YYYY-MM-DDTHH:MM:SS" (out: 32 bytes);
 * a text without an offset is taken as UTC. false if it is not such a date-time. */
bool sched_utc_naive(const char *text, char out[32]);

#endif
