/*
 * encode.c: object bytes, thumbnails and channel documents (see encode.h; formats:
 * docs/ingest.md §8).
 */
#include "ingest/encode.h"

#include "imaging/png.h"
#include "ingest/npz_write.h"
#include "imaging/plot.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/jsonw.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Compression of stored image PNGs (the fast writer, one row filter): literal-only Huffman
 * coding. Sensor images are noisy: string matching finds almost nothing there, so this is
 * ~3x cheaper than libdeflate level 1 and smaller too (docs/benchmarks.md, ingest). */
#define INGEST_PNG_LEVEL PNG_DEFLATE_LITERALS

json_t *ingest_scalar_doc(const ingest_channel *c)
{
    return json_pack("{sO sO}", "metadata", c->metadata, "data", c->scalar);
}

static double element(const ingest_array *a, uint64_t i)
{
    const unsigned char *p = a->data + i * (uint64_t)a->size;
    switch (a->cls) {
    case 'f':
        return a->size == 4 ? (double)*(const float *)p : *(const double *)p;
    case 'i':
        return a->size == 1   ? *(const int8_t *)p
               : a->size == 2 ? *(const int16_t *)p
               : a->size == 4 ? *(const int32_t *)p
                              : (double)*(const int64_t *)p;
    default:
        return a->size == 1   ? *(const uint8_t *)p
               : a->size == 2 ? *(const uint16_t *)p
               : a->size == 4 ? *(const uint32_t *)p
                              : (double)*(const uint64_t *)p;
    }
}

static double *to_doubles(const ingest_array *a)
{
    double *d = malloc((a->count ? a->count : 1) * sizeof(double));
    if (d)
        for (uint64_t i = 0; i < a->count; i++)
            d[i] = element(a, i);
    return d;
}

uint32_t ingest_image_shift(uint32_t v, int size, int depth, int *target_bits)
{
    int target = depth <= 8 ? 8 : 16;
    *target_bits = target;
    uint32_t mask = target == 8 ? 0xFFu : 0xFFFFu;
    (void)size;
    v &= mask; /* the cast to the target type keeps the low bits */
    if (depth <= target) {
        int shift = target - depth;
        return shift >= 32 ? 0 : (uint32_t)(((uint64_t)v << shift) & mask);
    }
    int shift = depth - target;
    return shift >= 32 ? 0 : v >> shift;
}

/* Takes small (the 8-bit thumbnail, tw x th): its PNG as base64 into *thumb. */
static int thumb_png(unsigned char *small, uint32_t tw, uint32_t th, json_t **thumb)
{
    unsigned char *png = NULL;
    size_t plen = 0;
    int rc = png_encode_gray(small, tw, th, 8, 0, PNG_COMPRESSION_DEFAULT, &png, &plen);
    free(small);
    if (!rc) {
        *thumb = base64_json_take(png, plen);
        if (!*thumb)
            rc = -ENOMEM;
    }
    return rc;
}

