/*
 * fuzz_hdf5_desc: what a worker does with the HDF5 helper's output, which is untrusted
 * (the helper runs libhdf5 on hostile uploads): the description decoders of
 * src/ingest/parse_proc.h ("OGDH" from the pipe, "OGDM" from the shared mapping, with the
 * checks of dataset references into the upload), then every consumer of the decoded
 * description on the ingest path: ingest_check (src/ingest/checks.h) and, for each
 * channel it accepts, ingest_scalar_doc or ingest_encode (src/ingest/encode.h: image
 * shift + PNG + thumbnail, float image .npz, waveform/vector JSON + plot).
 *
 * Input: MODE FLAGS REST. MODE & 3 picks the form:
 *   0  REST is a raw "OGDH" buffer;
 *   1  REST is MAP %% IMAGE: a raw "OGDM" mapping and the upload its references use;
 *   2  REST is JSON %% DATA: assembled into a well-formed "OGDH" buffer;
 *   3  REST is JSON %% DATA %% IMAGE: assembled into a well-formed "OGDM" mapping.
 * FLAGS: bit 0: check against a manifest naming every member with the channel_dtype the
 * member itself claims (else none, the "no manifest stored" path); bits 1-3: the
 * upload's misalignment (0..7 bytes past a 16-byte boundary), as the references are
 * checked for alignment in the worker's copy.
 * Checks, besides memory errors (the buffers are exact-size copies, the mapping a real
 * mmap), UB and leaks: the decoders return 0 or PARSE_CRASHED; a decoded result's data
 * part lies inside what was decoded; every numeric array of every extracted channel (x,
 * y, data) has count * size bytes that do not overflow and lie, aligned, inside the
 * data part or the upload; encoding succeeds or fails with a reason.
 */
#include "harness.h"

#include <sys/mman.h>

#include "ingest/checks.h"
#include "ingest/encode.h"
#include "ingest/hdf5_read.h"
#include "ingest/parse_proc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_silence_logs();
    return 0;
}

