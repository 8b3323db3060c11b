/*
 * hdf5_read.c: the libhdf5 side of ingest (runs in the parse helper process only; see
 * hdf5_read.h for the output format). Opens the bytes as a file image (no temp file),
 * walks the root group in name order describing every member (attributes read, datasets
 * sized from their declared shape and type), then checks the limits (channels, one
 * dataset, the file's total, the output cap) and only then reads the datasets that pass,
 * in native types. A compressed dataset costs nothing until it is read, so a small file
 * declaring gigabytes is refused before libhdf5 allocates or inflates anything.
 */
#include "ingest/hdf5_read.h"

#include <errno.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_RANK 8

/* A dataset to copy into the data part: described during the walk, read after it, once
 * every limit has been checked. */
typedef struct pending {
    json_t *out;  /* its description (owned by the document) */
    haddr_t addr; /* the dataset object, reopened to read it */
    hid_t mt;     /* the native type it is read as */
    int rank;
    size_t bytes;
    size_t off; /* where it goes in the data part */
} pending;

/* The data part goes either to a capped buffer (the pipe) or to a fixed area (the
 * output memfd's mapping). */
typedef struct walk {
    buf_t *data;         /* dataset bytes (pipe), or NULL */
    unsigned char *area; /* dataset bytes (memfd), when data is NULL */
    size_t len;          /* bytes in the data part */
    size_t cap;          /* bytes the data part may hold */
    size_t image_len;    /* the file image's length (references into it) */
    unsigned skew;       /* the reader's copy of the image starts this far past 8k */
    bool refs;           /* datasets may be reported by reference ("ref") */
    hdf5_limits lim;     /* 0 = none */
    hid_t file;
    uint64_t total;      /* declared bytes of the datasets read or referenced */
    bool total_overflow; /* ... past 64 bits */
    pending *reads;      /* the datasets to copy, in walk order */
    size_t nreads, reads_cap;
    int status; /* first hard error */
    char error[256];
} walk;

bool hdf5_declared_bytes(const uint64_t *dims, int rank, uint64_t elem_size, uint64_t *bytes)
{
    uint64_t n = elem_size;
    for (int i = 0; i < rank; i++) {
        if (dims[i] == 0) {
            *bytes = 0;
            return true;
        }
    }
    for (int i = 0; i < rank; i++) {
        if (n && dims[i] > UINT64_MAX / n)
            return false;
        n *= dims[i];
    }
    *bytes = n;
    return true;
}

static json_t *str_value(hid_t type, hid_t obj, bool attr)
{
    json_t *out = NULL;
    if (H5Tis_variable_str(type) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(type));
        char *s = NULL;
        herr_t r =
            attr ? H5Aread(obj, mt, &s) : H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, &s);
        if (r >= 0 && s)
            out = json_pack("{ss s:s%}", "t", "str", "v", s, strlen(s));
        if (r >= 0 && s) {
            hid_t sp = H5Screate(H5S_SCALAR);
            H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, &s);
            H5Sclose(sp);
        }
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(type);
        if (n > 0 && n < ((size_t)1 << 24)) {
            char *s = calloc(1, n + 1);
            hid_t mt = H5Tcopy(type);
            herr_t r = s ? (attr ? H5Aread(obj, mt, s)
                                 : H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, s))
                         : -1;
            if (r >= 0)
                out = json_pack("{ss s:s%}", "t", "fstr", "v", s, strnlen(s, n));
            H5Tclose(mt);
            free(s);
        }
    }
    return out ? out : json_pack("{ss}", "t", "other");
}

/* Reads n elements of a numeric attribute/dataset as int64 or double. */
static json_t *num_array(hid_t type, hid_t obj, bool attr, hsize_t n, bool scalar)
{
    H5T_class_t cls = H5Tget_class(type);
    bool isint = cls == H5T_INTEGER;
    bool isunsigned = isint && H5Tget_sign(type) == H5T_SGN_NONE;
    if (n > 1000000)
        return json_pack("{ss}", "t", "other");
    void *buf = calloc(n ? n : 1, 8);
    if (!buf)
        return NULL;
    hid_t mt = isint ? (isunsigned ? H5T_NATIVE_UINT64 : H5T_NATIVE_INT64) : H5T_NATIVE_DOUBLE;
    herr_t r = attr ? H5Aread(obj, mt, buf) : H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    json_t *out = NULL;
    if (r >= 0) {
        json_t *arr = json_array();
        for (hsize_t i = 0; i < n; i++) {
            json_t *v;
            if (isunsigned) {
                uint64_t u = ((uint64_t *)buf)[i];
                v = u > INT64_MAX ? json_real((double)u) : json_integer((json_int_t)u);
            } else if (isint) {
                v = json_integer(((int64_t *)buf)[i]);
            } else {
                v = json_real(((double *)buf)[i]);
            }
            json_array_append_new(arr, v);
        }
        const char *t = isint ? "int" : "float";
        if (isunsigned && scalar && n == 1 && ((uint64_t *)buf)[0] > INT64_MAX)
            t = "bigint";
        if (scalar)
            out = json_pack("{ss sO}", "t", t, "v", json_array_get(arr, 0));
        else
            out = json_pack("{ss ss sO}", "t", "arr", "el", t, "v", arr);
        json_decref(arr);
    }
    free(buf);
    return out ? out : json_pack("{ss}", "t", "other");
}

