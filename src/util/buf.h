/*
 * buf: a growable byte buffer with a hard size cap (after curl's dynbuf).
 *
 * Every buffer that grows from input is created with the most bytes it may ever hold;
 * an append that would pass the cap fails with -E2BIG and leaves the buffer unchanged.
 * The data is always NUL-terminated (the terminator is not counted in len), so text
 * built here can be handed to C string functions. The buffer owns its memory;
 * buf_free releases it, buf_take hands it to the caller.
 */
#ifndef OGD_UTIL_BUF_H
#define OGD_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    char *data; /** bytes, NUL-terminated; NULL until the first append */
    size_t len; /** bytes in use, terminator excluded */
    size_t cap; /** bytes allocated */
    size_t max; /** hard limit on len */
} buf_t;

#define BUF_UNLIMITED ((size_t)1 << 40)

void buf_init(buf_t *b, size_t max);
void buf_free(buf_t *b);
/* Empties the buffer but keeps its memory. */
void buf_reset(buf_t *b);
/* Returns the data (caller frees) and leaves the buffer empty. Never NULL. */
char *buf_take(buf_t *b);
int buf_reserve(buf_t *b, size_t extra);
int buf_append(buf_t *b, const void *data, size_t len);
int buf_puts(buf_t *b, const char *s);
int buf_putc(buf_t *b, char c);
int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf_t *b, const char *fmt, va_list ap);

#endif
