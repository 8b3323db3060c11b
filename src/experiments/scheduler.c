/*
 * scheduler.c: see scheduler.h. XML goes through libxml2 with the network, entity
 * substitution and DTD loading off; a document that declares a DTD is refused outright.
 * Elements are found by local name so the answer's namespace prefixes do not matter.
 */
#include "experiments/scheduler.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/buf.h"

#define SCHED_MAX_REQUEST (1u << 20)

/* ---------------------------------------------------------------- login (REST) */

int sched_parse_login(long http_status, const char *body, size_t len, char **session_id, char *err,
                      size_t errlen)
{
    *session_id = NULL;
    if (http_status != 201) {
        /* The reference's text, "%s" and spelling included (docs/experiments.md §8). */
        snprintf(err, errlen, "Logging in to retrieve experiments wasn't successful. %%s recieved");
        return -1;
    }
    json_t *v = json_loadb(body, len, JSON_DECODE_ANY, NULL);
    const char *sid = json_string_value(json_object_get(v, "sessionId"));
    if (!sid || !*sid) {
        if (!v)
            snprintf(err, errlen,
                     "Something went wrong when accessing /sessions to retrieve experiment data "
                     "from an external system");
        else
            snprintf(err, errlen, "Session ID cannot be found from User Office API login endpoint");
        json_decref(v);
        return -1;
    }
    *session_id = strdup(sid);
    json_decref(v);
    if (!*session_id) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- XML helpers */

static xmlDocPtr parse_xml(const char *xml, size_t len, char *err, size_t errlen)
{
    xmlInitParser();
    if (len > INT32_MAX) {
        snprintf(err, errlen, "Problem parsing XML during communication with Scheduler: too large");
        return NULL;
    }
    xmlResetLastError();
    xmlDocPtr doc = xmlReadMemory(xml, (int)len, "scheduler.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        const xmlError *e = xmlGetLastError();
        char msg[160] = "not well-formed";
        if (e && e->message) {
            snprintf(msg, sizeof(msg), "%s", e->message);
            size_t n = strlen(msg);
            while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
                msg[--n] = '\0';
        }
        snprintf(err, errlen, "Problem parsing XML during communication with Scheduler: %s", msg);
        return NULL;
    }
    if (doc->intSubset || doc->extSubset) {
        xmlFreeDoc(doc);
        snprintf(err, errlen, "Document Type Declaration error while contacting Scheduler");
        return NULL;
    }
    return doc;
}

static bool named(const xmlNode *n, const char *local)
{
    return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, local) == 0;
}

/* First element named local in the subtree under n (depth first, n included). */
static xmlNodePtr find(xmlNodePtr n, const char *local)
{
    for (; n; n = n->next) {
        if (named(n, local))
            return n;
        if (n->type == XML_ELEMENT_NODE) {
            xmlNodePtr c = find(n->children, local);
            if (c)
                return c;
        }
    }
    return NULL;
}

static xmlNodePtr child(const xmlNode *n, const char *local)
{
    for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
        if (named(c, local))
            return c;
    return NULL;
}

/* Trimmed text of n's child named local (malloc'd by libxml2; xmlFree), or NULL. */
static char *child_text(const xmlNode *n, const char *local)
{
    xmlNodePtr c = child(n, local);
    if (!c)
        return NULL;
    char *t = (char *)xmlNodeGetContent(c);
    if (!t)
        return NULL;
    size_t a = 0, b = strlen(t);
    while (a < b && isspace((unsigned char)t[a]))
        a++;
    while (b > a && isspace((unsigned char)t[b - 1]))
        b--;
    memmove(t, t + a, b - a);
    t[b - a] = '\0';
    return t;
}

static bool child_int(const xmlNode *n, const char *local, int64_t *out)
{
    char *t = child_text(n, local);
    if (!t)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(t, &end, 10);
    bool ok = *t && !*end && errno == 0;
    xmlFree(t);
    *out = v;
    return ok;
}