static json_t *attr_value(hid_t attr)
{
    hid_t type = H5Aget_type(attr);
    hid_t space = H5Aget_space(attr);
    json_t *out = NULL;
    int rank = H5Sget_simple_extent_ndims(space);
    hssize_t n = H5Sget_simple_extent_npoints(space);
    H5T_class_t cls = H5Tget_class(type);
    if (rank < 0 || n < 0) {
        out = json_pack("{ss}", "t", "other");
    } else if (cls == H5T_STRING) {
        if (rank == 0) {
            out = str_value(type, attr, true);
        } else if (H5Tis_variable_str(type) > 0 && n <= 100000) {
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(type));
            char **s = calloc((size_t)n ? (size_t)n : 1, sizeof(char *));
            if (s && H5Aread(attr, mt, s) >= 0) {
                json_t *arr = json_array();
                for (hssize_t i = 0; i < n; i++)
                    json_array_append_new(arr, json_string(s[i] ? s[i] : ""));
                out = json_pack("{ss ss so}", "t", "arr", "el", "str", "v", arr);
                H5Dvlen_reclaim(mt, space, H5P_DEFAULT, s);
            }
            free(s);
            H5Tclose(mt);
        } else {
            out = json_pack("{ss ss s[]}", "t", "arr", "el", "other", "v");
        }
    } else if (cls == H5T_INTEGER || cls == H5T_FLOAT) {
        out = num_array(type, attr, true, (hsize_t)n, rank == 0);
    }
    H5Sclose(space);
    H5Tclose(type);
    return out ? out : json_pack("{ss}", "t", "other");
}

static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *op_data)
{
    (void)info;
    json_t *attrs = op_data;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0)
        return 0;
    json_t *v = attr_value(a);
    H5Aclose(a);
    if (v)
        json_object_set_new(attrs, name, v);
    return 0;
}

static json_t *read_attrs(hid_t obj)
{
    json_t *attrs = json_object();
    hsize_t idx = 0;
    H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cb, attrs);
    return attrs;
}

/* Whether the dataset's raw bytes in the file image are exactly what H5Dread into mt
 * would produce (one allocated contiguous unfiltered block of `bytes`, in the file type
 * that equals mt): then *off is the block's offset in the image. Blocks not aligned to
 * the element size in the reader's copy are copied instead (readers load the elements
 * as typed values). */
static bool can_reference(const walk *w, hid_t ds, hid_t type, hid_t mt, size_t size, size_t bytes,
                          uint64_t *off)
{
    if (!w->refs || bytes == 0 || H5Tequal(type, mt) <= 0)
        return false;
    /* the cheap tests first: chunked and compact data have no address */
    haddr_t addr = H5Dget_offset(ds);
    if (addr == HADDR_UNDEF || addr > w->image_len || bytes > w->image_len - addr ||
        (w->skew + addr) % size != 0 || H5Dget_storage_size(ds) != (hsize_t)bytes)
        return false;
    hid_t dcpl = H5Dget_create_plist(ds);
    if (dcpl < 0)
        return false;
    bool plain = H5Pget_layout(dcpl) == H5D_CONTIGUOUS && H5Pget_nfilters(dcpl) == 0 &&
                 H5Pget_external_count(dcpl) == 0;
    H5Pclose(dcpl);
    if (!plain)
        return false;
    *off = (uint64_t)addr;
    return true;
}

/* Describes a dataset; a numeric one is either too large (not read), referenced in the
 * image, or queued to be copied once the walk is over (w->reads). */
