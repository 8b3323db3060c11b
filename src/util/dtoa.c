/*
 * dtoa.c: shortest round-trip digits (see dtoa.h).
 */
#include "util/dtoa.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "%.{p-1}e" of d: its p digits and exponent. */
static void printf_digits(double d, int p, char *digits, int *exp10)
{
    char tmp[48];
    snprintf(tmp, sizeof(tmp), "%.*e", p - 1, fabs(d));
    int n = 0;
    const char *s = tmp;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9' && n < 17)
            digits[n++] = *s;
    *exp10 = atoi(s + 1);
}

/* Whether digits[0..p) x 10^(exp10 - p + 1) reads back as |d|. */
static int reads_back(double d, const char *digits, int p, int exp10)
{
    double a = fabs(d);
    int q = exp10 - (p - 1);
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    uint64_t w = 0;
    for (int i = 0; i < p; i++)
        w = w * 10 + (uint64_t)(digits[i] - '0');
    /* both operands exact, so the one rounding is the correct one: strtod's answer */
    if (w <= ((uint64_t)1 << 53) && q >= -22 && q <= 22)
        return (q >= 0 ? (double)w * p10[q] : (double)w / p10[-q]) == a;
#endif
    char tmp[48];
    snprintf(tmp, sizeof(tmp), "%.*se%d", p, digits, q);
    return strtod(tmp, NULL) == a;
}

void dtoa_shortest(double d, int min_prec, char digits[17], int *prec, int *exp10)
{
    if (min_prec < 15) {
        for (int p = min_prec < 1 ? 1 : min_prec; p <= 17; p++) {
            printf_digits(d, p, digits, exp10);
            if (p == 17 || reads_back(d, digits, p, *exp10)) {
                *prec = p;
                return;
            }
        }
    }
    char all[17];
    int x17;
    printf_digits(d, 17, all, &x17);
    for (int p = 15; p <= 16; p++) {
        /* the dropped digits against a half: above, below, or exactly (ask printf) */
        int first = all[p] - '0';
        int rest = 0;
        for (int i = p + 1; i < 17; i++)
            rest |= all[i] != '0';
        int x = x17;
        if (first == 5 && !rest) {
            printf_digits(d, p, digits, &x);
        } else {
            memcpy(digits, all, (size_t)p);
            if (first > 5 || (first == 5 && rest)) {
                int i = p - 1;
                while (i >= 0 && digits[i] == '9')
                    digits[i--] = '0';
                if (i >= 0) {
                    digits[i]++;
                } else { /* 99..9 -> 100..0, one decade up */
                    digits[0] = '1';
                    x++;
                }
            }
        }
        if (reads_back(d, digits, p, x)) {
            *prec = p;
            *exp10 = x;
            return;
        }
    }
    memcpy(digits, all, 17);
    *prec = 17;
    *exp10 = x17;
}