/* The Body's first element, after checking for a Fault and the HTTP status. */
static xmlNodePtr soap_result(xmlDocPtr doc, long http_status, const char *call, char *err,
                              size_t errlen)
{
    xmlNodePtr root = xmlDocGetRootElement(doc);
    xmlNodePtr body = named(root, "Envelope") ? child(root, "Body") : NULL;
    xmlNodePtr fault = body ? child(body, "Fault") : NULL;
    if (fault) {
        char *s = child_text(fault, "faultstring");
        if (!s) { /* SOAP 1.2: Reason/Text */
            xmlNodePtr r = child(fault, "Reason");
            s = r ? child_text(r, "Text") : NULL;
        }
        snprintf(err, errlen, "Problem processing current Scheduler call (%s): %.300s", call,
                 s ? s : "unknown fault");
        if (s)
            xmlFree(s);
        return NULL;
    }
    if (http_status != 200) {
        snprintf(err, errlen, "Scheduler returned HTTP status %ld to %s", http_status, call);
        return NULL;
    }
    xmlNodePtr resp = NULL;
    for (xmlNodePtr c = body ? body->children : NULL; c && !resp; c = c->next)
        if (c->type == XML_ELEMENT_NODE)
            resp = c;
    if (!resp) {
        snprintf(err, errlen,
                 "Problem validating communication to the Scheduler: %s answered no SOAP body",
                 call);
        return NULL;
    }
    return resp;
}

/* ---------------------------------------------------------------- WSDL */

int sched_parse_wsdl(const char *xml, size_t len, char **location, char **tns, char *err,
                     size_t errlen)
{
    *location = *tns = NULL;
    xmlDocPtr doc = parse_xml(xml, len, err, errlen);
    if (!doc)
        return -1;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    xmlChar *ns = named(root, "definitions") ? xmlGetProp(root, BAD_CAST "targetNamespace") : NULL;
    xmlNodePtr addr = find(root, "address");
    xmlChar *loc = addr ? xmlGetProp(addr, BAD_CAST "location") : NULL;
    int rc = 0;
    if (!ns || !loc || !*loc) {
        snprintf(err, errlen,
                 "Problem validating communication to the Scheduler: the WSDL names no %s",
                 !ns ? "targetNamespace" : "service address");
        rc = -1;
    } else {
        *location = strdup((const char *)loc);
        *tns = strdup((const char *)ns);
        if (!*location || !*tns) {
            free(*location);
            free(*tns);
            *location = *tns = NULL;
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
    }
    xmlFree(ns);
    xmlFree(loc);
    xmlFreeDoc(doc);
    return rc;
}

/* ---------------------------------------------------------------- requests */

static void put_escaped(buf_t *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            buf_puts(b, "&lt;");
            break;
        case '>':
            buf_puts(b, "&gt;");
            break;
        case '&':
            buf_puts(b, "&amp;");
            break;
        case '"':
            buf_puts(b, "&quot;");
            break;
        case '\'':
            buf_puts(b, "&apos;");
            break;
        default:
            buf_putc(b, *s);
        }
    }
}

static void envelope_open(buf_t *b, const char *tns, const char *op)
{
    buf_puts(b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
                "<soap-env:Envelope xmlns:soap-env=\"http://schemas.xmlsoap.org/soap/envelope/\">"
                "<soap-env:Body><ns0:");
    buf_puts(b, op);
    buf_puts(b, " xmlns:ns0=\"");
    put_escaped(b, tns);
    buf_puts(b, "\">");
}

static char *envelope_close(buf_t *b, const char *op)
{
    buf_puts(b, "</ns0:");
    buf_puts(b, op);
    if (buf_puts(b, "></soap-env:Body></soap-env:Envelope>\n") != 0) {
        buf_free(b);
        return NULL;
    }
    return buf_take(b);
}

static void element(buf_t *b, const char *name, const char *text)
{
    buf_printf(b, "<%s>", name);
    put_escaped(b, text);
    buf_printf(b, "</%s>", name);
}

char *sched_dates_request(const char *tns, const char *session_id, const char *instrument,
                          const char *start, const char *end)
{
    buf_t b;
    buf_init(&b, SCHED_MAX_REQUEST);
    envelope_open(&b, tns, "getExperimentDatesForInstrument");
    element(&b, "arg0", session_id);
    element(&b, "arg1", instrument);
    buf_puts(&b, "<arg2>");
    element(&b, "startDate", start);
    element(&b, "endDate", end);
    buf_puts(&b, "</arg2>");
    return envelope_close(&b, "getExperimentDatesForInstrument");
}