static json_t *read_dataset(walk *w, hid_t ds, haddr_t addr)
{
    hid_t type = H5Dget_type(ds);
    hid_t space = H5Dget_space(ds);
    int rank = H5Sget_simple_extent_ndims(space);
    hsize_t dims[MAX_RANK];
    uint64_t sides[MAX_RANK];
    json_t *out = json_object();
    if (rank < 0 || rank > MAX_RANK) {
        json_object_set_new(out, "class", json_string("other"));
        goto done;
    }
    H5Sget_simple_extent_dims(space, dims, NULL);
    json_t *shape = json_array();
    for (int i = 0; i < rank; i++) {
        json_array_append_new(shape, json_integer((json_int_t)dims[i]));
        sides[i] = (uint64_t)dims[i];
    }
    json_object_set_new(out, "shape", shape);
    H5T_class_t cls = H5Tget_class(type);
    if (cls == H5T_STRING) {
        json_object_set_new(out, "class", json_string("str"));
        if (rank == 0) {
            json_t *v = str_value(type, ds, false);
            json_t *s = json_object_get(v, "v");
            if (s)
                json_object_set(out, "v", s);
            json_decref(v);
        }
        goto done;
    }
    if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
        json_object_set_new(out, "class", json_string("other"));
        goto done;
    }
    size_t size = H5Tget_size(type);
    hid_t mt;
    const char *cname;
    if (cls == H5T_FLOAT) {
        cname = "float";
        size = size <= 4 ? 4 : 8;
        mt = size == 4 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
    } else {
        bool u = H5Tget_sign(type) == H5T_SGN_NONE;
        cname = u ? "uint" : "int";
        if (size > 8)
            size = 8;
        if (size == 3)
            size = 4;
        if (size > 4 && size < 8)
            size = 8;
        mt = size == 1   ? (u ? H5T_NATIVE_UINT8 : H5T_NATIVE_INT8)
             : size == 2 ? (u ? H5T_NATIVE_UINT16 : H5T_NATIVE_INT16)
             : size == 4 ? (u ? H5T_NATIVE_UINT32 : H5T_NATIVE_INT32)
                         : (u ? H5T_NATIVE_UINT64 : H5T_NATIVE_INT64);
    }
    json_object_set_new(out, "class", json_string(cname));
    json_object_set_new(out, "size", json_integer((json_int_t)size));
    if (H5Tget_order(type) == H5T_ORDER_BE)
        json_object_set_new(out, "big_endian", json_true());
    /* the declared size, before anything is read: a few kilobytes of compressed chunks
     * (or none at all: unwritten chunks read as the fill value) may declare gigabytes */
    uint64_t bytes = 0;
    if (!hdf5_declared_bytes(sides, rank, size, &bytes) ||
        (w->lim.max_dataset_bytes && bytes > w->lim.max_dataset_bytes) || bytes > SIZE_MAX) {
        json_object_set_new(out, "too_large", json_true());
        goto done;
    }
    if (bytes > UINT64_MAX - w->total)
        w->total_overflow = true;
    w->total += bytes;
    /* a dataset read by reference costs no output (it lies within the input) */
    uint64_t ref = 0;
    if (can_reference(w, ds, type, mt, size, (size_t)bytes, &ref)) {
        json_object_set_new(out, "ref", json_integer((json_int_t)ref));
        json_object_set_new(out, "len", json_integer((json_int_t)bytes));
        goto done;
    }
    if (w->nreads == w->reads_cap) {
        size_t cap = w->reads_cap ? w->reads_cap * 2 : 64;
        pending *r = realloc(w->reads, cap * sizeof(*r));
        if (!r) {
            w->status = -ENOMEM;
            goto done;
        }
        w->reads = r;
        w->reads_cap = cap;
    }
    w->reads[w->nreads++] = (pending){out, addr, mt, rank, (size_t)bytes, 0};
done:
    H5Sclose(space);
    H5Tclose(type);
    return out;
}

/* Places every queued dataset in the data part (8-byte aligned, walk order) within the
 * cap; false (w->error set) when they do not fit. Nothing has been read yet. */
static bool place_reads(walk *w)
{
    size_t len = 0;
    for (size_t i = 0; i < w->nreads; i++) {
        pending *r = &w->reads[i];
        size_t pad = len % 8 ? 8 - len % 8 : 0;
        if (pad > w->cap - len) {
            snprintf(w->error, sizeof(w->error), "the datasets are too large together");
            return false;
        }
        if (r->bytes > w->cap - len - pad) {
            snprintf(w->error, sizeof(w->error), "a dataset is too large (%d dimensions)", r->rank);
            return false;
        }
        r->off = len + pad;
        len = r->off + r->bytes;
    }
    w->len = len;
    return true;
}

