/*
 * checks.c: the checks of an HDF5 upload (see checks.h; behaviour: docs/ingest.md §3-§5,
 * D1-D2). Pipeline order decides which whole-file error wins: timestamp, manifest
 * presence (when the file has members), shotnum type, file/record checks, manifest
 * presence (no members); then per-channel extraction and the six channel checks, whose
 * reasons are merged per channel with de-duplication.
 */
#include "ingest/checks.h"

#include "store/store.h"
#include "store/timestamp.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define R_NAME "Channel name is not recognised (does not appear in manifest)"
#define R_DTYPE_MISSING "channel_dtype attribute is missing"
#define R_DTYPE_BAD "channel_dtype has wrong data type or its value is unsupported"
#define R_UNEXPECTED "unexpected group or dataset in channel group"
#define R_DATA_MISSING "data attribute is missing"
#define R_DATA_TYPE "data has wrong datatype"
#define R_X_MISSING "x attribute is missing"
#define R_Y_MISSING "y attribute is missing"
#define R_DATA_SHAPE "data has wrong shape"
/* ogd: a dataset whose declared size passes ingest.max_decompressed_bytes (never read) */
#define R_DATA_LARGE "data is too large"
#define R_X_LARGE "x attribute is too large"
#define R_Y_LARGE "y attribute is too large"

static const char *const kind_names[] = {"scalar", "image", "float_image", "waveform", "vector"};

/* ---- timestamps ---- */

static int digits(const char **p, int min, int max, int *out)
{
    int n = 0, v = 0;
    while (n < max && isdigit((unsigned char)**p)) {
        v = v * 10 + (**p - '0');
        (*p)++;
        n++;
    }
    if (n < min)
        return -EINVAL;
    *out = v;
    return 0;
}

int ingest_parse_timestamp(const char *s, int64_t *wall_us, int *offset_s)
{
    const char *p = s;
    int y, mo, d, h, mi, se;
    if (digits(&p, 4, 4, &y) || *p++ != '-' || digits(&p, 1, 2, &mo) || *p++ != '-' ||
        digits(&p, 1, 2, &d) || *p++ != 'T' || digits(&p, 1, 2, &h) || *p++ != ':' ||
        digits(&p, 1, 2, &mi) || *p++ != ':' || digits(&p, 1, 2, &se))
        return -EINVAL;
    int off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        p++;
        int oh, om, os = 0;
        if (digits(&p, 2, 2, &oh))
            return -EINVAL;
        bool colon = *p == ':';
        if (colon)
            p++;
        if (digits(&p, 2, 2, &om))
            return -EINVAL;
        if ((colon && *p == ':') || (!colon && isdigit((unsigned char)*p))) {
            if (colon)
                p++;
            if (digits(&p, 2, 2, &os))
                return -EINVAL;
        }
        if (oh > 23 || om > 59 || os > 59)
            return -EINVAL;
        off = sign * (oh * 3600 + om * 60 + os);
    } else {
        return -EINVAL;
    }
    if (*p)
        return -EINVAL;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 59)
        return -EINVAL;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return -EINVAL;
    int64_t days = timestamp_days_from_civil(y, mo, d);
    *wall_us = ((days * 86400) + h * 3600 + mi * 60 + se) * (int64_t)1000000;
    *offset_s = off;
    return 0;
}

/* [0001-01-01T00:00:00, 10000-01-01T00:00:00) in microseconds since the epoch. */
static bool in_years_1_to_9999(int64_t us)
{
    const int64_t lo = timestamp_days_from_civil(1, 1, 1) * 86400 * INT64_C(1000000);
    const int64_t hi = timestamp_days_from_civil(10000, 1, 1) * 86400 * INT64_C(1000000);
    return us >= lo && us < hi;
}

