/* keys.c: see keys.h. */
#include "objstore/keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *dtype, *prefix, *ext, *cls;
} kinds[] = {
    [OBJ_IMAGE] = {"image", "images", "png", "Image"},
    [OBJ_FLOAT_IMAGE] = {"float_image", "float_images", "npz", "FloatImage"},
    [OBJ_WAVEFORM] = {"waveform", "waveforms", "json", "Waveform"},
    [OBJ_VECTOR] = {"vector", "vectors", "json", "Vector"},
};

int objstore_kind_parse(const char *dtype)
{
    for (int i = 0; i < 4; i++)
        if (dtype && strcmp(dtype, kinds[i].dtype) == 0)
            return i;
    return -1;
}

const char *objstore_kind_class(objstore_kind kind)
{
    return kinds[kind].cls;
}

/* The new-layout directory of a record id: YYYY/MM/DD/HHMMSS, or the id itself. */
static int record_dir(const char *id, char *out, size_t outlen)
{
    size_t n = strlen(id);
    int w = n > 8 ? snprintf(out, outlen, "%.4s/%.2s/%.2s/%s", id, id + 4, id + 6, id + 8)
                  : snprintf(out, outlen, "%s", id);
    return w > 0 && (size_t)w < outlen ? 0 : -ENAMETOOLONG;
}

int objstore_key_new(objstore_kind kind, const char *record_id, const char *channel, char *out)
{
    char dir[512];
    if (record_dir(record_id, dir, sizeof(dir)))
        return -ENAMETOOLONG;
    int w = snprintf(out, OBJSTORE_KEY_MAX, "%s/%s/%s.%s", kinds[kind].prefix, dir, channel,
                     kinds[kind].ext);
    return w > 0 && w < OBJSTORE_KEY_MAX ? 0 : -ENAMETOOLONG;
}

int objstore_key_legacy(objstore_kind kind, const char *record_id, const char *channel,
                        char *out)
{
    int w = snprintf(out, OBJSTORE_KEY_MAX, "%s/%s/%s.%s", kinds[kind].prefix, record_id,
                     channel, kinds[kind].ext);
    return w > 0 && w < OBJSTORE_KEY_MAX ? 0 : -ENAMETOOLONG;
}

int objstore_record_prefixes(const char *record_id, char out[][256])
{
    static const objstore_kind order[] = {OBJ_WAVEFORM, OBJ_IMAGE, OBJ_VECTOR, OBJ_FLOAT_IMAGE};
    char dir[200];
    if (record_dir(record_id, dir, sizeof(dir)))
        dir[0] = '\0';
    int n = 0;
    for (int i = 0; i < 4; i++) {
        snprintf(out[n++], 256, "%s/%.200s/", kinds[order[i]].prefix, dir);
        snprintf(out[n++], 256, "%s/%.200s/", kinds[order[i]].prefix, record_id);
    }
    return n;
}

typedef struct channel_get {
    objstore_t *os;
    objstore_get_cb cb;
    void *data;
    char legacy[OBJSTORE_KEY_MAX];
} channel_get;

static void legacy_done(int status, const objstore_blob_t *blob, void *data)
{
    channel_get *g = data;
    g->cb(status, blob, g->data);
    free(g);
}

static void new_done(int status, const objstore_blob_t *blob, void *data)
{
    channel_get *g = data;
    if (status == 0 || status == -ECANCELED) {
        g->cb(status, blob, g->data);
        free(g);
        return;
    }
    int rc = objstore_get(g->os, g->legacy, legacy_done, g, NULL);
    if (rc != 0) {
        g->cb(status, NULL, g->data);
        free(g);
    }
}

int objstore_get_channel(objstore_t *os, objstore_kind kind, const char *record_id,
                         const char *channel, objstore_get_cb cb, void *data)
{
    char key[OBJSTORE_KEY_MAX];
    if (objstore_key_new(kind, record_id, channel, key) != 0)
        return -ENAMETOOLONG;
    channel_get *g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    g->os = os;
    g->cb = cb;
    g->data = data;
    if (objstore_key_legacy(kind, record_id, channel, g->legacy) != 0) {
        free(g);
        return -ENAMETOOLONG;
    }
    int rc = objstore_get(os, key, new_done, g, NULL);
    if (rc != 0)
        free(g);
    return rc;
}