/* Reads the queued datasets into their places. */
static void run_reads(walk *w, unsigned char *base)
{
    size_t end = 0;
    for (size_t i = 0; i < w->nreads; i++) {
        pending *r = &w->reads[i];
        unsigned char *dst = base + r->off;
        memset(base + end, 0, r->off - end); /* the padding */
        end = r->off + r->bytes;
        bool ok = true;
        if (r->bytes) {
            hid_t ds = H5Oopen_by_addr(w->file, r->addr);
            ok = ds >= 0 && H5Iget_type(ds) == H5I_DATASET;
            if (ok) {
                /* the object the walk described: its size must not have changed */
                hid_t space = H5Dget_space(ds);
                hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
                if (space >= 0)
                    H5Sclose(space);
                ok = n >= 0 && (uint64_t)n == r->bytes / H5Tget_size(r->mt) &&
                     H5Dread(ds, r->mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) >= 0;
            }
            if (ds >= 0)
                H5Oclose(ds);
        }
        if (!ok) {
            memset(dst, 0, r->bytes);
            json_object_set_new(r->out, "class", json_string("unreadable"));
            continue;
        }
        json_object_set_new(r->out, "off", json_integer((json_int_t)r->off));
        json_object_set_new(r->out, "len", json_integer((json_int_t)r->bytes));
    }
}

typedef struct member_ctx {
    walk *w;
    json_t *list;
    bool top;
} member_ctx;

static herr_t member_cb(hid_t loc, const char *name, const H5L_info_t *info, void *op_data)
{
    (void)info;
    member_ctx *m = op_data;
    if (m->w->status)
        return 1;
    json_t *item = json_pack("{ss}", "name", name);
    H5O_info_t oi; /* the type only: the full info reads every header message */
    if (H5Oget_info_by_name2(loc, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0) {
        json_object_set_new(item, "kind", json_string("other"));
    } else if (oi.type == H5O_TYPE_GROUP) {
        json_object_set_new(item, "kind", json_string("group"));
        if (m->top) {
            hid_t g = H5Gopen2(loc, name, H5P_DEFAULT);
            if (g >= 0) {
                json_object_set_new(item, "attrs", read_attrs(g));
                member_ctx sub = {m->w, json_array(), false};
                hsize_t idx = 0;
                H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, member_cb, &sub);
                json_object_set_new(item, "members", sub.list);
                H5Gclose(g);
            }
        }
    } else if (oi.type == H5O_TYPE_DATASET) {
        json_object_set_new(item, "kind", json_string("dataset"));
        hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
        if (d >= 0) {
            json_object_set_new(item, "data", read_dataset(m->w, d, oi.addr));
            if (m->top)
                json_object_set_new(item, "attrs", read_attrs(d));
            H5Dclose(d);
        }
    } else {
        json_object_set_new(item, "kind", json_string("other"));
    }
    json_array_append_new(m->list, item);
    return 0;
}

/* Describes the file (every member first, then, when the limits and the cap allow it,
 * the copied datasets' bytes into w's data part: w->len bytes); *text: the JSON
 * description (malloc'd). Returns 0 (w->error: the refusal the "error" member carries,
 * nothing read), -EINVAL (not HDF5) or -ENOMEM. */