static int encode_image(const ingest_channel *c, const ingest_thumb_sizes *ts, ingest_object *o,
                        json_t **thumb)
{
    const ingest_array *a = &c->data;
    uint32_t h = (uint32_t)a->shape[0], w = (uint32_t)a->shape[1];
    const json_t *bd = json_object_get(c->metadata, "bit_depth");
    bool has_bd = json_is_integer(bd);
    int64_t bdv = has_bd ? json_integer_value(bd) : 0;
    int depth = has_bd ? (bdv < -64 ? -64 : bdv > 64 ? 64 : (int)bdv) : (a->size == 1 ? 8 : 16);
    int target = depth <= 8 ? 8 : 16;
    int sbit = has_bd && bdv > 0 && bdv <= 16 ? (int)bdv : 0;
    if (sbit > target)
        sbit = 0;
    if (a->size == 2 && target == 16 && depth > 0 && depth <= 16) {
        /* the common case (16-bit samples, 1..16 significant bits): the shift is applied
         * as the writer and the thumbnail read the samples, no shifted copy */
        unsigned shift = (unsigned)(16 - depth);
        int rc = png_encode_gray_deflate_shift(a->data, w, h, 16, shift, sbit, INGEST_PNG_LEVEL,
                                               &o->bytes, &o->len);
        unsigned char *small = NULL;
        uint32_t tw = 0, th = 0;
        if (!rc)
            rc = png_thumbnail_gray8_shift(a->data, w, h, 16, shift, 0, ts->image[0], ts->image[1],
                                           &small, &tw, &th);
        return rc ? rc : thumb_png(small, tw, th, thumb);
    }
    size_t n = (size_t)w * h;
    void *px = malloc(n * (size_t)(target / 8));
    if (!px)
        return -ENOMEM;
    /* The shift is the same for every pixel: one table of all 256 or 65536 inputs (built
     * with ingest_image_shift), then one lookup a pixel. */
    size_t nin = a->size == 1 ? 256 : 65536;
    uint16_t *table = malloc(nin * sizeof(uint16_t));
    if (!table) {
        free(px);
        return -ENOMEM;
    }
    for (uint32_t v = 0; v < nin; v++) {
        int tb;
        table[v] = (uint16_t)ingest_image_shift(v, a->size, depth, &tb);
    }
    if (a->size == 1 && target == 8) {
        for (size_t i = 0; i < n; i++)
            ((uint8_t *)px)[i] = (uint8_t)table[a->data[i]];
    } else if (a->size == 1) {
        for (size_t i = 0; i < n; i++)
            ((uint16_t *)px)[i] = table[a->data[i]];
    } else if (target == 8) {
        for (size_t i = 0; i < n; i++)
            ((uint8_t *)px)[i] = (uint8_t)table[((const uint16_t *)a->data)[i]];
    } else {
        for (size_t i = 0; i < n; i++)
            ((uint16_t *)px)[i] = table[((const uint16_t *)a->data)[i]];
    }
    free(table);
    int rc = png_encode_gray_deflate(px, w, h, target, sbit, INGEST_PNG_LEVEL, &o->bytes, &o->len);
    unsigned char *small = NULL;
    uint32_t tw = 0, th = 0;
    if (!rc)
        rc = png_thumbnail_gray8(px, w, h, target, 0, ts->image[0], ts->image[1], &small, &tw, &th);
    free(px);
    return rc ? rc : thumb_png(small, tw, th, thumb);
}

static const char *npy_descr(const ingest_array *a)
{
    static const char *const f[] = {"<f4", "<f8"};
    static const char *const i[] = {"|i1", "<i2", "<i4", "<i8"};
    static const char *const u[] = {"|u1", "<u2", "<u4", "<u8"};
    int k = a->size == 1 ? 0 : a->size == 2 ? 1 : a->size == 4 ? 2 : 3;
    return a->cls == 'f' ? f[a->size == 4 ? 0 : 1] : a->cls == 'i' ? i[k] : u[k];
}

static int encode_float_image(const ingest_channel *c, const ingest_thumb_sizes *ts,
                              ingest_object *o, json_t **thumb)
{
    const ingest_array *a = &c->data;
    int rc = npz_write(npy_descr(a), a->shape, 2, a->data, (size_t)(a->count * (uint64_t)a->size),
                       &o->bytes, &o->len);
    if (rc)
        return rc;
    uint32_t h = (uint32_t)a->shape[0], w = (uint32_t)a->shape[1];
    size_t n = (size_t)w * h;
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double v = element(a, i);
        if (isfinite(v) && fabs(v) > m) /* +-inf saturate below instead of flattening all */
            m = fabs(v);
    }
    if (m == 0)
        m = 1;
    uint8_t *l = malloc(n), *al = malloc(n);
    if (!l || !al) {
        free(l);
        free(al);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        double v = element(a, i);
        /* v / m / 2 is v / (2m) exactly, and 2m cannot overflow here (inf / inf) */
        double s = 255.0 * (v / m * 0.5 + 0.5);
        l[i] = isnan(v) ? 0 : s <= 0 ? 0 : s >= 255 ? 255 : (uint8_t)s;
        al[i] = isnan(v) ? 0 : 255;
    }
    unsigned char *sl = NULL, *sa = NULL;
    uint32_t tw, th;
    rc = png_thumbnail_gray8(l, w, h, 8, 0, ts->float_image[0], ts->float_image[1], &sl, &tw, &th);
    if (!rc)
        rc = png_thumbnail_gray8(al, w, h, 8, 0, ts->float_image[0], ts->float_image[1], &sa, &tw,
                                 &th);
    free(l);
    free(al);
    unsigned char *la = rc ? NULL : malloc((size_t)tw * th * 2);
    if (!rc && !la)
        rc = -ENOMEM;
    if (!rc) {
        for (size_t i = 0; i < (size_t)tw * th; i++) {
            la[2 * i] = sl[i];
            la[2 * i + 1] = sa[i];
        }
    }
    free(sl);
    free(sa);
    unsigned char *png = NULL;
    size_t plen = 0;
    if (!rc)
        rc = png_encode_gray_alpha(la, tw, th, PNG_COMPRESSION_DEFAULT, &png, &plen);
    free(la);
    if (!rc)
        *thumb = base64_json_take(png, plen);
    return rc;
}