char *sched_experiments_request(const char *tns, const char *session_id, const json_t *pairs)
{
    buf_t b;
    buf_init(&b, SCHED_MAX_REQUEST);
    envelope_open(&b, tns, "getExperiments");
    element(&b, "arg0", session_id);
    size_t i;
    const json_t *p;
    json_array_foreach(pairs, i, p)
    {
        buf_printf(&b, "<arg1><key>%" JSON_INTEGER_FORMAT "</key>",
                   json_integer_value(json_object_get(p, "key")));
        element(&b, "value", json_string_value(json_object_get(p, "value")));
        buf_puts(&b, "</arg1>");
    }
    return envelope_close(&b, "getExperiments");
}

/* ---------------------------------------------------------------- answers */

int sched_parse_dates(long http_status, const char *xml, size_t len, json_t **out, char *err,
                      size_t errlen)
{
    *out = NULL;
    xmlDocPtr doc = parse_xml(xml, len, err, errlen);
    if (!doc)
        return -1;
    const char *call = "getExperimentDatesForInstrument";
    xmlNodePtr resp = soap_result(doc, http_status, call, err, errlen);
    int rc = resp ? 0 : -1;
    json_t *list = json_array();
    for (xmlNodePtr r = resp ? resp->children : NULL; r && rc == 0; r = r->next) {
        if (!named(r, "return"))
            continue;
        int64_t rb, part;
        if (!child(r, "rbNumber")) {
            snprintf(err, errlen,
                     "Problem validating communication to the Scheduler: an "
                     "experiment date has no rbNumber");
            rc = -1;
        } else if (!child_int(r, "rbNumber", &rb) || !child_int(r, "part", &part) || part < 0 ||
                   part > INT32_MAX || rb < 0) {
            snprintf(err, errlen,
                     "Problem validating communication to the Scheduler: an "
                     "experiment date has a rbNumber or part that is not a "
                     "non-negative integer");
            rc = -1;
        } else {
            json_t *e = json_pack("{sIsI}", "rb", (json_int_t)rb, "part", (json_int_t)part);
            json_array_append_new(list, e);
        }
    }
    xmlFreeDoc(doc);
    if (rc != 0) {
        json_decref(list);
        return -1;
    }
    *out = list;
    return 0;
}

int sched_parse_experiments(long http_status, const char *xml, size_t len, json_t **out, char *err,
                            size_t errlen)
{
    *out = NULL;
    xmlDocPtr doc = parse_xml(xml, len, err, errlen);
    if (!doc)
        return -1;
    xmlNodePtr resp = soap_result(doc, http_status, "getExperiments", err, errlen);
    int rc = resp ? 0 : -1;
    json_t *list = json_array();
    for (xmlNodePtr r = resp ? resp->children : NULL; r && rc == 0; r = r->next) {
        if (!named(r, "return"))
            continue;
        for (xmlNodePtr p = r->children; p && rc == 0; p = p->next) {
            if (!named(p, "experimentPartList"))
                continue;
            int64_t rb, part;
            char *status = child_text(p, "status");
            char *s = child_text(p, "experimentStartDate");
            char *e = child_text(p, "experimentEndDate");
            char start[32], end[32];
            if (!child_int(p, "referenceNumber", &rb) || !child_int(p, "partNumber", &part) ||
                rb < 0 || part < 0 || part > INT32_MAX || !status) {
                snprintf(err, errlen,
                         "Problem validating communication to the Scheduler: an experiment part "
                         "lacks an integer referenceNumber or partNumber, or a status");
                rc = -1;
            } else if (!s || !e || !sched_utc_naive(s, start) || !sched_utc_naive(e, end)) {
                snprintf(err, errlen,
                         "Problem validating communication to the Scheduler: experiment %" PRId64
                         " part %" PRId64 " has a missing or malformed start or end date",
                         rb, part);
                rc = -1;
            } else {
                json_array_append_new(list, json_pack("{sIsIssssss}", "rb", (json_int_t)rb, "part",
                                                      (json_int_t)part, "status", status,
                                                      "start_date", start, "end_date", end));
            }
            xmlFree(status);
            xmlFree(s);
            xmlFree(e);
        }
    }
    xmlFreeDoc(doc);
    if (rc != 0) {
        json_decref(list);
        return -1;
    }
    *out = list;
    return 0;
}