static int describe(void *image, size_t len, walk *w, char **text)
{
    *text = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (len < 8)
        return -EINVAL;
    hid_t f =
        H5LTopen_file_image(image, len, H5LT_FILE_IMAGE_DONT_COPY | H5LT_FILE_IMAGE_DONT_RELEASE);
    if (f < 0)
        return -EINVAL;
    /* A small fixed metadata cache: the walk visits each object once, so a bigger cache
     * buys nothing, and the library does not count the decoded messages it keeps with
     * each cached object header: with the default (adaptive, up to 32 MiB of raw
     * headers) a file of 20 000 channels held ~300 MB and spent its time in malloc. */
    H5AC_cache_config_t mdc;
    memset(&mdc, 0, sizeof(mdc));
    mdc.version = H5AC__CURR_CACHE_CONFIG_VERSION;
    if (H5Fget_mdc_config(f, &mdc) >= 0) {
        mdc.set_initial_size = true;
        mdc.initial_size = (size_t)2 << 20;
        mdc.max_size = (size_t)2 << 20;
        mdc.min_size = (size_t)1 << 20;
        mdc.incr_mode = H5C_incr__off;
        mdc.flash_incr_mode = H5C_flash_incr__off;
        mdc.decr_mode = H5C_decr__off;
        H5Fset_mdc_config(f, &mdc);
    }
    hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
    if (root < 0) {
        H5Fclose(f);
        return -EINVAL;
    }
    w->file = f;
    json_t *doc = json_object();
    H5G_info_t gi;
    if (w->lim.max_channels && H5Gget_info(root, &gi) >= 0 && gi.nlinks > w->lim.max_channels) {
        /* too many channels: say how many, read nothing */
        json_object_set_new(doc, "attrs", json_object());
        json_object_set_new(doc, "members", json_array());
        json_object_set_new(doc, "channels", json_integer((json_int_t)gi.nlinks));
    } else {
        json_object_set_new(doc, "attrs", read_attrs(root));
        member_ctx m = {w, json_array(), true};
        hsize_t idx = 0;
        H5Literate(root, H5_INDEX_NAME, H5_ITER_INC, &idx, member_cb, &m);
        json_object_set_new(doc, "members", m.list);
    }
    /* every dataset is described: the limits, then the reads */
    if (!w->status && w->lim.max_file_bytes &&
        (w->total_overflow || w->total > w->lim.max_file_bytes))
        snprintf(w->error, sizeof(w->error),
                 "its datasets hold %s%llu bytes when decompressed, more than the limit of %llu "
                 "bytes (ingest.max_file_decompressed_bytes)",
                 w->total_overflow ? "more than " : "",
                 (unsigned long long)(w->total_overflow ? UINT64_MAX : w->total),
                 (unsigned long long)w->lim.max_file_bytes);
    if (!w->status && !w->error[0] && place_reads(w)) {
        unsigned char *base = w->area;
        if (w->data) {
            if (buf_reserve(w->data, w->len + 1) != 0)
                w->status = -ENOMEM;
            base = (unsigned char *)w->data->data;
        }
        if (!w->status) {
            run_reads(w, base);
            if (w->data)
                w->data->len = w->len;
        }
    }
    if (w->error[0]) { /* the error text says it: no data was read */
        w->len = 0;
        json_object_set_new(doc, "error", json_string(w->error));
    }
    free(w->reads);
    w->reads = NULL;
    H5Gclose(root);
    H5Fclose(f);
    int rc = w->status == -ENOMEM ? -ENOMEM : 0;
    *text = rc ? NULL : json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!rc && !*text)
        rc = -ENOMEM;
    return rc;
}

