/*
 * base64: standard-alphabet encoder and strict decoder; see base64.h. Encoding writes
 * straight into a buffer sized up front; decoding validates every character through a
 * 256-entry table (-1 = not in the alphabet) before writing.
 */
#include "util/base64.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char alphabet[64] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encoded_len(size_t len)
{
    size_t groups = len / 3 + (len % 3 != 0);
    if (groups > (SIZE_MAX - 1) / 4)
        return SIZE_MAX;
    return groups * 4;
}

/* Writes the encoding of in[0..len) to out (base64_encoded_len(len) bytes, no NUL). */
static void encode_into(const unsigned char *in, size_t len, char *out)
{
    size_t i = 0;
    size_t o = 0;
    while (len - i >= 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
        i += 3;
    }
    size_t rest = len - i;
    if (rest == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (rest == 2) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = '=';
    }
}

char *base64_encode(const void *data, size_t len, size_t *outlen)
{
    size_t n = base64_encoded_len(len);
    if (n == SIZE_MAX)
        return NULL;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    encode_into(data, len, out);
    out[n] = '\0';
    if (outlen)
        *outlen = n;
    return out;
}

int base64_encode_append(buf_t *b, const void *data, size_t len)
{
    size_t n = base64_encoded_len(len);
    if (n == SIZE_MAX)
        return -E2BIG;
    int rc = buf_reserve(b, n);
    if (rc)
        return rc;
    encode_into(data, len, b->data + b->len);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int8_t decode_table[256];
static int decode_table_ready;

static void decode_table_init(void)
{
    /* Idempotent: concurrent first calls write identical values. */
    int8_t t[256];
    memset(t, -1, sizeof(t));
    for (int i = 0; i < 64; i++)
        t[(unsigned char)alphabet[i]] = (int8_t)i;
    memcpy(decode_table, t, sizeof(t));
    __atomic_store_n(&decode_table_ready, 1, __ATOMIC_RELEASE);
}

int base64_decode(const char *text, size_t len, unsigned char **out, size_t *outlen)
{
    *out = NULL;
    if (outlen)
        *outlen = 0;
    if (!__atomic_load_n(&decode_table_ready, __ATOMIC_ACQUIRE))
        decode_table_init();
    if (len % 4 != 0)
        return -EINVAL;
    size_t pad = 0;
    if (len >= 4 && text[len - 1] == '=') {
        pad = 1;
        if (text[len - 2] == '=')
            pad = 2;
    }
    size_t n = len / 4 * 3 - pad;
    unsigned char *o = malloc(n + 1);
    if (!o)
        return -ENOMEM;
    const unsigned char *in = (const unsigned char *)text;
    size_t w = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        size_t valid = last ? 4 - pad : 4;
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int d = 0;
            if (k < valid) {
                d = decode_table[in[i + k]];
                if (d < 0) {
                    free(o);
                    return -EINVAL;
                }
            }
            v = (v << 6) | (uint32_t)d;
        }
        o[w++] = (unsigned char)(v >> 16);
        if (valid >= 3)
            o[w++] = (unsigned char)(v >> 8);
        if (valid == 4)
            o[w++] = (unsigned char)v;
    }
    o[w] = '\0';
    *out = o;
    if (outlen)
        *outlen = w;
    return 0;
}

json_t *base64_json_take(unsigned char *png, size_t len)
{
    size_t tlen = 0;
    char *text = base64_encode(png, len, &tlen);
    free(png);
    if (!text)
        return NULL;
    json_t *s = json_stringn_nocheck(text, tlen);
    free(text);
    return s;
}
