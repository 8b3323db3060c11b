/*
 * keys.c: see keys.h. One table maps each kind to its dtype, key prefix, extension and
 * class word; everything else formats strings from it.
 */
#include "objstore/keys.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *dtype, *prefix, *ext, *cls;
} kinds[OBJSTORE_KINDS] = {
    [OBJ_IMAGE] = {"image", "images", "png", "Image"},
    [OBJ_FLOAT_IMAGE] = {"float_image", "float_images", "npz", "FloatImage"},
    [OBJ_WAVEFORM] = {"waveform", "waveforms", "json", "Waveform"},
    [OBJ_VECTOR] = {"vector", "vectors", "json", "Vector"},
};

int objstore_kind_parse(const char *dtype, objstore_kind *out)
{
    if (!dtype)
        return -EINVAL;
    for (int i = 0; i < OBJSTORE_KINDS; i++) {
        if (strcmp(dtype, kinds[i].dtype) == 0) {
            *out = (objstore_kind)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *objstore_kind_class(objstore_kind kind)
{
    return kinds[kind].cls;
}

const char *objstore_kind_prefix(objstore_kind kind)
{
    return kinds[kind].prefix;
}

const char *objstore_kind_ext(objstore_kind kind)
{
    return kinds[kind].ext;
}

/* Writes the new-layout directory of a record id (YYYY/MM/DD/HHMMSS, or the bare id). */
static int new_dir(const char *id, char *out, size_t outlen)
{
    int n = strlen(id) > 8 ? snprintf(out, outlen, "%.4s/%.2s/%.2s/%s", id, id + 4, id + 6, id + 8)
                           : snprintf(out, outlen, "%s", id);
    return n >= 0 && (size_t)n < outlen ? 0 : -ENAMETOOLONG;
}

static int make_key(objstore_kind kind, const char *dir, const char *channel, char *out)
{
    int n = snprintf(out, OBJSTORE_KEY_MAX, "%s/%s/%s.%s", kinds[kind].prefix, dir, channel,
                     kinds[kind].ext);
    if (n < 0 || n >= OBJSTORE_KEY_MAX) {
        out[0] = '\0';
        return -ENAMETOOLONG;
    }
    return 0;
}

int objstore_key_new(objstore_kind kind, const char *record_id, const char *channel, char *out)
{
    char dir[OBJSTORE_KEY_MAX];
    if (new_dir(record_id, dir, sizeof(dir)) != 0) {
        out[0] = '\0';
        return -ENAMETOOLONG;
    }
    return make_key(kind, dir, channel, out);
}

int objstore_key_legacy(objstore_kind kind, const char *record_id, const char *channel, char *out)
{
    return make_key(kind, record_id, channel, out);
}

int objstore_record_prefixes(const char *record_id,
                             char out[OBJSTORE_RECORD_PREFIXES][OBJSTORE_PREFIX_MAX])
{
    static const objstore_kind order[] = {OBJ_WAVEFORM, OBJ_IMAGE, OBJ_VECTOR, OBJ_FLOAT_IMAGE};
    char dir[OBJSTORE_PREFIX_MAX];
    if (new_dir(record_id, dir, sizeof(dir)) != 0)
        return -ENAMETOOLONG;
    int n = 0;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        const char *prefix = kinds[order[i]].prefix;
        int a = snprintf(out[n++], OBJSTORE_PREFIX_MAX, "%s/%s/", prefix, dir);
        int b = snprintf(out[n++], OBJSTORE_PREFIX_MAX, "%s/%s/", prefix, record_id);
        if (a < 0 || a >= OBJSTORE_PREFIX_MAX || b < 0 || b >= OBJSTORE_PREFIX_MAX)
            return -ENAMETOOLONG;
    }
    return n;
}

int objstore_get_channel(objstore_t *os, objstore_kind kind, const char *record_id,
                         const char *channel, objstore_get_cb cb, void *data, objstore_req_t **req)
{
    return objstore_get_channel_ex(os, kind, record_id, channel, 0, cb, data, req);
}

int objstore_get_channel_ex(objstore_t *os, objstore_kind kind, const char *record_id,
                            const char *channel, unsigned flags, objstore_get_cb cb, void *data,
                            objstore_req_t **req)
{
    char key[OBJSTORE_KEY_MAX], legacy[OBJSTORE_KEY_MAX];
    int rc = objstore_key_new(kind, record_id, channel, key);
    if (rc == 0)
        rc = objstore_key_legacy(kind, record_id, channel, legacy);
    if (rc != 0)
        return rc;
    return objstore_get_ex(os, key, legacy, flags, cb, data, req);
}
