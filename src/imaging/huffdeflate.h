/*
 * huffdeflate: a zlib stream (RFC 1950 around RFC 1951) made of one dynamic-Huffman
 * deflate block of literals only: no string matching. For noisy sensor frames the
 * matcher of a general compressor finds almost nothing (the low bits are noise), yet is
 * most of its cost; coding each byte by its frequency keeps the gain that is there (the
 * filtered high bytes) at a fraction of the CPU, and the output is any inflater's input.
 *
 * Data flow: one pass counts byte frequencies, a Huffman code limited to 12-bit codes is
 * built from them, a second pass writes the codes through a 64-bit bit buffer (long
 * inputs: a table of byte-pair codes, two pairs, then every whole byte out in one
 * store). The Adler-32 comes from libdeflate.
 * huffdeflate_zlib does both passes over one buffer; the stream functions let a caller
 * that can produce its bytes twice (the PNG writer filters rows on the fly) count them in
 * a first pass and code them in a second, piece by piece, without ever holding them all.
 */
#ifndef OGD_IMAGING_HUFFDEFLATE_H
#define OGD_IMAGING_HUFFDEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most bytes huffdeflate_zlib writes for len input bytes (worst case: every byte
 * coded in 15 bits, plus the block header and the zlib framing). */
size_t huffdeflate_zlib_bound(size_t len);

/* Compresses in[0..len) (borrowed) into out[0..cap) as a zlib stream. Returns the bytes
 * written, or 0 when cap is below huffdeflate_zlib_bound(len). len may be 0. */
size_t huffdeflate_zlib(const unsigned char *in, size_t len, unsigned char *out, size_t cap);

/* Adds the byte frequencies of in[0..len) to freq (zero it first). */
void huffdeflate_count(uint64_t freq[256], const unsigned char *in, size_t len);

typedef struct huffdeflate_stream {
    uint32_t entry[256]; /* code | length << 16 per byte value (0: not counted) */
    uint32_t *pair;      /* long inputs: the codes of byte pairs (malloc'd; NULL: none) */
    uint32_t eob;
    unsigned char *out, *p;
    uint64_t acc;
    int n;
    uint64_t expected, seen;
    uint32_t adler;
    bool bad;
} huffdeflate_stream;

/* Starts a stream in out[0..cap) for exactly the bytes freq counted (huffdeflate_count);
 * cap must be at least huffdeflate_zlib_bound(their number). 0, or -1 when cap is short
 * (nothing to end then). A started stream must be ended (huffdeflate_end frees it). */
int huffdeflate_begin(huffdeflate_stream *s, const uint64_t freq[256], unsigned char *out,
                      size_t cap);
/* Codes the next in[0..len). The pieces put must be the bytes counted, in any split. */
void huffdeflate_put(huffdeflate_stream *s, const unsigned char *in, size_t len);
/* Ends the stream; returns its length, or 0 when the bytes put were not the bytes counted
 * (more, fewer, or a value the counts did not have): the output is then unusable. */
size_t huffdeflate_end(huffdeflate_stream *s);

#endif
