/*
 * huffdeflate.c: literal-only deflate (see huffdeflate.h). The block header follows
 * RFC 1951 3.2.7: 257 literal/length code lengths (literals 0..255 and end-of-block;
 * no length codes are used), two distance codes of one bit each (never used, but a
 * complete code keeps every inflater content), and the code lengths sent with the
 * code-length alphabet's symbols 0..15 only (no run-length symbols: 259 lengths cost a
 * few hundred bits, not worth the code).
 */
#include "imaging/huffdeflate.h"

#include <libdeflate.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NLIT 257 /* 0..255 and 256 = end of block */
#define EOB 256
/* Codes of at most 12 bits (deflate allows 15): two codes fit 24 bits, so one table entry
 * codes a byte pair and two pairs go between flushes. On 257 symbols the limit costs
 * next to nothing (the deepest codes are the rarest bytes). */
#define HUFF_MAX_BITS 12
/* From this many bytes on, the pair table (65536 entries) pays for its construction. */
#define PAIR_MIN_BYTES ((uint64_t)1 << 18)

size_t huffdeflate_zlib_bound(size_t len)
{
    /* zlib header 2 + block header < 400 bytes + 15 bits a byte + EOB + Adler-32 4 */
    if (len > (SIZE_MAX - 1024) / 2)
        return 0;
    return len + len / 8 * 7 + 8 + 1024;
}

/* Code lengths (at most `limit` bits) of a Huffman code for freq[0..n): symbols with
 * freq 0 get length 0. At least two symbols must have a non-zero frequency. When the
 * plain Huffman code is deeper than limit, the lengths are brought within it by the
 * count adjustment of JPEG (ITU T.81 Annex K.3): a pair of deepest leaves is moved up to
 * their parent's depth and next to a shallower leaf, keeping the code complete; lengths
 * then go to the symbols by frequency. Near optimal even when many rare symbols
 * (frequency 1) would sit far below the limit. */
