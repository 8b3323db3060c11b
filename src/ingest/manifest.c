/*
 * manifest.c: the channel manifest model (fields name, path, type, notation, precision,
 * units, historical, x_units, y_units, labels) with the reference's lax coercions, and
 * the rules that protect stored channels (no removal unless bypassed; type and units
 * never change).
 */
#include "ingest/manifest.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const types[] = {"image", "float_image", "waveform", "vector", "scalar", NULL};

static int bad(char *err, size_t errlen, const char *key, const char *field, const char *msg)
{
    snprintf(err, errlen, "1 validation error for ChannelManifestModel\nchannels.%s%s%s\n  %s",
             key ? key : "", field ? "." : "", field ? field : "", msg);
    return -1;
}

static bool lax_bool(const json_t *v, bool *out)
{
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return true;
    }
    if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
        *out = json_integer_value(v) == 1;
        return true;
    }
    if (json_is_string(v)) {
        static const char *const t[] = {"true", "1", "yes", "on", "t", "y", NULL};
        static const char *const f[] = {"false", "0", "no", "off", "f", "n", NULL};
        for (int i = 0; t[i]; i++) {
            if (strcasecmp(json_string_value(v), t[i]) == 0) {
                *out = true;
                return true;
            }
            if (strcasecmp(json_string_value(v), f[i]) == 0) {
                *out = false;
                return true;
            }
        }
    }
    return false;
}

static bool lax_int(const json_t *v, json_int_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v) &&
        fabs(json_real_value(v)) < 9e18) {
        *out = (json_int_t)json_real_value(v);
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        long long n = strtoll(s, &end, 10);
        if (end != s && *end == 0) {
            *out = n;
            return true;
        }
    }
    return false;
}

static int channel(const char *key, const json_t *in, json_t **out, char *err, size_t errlen)
{
    if (!json_is_object(in))
        return bad(err, errlen, key, NULL, "Input should be a valid dictionary");
    json_t *c = json_object();
    *out = c;
    const json_t *name = json_object_get(in, "name");
    const json_t *path = json_object_get(in, "path");
    if (!name)
        return bad(err, errlen, key, "name", "Field required");
    if (!json_is_string(name))
        return bad(err, errlen, key, "name", "Input should be a valid string");
    json_object_set(c, "name", (json_t *)name);
    if (!path)
        return bad(err, errlen, key, "path", "Field required");
    if (!json_is_string(path))
        return bad(err, errlen, key, "path", "Input should be a valid string");
    json_object_set(c, "path", (json_t *)path);
    const json_t *type = json_object_get(in, "type");
    const char *ts = "scalar";
    if (type && json_is_null(type)) {
        ts = NULL;
    } else if (type) {
        bool ok = false;
        for (int i = 0; types[i] && json_is_string(type); i++)
            ok = ok || strcmp(json_string_value(type), types[i]) == 0;
        if (!ok)
            return bad(err, errlen, key, "type",
                       "Input should be 'image', 'rgb-image', 'waveform', 'vector', 'scalar' or "
                       "'float_image'");
        ts = json_string_value(type);
    }
    json_object_set_new(c, "type", ts ? json_string(ts) : json_null());
    const json_t *v;
    if ((v = json_object_get(in, "notation"))) {
        if (!json_is_string(v) || (strcmp(json_string_value(v), "scientific") != 0 &&
                                   strcmp(json_string_value(v), "normal") != 0))
            return bad(err, errlen, key, "notation", "Input should be 'scientific' or 'normal'");
        json_object_set(c, "notation", (json_t *)v);
    }
    if ((v = json_object_get(in, "precision")) && !json_is_null(v)) {
        json_int_t n;
        if (!lax_int(v, &n))
            return bad(err, errlen, key, "precision", "Input should be a valid integer");
        json_object_set_new(c, "precision", json_integer(n));
    }
    if ((v = json_object_get(in, "units")) && !json_is_null(v)) {
        if (!json_is_string(v))
            return bad(err, errlen, key, "units", "Input should be a valid string");
        json_object_set(c, "units", (json_t *)v);
    }
    if ((v = json_object_get(in, "historical")) && !json_is_null(v)) {
        bool b;
        if (!lax_bool(v, &b))
            return bad(err, errlen, key, "historical", "Input should be a valid boolean");
        json_object_set_new(c, "historical", json_boolean(b));
    }
    static const char *const xy[] = {"x_units", "y_units"};
    for (int i = 0; i < 2; i++) {
        if (!(v = json_object_get(in, xy[i])))
            continue;
        if (!ts || strcmp(ts, "waveform") != 0) {
            snprintf(err, errlen,
                     "Only waveform channels should contain waveform channel metadata. Invalid "
                     "channel is called: %s",
                     json_string_value(name));
            return -1;
        }
        if (!json_is_null(v) && !json_is_string(v))
            return bad(err, errlen, key, xy[i], "Input should be a valid string");
        json_object_set(c, xy[i], (json_t *)v);
    }
    if ((v = json_object_get(in, "labels"))) {
        if (!ts || strcmp(ts, "vector") != 0) {
            snprintf(err, errlen,
                     "Only vector channels should contain vector channel metadata. Invalid channel "
                     "is called: %s",
                     json_string_value(name));
            return -1;
        }
        if (!json_is_null(v)) {
            if (!json_is_array(v))
                return bad(err, errlen, key, "labels", "Input should be a valid list");
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) if (!json_is_string(e)) return bad(
                err, errlen, key, "labels", "Input should be a valid string");
        }
        json_object_set(c, "labels", (json_t *)v);
    }
    return 0;
}