/* ---------------------------------------------------------------- selection */

/* Preference among duplicated part numbers: 1..4 kept (lower wins), 5..9 dropped. */
static int status_rank(const char *s)
{
    static const char *const names[] = {"delivered", "published",        "republished",
                                        "changed",   "publishrequested", "republishrequested",
                                        "tentative", "postponed",        "cancelled"};
    for (int i = 0; i < 9; i++)
        if (strcasecmp(s, names[i]) == 0)
            return i + 1;
    return 0;
}

static int by_rb_part(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t xr = json_integer_value(json_object_get(x, "rb"));
    json_int_t yr = json_integer_value(json_object_get(y, "rb"));
    if (xr != yr)
        return xr < yr ? -1 : 1;
    json_int_t xp = json_integer_value(json_object_get(x, "part"));
    json_int_t yp = json_integer_value(json_object_get(y, "part"));
    return (xp > yp) - (xp < yp);
}

int sched_select(const json_t *parts, const json_t *mapping, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    size_t n = json_array_size(parts);
    json_t **v = calloc(n ? n : 1, sizeof(*v));
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        v[i] = json_array_get(parts, i);
        const char *st = json_string_value(json_object_get(v[i], "status"));
        if (!status_rank(st ? st : "")) {
            snprintf(err, errlen,
                     "Problem validating communication to the Scheduler: unknown experiment "
                     "part status '%.60s'",
                     st ? st : "");
            free(v);
            return -1;
        }
    }
    /* Stable sort by (rb, part): insertion sort keeps the scheduler's order of equals. */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && by_rb_part(&v[j - 1], &v[j]) > 0; j--) {
            json_t *t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    json_t *res = json_array();
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        size_t k = i + 1;
        while (k < n && by_rb_part(&v[i], &v[k]) == 0)
            k++;
        json_t *best = NULL;
        if (k - i == 1) {
            best = v[i];
        } else {
            int best_rank = 0;
            for (size_t j = i; j < k; j++) {
                int r = status_rank(json_string_value(json_object_get(v[j], "status")));
                if (r <= 4 && (!best || r < best_rank)) {
                    best = v[j];
                    best_rank = r;
                }
            }
            if (!best) {
                snprintf(err, errlen,
                         "No experiment parts to choose, likely that duplicate "
                         "parts are all cancelled");
                rc = -1;
                break;
            }
        }
        json_int_t rb = json_integer_value(json_object_get(best, "rb"));
        json_int_t part = json_integer_value(json_object_get(best, "part"));
        char key[32];
        snprintf(key, sizeof(key), "%" JSON_INTEGER_FORMAT, rb);
        const json_t *listed = json_object_get(mapping, key);
        if (!listed) {
            snprintf(err, errlen, "Lookup of part mapping %s failed", key);
            rc = -1;
            break;
        }
        bool wanted = false;
        size_t j;
        const json_t *pn;
        json_array_foreach(listed, j, pn) if (json_integer_value(pn) == part) wanted = true;
        if (wanted)
            json_array_append_new(res, json_pack("{sssIsOsO}", "experiment_id", key, "part", part,
                                                 "start_date", json_object_get(best, "start_date"),
                                                 "end_date", json_object_get(best, "end_date")));
        i = k;
    }
    free(v);
    if (rc != 0) {
        json_decref(res);
        return -1;
    }
    *out = res;
    return 0;
}

/* ---------------------------------------------------------------- dates */

bool sched_utc_naive(const char *text, char out[32])
{
    struct tm tm = {0};
    const char *p = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return false;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return false;
        while (isdigit((unsigned char)*p))
            p++;
    }
    long offset = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]) || p[3] != ':' ||
            !isdigit((unsigned char)p[4]) || !isdigit((unsigned char)p[5]))
            return false;
        int hh = (p[1] - '0') * 10 + (p[2] - '0'), mm = (p[4] - '0') * 10 + (p[5] - '0');
        if (hh > 23 || mm > 59)
            return false;
        offset = sign * (hh * 3600L + mm * 60L);
        p += 6;
    }
    if (*p)
        return false;
    time_t t = timegm(&tm) - offset;
    struct tm u;
    if (!gmtime_r(&t, &u))
        return false;
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &u);
    return true;
}