static void code_lengths(const uint64_t *freq, int n, int limit, uint8_t *len)
{
    /* nodes: 0..n-1 leaves, n.. internal; two-queue construction over leaves sorted by
     * frequency (insertion sort: n <= 257, run once per image) */
    int order[NLIT], m = 0;
    for (int i = 0; i < n; i++) {
        if (!freq[i])
            continue;
        int j = m++;
        while (j > 0 && freq[order[j - 1]] > freq[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    uint64_t w[2 * NLIT];
    int parent[2 * NLIT];
    for (int i = 0; i < m; i++)
        w[i] = freq[order[i]];
    int leaf = 0, inner = m, next = m;
    for (int k = 0; k < m - 1; k++) {
        int pick[2];
        for (int t = 0; t < 2; t++) {
            if (leaf < m && (inner >= next || w[leaf] <= w[inner]))
                pick[t] = leaf++;
            else
                pick[t] = inner++;
        }
        w[next] = w[pick[0]] + w[pick[1]];
        parent[pick[0]] = parent[pick[1]] = next;
        next++;
    }
    /* depths: the root is next - 1; parents have higher indices than children */
    int depth[2 * NLIT];
    depth[next - 1] = 0;
    int maxd = 0;
    for (int i = next - 2; i >= 0; i--) {
        depth[i] = depth[parent[i]] + 1;
        if (i < m && depth[i] > maxd)
            maxd = depth[i];
    }
    memset(len, 0, (size_t)n);
    if (maxd <= limit) {
        for (int i = 0; i < m; i++)
            len[order[i]] = (uint8_t)depth[i];
        return;
    }
    int count[2 * NLIT] = {0};
    for (int i = 0; i < m; i++)
        count[depth[i]]++;
    for (int d = maxd; d > limit; d--) {
        while (count[d] > 0) {
            int j = d - 2;
            while (j > 0 && count[j] == 0)
                j--;
            count[d] -= 2;
            count[d - 1] += 1;
            count[j + 1] += 2;
            count[j] -= 1;
        }
    }
    /* the rarest symbols (order[] ascends by frequency) get the longest codes */
    int k = 0;
    for (int d = limit; d >= 1; d--)
        for (int c = 0; c < count[d]; c++)
            len[order[k++]] = (uint8_t)d;
}

/* Canonical codes (RFC 1951 3.2.2), bit-reversed because deflate packs bits from the
 * least significant end while Huffman codes are sent most significant bit first. */
static void canonical_codes(const uint8_t *len, int n, uint16_t *code)
{
    int count[16] = {0};
    for (int i = 0; i < n; i++)
        count[len[i]]++;
    count[0] = 0;
    int next[16];
    int c = 0;
    for (int b = 1; b < 16; b++) {
        c = (c + count[b - 1]) << 1;
        next[b] = c;
    }
    for (int i = 0; i < n; i++) {
        if (!len[i]) {
            code[i] = 0;
            continue;
        }
        unsigned v = (unsigned)next[len[i]]++, r = 0;
        for (int b = 0; b < len[i]; b++)
            r |= ((v >> b) & 1u) << (len[i] - 1 - b);
        code[i] = (uint16_t)r;
    }
}

typedef struct bitw {
    unsigned char *p;
    uint64_t acc;
    int n;
} bitw;

static inline void put_bits(bitw *b, uint32_t v, int n)
{
    b->acc |= (uint64_t)v << b->n;
    b->n += n;
    if (b->n >= 32) {
        uint32_t lo = (uint32_t)b->acc;
        b->p[0] = (unsigned char)lo;
        b->p[1] = (unsigned char)(lo >> 8);
        b->p[2] = (unsigned char)(lo >> 16);
        b->p[3] = (unsigned char)(lo >> 24);
        b->p += 4;
        b->acc >>= 32;
        b->n -= 32;
    }
}

void huffdeflate_count(uint64_t freq[256], const unsigned char *in, size_t len)
{
    /* four tables break the store-to-load dependency of runs of one byte value */
    uint32_t f4[4][256];
    memset(f4, 0, sizeof(f4));
    while (len) {
        /* 32-bit counters: at most 4 * 2^30 bytes a round */
        size_t part = len < ((size_t)1 << 30) ? len : ((size_t)1 << 30);
        size_t i = 0;
        for (; i + 4 <= part; i += 4) {
            f4[0][in[i]]++;
            f4[1][in[i + 1]]++;
            f4[2][in[i + 2]]++;
            f4[3][in[i + 3]]++;
        }
        for (; i < part; i++)
            f4[0][in[i]]++;
        for (int s = 0; s < 256; s++) {
            freq[s] += (uint64_t)f4[0][s] + f4[1][s] + f4[2][s] + f4[3][s];
            f4[0][s] = f4[1][s] = f4[2][s] = f4[3][s] = 0;
        }
        in += part;
        len -= part;
    }
}

int huffdeflate_begin(huffdeflate_stream *s, const uint64_t byte_freq[256], unsigned char *out,
                      size_t cap)
{
    uint64_t total = 0;
    for (int i = 0; i < 256; i++)
        total += byte_freq[i];
    if (total > SIZE_MAX) /* cannot happen on 64-bit, kept for 32-bit size_t */
        return -1;
    size_t bound = huffdeflate_zlib_bound((size_t)total);
    if (bound == 0 || cap < bound)
        return -1;
    uint64_t freq[NLIT];
    memcpy(freq, byte_freq, 256 * sizeof(uint64_t));
    freq[EOB] = 1;
    /* a code needs two symbols: with a single byte value (or none) add one more */
    int used = 0;
    for (int i = 0; i < 256; i++)
        used += freq[i] != 0;
    if (used == 0)
        freq[0] = 1;
    uint8_t lit_len[NLIT];
    uint16_t lit_code[NLIT];
    code_lengths(freq, NLIT, HUFF_MAX_BITS, lit_len);
    canonical_codes(lit_len, NLIT, lit_code);
    /* the code-length alphabet: symbols 0..15 as used by the 257 + 2 lengths */
    static const uint8_t cl_order[19] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                         11, 4,  12, 3, 13, 2, 14, 1, 15};
    uint8_t all_len[NLIT + 2];
    memcpy(all_len, lit_len, NLIT);
    all_len[NLIT] = all_len[NLIT + 1] = 1; /* distance codes 0 and 1 */
    uint64_t cl_freq[19] = {0};
    for (int i = 0; i < NLIT + 2; i++)
        cl_freq[all_len[i]]++;
    int cl_used = 0;
    for (int i = 0; i < 19; i++)
        cl_used += cl_freq[i] != 0;
    if (cl_used < 2) /* cannot happen (lengths 1 and some other exist), kept for safety */
        cl_freq[cl_freq[0] ? 1 : 0]++;
    uint8_t cl_len[19];
    uint16_t cl_code[19];
    code_lengths(cl_freq, 19, 7, cl_len);
    canonical_codes(cl_len, 19, cl_code);
    int hclen = 19;
    while (hclen > 4 && cl_len[cl_order[hclen - 1]] == 0)
        hclen--;
    out[0] = 0x78; /* deflate, 32 KiB window */
    out[1] = 0x01; /* fastest-compression hint; 0x7801 % 31 == 0 */
    bitw b = {out + 2, 0, 0};
    put_bits(&b, 1, 1);                   /* BFINAL */
    put_bits(&b, 2, 2);                   /* BTYPE = dynamic Huffman */
    put_bits(&b, NLIT - 257, 5);          /* HLIT */
    put_bits(&b, 2 - 1, 5);               /* HDIST: two distance codes */
    put_bits(&b, (uint32_t)hclen - 4, 4); /* HCLEN */
    for (int i = 0; i < hclen; i++)
        put_bits(&b, cl_len[cl_order[i]], 3);
    for (int i = 0; i < NLIT + 2; i++)
        put_bits(&b, cl_code[all_len[i]], cl_len[all_len[i]]);
    /* whole bytes out: the data loop starts with fewer than 8 bits buffered */
    while (b.n >= 8) {
        *b.p++ = (unsigned char)b.acc;
        b.acc >>= 8;
        b.n -= 8;
    }
    for (int i = 0; i < 256; i++)
        s->entry[i] = lit_len[i] ? (uint32_t)lit_code[i] | (uint32_t)lit_len[i] << 16 : 0;
    s->eob = (uint32_t)lit_code[EOB] | (uint32_t)lit_len[EOB] << 16;
    /* pairs: entry[lo | hi << 8] = code(lo), then code(hi), 24 bits, length << 24; 0 when
     * either byte was not counted */
    s->pair = total >= PAIR_MIN_BYTES ? malloc(65536 * sizeof(uint32_t)) : NULL;
    if (s->pair)
        for (unsigned hi = 0; hi < 256; hi++) {
            uint32_t eh = s->entry[hi], lh = eh >> 16;
            for (unsigned lo = 0; lo < 256; lo++) {
                uint32_t el = s->entry[lo], ll = el >> 16;
                s->pair[lo | hi << 8] =
                    el && eh ? ((el & 0xFFFF) | (eh & 0xFFFF) << ll) | (ll + lh) << 24 : 0;
            }
        }
    s->p = b.p;
    s->acc = b.acc;
    s->n = b.n;
    s->out = out;
    s->expected = total;
    s->seen = 0;
    s->adler = 1;
    s->bad = false;
    return 0;
}

/* 8 bytes little-endian at p (the bound leaves room past the last whole byte). */
static inline void store_le64(unsigned char *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 8);
#else
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
#endif
}

void huffdeflate_put(huffdeflate_stream *s, const unsigned char *in, size_t len)
{
    if (s->bad || len > s->expected - s->seen) {
        s->bad = true;
        return;
    }
    s->seen += len;
    s->adler = libdeflate_adler32(s->adler, in, len);
    const uint32_t *e = s->entry;
    unsigned char *p = s->p;
    uint64_t acc = s->acc;
    unsigned n = (unsigned)s->n;
    uint32_t missing = 0; /* a byte the counts did not have (code length 0) */
    size_t i = 0;
    const uint32_t *pt = s->pair;
    /* two pairs of at most 24 bits on top of fewer than 8: at most 55 bits buffered, then
     * every whole byte goes out in one 8-byte store */
    for (; pt && i + 4 <= len; i += 4) {
        uint32_t a = pt[in[i] | (unsigned)in[i + 1] << 8];
        uint32_t b = pt[in[i + 2] | (unsigned)in[i + 3] << 8];
        missing |= !a | !b;
        /* the two pairs joined first (independent of the bit buffer), then one step of
         * the buffer's dependency chain for the four bytes */
        unsigned la = a >> 24;
        uint64_t both = (uint64_t)(a & 0xFFFFFF) | (uint64_t)(b & 0xFFFFFF) << la;
        acc |= both << n;
        n += la + (b >> 24);
        store_le64(p, acc);
        p += n >> 3;
        acc >>= n & ~7u;
        n &= 7;
    }
    /* three codes of at most 12 bits on top of fewer than 8: at most 43 bits buffered */
    for (; i + 3 <= len; i += 3) {
        uint32_t a = e[in[i]], b = e[in[i + 1]], c = e[in[i + 2]];
        missing |= !a | !b | !c;
        acc |= (uint64_t)(a & 0xFFFF) << n;
        n += a >> 16;
        acc |= (uint64_t)(b & 0xFFFF) << n;
        n += b >> 16;
        acc |= (uint64_t)(c & 0xFFFF) << n;
        n += c >> 16;
        store_le64(p, acc);
        p += n >> 3;
        acc >>= n & ~7u;
        n &= 7;
    }
    for (; i < len; i++) {
        uint32_t a = e[in[i]];
        missing |= !a;
        acc |= (uint64_t)(a & 0xFFFF) << n;
        n += a >> 16;
        store_le64(p, acc);
        p += n >> 3;
        acc >>= n & ~7u;
        n &= 7;
    }
    s->p = p;
    s->acc = acc;
    s->n = (int)n;
    if (missing)
        s->bad = true;
}

size_t huffdeflate_end(huffdeflate_stream *s)
{
    free(s->pair);
    s->pair = NULL;
    if (s->bad || s->seen != s->expected)
        return 0;
    bitw b = {s->p, s->acc, s->n};
    put_bits(&b, s->eob & 0xFFFF, (int)(s->eob >> 16));
    /* flush the bit buffer to a byte boundary */
    while (b.n > 0) {
        *b.p++ = (unsigned char)b.acc;
        b.acc >>= 8;
        b.n -= 8;
    }
    b.p[0] = (unsigned char)(s->adler >> 24);
    b.p[1] = (unsigned char)(s->adler >> 16);
    b.p[2] = (unsigned char)(s->adler >> 8);
    b.p[3] = (unsigned char)s->adler;
    b.p += 4;
    return (size_t)(b.p - s->out);
}

size_t huffdeflate_zlib(const unsigned char *in, size_t len, unsigned char *out, size_t cap)
{
    uint64_t freq[256] = {0};
    huffdeflate_count(freq, in, len);
    huffdeflate_stream s;
    if (huffdeflate_begin(&s, freq, out, cap) != 0)
        return 0;
    huffdeflate_put(&s, in, len);
    return huffdeflate_end(&s);
}
