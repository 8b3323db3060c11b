/*
 * blob.c: the object store's refcounted, immutable byte buffers (objstore_blob_t, declared
 * in objstore.h): made, adopted, copied, referenced and released. The bottom of the object
 * store: the cache and the request layer hold blobs, and neither owns them.
 */
#include "objstore/objstore.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

objstore_blob_t *objstore_blob_new(size_t len)
{
    if (len > SIZE_MAX - sizeof(objstore_blob_t) - 1)
        return NULL;
    objstore_blob_t *b = malloc(sizeof(*b) + len + 1);
    if (!b)
        return NULL;
    atomic_init(&b->refcount, 1);
    b->len = len;
    b->data = (unsigned char *)(b + 1);
    b->data[len] = 0;
    b->adopted = NULL;
    return b;
}

objstore_blob_t *objstore_blob_adopt(void *bytes, size_t len)
{
    objstore_blob_t *b = malloc(sizeof(*b));
    if (!b) {
        free(bytes);
        return NULL;
    }
    atomic_init(&b->refcount, 1);
    b->len = len;
    b->data = bytes;
    b->data[len] = 0;
    b->adopted = bytes;
    return b;
}

objstore_blob_t *objstore_blob_copy(const void *bytes, size_t len)
{
    objstore_blob_t *b = objstore_blob_new(len);
    if (b && len)
        memcpy(b->data, bytes, len);
    return b;
}

const objstore_blob_t *objstore_blob_ref(const objstore_blob_t *b)
{
    /* Blobs are allocated mutable; const only means "do not touch the bytes". */
    atomic_fetch_add_explicit(&((objstore_blob_t *)b)->refcount, 1, memory_order_relaxed);
    return b;
}

void objstore_blob_unref(const objstore_blob_t *b)
{
    if (!b)
        return;
    objstore_blob_t *m = (objstore_blob_t *)b;
    if (atomic_fetch_sub_explicit(&m->refcount, 1, memory_order_acq_rel) == 1) {
        free(m->adopted);
        free(m);
    }
}