int ingest_record_id(int64_t wall_us, int offset_s, char id[INGEST_ID_LEN + 1])
{
    id[0] = '\0';
    /* wall_us is bounded first, so the subtraction cannot overflow for any offset_s */
    if (!in_years_1_to_9999(wall_us) || !in_years_1_to_9999(wall_us - (int64_t)offset_s * 1000000))
        return -ERANGE;
    int64_t secs = wall_us / 1000000 - (wall_us % 1000000 < 0);
    int64_t days = secs / 86400 - (secs % 86400 < 0);
    int64_t rem = secs - days * 86400;
    int64_t y;
    int mo, d;
    timestamp_civil_from_days(days, &y, &mo, &d);
    char text[32];
    int n = snprintf(text, sizeof(text), "%04lld%02d%02d%02d%02d%02d", (long long)y, mo, d,
                     (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
    if (n != INGEST_ID_LEN)
        return -ERANGE;
    memcpy(id, text, INGEST_ID_LEN + 1);
    return 0;
}

/* ---- descriptions ---- */

static const json_t *attr(const json_t *attrs, const char *name)
{
    return json_object_get(attrs, name);
}

static const char *attr_t(const json_t *a)
{
    return json_string_value(json_object_get(a, "t"));
}

static bool attr_is(const json_t *a, const char *t)
{
    const char *s = attr_t(a);
    return s && strcmp(s, t) == 0;
}

/* A variable-length string attribute's text, else NULL. */
static const char *attr_str(const json_t *a)
{
    return attr_is(a, "str") ? json_string_value(json_object_get(a, "v")) : NULL;
}

static void array_from(const parse_result *pr, const json_t *ds, ingest_array *out)
{
    memset(out, 0, sizeof(*out));
    const char *cls = json_string_value(json_object_get(ds, "class"));
    const json_t *shape = json_object_get(ds, "shape");
    size_t rank = json_array_size(shape);
    out->rank = rank > 9 ? 9 : (int)rank; /* more than 8 sides: malformed, see below */
    out->count = 1;
    /* the description is untrusted: a side that is not a count, or sides whose product
     * wraps (2^61 x 8 bytes = "0 bytes"), make the dataset malformed */
    bool shape_ok = rank <= 8;
    for (int i = 0; i < out->rank && i < 8; i++) {
        json_int_t side = json_integer_value(json_array_get(shape, (size_t)i));
        out->shape[i] = side < 0 ? 0 : (uint64_t)side;
        if (side < 0 || __builtin_mul_overflow(out->count, out->shape[i], &out->count))
            shape_ok = false;
    }
    if (!shape_ok)
        out->count = 0;
    /* the elements: copied into the data part ("off"), or in the upload ("ref") */
    const json_t *ref = json_object_get(ds, "ref");
    const json_t *where = ref ? ref : json_object_get(ds, "off");
    if (!cls || !where)
        return;
    out->cls = strcmp(cls, "int") == 0     ? 'i'
               : strcmp(cls, "uint") == 0  ? 'u'
               : strcmp(cls, "float") == 0 ? 'f'
                                           : 0;
    out->size = (int)json_integer_value(json_object_get(ds, "size"));
    const unsigned char *base = ref ? pr->image : pr->data;
    uint64_t base_len = ref ? pr->image_len : pr->data_len;
    uint64_t off = (uint64_t)json_integer_value(where);
    uint64_t len = (uint64_t)json_integer_value(json_object_get(ds, "len"));
    /* parse_proc checked the references already; the data part's offsets are checked
     * here, both against their buffer and for typed loads */
    bool size_ok = out->size == 1 || out->size == 2 || out->size == 4 || out->size == 8;
    uint64_t bytes = 0;
    if (!shape_ok || !base || !size_ok || off > base_len || len > base_len - off ||
        ((uintptr_t)base + off) % (uint64_t)out->size || (!ref && off % 8) ||
        __builtin_mul_overflow(out->count, (uint64_t)out->size, &bytes) || len != bytes) {
        out->cls = 0; /* malformed description: treat as not numeric */
        return;
    }
    out->data = base + off;
}

static bool is_ndarray(const json_t *ds)
{
    return json_array_size(json_object_get(ds, "shape")) >= 1;
}

static bool numeric_list(const ingest_array *a)
{
    return a->cls && a->rank == 1;
}

/* ---- reasons ---- */

typedef struct reasons {
    json_t *list; /* [[name, reason], ...] */
} reasons;

static void add_reason(json_t *list, const char *name, const char *reason)
{
    json_array_append_new(list, json_pack("[ss]", name, reason));
}

/* Merges a check's reasons into rejected (first appearance creates the key; repeats are
 * dropped), then the internal failures whose reason starts with one of prefixes. */
static void merge(json_t *rejected, json_t *check, const json_t *internal,
                  const char *const *prefixes)
{
    json_t *all = json_array();
    json_array_extend(all, check);
    size_t i;
    json_t *e;
    json_array_foreach(internal, i, e)
    {
        const char *r = json_string_value(json_array_get(e, 1));
        for (const char *const *p = prefixes; *p; p++) {
            if (strncmp(r, *p, strlen(*p)) == 0) {
                json_array_append(all, e);
                break;
            }
        }
    }
    json_array_foreach(all, i, e)
    {
        const char *name = json_string_value(json_array_get(e, 0));
        json_t *r = json_array_get(e, 1);
        json_t *list = json_object_get(rejected, name);
        if (!list) {
            json_object_set_new(rejected, name, json_pack("[O]", r));
            continue;
        }
        bool seen = false;
        size_t j;
        json_t *x;
        json_array_foreach(list, j, x) if (json_equal(x, r)) seen = true;
        if (!seen)
            json_array_append(list, r);
    }
    json_decref(all);
    json_decref(check);
}

/* ---- extraction (A5.1) ---- */

static bool kind_parse(const char *s, ingest_kind *k)
{
    for (int i = 0; i < 5; i++) {
        if (s && strcmp(s, kind_names[i]) == 0) {
            *k = (ingest_kind)i;
            return true;
        }
    }
    return false;
}

static const json_t *member_named(const json_t *members, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m)
    {
        const char *n = json_string_value(json_object_get(m, "name"));
        if (n && strcmp(n, name) == 0)
            return m;
    }
    return NULL;
}

/* Optional attributes per kind, in check order: name, type ('f' float, 's' str, 'i' int,
 * 'l' list of str). */
typedef struct opt_attr {
    const char *name;
    char type;
} opt_attr;

static const opt_attr opt_scalar[] = {{"units", 's'}, {NULL, 0}};
static const opt_attr opt_image[] = {
    {"exposure_time_s", 'f'}, {"gain", 'f'},          {"x_pixel_size", 'f'}, {"x_pixel_units", 's'},
    {"y_pixel_size", 'f'},    {"y_pixel_units", 's'}, {"bit_depth", 'i'},    {NULL, 0}};
static const opt_attr opt_float_image[] = {{"x_pixel_size", 'f'},
                                           {"x_pixel_units", 's'},
                                           {"y_pixel_size", 'f'},
                                           {"y_pixel_units", 's'},
                                           {NULL, 0}};
static const opt_attr opt_waveform[] = {{"x_units", 's'}, {"y_units", 's'}, {NULL, 0}};
static const opt_attr opt_vector[] = {{"units", 's'}, {"labels", 'l'}, {NULL, 0}};

static const opt_attr *opts_of(ingest_kind k)
{
    switch (k) {
    case INGEST_SCALAR:
        return opt_scalar;
    case INGEST_IMAGE:
        return opt_image;
    case INGEST_FLOAT_IMAGE:
        return opt_float_image;
    case INGEST_WAVEFORM:
        return opt_waveform;
    default:
        return opt_vector;
    }
}

static bool attr_type_ok(const json_t *a, char type)
{
    switch (type) {
    case 'f':
        return attr_is(a, "float") || attr_is(a, "int") || attr_is(a, "bigint");
    case 's':
        return attr_is(a, "str");
    case 'i':
        return attr_is(a, "int");
    default: {
        const char *el = json_string_value(json_object_get(a, "el"));
        return attr_is(a, "arr") && el && strcmp(el, "str") == 0;
    }
    }
}

/* The stored form of an attribute (float attributes as doubles). */
static json_t *attr_stored(const json_t *a, char type)
{
    const json_t *v = json_object_get(a, "v");
    if (type == 'f' && json_is_integer(v))
        return json_real((double)json_integer_value(v));
    return json_deep_copy(v);
}

static json_t *channel_metadata(const json_t *attrs, ingest_kind k)
{
    json_t *md = json_pack("{ss}", "channel_dtype", kind_names[k]);
    for (const opt_attr *o = opts_of(k); o->name; o++) {
        const json_t *a = attr(attrs, o->name);
        if (a)
            json_object_set_new(md, o->name,
                                attr_type_ok(a, o->type) ? attr_stored(a, o->type) : json_null());
    }
    return md;
}

/* ---- the checks ---- */

static void fail(ingest_plan *p, const char *msg)
{
    p->status = 400;
    snprintf(p->message, sizeof(p->message), "%s", msg);
}

/* Python int() of a version's minor part: blanks, a sign, digits with single '_'. */
static bool python_int(const char *s, long long *out)
{
    while (isspace((unsigned char)*s))
        s++;
    int sign = 1;
    if (*s == '+' || *s == '-')
        sign = *s++ == '-' ? -1 : 1;
    long long v = 0;
    int n = 0;
    bool under = false;
    for (; *s && !isspace((unsigned char)*s); s++) {
        if (*s == '_') {
            if (n == 0 || under)
                return false;
            under = true;
            continue;
        }
        if (!isdigit((unsigned char)*s))
            return false;
        under = false;
        if (v < 100000000000LL)
            v = v * 10 + (*s - '0');
        n++;
    }
    if (n == 0 || under)
        return false;
    while (isspace((unsigned char)*s))
        s++;
    if (*s)
        return false;
    *out = sign * v;
    return true;
}

static void file_checks(ingest_plan *p, const json_t *attrs)
{
    const json_t *ver = attr(attrs, "epac_ops_data_version");
    if (!ver)
        return fail(p, "epac_ops_data_version does not exist");
    const char *vs = attr_str(ver);
    if (!vs)
        return fail(p, "epac_ops_data_version has wrong datatype. Should be string");
    const char *dot = strchr(vs, '.');
    size_t major_len = dot ? (size_t)(dot - vs) : strlen(vs);
    if (major_len != 1 || vs[0] != '1')
        return fail(p, "epac_ops_data_version major version was not 1");
    /* ogd: the reference crashes (500) on a missing or non-numeric minor part. */
    long long minor;
    char part[64] = "";
    if (dot) {
        const char *end = strchr(dot + 1, '.');
        size_t n = end ? (size_t)(end - dot - 1) : strlen(dot + 1);
        snprintf(part, sizeof(part), "%.*s", (int)(n < 63 ? n : 63), dot + 1);
    }
    if (!dot || !python_int(part, &minor))
        return fail(p, "epac_ops_data_version minor version is not a number");
    if (minor > 2)
        json_array_append_new(p->warnings,
                              json_string("File minor version number too high (expected <=2)"));
    const json_t *area = attr(attrs, "active_area");
    if (!area)
        return fail(p, "active_area is missing");
    if (!attr_str(area))
        return fail(p, "active_area has wrong datatype. Expected string");
    const json_t *exp = attr(attrs, "active_experiment");
    if (exp && !attr_str(exp))
        return fail(p, "active_experiment has wrong datatype. Expected string");
}

/* shotnum as the record model takes it: an integer, an integral float, a numeric string. */
static void model_checks(ingest_plan *p, const json_t *attrs)
{
    const json_t *s = attr(attrs, "shotnum");
    if (!s)
        return;
    const json_t *v = json_object_get(s, "v");
    if (attr_is(s, "int")) {
        p->shotnum = json_integer_value(v);
    } else if (attr_is(s, "float") && json_is_number(v) &&
               floor(json_number_value(v)) == json_number_value(v) &&
               fabs(json_number_value(v)) < 9.2e18) {
        p->shotnum = (int64_t)json_number_value(v);
    } else if (attr_is(s, "str")) {
        const char *t = json_string_value(v);
        char *end = NULL;
        errno = 0;
        long long n = t ? strtoll(t, &end, 10) : 0;
        while (end && isspace((unsigned char)*end))
            end++;
        if (!t || errno || end == t || *end)
            return fail(p, "1 validation error for RecordMetadataModel\nshotnum\n  Input should be "
                           "a valid integer, unable to parse string as an integer");
        p->shotnum = n;
    } else if (attr_is(s, "bigint")) {
        return fail(p, "1 validation error for RecordMetadataModel\nshotnum\n  Input should be a "
                       "valid integer, the number is too large");
    } else {
        return fail(p, "1 validation error for RecordMetadataModel\nshotnum\n  Input should be a "
                       "valid integer");
    }
    p->has_shotnum = true;
}

static void build_metadata(ingest_plan *p, const json_t *attrs, const char *ts_text)
{
    json_t *md = json_object();
    const char *v = attr_str(attr(attrs, "epac_ops_data_version"));
    if (v)
        json_object_set_new(md, "epac_ops_data_version", json_string(v));
    if (p->has_shotnum)
        json_object_set_new(md, "shotnum", json_integer(p->shotnum));
    json_object_set_new(md, "timestamp", json_string(ts_text));
    const char *a = attr_str(attr(attrs, "active_area"));
    if (a)
        json_object_set_new(md, "active_area", json_string(a));
    const char *e = attr_str(attr(attrs, "active_experiment"));
    if (e)
        json_object_set_new(md, "active_experiment", json_string(e));
    p->metadata = md;
}

/* Whether dataset ds (the description's "data" of a member) passes the limit on one
 * dataset's declared size, or the helper said so ("too_large": it was not read); then
 * adds the reason ("<what> is too large: ...") to internal. */
static bool too_large(const json_t *ds, const hdf5_limits *lim, const char *name, const char *what,
                      json_t *internal)
{
    uint64_t max = lim ? lim->max_dataset_bytes : 0;
    bool flagged = json_is_true(json_object_get(ds, "too_large"));
    const json_t *size = json_object_get(ds, "size");
    if (!flagged && (!max || !json_is_integer(size)))
        return false;
    const json_t *shape = json_object_get(ds, "shape");
    size_t rank = json_array_size(shape);
    uint64_t dims[8];
    bool known = rank <= 8 && json_is_integer(size);
    for (size_t i = 0; known && i < rank; i++) {
        const json_t *v = json_array_get(shape, i);
        known = json_is_integer(v);
        dims[i] = (uint64_t)json_integer_value(v);
    }
    uint64_t bytes = 0;
    bool fits =
        known && hdf5_declared_bytes(dims, (int)rank, (uint64_t)json_integer_value(size), &bytes);
    if (!flagged && fits && bytes <= max)
        return false;
    /* the size when it is known to pass the limit (a flag alone says nothing about it) */
    char n[48] = "", limit[80] = "", msg[200];
    if (fits && max && bytes > max)
        snprintf(n, sizeof(n), ": %" PRIu64 " bytes", bytes);
    else if (known && !fits)
        snprintf(n, sizeof(n), ": over 2^64 bytes");
    if (max)
        snprintf(limit, sizeof(limit), ", more than the limit of %" PRIu64 " bytes", max);
    snprintf(msg, sizeof(msg), "%s%s when decompressed%s", what, n, limit);
    add_reason(internal, name, msg);
    return true;
}

/* Extracts one root member (A5.1). Returns true when it enters the record. */
static bool extract(const parse_result *pr, const json_t *member, const json_t *mchannels,
                    const hdf5_limits *lim, json_t *internal, ingest_channel *out)
{
    const char *name = json_string_value(json_object_get(member, "name"));
    const json_t *mc = json_object_get(mchannels, name);
    if (!json_is_object(mc)) {
        add_reason(internal, name, R_NAME);
        return false;
    }
    const json_t *attrs = json_object_get(member, "attrs");
    const json_t *dt = attr(attrs, "channel_dtype");
    if (!dt) {
        add_reason(internal, name, R_DTYPE_MISSING);
        return false;
    }
    const char *mtype = json_is_string(json_object_get(mc, "type"))
                            ? json_string_value(json_object_get(mc, "type"))
                        : json_object_get(mc, "type") ? NULL
                                                      : "scalar";
    const char *dts = attr_str(dt);
    ingest_kind k;
    if (!dts || !mtype || strcmp(dts, mtype) != 0 || !kind_parse(dts, &k)) {
        add_reason(internal, name, R_DTYPE_BAD);
        return false;
    }
    const json_t *members = json_object_get(member, "members");
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m)
    {
        /* (a member without a name or kind is malformed output: unexpected too) */
        const char *n = json_string_value(json_object_get(m, "name"));
        const char *kind = json_string_value(json_object_get(m, "kind"));
        bool ok = n && (k == INGEST_WAVEFORM ? (strcmp(n, "x") == 0 || strcmp(n, "y") == 0)
                                             : strcmp(n, "data") == 0);
        if (!ok || !kind || strcmp(kind, "dataset") != 0) {
            add_reason(internal, name, R_UNEXPECTED);
            return false;
        }
    }
    memset(out, 0, sizeof(*out));
    out->name = name;
    out->kind = k;
    if (k == INGEST_WAVEFORM) {
        const json_t *x = member_named(members, "x");
        const json_t *y = member_named(members, "y");
        if (!x)
            add_reason(internal, name, R_X_MISSING);
        if (!y)
            add_reason(internal, name, R_Y_MISSING);
        if (!x || !y)
            return false;
        bool big_x = too_large(json_object_get(x, "data"), lim, name, R_X_LARGE, internal);
        bool big_y = too_large(json_object_get(y, "data"), lim, name, R_Y_LARGE, internal);
        if (big_x || big_y)
            return false;
        array_from(pr, json_object_get(x, "data"), &out->x);
        array_from(pr, json_object_get(y, "data"), &out->y);
    } else {
        const json_t *d = member_named(members, "data");
        if (!d) {
            add_reason(internal, name, R_DATA_MISSING);
            return false;
        }
        const json_t *ds = json_object_get(d, "data");
        if (k != INGEST_SCALAR && too_large(ds, lim, name, R_DATA_LARGE, internal))
            return false;
        if (k == INGEST_SCALAR) {
            const char *cls = json_string_value(json_object_get(ds, "class"));
            ingest_array a;
            array_from(pr, ds, &a);
            if (is_ndarray(ds) || !cls) {
                add_reason(internal, name, R_DATA_TYPE);
                return false;
            }
            if (strcmp(cls, "str") == 0 && json_is_string(json_object_get(ds, "v"))) {
                out->scalar = json_deep_copy(json_object_get(ds, "v"));
            } else if (a.cls && a.data) {
                double dv = 0;
                int64_t iv = 0;
                bool isf = a.cls == 'f';
                if (a.cls == 'f')
                    dv = a.size == 4 ? (double)*(const float *)a.data : *(const double *)a.data;
                else if (a.cls == 'i')
                    iv = a.size == 1   ? *(const int8_t *)a.data
                         : a.size == 2 ? *(const int16_t *)a.data
                         : a.size == 4 ? *(const int32_t *)a.data
                                       : *(const int64_t *)a.data;
                else {
                    uint64_t u = a.size == 1   ? *(const uint8_t *)a.data
                                 : a.size == 2 ? *(const uint16_t *)a.data
                                 : a.size == 4 ? *(const uint32_t *)a.data
                                               : *(const uint64_t *)a.data;
                    if (u > INT64_MAX) {
                        isf = true;
                        dv = (double)u;
                    } else {
                        iv = (int64_t)u;
                    }
                }
                out->scalar = isf ? json_real(dv) : json_integer(iv);
                if (isf && !isfinite(dv)) { /* JSON cannot hold it */
                    json_decref(out->scalar);
                    out->scalar = NULL;
                    add_reason(internal, name, R_DATA_TYPE);
                    return false;
                }
            } else {
                add_reason(internal, name, R_DATA_TYPE);
                return false;
            }
        } else {
            array_from(pr, ds, &out->data);
            out->data.rank = (int)json_array_size(json_object_get(ds, "shape"));
        }
    }
    out->attrs = attrs;
    out->metadata = channel_metadata(attrs, k);
    return true;
}

