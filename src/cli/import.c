/*
 * import.c: see import.h. Documents are read one at a time (JSON lines) or from one
 * array, normalised, and written with STORE_RECORD_PUT / STORE_MANIFEST_PUT (replacing an
 * existing document with the same _id, so an import can be re-run).
 */
#include "cli/import.h"

#include "util/base64.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT_MAX_LINE (256u << 20)

static json_t *normalise_binary(json_t *b)
{
    const char *text = NULL;
    if (json_is_object(b))
        text = json_string_value(json_object_get(b, "base64"));
    else if (json_is_string(b))
        text = json_string_value(b);
    if (!text)
        return NULL;
    unsigned char *bytes = NULL;
    size_t len = 0;
    if (base64_decode(text, strlen(text), &bytes, &len) != 0)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (bytes[i] < 0x20 || bytes[i] > 0x7e) {
            free(bytes);
            return json_string(text); /* real binary: keep its base64 */
        }
    }
    json_t *s = json_stringn((const char *)bytes, len);
    free(bytes);
    return s;
}

json_t *import_normalise(json_t *v)
{
    if (json_is_array(v)) {
        json_t *out = json_array();
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) json_array_append_new(out, import_normalise(item));
        return out;
    }
    if (!json_is_object(v))
        return json_incref(v);
    if (json_object_size(v) == 1) {
        json_t *x;
        if ((x = json_object_get(v, "$numberLong")) || (x = json_object_get(v, "$numberInt"))) {
            const char *s = json_string_value(x);
            if (s)
                return json_integer(strtoll(s, NULL, 10));
        }
        if ((x = json_object_get(v, "$numberDouble"))) {
            const char *s = json_string_value(x);
            double d = s ? strtod(s, NULL) : NAN;
            return isfinite(d) ? json_real(d) : json_null();
        }
        if ((x = json_object_get(v, "$oid")) && json_is_string(x))
            return json_incref(x);
        if ((x = json_object_get(v, "$binary"))) {
            json_t *s = normalise_binary(x);
            if (s)
                return s;
        }
    }
    if (json_object_size(v) == 2 && json_is_string(json_object_get(v, "$binary")) &&
        json_object_get(v, "$type")) {
        json_t *s = normalise_binary(json_object_get(v, "$binary"));
        if (s)
            return s;
    }
    json_t *out = json_object();
    const char *key;
    json_t *item;
    json_object_foreach(v, key, item) json_object_set_new(out, key, import_normalise(item));
    return out;
}

static int import_one(store_t *store, const char *collection, json_t *doc, FILE *log)
{
    store_op_t op;
    if (strcmp(collection, "records") == 0)
        store_op_init(&op, STORE_RECORD_PUT);
    else if (strcmp(collection, "channels") == 0)
        store_op_init(&op, STORE_MANIFEST_PUT);
    else if (strcmp(collection, "users") == 0)
        store_op_init(&op, STORE_USER_PUT);
    else {
        fprintf(log, "import: unknown collection \"%s\" (records, channels, users)\n", collection);
        return -EINVAL;
    }
    json_t *norm = import_normalise(doc);
    op.doc = norm;
    op.replace = true;
    int rc = store_run_sync(store, &op);
    if (rc != 0)
        fprintf(log, "import: %s: %s\n",
                json_string_value(json_object_get(norm, "_id")) ?: "(no _id)", op.err);
    store_op_cleanup(&op);
    json_decref(norm);
    return rc;
}

long import_file(store_t *store, const char *collection, const char *path, FILE *log)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(log, "import: cannot open %s: %s\n", path, strerror(errno));
        return -errno;
    }
    long count = 0;
    int c = fgetc(f);
    while (c == ' ' || c == '\n' || c == '\r' || c == '\t')
        c = fgetc(f);
    if (c == '[') {
        ungetc(c, f);
        json_error_t e;
        json_t *all = json_loadf(f, 0, &e);
        fclose(f);
        if (!json_is_array(all)) {
            fprintf(log, "import: %s:%d: %s\n", path, e.line, e.text);
            json_decref(all);
            return -EINVAL;
        }
        size_t i;
        json_t *doc;
        json_array_foreach(all, i, doc)
        {
            if (import_one(store, collection, doc, log) != 0) {
                json_decref(all);
                return -EIO;
            }
            count++;
        }
        json_decref(all);
        return count;
    }
    if (c != EOF)
        ungetc(c, f);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if ((size_t)n > IMPORT_MAX_LINE) {
            fprintf(log, "import: %s:%ld: line too long\n", path, lineno);
            count = -E2BIG;
            break;
        }
        if (strspn(line, " \t\r\n") == (size_t)n)
            continue;
        json_error_t e;
        json_t *doc = json_loadb(line, (size_t)n, 0, &e);
        if (!json_is_object(doc)) {
            fprintf(log, "import: %s:%ld: %s\n", path, lineno, doc ? "not an object" : e.text);
            json_decref(doc);
            count = -EINVAL;
            break;
        }
        int rc = import_one(store, collection, doc, log);
        json_decref(doc);
        if (rc != 0) {
            count = -EIO;
            break;
        }
        count++;
    }
    free(line);
    fclose(f);
    return count;
}
