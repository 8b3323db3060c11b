/*
 * arena: a per-request bump allocator. Everything a request allocates from its arena is
 * freed at once when the request ends (arena_free); individual allocations are never
 * freed. Allocations are 16-byte aligned. A cap bounds the total a request may take.
 */
#ifndef OGD_UTIL_ARENA_H
#define OGD_UTIL_ARENA_H

#include <stddef.h>

typedef struct arena_chunk arena_chunk;

typedef struct arena {
    arena_chunk *chunks;
    size_t total; /** bytes taken from malloc so far */
    size_t max;   /** cap on total */
} arena_t;

void arena_init(arena_t *a, size_t max);
void arena_free(arena_t *a);
/* NULL when the cap would be passed or memory is short. */
void *arena_alloc(arena_t *a, size_t n);
char *arena_strdup(arena_t *a, const char *s);
char *arena_strndup(arena_t *a, const char *s, size_t n);

#endif
