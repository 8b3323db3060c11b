/*
 * recolour: thumbnail re-colouring of record documents (see recolour.h). Maps and levels
 * are resolved once per call, and only reported as errors when a thumbnail needs them:
 * a bad colour map with no image thumbnail in the page is harmless, as in the reference.
 */
#include "imaging/recolour.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imaging/colourmap.h"
#include "imaging/falsecolour.h"
#include "imaging/png.h"
#include "util/base64.h"
#include "util/log.h"

#define RECOLOUR_PNG_LEVEL 6 /* thumbnails are tiny; the smaller base64 is worth it */

typedef struct recolour_state {
    const recolour_opts *o;
    colourmap image_map, float_map;
    bool image_map_ok, float_map_ok;
    const char *level_error;
    double vmin, vmax;
} recolour_state;

/* Colours one thumbnail; 0, 1 (left unchanged: not a decodable PNG of the expected
 * kind), or a negative error. */
static int recolour_one(recolour_state *st, json_t *thumb, bool is_float, char *err, size_t errlen)
{
    unsigned char *bytes = NULL;
    size_t len = 0;
    if (base64_decode(json_string_value(thumb), json_string_length(thumb), &bytes, &len) != 0)
        return 1;
    png_image img;
    int rc = png_decode(bytes, len, &img);
    free(bytes);
    if (rc != 0)
        return 1;
    size_t n = (size_t)img.width * img.height;
    uint8_t *rgba = NULL;
    if (!is_float) {
        if (img.color_type != PNG_COLOR_GRAY || img.bit_depth != 8) {
            png_image_free(&img);
            return 1;
        }
        if (st->level_error) {
            snprintf(err, errlen, "%s", st->level_error);
            png_image_free(&img);
            return -EINVAL;
        }
        if (!st->image_map_ok) {
            snprintf(err, errlen, "%s is not a valid colour map name", st->o->colourmap_name);
            png_image_free(&img);
            return -EINVAL;
        }
        rgba = malloc(n * 4);
        if (rgba)
            falsecolour_gray(img.pixels, n, 8, st->vmin, st->vmax, &st->image_map, rgba);
    } else {
        if (img.color_type != PNG_COLOR_GRAY_ALPHA || img.bit_depth != 8) {
            png_image_free(&img);
            return 1;
        }
        if (!st->float_map_ok) {
            snprintf(err, errlen, "float colour map %s is not known", st->o->float_colourmap_name);
            png_image_free(&img);
            return -EDOM;
        }
        rgba = malloc(n * 4);
        if (rgba)
            falsecolour_la_thumbnail(img.pixels, n, &st->float_map, rgba);
    }
    uint32_t w = img.width, h = img.height;
    png_image_free(&img);
    if (!rgba)
        return -ENOMEM;
    unsigned char *png = NULL;
    size_t pnglen = 0;
    rc = png_encode_rgba(rgba, w, h, RECOLOUR_PNG_LEVEL, &png, &pnglen);
    free(rgba);
    if (rc != 0)
        return rc;
    size_t b64len = 0;
    char *b64 = base64_encode(png, pnglen, &b64len);
    free(png);
    if (!b64)
        return -ENOMEM;
    rc = json_string_setn_nocheck(thumb, b64, b64len) == 0 ? 0 : -ENOMEM;
    free(b64);
    return rc;
}

static void state_init(recolour_state *st, const recolour_opts *o)
{
    memset(st, 0, sizeof(*st));
    st->o = o;
    falsecolour_levels lv = {.lower = o->lower_level,
                             .upper = o->upper_level,
                             .limit_bit_depth = 8,
                             .has_lower = true,
                             .has_upper = true};
    st->level_error = falsecolour_check(&lv);
    if (!st->level_error)
        falsecolour_limits(&lv, 8, &st->vmin, &st->vmax);
    st->image_map_ok = colourmap_find(o->colourmap_name, &st->image_map) == 0;
    st->float_map_ok = colourmap_find(o->float_colourmap_name, &st->float_map) == 0;
}

static int channel_state(recolour_state *st, json_t *ch, const char *stored_dtype, char *err,
                         size_t errlen)
{
    json_t *thumb = json_object_get(ch, "thumbnail");
    if (!json_is_string(thumb))
        return 0;
    const char *dtype =
        json_string_value(json_object_get(json_object_get(ch, "metadata"), "channel_dtype"));
    if (!dtype)
        dtype = stored_dtype;
    if (!dtype)
        return 0;
    bool is_float = strcmp(dtype, "float_image") == 0;
    if (!is_float && strcmp(dtype, "image") != 0)
        return 0;
    int rc = recolour_one(st, thumb, is_float, err, errlen);
    return rc < 0 ? rc : 0;
}

int recolour_channel(json_t *ch, const recolour_opts *o, char *err, size_t errlen)
{
    recolour_state st;
    state_init(&st, o);
    return channel_state(&st, ch, NULL, err, errlen);
}

int recolour_records(json_t *records, const json_t *dtypes, const recolour_opts *o, char *err,
                     size_t errlen)
{
    recolour_state st;
    state_init(&st, o);
    size_t i;
    json_t *rec;
    json_array_foreach(records, i, rec)
    {
        if (o->cancel && atomic_load_explicit(o->cancel, memory_order_relaxed))
            return -ECANCELED;
        const char *name;
        json_t *ch;
        const json_t *types =
            json_object_get(dtypes, json_string_value(json_object_get(rec, "_id")));
        json_object_foreach(json_object_get(rec, "channels"), name, ch)
        {
            int rc = channel_state(&st, ch, json_string_value(json_object_get(types, name)), err,
                                   errlen);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}