static int encode_arrays(const ingest_channel *c, const ingest_thumb_sizes *ts, ingest_object *o,
                         json_t **thumb)
{
    bool wave = c->kind == INGEST_WAVEFORM;
    const ingest_array *first = wave ? &c->x : &c->data;
    double *x = to_doubles(first);
    double *y = wave ? to_doubles(&c->y) : NULL;
    if (!x || (wave && !y)) {
        free(x);
        free(y);
        return -ENOMEM;
    }
    buf_t b;
    buf_init(&b, BUF_UNLIMITED);
    int rc;
    if (wave) {
        const char *names[2] = {"x", "y"};
        const double *vals[2] = {x, y};
        size_t lens[2] = {(size_t)c->x.count, (size_t)c->y.count};
        rc = jsonw_pretty_arrays(&b, names, vals, lens, 2);
    } else {
        const char *names[1] = {"data"};
        const double *vals[1] = {x};
        size_t lens[1] = {(size_t)c->data.count};
        rc = jsonw_pretty_arrays(&b, names, vals, lens, 1);
    }
    unsigned char *png = NULL;
    size_t plen = 0;
    if (!rc && wave) {
        rc = plot_waveform_png(x, y, (size_t)c->x.count, ts->waveform[0], ts->waveform[1],
                               ts->waveform_line_width, &png, &plen);
    } else if (!rc) {
        rc = plot_vector_png(x, (size_t)c->data.count, ts->vector[0], ts->vector[1], &png, &plen);
    }
    free(x);
    free(y);
    if (rc) {
        buf_free(&b);
        return rc == -E2BIG ? -ENOMEM : rc;
    }
    o->len = b.len;
    o->bytes = (unsigned char *)buf_take(&b);
    *thumb = base64_json_take(png, plen);
    return 0;
}

int ingest_object_key(const ingest_channel *c, const char *record_id, objstore_kind *kind,
                      char *out)
{
    switch (c->kind) {
    case INGEST_IMAGE:
        *kind = OBJ_IMAGE;
        break;
    case INGEST_FLOAT_IMAGE:
        *kind = OBJ_FLOAT_IMAGE;
        break;
    case INGEST_WAVEFORM:
        *kind = OBJ_WAVEFORM;
        break;
    case INGEST_VECTOR:
        *kind = OBJ_VECTOR;
        break;
    default:
        return -EINVAL;
    }
    return objstore_key_new(*kind, record_id, c->name, out) != 0 ? -ENAMETOOLONG : 0;
}

int ingest_encode(const ingest_channel *c, const char *record_id, const ingest_thumb_sizes *ts,
                  ingest_object *o, const char **why)
{
    memset(o, 0, sizeof(*o));
    o->ch = c;
    *why = NULL;
    int krc = ingest_object_key(c, record_id, &o->kind, o->key);
    if (krc)
        return krc;
    const char *path_key = o->kind == OBJ_WAVEFORM ? "waveform_path"
                           : o->kind == OBJ_VECTOR ? "vector_path"
                                                   : "image_path";
    json_t *thumb = NULL;
    int rc;
    if (c->kind == INGEST_IMAGE)
        rc = encode_image(c, ts, o, &thumb);
    else if (c->kind == INGEST_FLOAT_IMAGE)
        rc = encode_float_image(c, ts, o, &thumb);
    else
        rc = encode_arrays(c, ts, o, &thumb);
    if (rc == -EINVAL || rc == -E2BIG)
        *why = "data could not be encoded";
    if (!rc && !thumb)
        rc = -ENOMEM;
    if (rc) {
        json_decref(thumb);
        ingest_object_free(o);
        return rc == -E2BIG ? -EINVAL : rc;
    }
    /* The relative path: the key without its "<prefix>/". */
    const char *rel = o->key + strlen(objstore_kind_prefix(o->kind)) + 1;
    if (c->kind == INGEST_IMAGE || c->kind == INGEST_FLOAT_IMAGE)
        o->doc = json_pack("{sO ss so sI}", "metadata", c->metadata, path_key, rel, "thumbnail",
                           thumb, "object_size", (json_int_t)o->len);
    else
        o->doc = json_pack("{sO so ss sI}", "metadata", c->metadata, "thumbnail", thumb, path_key,
                           rel, "object_size", (json_int_t)o->len);
    if (!o->doc) {
        ingest_object_free(o);
        return -ENOMEM;
    }
    return 0;
}

void ingest_object_free(ingest_object *o)
{
    free(o->bytes);
    o->bytes = NULL;
    json_decref(o->doc);
    o->doc = NULL;
}