int manifest_validate(const char *bytes, size_t len, const char *id, json_t **out, char *err,
                      size_t errlen)
{
    *out = NULL;
    json_error_t e;
    json_t *doc = len ? json_loadb(bytes, len, JSON_REJECT_DUPLICATES & 0, &e) : NULL;
    if (!doc) {
        if (!len)
            snprintf(err, errlen,
                     "Channel manifest file not valid JSON. Expecting value: line 1 "
                     "column 1 (char 0)");
        else
            snprintf(err, errlen,
                     "Channel manifest file not valid JSON. %s: line %d column %d (char %d)",
                     e.text, e.line, e.column, e.position);
        return -1;
    }
    int rc = -1;
    const json_t *chans = json_object_get(doc, "channels");
    if (!json_is_object(doc)) {
        snprintf(err, errlen, "Channel manifest file must hold a JSON object");
    } else if (!chans) {
        snprintf(err, errlen,
                 "1 validation error for ChannelManifestModel\nchannels\n  Field required");
    } else if (!json_is_object(chans)) {
        snprintf(err, errlen,
                 "1 validation error for ChannelManifestModel\nchannels\n  Input "
                 "should be a valid dictionary");
    } else {
        json_t *outc = json_object();
        const char *key;
        json_t *v;
        rc = 0;
        json_object_foreach((json_t *)chans, key, v)
        {
            json_t *c = NULL;
            rc = channel(key, v, &c, err, errlen);
            if (rc) {
                json_decref(c);
                break;
            }
            json_object_set_new(outc, key, c);
        }
        if (rc == 0)
            *out = json_pack("{ss so}", "_id", id, "channels", outc);
        else
            json_decref(outc);
    }
    json_decref(doc);
    return rc;
}

static void value_text(const json_t *v, char *out, size_t n)
{
    if (json_is_string(v))
        snprintf(out, n, "%s", json_string_value(v));
    else
        snprintf(out, n, "None");
}

int manifest_compare(const json_t *input, const json_t *stored, bool bypass, char *err,
                     size_t errlen)
{
    if (!stored)
        return 0;
    const json_t *in = json_object_get(input, "channels");
    const json_t *st = json_object_get(stored, "channels");
    const char *key;
    json_t *v;
    if (!bypass) {
        json_object_foreach((json_t *)st, key, v)
        {
            if (!json_object_get(in, key)) {
                snprintf(err, errlen,
                         "%s has been removed from the input channel metadata. Channels cannot be "
                         "removed, add the channel back into the file and re-submit",
                         key);
                return -1;
            }
        }
    }
    json_object_foreach((json_t *)in, key, v)
    {
        const json_t *s = json_object_get(st, key);
        if (!s)
            continue;
        static const char *const fields[] = {"type", "units"};
        static const char *const labels[] = {"type_", "units"};
        for (int i = 0; i < 2; i++) {
            const json_t *a = json_object_get(v, fields[i]);
            const json_t *b = json_object_get(s, fields[i]);
            if (i == 0 && !b)
                b = NULL;
            bool same = (!a || json_is_null(a)) ? (!b || json_is_null(b)) : (b && json_equal(a, b));
            if (!same) {
                char sv[256];
                value_text(b, sv, sizeof(sv));
                snprintf(err, errlen,
                         "%s has been modified on the %s channel. Value stored in database: %s. "
                         "Re-submit the channel metadata without the modification. If the metadata "
                         "must be changed, please create a new channel.",
                         labels[i], key, sv);
                return -1;
            }
        }
    }
    return 0;
}