static void put64le(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

int hdf5_describe(void *image, size_t len, const hdf5_limits *lim, buf_t *out)
{
    buf_t data;
    buf_init(&data, out->max);
    walk w = {.data = &data, .cap = out->max, .image_len = len};
    if (lim)
        w.lim = *lim;
    char *text = NULL;
    int rc = describe(image, len, &w, &text);
    if (!rc) {
        size_t tl = strlen(text);
        size_t pad = (8 - (12 + tl) % 8) % 8; /* blanks after the JSON align the data part */
        tl += pad;
        unsigned char hdr[12] = {'O', 'G', 'D', 'H'};
        put64le(hdr + 4, tl);
        if (buf_append(out, hdr, sizeof(hdr)) || buf_append(out, text, tl - pad) ||
            buf_append(out, "        ", pad) || buf_append(out, data.data ? data.data : "", w.len))
            rc = -E2BIG;
    }
    free(text);
    buf_free(&data);
    return rc;
}

int hdf5_describe_mapped(void *image, size_t len, unsigned skew, const hdf5_limits *lim,
                         unsigned char *area, size_t cap, size_t *used)
{
    *used = 0;
    if (cap < HDF5_MAPPED_HEADER)
        return -E2BIG;
    walk w = {.area = area + HDF5_MAPPED_HEADER,
              .cap = cap - HDF5_MAPPED_HEADER,
              .image_len = len,
              .skew = skew % 8,
              .refs = true};
    if (lim)
        w.lim = *lim;
    char *text = NULL;
    int rc = describe(image, len, &w, &text);
    if (rc)
        return rc;
    size_t json_off = HDF5_MAPPED_HEADER + (w.len + 7) / 8 * 8;
    size_t tl = strlen(text);
    if (json_off > cap || tl > cap - json_off) {
        free(text);
        return -E2BIG;
    }
    memcpy(area + json_off, text, tl);
    free(text);
    memset(area, 0, HDF5_MAPPED_HEADER);
    memcpy(area, "OGDM", 4);
    put64le(area + 8, w.len);
    put64le(area + 16, json_off);
    put64le(area + 24, tl);
    *used = json_off + tl;
    return 0;
}

/* The memfd variant of the helper (see hdf5_parse_main): maps fd 0 (the whole file, or
 * the window of it `in` names) and fd 3. */
static int parse_mapped(size_t max_in, size_t max_out, const hdf5_limits *lim, const hdf5_input *in)
{
    struct stat st;
    if (fstat(0, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "input is not a file\n");
        return 1;
    }
    uint64_t size = (uint64_t)st.st_size;
    bool window = in && in->window;
    uint64_t in_off = window ? in->offset : 0;
    uint64_t in_len = window ? in->len : size;
    if (in_off > size || in_len > size - in_off) {
        fprintf(stderr, "the input window lies outside the file\n");
        return 1;
    }
    if (in_len > max_in) {
        fprintf(stderr, "file too large\n");
        return 1;
    }
    size_t len = (size_t)in_len;
    /* mappings start on a page: the image begins `lead` bytes into ours */
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    size_t lead = (size_t)(in_off % page);
    size_t map_len = lead + len;
    /* private and writable: libhdf5 may write into a file image; the worker's copy stays */
    unsigned char *map =
        len ? mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE, 0, (off_t)(in_off - lead))
            : NULL;
    if (len && map == MAP_FAILED) {
        fprintf(stderr, "cannot map the input\n");
        return 1;
    }
    void *image = map ? map + lead : NULL;
    size_t cap = max_out + HDF5_MAPPED_HEADER;
    /* the output file is sparse until written: only what the description uses costs memory */
    if (ftruncate(3, (off_t)cap) != 0) {
        fprintf(stderr, "cannot size the output\n");
        return 1;
    }
    unsigned char *area = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED, 3, 0);
    if (area == MAP_FAILED) {
        fprintf(stderr, "cannot map the output\n");
        return 1;
    }
    size_t used = 0;
    int rc = hdf5_describe_mapped(image ? image : (void *)"", len, in ? in->skew : 0, lim, area,
                                  cap, &used);
    munmap(area, cap);
    if (map)
        munmap(map, map_len);
    if (rc) {
        fprintf(stderr, "%s\n", rc == -EINVAL ? "not hdf5" : "too large");
        return rc == -EINVAL ? 3 : 4;
    }
    if (ftruncate(3, (off_t)used) != 0) {
        fprintf(stderr, "cannot size the output\n");
        return 1;
    }
    return 0;
}

int hdf5_parse_main(size_t max_in, size_t max_out, const hdf5_limits *lim, bool mapped,
                    const hdf5_input *input)
{
#if !defined(__SANITIZE_ADDRESS__)
    /* libhdf5 may allocate on a hostile file's say-so (chunk caches, huge attributes):
     * bound the helper's address space to what the input, the output and the library
     * need, so it fails instead of taking the machine's memory. (ASan builds reserve
     * terabytes of shadow memory and cannot run under such a limit.) */
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = (rlim_t)max_in * 2 + (rlim_t)max_out * 2 + ((rlim_t)1 << 30);
    setrlimit(RLIMIT_AS, &rl);
#endif
    if (mapped)
        return parse_mapped(max_in, max_out, lim, input);
    buf_t in;
    buf_init(&in, max_in);
    char chunk[65536];
    for (;;) {
        ssize_t n = read(0, chunk, sizeof(chunk));
        if (n == 0)
            break;
        if (n < 0) {
            fprintf(stderr, "read error\n");
            return 1;
        }
        if (buf_append(&in, chunk, (size_t)n) != 0) {
            fprintf(stderr, "file too large\n");
            return 1;
        }
    }
    buf_t out;
    buf_init(&out, max_out);
    int rc = hdf5_describe(in.data, in.len, lim, &out);
    buf_free(&in);
    if (rc) {
        buf_free(&out);
        fprintf(stderr, "%s\n", rc == -EINVAL ? "not hdf5" : "too large");
        return rc == -EINVAL ? 3 : 4;
    }
    size_t done = 0;
    while (done < out.len) {
        ssize_t n = write(1, out.data + done, out.len - done);
        if (n <= 0) {
            buf_free(&out);
            return 1;
        }
        done += (size_t)n;
    }
    buf_free(&out);
    return 0;
}
