/* Unit tests for src/imaging/huffdeflate.c: its zlib streams inflate (zlib's inflater)
 * back to the input for every shape of byte statistics, including the edge cases of the
 * code construction (no bytes, one byte value, all 256 values, very skewed frequencies
 * that force the 15-bit limit), and the bound holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "imaging/huffdeflate.h"

/* Compresses in[0..len), checks the zlib header and that inflate gives in back. Returns
 * the compressed size. */
static size_t round_trip(const unsigned char *in, size_t len)
{
    size_t cap = huffdeflate_zlib_bound(len);
    assert_true(cap > len);
    unsigned char *z = malloc(cap);
    assert_non_null(z);
    size_t zlen = huffdeflate_zlib(in, len, z, cap);
    assert_true(zlen > 6);
    assert_true(zlen <= cap);
    assert_int_equal((z[0] * 256 + z[1]) % 31, 0);
    unsigned char *back = malloc(len + 1);
    assert_non_null(back);
    uLongf blen = (uLongf)len + 1;
    assert_int_equal(uncompress(back, &blen, z, (uLong)zlen), Z_OK);
    assert_int_equal(blen, len);
    if (len)
        assert_memory_equal(back, in, len);
    free(back);
    free(z);
    return zlen;
}

static void test_empty_and_single_value(void **state)
{
    (void)state;
    unsigned char one = 42;
    round_trip(&one, 0);
    round_trip(&one, 1);
    unsigned char same[5000];
    memset(same, 7, sizeof(same));
    size_t zlen = round_trip(same, sizeof(same));
    assert_true(zlen < 1000); /* one value: about a bit a byte */
}

static void test_all_values_and_noise(void **state)
{
    (void)state;
    enum { N = 1 << 20 };
    unsigned char *b = malloc(N);
    uint32_t x = 12345;
    for (size_t i = 0; i < N; i++) {
        x = x * 1664525u + 1013904223u;
        b[i] = (unsigned char)(x >> 24);
    }
    size_t zlen = round_trip(b, N);
    assert_true(zlen <= huffdeflate_zlib_bound(N));
    /* uniform noise cannot shrink; Huffman keeps it within a small margin of 8 bits */
    assert_true(zlen < N + N / 50);
    /* a frame-like mix: every other byte small (filtered high bytes), the rest noise */
    for (size_t i = 0; i < N; i += 2)
        b[i] = (unsigned char)(b[i] % 3);
    zlen = round_trip(b, N);
    assert_true(zlen < N * 3 / 4);
    free(b);
}

static void test_skewed_frequencies_hit_the_length_limit(void **state)
{
    (void)state;
    /* Fibonacci-like frequencies make the plain Huffman code deeper than 15 bits */
    size_t total = 0, f[30];
    f[0] = f[1] = 1;
    for (int i = 2; i < 30; i++)
        f[i] = f[i - 1] + f[i - 2];
    for (int i = 0; i < 30; i++)
        total += f[i];
    unsigned char *b = malloc(total);
    size_t k = 0;
    for (int i = 0; i < 30; i++)
        for (size_t j = 0; j < f[i]; j++)
            b[k++] = (unsigned char)(i * 8);
    round_trip(b, total);
    free(b);
}

/* The stream functions: counting and coding in pieces of any split gives the bytes of
 * the one-call coder; putting bytes other than those counted is refused at the end. */
static void test_stream_in_pieces(void **state)
{
    (void)state;
    enum { N = 100000 };
    unsigned char *b = malloc(N);
    assert_non_null(b);
    uint32_t x = 777;
    for (size_t i = 0; i < N; i++) {
        x = x * 1664525u + 1013904223u;
        b[i] = (unsigned char)(i % 2 ? x >> 24 : (x >> 24) % 5);
    }
    size_t cap = huffdeflate_zlib_bound(N);
    unsigned char *one = malloc(cap), *two = malloc(cap);
    assert_non_null(one);
    assert_non_null(two);
    size_t onelen = huffdeflate_zlib(b, N, one, cap);
    assert_true(onelen > 0);
    const size_t splits[] = {1, 2, 3, 7, 4096, N};
    for (size_t k = 0; k < sizeof(splits) / sizeof(splits[0]); k++) {
        uint64_t freq[256] = {0};
        for (size_t off = 0; off < N; off += splits[k])
            huffdeflate_count(freq, b + off, N - off < splits[k] ? N - off : splits[k]);
        huffdeflate_stream hs;
        assert_int_equal(huffdeflate_begin(&hs, freq, two, cap), 0);
        for (size_t off = 0; off < N; off += splits[k])
            huffdeflate_put(&hs, b + off, N - off < splits[k] ? N - off : splits[k]);
        assert_int_equal(huffdeflate_end(&hs), onelen);
        assert_memory_equal(one, two, onelen);
    }
    uint64_t freq[256] = {0};
    huffdeflate_count(freq, b, N);
    huffdeflate_stream hs;
    assert_int_equal(huffdeflate_begin(&hs, freq, two, cap - 1), -1); /* short buffer */
    assert_int_equal(huffdeflate_begin(&hs, freq, two, cap), 0);
    huffdeflate_put(&hs, b, N - 1);
    assert_int_equal(huffdeflate_end(&hs), 0); /* fewer bytes than counted */
    assert_int_equal(huffdeflate_begin(&hs, freq, two, cap), 0);
    huffdeflate_put(&hs, b, N);
    huffdeflate_put(&hs, b, 1);
    assert_int_equal(huffdeflate_end(&hs), 0); /* more */
    uint64_t few[256] = {0};
    few[0] = 2;
    few[1] = 2;
    assert_int_equal(huffdeflate_begin(&hs, few, two, cap), 0);
    unsigned char other[4] = {0, 1, 2, 1}; /* 2 was never counted */
    huffdeflate_put(&hs, other, 4);
    assert_int_equal(huffdeflate_end(&hs), 0);
    free(one);
    free(two);
    free(b);
}

static void test_small_output_buffer_is_refused(void **state)
{
    (void)state;
    unsigned char in[100] = {1, 2, 3};
    unsigned char out[100];
    assert_int_equal(huffdeflate_zlib(in, sizeof(in), out, sizeof(out)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_single_value),
        cmocka_unit_test(test_all_values_and_noise),
        cmocka_unit_test(test_skewed_frequencies_hit_the_length_limit),
        cmocka_unit_test(test_small_output_buffer_is_refused),
        cmocka_unit_test(test_stream_in_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
