/*
 * projection.c: see projection.h. The tree is a jansson object whose leaves are `true`
 * (keep this whole value) and whose inner nodes are objects (keep these sub-keys).
 */
#include "store/projection.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROJECTION_MAX_PATHS 10000
#define PROJECTION_MAX_DEPTH 32

struct projection {
    json_t *tree;
};

int projection_compile(const char *const *paths, size_t n, projection_t **out, char *err,
                       size_t errlen)
{
    if (n > PROJECTION_MAX_PATHS) {
        snprintf(err, errlen, "too many projection paths (at most %d)", PROJECTION_MAX_PATHS);
        return -EINVAL;
    }
    json_t *tree = json_object();
    for (size_t i = 0; i < n; i++) {
        const char *path = paths[i];
        if (!*path) {
            snprintf(err, errlen, "projection path %zu is empty", i);
            goto fail;
        }
        json_t *node = tree;
        const char *seg = path;
        int depth = 0;
        for (;;) {
            const char *dot = strchr(seg, '.');
            size_t len = dot ? (size_t)(dot - seg) : strlen(seg);
            if (len == 0 || ++depth > PROJECTION_MAX_DEPTH) {
                snprintf(err, errlen, "invalid projection path \"%.100s\"", path);
                goto fail;
            }
            if (seg[0] == '$') {
                snprintf(err, errlen, "projection path \"%.100s\" may not start a segment with $",
                         path);
                goto fail;
            }
            char key[512];
            if (len >= sizeof(key)) {
                snprintf(err, errlen, "projection path segment too long in \"%.100s\"", path);
                goto fail;
            }
            memcpy(key, seg, len);
            key[len] = '\0';
            json_t *child = json_object_get(node, key);
            if (!dot) {
                if (child && !json_is_true(child)) {
                    snprintf(err, errlen, "Path collision at %.200s", path);
                    goto fail;
                }
                json_object_set_new(node, key, json_true());
                break;
            }
            if (json_is_true(child)) {
                snprintf(err, errlen, "Path collision at %.200s", path);
                goto fail;
            }
            if (!child) {
                child = json_object();
                json_object_set_new(node, key, child);
            }
            node = child;
            seg = dot + 1;
        }
    }
    *out = calloc(1, sizeof(**out));
    if (!*out)
        goto fail;
    (*out)->tree = tree;
    return 0;
fail:
    json_decref(tree);
    return -EINVAL;
}

void projection_free(projection_t *p)
{
    if (!p)
        return;
    json_decref(p->tree);
    free(p);
}

bool projection_wants(const projection_t *p, const char *top)
{
    return json_object_get(p->tree, top) != NULL;
}

json_t *projection_channel_names(const projection_t *p)
{
    json_t *ch = json_object_get(p->tree, "channels");
    if (!json_is_object(ch))
        return NULL;
    json_t *names = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(ch, key, v) json_array_append_new(names, json_string(key));
    return names;
}

/* Keeps in obj only what node asks for. */
static void apply_node(json_t *node, json_t *obj)
{
    void *tmp;
    const char *key;
    json_t *v;
    json_object_foreach_safe(obj, tmp, key, v)
    {
        json_t *want = json_object_get(node, key);
        if (!want) {
            json_object_del(obj, key);
        } else if (json_is_object(want)) {
            if (json_is_object(v))
                apply_node(want, v);
            else
                json_object_del(obj, key);
        }
    }
}

void projection_apply(const projection_t *p, json_t *rec)
{
    void *tmp;
    const char *key;
    json_t *v;
    json_object_foreach_safe(rec, tmp, key, v)
    {
        if (strcmp(key, "_id") == 0)
            continue;
        json_t *want = json_object_get(p->tree, key);
        if (!want) {
            json_object_del(rec, key);
        } else if (json_is_object(want)) {
            if (json_is_object(v))
                apply_node(want, v);
            else
                json_object_del(rec, key);
        }
    }
}
