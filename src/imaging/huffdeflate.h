/*
 * huffdeflate: a zlib stream (RFC 1950 around RFC 1951) made of one dynamic-Huffman
 * deflate block of literals only: no string matching. For noisy sensor frames the
 * matcher of a general compressor finds almost nothing (the low bits are noise), yet is
 * most of its cost; coding each byte by its frequency keeps the gain that is there (the
 * filtered high bytes) at a fraction of the CPU, and the output is any inflater's input.
 *
 * Data flow: one pass counts byte frequencies, a length-limited (15-bit) Huffman code is
 * built from them, a second pass writes the codes through a 64-bit bit buffer. The
 * Adler-32 comes from libdeflate.
 */
#ifndef OGD_IMAGING_HUFFDEFLATE_H
#define OGD_IMAGING_HUFFDEFLATE_H

#include <stddef.h>

/* The most bytes huffdeflate_zlib writes for len input bytes (worst case: every byte
 * coded in 15 bits, plus the block header and the zlib framing). */
size_t huffdeflate_zlib_bound(size_t len);

/* Compresses in[0..len) (borrowed) into out[0..cap) as a zlib stream. Returns the bytes
 * written, or 0 when cap is below huffdeflate_zlib_bound(len). len may be 0. */
size_t huffdeflate_zlib(const unsigned char *in, size_t len, unsigned char *out, size_t cap);

#endif
