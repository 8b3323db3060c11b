/*
 * dtoa: the significant digits of a double's shortest round-trip decimal form, the one
 * Python's repr() and our JSON and CSV writers print.
 *
 * The answer is the first of 15, 16, 17 significant digits (correctly rounded) that
 * reads back as the same double. The obvious way (print at each precision, read back with
 * strtod) costs up to three printf and two strtod calls of glibc's multi-precision code
 * a number, which was a third of the CPU of ingesting waveforms. Here one printf gives 17
 * digits; 15 and 16 are rounded from them (exact unless the dropped digits are exactly a
 * half, then printf is asked) and read back exactly with one double operation where
 * that is exact (Clinger: a mantissa below 2^53 and a power of ten up to 1e22), else
 * with strtod. Same digits as the obvious way, for every double (tests/unit/test_util.c
 * compares them).
 */
#ifndef OGD_UTIL_DTOA_H
#define OGD_UTIL_DTOA_H

/* d finite and non-zero. Searches from min_prec significant digits (1..15; below 15 the
 * search is the slow one, for subnormals) up to 17. Writes *prec ASCII digits (no sign,
 * no terminator, trailing zeros kept) to digits and the decimal exponent of the first
 * one: d ~ digits[0].digits[1..] x 10^*exp10. */
void dtoa_shortest(double d, int min_prec, char digits[17], int *prec, int *exp10);

#endif