static void put64le(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* A copy of the upload starting skew bytes past a 16-byte boundary, in a block that
 * ends where it ends (so ASan sees any read past it). */
static unsigned char *image_copy(const fz_part *p, unsigned skew, void **block)
{
    unsigned char *b = malloc(skew + p->size + (p->size == 0));
    if (!b)
        abort();
    if (p->size)
        memcpy(b + skew, p->data, p->size);
    *block = b;
    return b + skew;
}

/* A private writable mapping holding bytes (as parse_proc maps the output memfd). */
static void *map_copy(const unsigned char *bytes, size_t len)
{
    void *m = mmap(NULL, len ? len : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    FZ_CHECK(m != MAP_FAILED);
    if (len)
        memcpy(m, bytes, len);
    return m;
}

static bool inside(const unsigned char *p, uint64_t n, const unsigned char *base, size_t len)
{
    return base && p >= base && p <= base + len && n <= (uint64_t)(base + len - p);
}

static void check_array(const ingest_array *a, const parse_result *pr)
{
    if (!a->cls || !a->data)
        return;
    FZ_CHECK(a->size == 1 || a->size == 2 || a->size == 4 || a->size == 8);
    uint64_t bytes;
    FZ_CHECK(!__builtin_mul_overflow(a->count, (uint64_t)a->size, &bytes));
    FZ_CHECK(inside(a->data, bytes, pr->data, pr->data_len) ||
             inside(a->data, bytes, pr->image, pr->image_len));
    FZ_CHECK((uintptr_t)a->data % (uintptr_t)a->size == 0);
    uint64_t count = 1;
    for (int i = 0; i < a->rank && i < 8; i++)
        FZ_CHECK(!__builtin_mul_overflow(count, a->shape[i], &count));
    if (a->rank <= 8)
        FZ_CHECK(count == a->count);
    fz_touch(a->data, (size_t)bytes);
}

/* A manifest naming every member with the channel_dtype it claims. */
static json_t *manifest_of(const json_t *desc)
{
    json_t *channels = json_object();
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(desc, "members"), i, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        json_t *dt =
            json_object_get(json_object_get(json_object_get(m, "attrs"), "channel_dtype"), "v");
        if (name && json_is_string(dt))
            json_object_set_new(channels, name, json_pack("{sO}", "type", dt));
    }
    return json_pack("{sss o}", "_id", "manifest", "channels", channels);
}

static void consume(const parse_result *pr, bool with_manifest)
{
    FZ_CHECK(pr->desc != NULL);
    json_t *manifest = with_manifest ? manifest_of(pr->desc) : NULL;
    ingest_plan plan;
    /* limits small enough for inputs to pass them (the rejections), large enough for
     * ordinary shapes to be accepted */
    static const hdf5_limits lim = {
        .max_dataset_bytes = 1 << 20, .max_file_bytes = 4 << 20, .max_channels = 100};
    int rc = ingest_check(pr, manifest, &lim, &plan);
    FZ_CHECK(rc == 0 || rc == -ENOMEM);
    if (rc == 0 && plan.status == 0) {
        FZ_CHECK(strlen(plan.id) == 14);
        ingest_thumb_sizes ts = {{50, 50}, {50, 50}, {100, 60}, {100, 60}, 0.5};
        for (size_t i = 0; i < plan.nchannels; i++) {
            const ingest_channel *c = &plan.channels[i];
            FZ_CHECK(c->name != NULL);
            check_array(&c->data, pr);
            check_array(&c->x, pr);
            check_array(&c->y, pr);
            if (c->rejected)
                continue;
            if (c->kind == INGEST_SCALAR) {
                json_t *doc = ingest_scalar_doc(c);
                FZ_CHECK(doc != NULL);
                json_decref(doc);
                continue;
            }
            ingest_object o;
            memset(&o, 0, sizeof(o));
            const char *why = NULL;
            rc = ingest_encode(c, plan.id, &ts, &o, &why);
            FZ_CHECK(rc == 0 || ((rc == -EINVAL && why) || rc == -ENOMEM || rc == -ENAMETOOLONG));
            if (rc == 0)
                FZ_CHECK(o.bytes && o.len > 0 && o.doc);
            ingest_object_free(&o);
        }
    } else if (rc == 0) {
        FZ_CHECK(plan.status == 400 && plan.message[0] != '\0');
    }
    if (rc == 0)
        ingest_plan_free(&plan);
    json_decref(manifest);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int mode = data[0] & 3;
    bool with_manifest = data[1] & 1;
    unsigned skew = (data[1] >> 1) & 7;
    data += 2;
    size -= 2;
    fz_part part[3];
    parse_result res;
    int rc;
    void *block = NULL;
    if (mode == 0 || mode == 2) {
        unsigned char *raw;
        size_t len;
        if (mode == 0) {
            len = size;
            raw = (unsigned char *)fz_strndup(data, size);
        } else {
            fz_split(data, size, part, 2);
            size_t jl = part[0].size, pad = (8 - (12 + jl) % 8) % 8;
            len = 12 + jl + pad + part[1].size;
            raw = malloc(len);
            FZ_CHECK(raw != NULL);
            memcpy(raw, "OGDH", 4);
            put64le(raw + 4, jl + pad);
            if (jl)
                memcpy(raw + 12, part[0].data, jl);
            memset(raw + 12 + jl, ' ', pad);
            if (part[1].size)
                memcpy(raw + 12 + jl + pad, part[1].data, part[1].size);
        }
        rc = parse_result_decode((char *)raw, len, &res); /* takes raw */
        if (rc == 0)
            FZ_CHECK(inside(res.data, res.data_len, (const unsigned char *)res.raw, len));
    } else {
        const unsigned char *image;
        size_t image_len;
        void *map;
        size_t len;
        if (mode == 1) {
            fz_split(data, size, part, 2);
            len = part[0].size;
            map = map_copy(part[0].data, len);
            image = image_copy(&part[1], skew, &block);
            image_len = part[1].size;
        } else {
            fz_split(data, size, part, 3);
            size_t dl = part[1].size, joff = (HDF5_MAPPED_HEADER + dl + 7) / 8 * 8;
            len = joff + part[0].size;
            unsigned char *m = calloc(1, len);
            FZ_CHECK(m != NULL);
            memcpy(m, "OGDM", 4);
            put64le(m + 8, dl);
            put64le(m + 16, joff);
            put64le(m + 24, part[0].size);
            if (dl)
                memcpy(m + HDF5_MAPPED_HEADER, part[1].data, dl);
            if (part[0].size)
                memcpy(m + joff, part[0].data, part[0].size);
            map = map_copy(m, len);
            free(m);
            image = image_copy(&part[2], skew, &block);
            image_len = part[2].size;
        }
        rc = parse_result_decode_mapped(map, len ? len : 1, image, image_len, &res); /* takes map */
        if (rc == 0)
            FZ_CHECK(inside(res.data, res.data_len, map, len));
    }
    FZ_CHECK(rc == 0 || rc == PARSE_CRASHED);
    if (rc == 0) {
        consume(&res, with_manifest);
        parse_result_free(&res);
    }
    free(block);
    return 0;
}