/* A5.2 for one record channel: appends its reasons for check `stage` to list. */
static void channel_check(const ingest_channel *c, const json_t *attrs, int stage, json_t *list)
{
    const char *n = c->name;
    switch (stage) {
    case 2: /* required */
        if ((c->kind == INGEST_IMAGE || c->kind == INGEST_FLOAT_IMAGE) && c->data.rank < 1)
            add_reason(list, n, "data has wrong datatype, should be ndarray");
        if (c->kind == INGEST_WAVEFORM) {
            if (!numeric_list(&c->x))
                add_reason(list, n, "x attribute must be a list of floats");
            if (!numeric_list(&c->y))
                add_reason(list, n, "y attribute must be a list of floats");
        }
        if (c->kind == INGEST_VECTOR && !numeric_list(&c->data))
            add_reason(list, n, "data has wrong datatype, should be list[float]");
        break;
    case 3: /* optional */
        for (const opt_attr *o = opts_of(c->kind); o->name; o++) {
            const json_t *a = attr(attrs, o->name);
            if (!a)
                continue;
            char msg[96];
            if (!attr_type_ok(a, o->type)) {
                snprintf(msg, sizeof(msg), "%s attribute has wrong datatype", o->name);
                add_reason(list, n, msg);
            }
            if (o->type == 'l' && attr_is(a, "arr") && numeric_list(&c->data) &&
                json_array_size(json_object_get(a, "v")) != c->data.count) {
                snprintf(msg, sizeof(msg), "%s attribute has wrong length", o->name);
                add_reason(list, n, msg);
            }
        }
        break;
    case 4: /* dataset */
        if (c->kind == INGEST_IMAGE && c->data.rank >= 1) {
            if (c->data.cls == 'u' && (c->data.size == 1 || c->data.size == 2)) {
                /* ogd: exactly 2-D with no empty side (the reference crashes on others) */
                if (c->data.rank != 2 || c->data.count == 0 || c->data.shape[0] > 65535 ||
                    c->data.shape[1] > 65535)
                    add_reason(list, n, R_DATA_SHAPE);
            } else {
                add_reason(list, n, "data has wrong datatype, should be uint16 or uint8");
            }
        } else if (c->kind == INGEST_IMAGE) {
            add_reason(list, n, "data has wrong datatype, should be uint16 or uint8");
        }
        if (c->kind == INGEST_FLOAT_IMAGE) {
            if (c->data.rank != 2 || c->data.count == 0 || c->data.shape[0] > 65535 ||
                c->data.shape[1] > 65535)
                add_reason(list, n, R_DATA_SHAPE);
            else if (!c->data.cls) /* ogd: the reference crashes on non-numeric data */
                add_reason(list, n, "data has wrong datatype, should be a numeric array");
        }
        if (c->kind == INGEST_WAVEFORM) {
            const ingest_array *xy[2] = {&c->x, &c->y};
            for (int i = 0; i < 2; i++) {
                char msg[96];
                if (xy[i]->rank == 0) {
                    snprintf(msg, sizeof(msg), "%c attribute has wrong shape", "xy"[i]);
                    add_reason(list, n, msg);
                } else if (!numeric_list(xy[i])) {
                    snprintf(msg, sizeof(msg),
                             "%c attribute has wrong datatype, should be a list of floats",
                             "xy"[i]);
                    add_reason(list, n, msg);
                }
            }
            /* ogd: the reference stores the object and then crashes (500). */
            if (numeric_list(&c->x) && numeric_list(&c->y) && c->x.count != c->y.count)
                add_reason(list, n, "x and y attributes have different lengths");
        }
        break;
    default:
        break;
    }
}

