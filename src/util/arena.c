/* arena.c: chunked bump allocator; see arena.h. */
#include "util/arena.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK 8192

struct arena_chunk {
    arena_chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

void arena_init(arena_t *a, size_t max)
{
    a->chunks = NULL;
    a->total = 0;
    a->max = max;
}

void arena_free(arena_t *a)
{
    arena_chunk *c = a->chunks;
    while (c) {
        arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->chunks = NULL;
    a->total = 0;
}

void *arena_alloc(arena_t *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    arena_chunk *c = a->chunks;
    if (!c || c->size - c->used < n) {
        size_t size = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        if (size > a->max || a->total > a->max - size)
            return NULL;
        c = malloc(sizeof(*c) + size);
        if (!c)
            return NULL;
        c->used = 0;
        c->size = size;
        c->next = a->chunks;
        a->chunks = c;
        a->total += size;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

char *arena_strndup(arena_t *a, const char *s, size_t n)
{
    char *d = arena_alloc(a, n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *arena_strdup(arena_t *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}