int ingest_check(const parse_result *pr, const json_t *manifest, const hdf5_limits *lim,
                 ingest_plan *p)
{
    memset(p, 0, sizeof(*p));
    p->rejected = json_object();
    p->warnings = json_array();
    const json_t *desc = pr->desc;
    const json_t *attrs = json_object_get(desc, "attrs");
    const json_t *members = json_object_get(desc, "members");
    const char *err = json_string_value(json_object_get(desc, "error"));
    if (err) { /* the helper refused the file (its datasets too large) */
        char msg[400];
        snprintf(msg, sizeof(msg), "Uploaded HDF5 file is not accepted: %s", err);
        fail(p, msg);
        return 0;
    }
    /* the helper says how many members a file has when it has too many to describe */
    const json_t *declared = json_object_get(desc, "channels");
    uint64_t nch = json_array_size(members);
    if (json_is_integer(declared) && (uint64_t)json_integer_value(declared) > nch)
        nch = (uint64_t)json_integer_value(declared);
    uint64_t max_ch = lim ? lim->max_channels : 0;
    if (declared || (max_ch && nch > max_ch)) {
        char msg[160], limit[96] = "";
        if (max_ch)
            snprintf(limit, sizeof(limit),
                     ", more than the limit of %" PRIu64 " (ingest.max_channels)", max_ch);
        snprintf(msg, sizeof(msg), "File has too many channels: %" PRIu64 "%s", nch, limit);
        fail(p, msg);
        return 0;
    }
    /* 2. timestamp */
    const char *ts = attr_str(attr(attrs, "timestamp"));
    int64_t wall;
    int off;
    if (!ts || ingest_parse_timestamp(ts, &wall, &off) != 0) {
        fail(p, INGEST_TIMESTAMP_ERROR);
        return 0;
    }
    if (ingest_record_id(wall, off, p->id) != 0) {
        /* Valid, but year 0 or 10000 in UTC: neither the store nor the reference (which
         * fails with a 500) can hold it. Rejected as any other invalid timestamp. */
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "Invalid timestamp metadata. '%s' is outside the supported range: in UTC it "
                 "must fall within the years 1 to 9999.",
                 ts);
        fail(p, msg);
        return 0;
    }
    p->ts_us = wall - (int64_t)off * 1000000;
    char utc_text[32];
    store_format_timestamp(p->ts_us, utc_text);
    /* 3. manifest presence, extraction */
    size_t nmembers = json_array_size(members);
    if (nmembers > 0 && !manifest) {
        fail(p, INGEST_NO_MANIFEST);
        return 0;
    }
    /* 4. the record model */
    model_checks(p, attrs);
    if (p->status)
        return 0;
    build_metadata(p, attrs, utc_text);
    /* 6. file and record checks */
    file_checks(p, attrs);
    if (p->status)
        return 0;
    /* 7. */
    if (!manifest) {
        fail(p, INGEST_NO_MANIFEST);
        return 0;
    }
    const json_t *mchannels = json_object_get(manifest, "channels");
    json_t *internal = json_array();
    p->channels = calloc(nmembers ? nmembers : 1, sizeof(ingest_channel));
    if (!p->channels) {
        json_decref(internal);
        return -ENOMEM;
    }
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m)
    {
        if (extract(pr, m, mchannels, lim, internal, &p->channels[p->nchannels]))
            p->nchannels++;
    }
    /* 8. channel checks, merged in order */
    static const char *const pre_dtype[] = {R_DTYPE_MISSING, R_DTYPE_BAD, NULL};
    static const char *const pre_required[] = {
        R_DATA_MISSING, R_DATA_TYPE, R_X_MISSING, R_Y_MISSING, R_DTYPE_MISSING, R_DTYPE_BAD, NULL};
    static const char *const pre_none[] = {NULL};
    static const char *const pre_dataset[] = {
        R_DATA_MISSING,  R_DATA_TYPE, R_X_MISSING,  R_Y_MISSING,
        R_DTYPE_MISSING, R_DTYPE_BAD, R_DATA_SHAPE, R_DATA_LARGE,
        R_X_LARGE,       R_Y_LARGE,   NULL};
    static const char *const pre_unexpected[] = {R_UNEXPECTED, NULL};
    static const char *const pre_name[] = {R_NAME, NULL};
    const char *const *stages[7] = {NULL,        pre_dtype,      pre_required, pre_none,
                                    pre_dataset, pre_unexpected, pre_name};
    for (int stage = 1; stage <= 6; stage++) {
        json_t *list = json_array();
        for (size_t c = 0; c < p->nchannels; c++)
            channel_check(&p->channels[c], p->channels[c].attrs, stage, list);
        merge(p->rejected, list, internal, stages[stage]);
    }
    json_decref(internal);
    for (size_t c = 0; c < p->nchannels; c++)
        p->channels[c].rejected = json_object_get(p->rejected, p->channels[c].name) != NULL;
    return 0;
}

void ingest_plan_free(ingest_plan *p)
{
    for (size_t i = 0; i < p->nchannels; i++) {
        json_decref(p->channels[i].metadata);
        json_decref(p->channels[i].scalar);
    }
    free(p->channels);
    json_decref(p->metadata);
    json_decref(p->rejected);
    json_decref(p->warnings);
    memset(p, 0, sizeof(*p));
}
