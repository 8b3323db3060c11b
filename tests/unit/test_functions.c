/* Unit tests for src/functions: lexer/parser (precedence, every error text, limits), type
 * checker (every rule and error text), evaluator and builtins (docs/functions.md §8 worked
 * examples, NaN, empty, ties, flat signals). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "functions/functions.h"

/* ---- a tiny symbol table for the tests ---- */

typedef struct {
    const char *name;
    fn_value value;
    bool manifest;
} sym;

static double w123[] = {1, 2, 3};
static double img22[] = {0, 1, 2, 3};

static sym symbols[] = {
    {"s", {.type = FN_SCALAR, .scalar = 4}, true},
    {"W", {.type = FN_WAVEFORM, .x = w123, .nx = 3, .y = w123, .ny = 3}, true},
    {"I", {.type = FN_IMAGE, .pix = img22, .w = 2, .h = 2}, true},
    {"FI", {.type = FN_FLOAT_IMAGE}, true},
    {"V", {.type = FN_VECTOR}, true},
    {"a-b", {.type = FN_SCALAR, .scalar = 10}, true},
    {"TS-202-TSM-P1-CAM-2-CENX", {.type = FN_SCALAR, .scalar = 4.145480878063205}, true},
    {"Ic", {.type = FN_IMAGE, .pix = img22, .w = 2, .h = 2}, false},
};

static bool type_lookup(void *ctx, const char *name, fn_typeinfo *out)
{
    (void)ctx;
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++)
        if (strcmp(symbols[i].name, name) == 0) {
            out->type = symbols[i].value.type;
            out->manifest = symbols[i].manifest;
            return true;
        }
    return false;
}

static const fn_value *value_lookup(void *ctx, const char *name)
{
    (void)ctx;
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++)
        if (strcmp(symbols[i].name, name) == 0)
            return &symbols[i].value;
    return NULL;
}

/* Parses, type-checks and evaluates; returns 0 or the first failing step's code. */
static int run(const char *expr, fn_value *out, char *err)
{
    arena_t a;
    arena_init(&a, 1 << 20);
    fn_node *n;
    int rc = fn_parse(&a, expr, &n, err);
    fn_typeinfo t;
    if (rc == 0)
        rc = fn_typecheck(n, type_lookup, NULL, &t, err);
    if (rc == 0) {
        rc = fn_eval(n, value_lookup, NULL, out, err);
        if (rc == 0)
            assert_int_equal(out->type, t.type);
    }
    arena_free(&a);
    return rc;
}

static double scalar_of(const char *expr)
{
    fn_value v = {0};
    char err[FN_ERR_MAX];
    int rc = run(expr, &v, err);
    if (rc)
        fail_msg("%s: %s", expr, err);
    assert_int_equal(v.type, FN_SCALAR);
    return v.scalar;
}

static const char *error_of(const char *expr)
{
    static char err[FN_ERR_MAX];
    fn_value v = {0};
    int rc = run(expr, &v, err);
    fn_value_free(&v);
    if (rc == 0)
        fail_msg("%s: expected an error", expr);
    return err;
}

static const char *tree(const fn_node *n, char *out, size_t cap)
{
    char l[512], r[512];
    switch (n->kind) {
    case FN_CONST:
        snprintf(out, cap, "%g", n->value);
        break;
    case FN_VAR:
        snprintf(out, cap, "%s", n->name);
        break;
    case FN_CALL:
        snprintf(out, cap, "%s(%s)", n->name, tree(n->left, l, sizeof l));
        break;
    case FN_BINOP:
        snprintf(out, cap, "(%s %s %s)", tree(n->left, l, sizeof l),
                 n->op == '^' ? "**" : (char[]){n->op, 0}, tree(n->right, r, sizeof r));
        break;
    }
    return out;
}

static void assert_tree(const char *expr, const char *want)
{
    arena_t a;
    arena_init(&a, 1 << 20);
    fn_node *n;
    char err[FN_ERR_MAX], got[1024];
    if (fn_parse(&a, expr, &n, err))
        fail_msg("%s: %s", expr, err);
    assert_string_equal(tree(n, got, sizeof got), want);
    arena_free(&a);
}

/* ---- parser ---- */

static void test_precedence(void **state)
{
    (void)state;
    assert_tree("a - b - c", "((a - b) - c)");
    assert_tree("a - b + c", "((a - b) + c)");
    assert_tree("a + b - c", "((a + b) - c)");
    assert_tree("a / b * c", "((a / b) * c)");
    assert_tree("a * b / c", "((a * b) / c)");
    assert_tree("a + b * c", "(a + (b * c))");
    assert_tree("a * b + c", "((a * b) + c)");
    assert_tree("a - b / c", "(a - (b / c))");
    assert_tree("2**3**2", "(2 ** (3 ** 2))");
    assert_tree("a * b**c", "(a * (b ** c))");
    assert_tree("a**b * c", "((a ** b) * c)");
    assert_tree("a - b - c * d", "((a - b) - (c * d))");
    assert_tree("(a - b) * c", "((a - b) * c)");
    assert_tree("((a))", "a");
    assert_tree("mean(a - b)", "mean((a - b))");
    assert_tree("a - -1", "(a - -1)");
    assert_tree("a**-1", "(a ** -1)");
    assert_tree("a-b", "a-b");
    assert_tree("x_ + a__b", "(x_ + a__b)");
    assert_tree("unknown(zz)", "unknown(zz)");
    assert_tree("MEAN(s)", "MEAN(s)");

    assert_true(fabs(scalar_of("36 / 6 * 3 + 2**2 - (3 + 5)") - 14) < 1e-12);
    assert_true(scalar_of("1 - 2 + 3") == 2);
    assert_true(scalar_of("8 - 2 + 2") == 8);
    assert_true(scalar_of("2**3**2") == 512);
    assert_true(scalar_of("1 - 1 - 1 * 1") == -1);
    assert_true(scalar_of("8 / 2 * 2") == 8);
    assert_true(scalar_of("1 / 2 / 2") == 0.25);
    assert_true(scalar_of("a-b - 1") == 9);
}

static void test_numbers(void **state)
{
    (void)state;
    assert_true(scalar_of("1") == 1);
    assert_true(scalar_of("-1") == -1);
    assert_true(scalar_of("+1") == 1);
    assert_true(scalar_of("1.") == 1);
    assert_true(scalar_of(".5") == 0.5);
    assert_true(scalar_of("1e3") == 1000);
    assert_true(scalar_of("1E-5") == 1e-5);
    assert_true(scalar_of("2.5e+1") == 25);
}

#define EOI(e) "expression '" e "' has unexpected end-of-input, check all brackets are closed"
#define BAD(e) "expression '" e "' has unexpected character, check all brackets are opened"

static void test_syntax_errors(void **state)
{
    (void)state;
    const char *eoi[] = {"(", "(a", "mean(s", "centre(w", "a + ", "_a", "", "a * (b - "};
    for (size_t i = 0; i < sizeof eoi / sizeof eoi[0]; i++) {
        char want[FN_ERR_MAX];
        snprintf(want, sizeof want, EOI("%s"), eoi[i]);
        assert_string_equal(error_of(eoi[i]), want);
    }
    const char *bad[] = {")",      "a)",     "a +",      "s s",   "1 + + 2", "s+1",
                         "-s",     "s ** 2", "mean (s)", "1a",    "a*b",     "s  + 1",
                         "1 -1",   "- 1",    "mean( a)", "0x10",  "1_000",   "(a))",
                         "a-b(s)", "é",      "a + é",    "_a + 1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[FN_ERR_MAX];
        snprintf(want, sizeof want, BAD("%s"), bad[i]);
        assert_string_equal(error_of(bad[i]), want);
    }
}

static void test_limits(void **state)
{
    (void)state;
    char *e = malloc(FN_MAX_EXPRESSION + 2);
    memset(e, 'a', FN_MAX_EXPRESSION + 1);
    e[FN_MAX_EXPRESSION + 1] = '\0';
    assert_string_equal(error_of(e), "expression is longer than 1000 characters");
    /* deep nesting: 60 brackets */
    size_t k = 0;
    for (int i = 0; i < 60; i++)
        e[k++] = '(';
    e[k++] = '1';
    for (int i = 0; i < 60; i++)
        e[k++] = ')';
    e[k] = '\0';
    assert_non_null(strstr(error_of(e), "is nested too deeply"));
    /* 50 levels are fine */
    k = 0;
    for (int i = 0; i < 50; i++)
        e[k++] = '(';
    e[k++] = '1';
    for (int i = 0; i < 50; i++)
        e[k++] = ')';
    e[k] = '\0';
    assert_true(scalar_of(e) == 1);
    /* a long right-associative power chain */
    k = 0;
    for (int i = 0; i < 60; i++) {
        memcpy(e + k, "1**", 3);
        k += 3;
    }
    e[k++] = '1';
    e[k] = '\0';
    assert_non_null(strstr(error_of(e), "is nested too deeply"));
    /* a literal of 100 digits is refused by name */
    memset(e, '9', 100);
    e[100] = '\0';
    assert_string_equal(error_of(e), "expression '" /* the literal */
                                     "9999999999999999999999999999999999999999999999999999999999"
                                     "999999999999999999999999999999999999999999' has a number "
                                     "literal that is too long");
    /* a long flat chain is fine: 200 operators */
    k = 0;
    for (int i = 0; i < 200; i++) {
        memcpy(e + k, "1 + ", 4);
        k += 4;
    }
    e[k++] = '1';
    e[k] = '\0';
    assert_true(scalar_of(e) == 201);
    /* a huge literal is a number, not a crash: 1e999 is inf */
    assert_true(isinf(scalar_of("1e999")));
    free(e);
}

static void test_variable_names(void **state)
{
    (void)state;
    assert_true(fn_is_variable_name("TS-202-TSM-P1-CAM-2-CENX"));
    assert_true(fn_is_variable_name("a-"));
    assert_true(fn_is_variable_name("a__b"));
    assert_true(fn_is_variable_name("x_"));
    const char *bad[] = {"b@d_n@m3", "bad + name", "1", "_x", "x y", "mean(s)", "", "é"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(fn_is_variable_name(bad[i]));
    assert_true(fn_is_token_symbol("**"));
    assert_true(fn_is_token_symbol("fwhm"));
    assert_false(fn_is_token_symbol("fwhm_z"));
    assert_int_equal(fn_ntokens, 22);
}

/* ---- types ---- */

static const char *type_of(const char *expr)
{
    arena_t a;
    arena_init(&a, 1 << 20);
    fn_node *n;
    static char err[FN_ERR_MAX];
    fn_typeinfo t;
    int rc = fn_parse(&a, expr, &n, err);
    if (rc == 0)
        rc = fn_typecheck(n, type_lookup, NULL, &t, err);
    arena_free(&a);
    return rc ? err : fn_type_name(t.type);
}

static void test_types(void **state)
{
    (void)state;
    assert_string_equal(type_of("1"), "scalar");
    assert_string_equal(type_of("s / 10"), "scalar");
    assert_string_equal(type_of("W - 737"), "waveform");
    assert_string_equal(type_of("1 - W"), "waveform");
    assert_string_equal(type_of("log(W - 737)"), "waveform");
    assert_string_equal(type_of("mean(log(W - 737))"), "scalar");
    assert_string_equal(type_of("I - 4"), "image");
    assert_string_equal(type_of("log(I - 4)"), "image");
    assert_string_equal(type_of("centre(W)"), "scalar");
    assert_string_equal(type_of("FI"), "float_image");
    assert_string_equal(type_of("mean(FI)"), "scalar");
    assert_string_equal(type_of("log(V)"), "vector");
    assert_string_equal(type_of("integrate(I)"), "scalar");
    assert_string_equal(type_of("background(W)"), "scalar");

    assert_string_equal(type_of("zz + 1"), "'zz' is not a recognised channel");
    assert_string_equal(type_of("unknown(zz)"), "'zz' is not a recognised channel");
    assert_string_equal(type_of("unknown(s)"),
                        "'unknown' is not a recognised builtin function name");
    assert_string_equal(type_of("MEAN(s)"), "'MEAN' is not a recognised builtin function name");
    assert_string_equal(type_of("centre(1)"),
                        "'centre' accepts {'waveform'} type(s), 'scalar' provided");
    assert_string_equal(type_of("fwhm_x(W)"),
                        "'fwhm_x' accepts {'image'} type(s), 'waveform' provided");
    assert_string_equal(type_of("integrate(s)"),
                        "'integrate' accepts {'waveform', 'image'} type(s), 'scalar' provided");
    assert_string_equal(
        type_of("I + W"),
        "Operation between types [<ChannelDtype.IMAGE: 'image'>, <ChannelDtype.WAVEFORM: "
        "'waveform'>] not supported");
    assert_string_equal(
        type_of("(I - 4) + W"),
        "Operation between types ['image', <ChannelDtype.WAVEFORM: 'waveform'>] not supported");
    assert_string_equal(type_of("FI + 1"), "Operation between types [<ChannelDtype.FLOAT_IMAGE: "
                                           "'float_image'>, 'scalar'] not supported");
    assert_string_equal(
        type_of("log(V) * 2"),
        "Operation between types [<ChannelDtype.VECTOR: 'vector'>, 'scalar'] not supported");
    assert_string_equal(
        type_of("Ic + I"),
        "Operation between types ['image', <ChannelDtype.IMAGE: 'image'>] not supported");
    assert_string_equal(type_of("W * W"), "Operation between types [<ChannelDtype.WAVEFORM: "
                                          "'waveform'>, <ChannelDtype.WAVEFORM: 'waveform'>] not "
                                          "supported");
    /* left operand's error first */
    assert_string_equal(type_of("x1 + x2"), "'x1' is not a recognised channel");
}

/* ---- evaluation ---- */

static void assert_close(double got, double want)
{
    if (!(fabs(got - want) <= 1e-6 * (1 + fabs(want))))
        fail_msg("got %.17g want %.17g", got, want);
}

static void test_eval_arrays(void **state)
{
    (void)state;
    char err[FN_ERR_MAX];
    struct {
        const char *expr;
        double y[3];
    } cases[] = {
        {"W + 1", {2, 3, 4}},
        {"1 - W", {0, -1, -2}},
        {"2 / W", {2, 1, 2.0 / 3}},
        {"2**W", {2, 4, 8}},
        {"W**2", {1, 4, 9}},
        {"log(W)", {0, 0.693147180559945, 1.09861228866811}},
        {"exp(W)", {2.718281828459045, 7.38905609893065, 20.085536923187668}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fn_value v = {0};
        assert_int_equal(run(cases[i].expr, &v, err), 0);
        assert_int_equal(v.type, FN_WAVEFORM);
        assert_int_equal(v.ny, 3);
        assert_int_equal(v.nx, 3);
        for (int k = 0; k < 3; k++) {
            assert_close(v.y[k], cases[i].y[k]);
            assert_true(v.x[k] == w123[k]); /* x carried unchanged */
        }
        fn_value_free(&v);
    }
    assert_true(w123[0] == 1 && w123[2] == 3); /* inputs untouched */
    assert_true(scalar_of("min(W)") == 1);
    assert_true(scalar_of("mean(W)") == 2);
    assert_true(scalar_of("max(W)") == 3);
    assert_true(scalar_of("min(I)") == 0);
    assert_true(scalar_of("max(I)") == 3);
    assert_true(scalar_of("mean(I)") == 1.5);
    assert_true(scalar_of("log(1)") == 0);
    assert_true(scalar_of("exp(0)") == 1);
    assert_true(scalar_of("mean(s)") == 4);
    assert_close(scalar_of("TS-202-TSM-P1-CAM-2-CENX / 10"), 0.4145480878063205);
    assert_close(scalar_of("log(TS-202-TSM-P1-CAM-2-CENX / 10)"), -0.880566297127881);
    assert_true(scalar_of("mean(I - 1)") == 0.5);

    fn_value v = {0};
    assert_int_equal(run("(I - 1) * 2", &v, err), 0);
    assert_int_equal(v.type, FN_IMAGE);
    assert_true(v.pix[0] == -2 && v.pix[3] == 4 && v.w == 2 && v.h == 2);
    fn_value_free(&v);

    /* arrays follow IEEE: division by zero gives inf/NaN, no error */
    assert_int_equal(run("I / 0", &v, err), 0);
    assert_true(isnan(v.pix[0]) && isinf(v.pix[1]));
    fn_value_free(&v);
    assert_true(isnan(scalar_of("max(I / 0)")));
    assert_true(isinf(scalar_of("log(0)")));
    assert_true(isnan(scalar_of("log(-1)")));
}

static void test_eval_errors(void **state)
{
    (void)state;
    assert_string_equal(error_of("1 / 0"), "division by zero");
    assert_string_equal(error_of("s / (s - s)"), "division by zero");
    assert_string_equal(error_of("0**-1"), "division by zero (zero raised to a negative power)");
    assert_string_equal(error_of("-8**0.5"), "a negative number raised to a fractional power");
    assert_true(scalar_of("-8**2") == 64);
    assert_string_equal(error_of("mean(FI)"),
                        "'FI' is a float_image channel, which functions cannot read");
}

/* ---- builtins: docs/functions.md §8 worked examples ---- */

static fn_value wave(const double *x, const double *y, size_t n)
{
    return (fn_value){.type = FN_WAVEFORM, .x = (double *)x, .nx = n, .y = (double *)y, .ny = n};
}

static double builtin(const char *name, const fn_value *v)
{
    double out;
    char err[FN_ERR_MAX];
    if (fn_builtin_call(name, v, &out, err))
        fail_msg("%s: %s", name, err);
    return out;
}

static void test_smooth(void **state)
{
    (void)state;
    double a[] = {0, 1, 2, 3, 4};
    fn_smooth(a, 5);
    double want_a[] = {2.0 / 3, 1.25, 2, 2.75, 10.0 / 3};
    for (int i = 0; i < 5; i++)
        assert_close(a[i], want_a[i]);
    double b[] = {0, 1, 2, 1, 0};
    fn_smooth(b, 5);
    double want_b[] = {2.0 / 3, 1, 10.0 / 9, 1, 2.0 / 3};
    for (int i = 0; i < 5; i++)
        assert_close(b[i], want_b[i]);
    double c[] = {0, 1, 0};
    fn_smooth(c, 3);
    assert_close(c[1], 3.0 / 7);
    assert_close(c[0], 0);
    double d[] = {0, 0, 0, 1, 0};
    fn_smooth(d, 5);
    assert_close(d[3], 0.375);
    assert_close(d[4], 0);
    double e[] = {1, NAN, 3, 4, 5};
    fn_smooth(e, 5); /* NaN: no correction */
    assert_true(e[0] == 1 && e[4] == 5);
}

static void test_waveform_builtins(void **state)
{
    (void)state;
    static const double x[] = {0, 1, 2, 3, 4};
    struct {
        double y[5];
        size_t n;
        double centre, fwhm, rising, falling, integrate, background;
    } cases[] = {
        {{1, 1, 1, 1, 1}, 5, 0, 0, 0, 0, 4, 1},
        {{0, 1, 2, 3, 4}, 5, 3, 2, 2, 4, 20.0 / 3, 2},
        {{0, 1, 2, 1, 0}, 5, 2, 4, 0, 4, 34.0 / 9, 0.8888888888888888},
        {{0, 0, 0, 1, 0}, 5, 3, 2, 2, 4, 3.0 / 8, 0.075},
        {{1, 0, 3, 0, 1}, 5, 2, 2, 1, 3, 38.0 / 9, 1.0444444444444443},
        {{0, 1, 0}, 3, 1, 2, 0, 2, 3.0 / 7, 0.14285714285714285},
        {{0, 1}, 2, 0.5, 1, 0, 1, 0, 0.5},
        {{0}, 1, 0, 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fn_value v = wave(x, cases[i].y, cases[i].n);
        v.nx = 5; /* x may be longer than y */
        assert_close(builtin("centre", &v), cases[i].centre);
        assert_close(builtin("fwhm", &v), cases[i].fwhm);
        assert_close(builtin("rising", &v), cases[i].rising);
        assert_close(builtin("falling", &v), cases[i].falling);
        assert_close(builtin("integrate", &v), cases[i].integrate);
        assert_close(builtin("background", &v), cases[i].background);
    }
    /* inputs are never modified */
    assert_true(cases[2].y[1] == 1 && cases[2].y[2] == 2);

    /* non-uniform x */
    double xn[] = {0, 0.5, 1.5, 3, 5}, yn[] = {1, 2, 10, 4, 1};
    fn_value v = wave(xn, yn, 5);
    assert_close(builtin("centre", &v), 1.0);
    assert_close(builtin("fwhm", &v), 1.0);
    assert_close(builtin("rising", &v), 0.5);
    assert_close(builtin("falling", &v), 1.5);
    assert_close(builtin("integrate", &v), 18.833333333333336);
    assert_close(builtin("background", &v), 3.1777777777777776);

    /* background with n >= 50 */
    double y100[100], x100[100];
    for (int i = 0; i < 100; i++) {
        x100[i] = i;
        y100[i] = i < 25 ? 0 : i < 75 ? 1 : 0;
    }
    v = wave(x100, y100, 100);
    assert_close(builtin("background", &v), 0);
    double y60[60];
    for (int i = 0; i < 60; i++)
        y60[i] = i < 25 ? 2.0 : i < 35 ? 50.0 : 4.0;
    v = wave(x100, y60, 60);
    assert_close(builtin("background", &v), 3.0);

    /* NaN everywhere: L = R = 0 */
    double ynan[] = {NAN, NAN, NAN};
    v = wave(x, ynan, 3);
    assert_close(builtin("centre", &v), 0);
    assert_close(builtin("fwhm", &v), 0);
    assert_true(isnan(builtin("integrate", &v)));
    assert_true(isnan(builtin("background", &v)));
    /* one NaN poisons the minimum: same as all NaN */
    double ysome[] = {0, 1, NAN, 1, 0};
    v = wave(x, ysome, 5);
    assert_close(builtin("centre", &v), 0);
    assert_close(builtin("fwhm", &v), 0);
    /* ties: the first maximum wins (steps no larger than tol: no smoothing) */
    double ytie[21], xtie[21];
    for (int i = 0; i < 21; i++) {
        xtie[i] = i;
        int k = i % 10;
        ytie[i] = i == 20 ? 0 : k <= 5 ? k : 10 - k;
    }
    double l, r;
    char err[FN_ERR_MAX];
    assert_int_equal(fn_half_max(xtie, 21, ytie, 21, &l, &r, err), 0);
    assert_true(l == 2 && r == 8);
    /* flat signal: the first point */
    double yflat[] = {3, 3, 3, 3};
    v = wave(x, yflat, 4);
    assert_close(builtin("rising", &v), 0);
    assert_close(builtin("falling", &v), 0);

    /* empty waveform and short x */
    v = wave(x, ytie, 0);
    assert_int_equal(fn_builtin_call("fwhm", &v, &l, err), -EINVAL);
    assert_string_equal(err, "'fwhm' needs a waveform with at least one point");
    assert_int_equal(fn_builtin_call("integrate", &v, &l, err), -EINVAL);
    v = wave(x, ytie, 5);
    v.nx = 3;
    assert_int_equal(fn_builtin_call("centre", &v, &l, err), -EINVAL);
    assert_non_null(strstr(err, "fewer x values"));
    assert_int_equal(fn_builtin_call("nope", &v, &l, err), -ENOENT);
    fn_value s = {.type = FN_SCALAR};
    assert_int_equal(fn_builtin_call("centre", &s, &l, err), -EINVAL);
}

static fn_value image(double *pix, size_t w, size_t h)
{
    return (fn_value){.type = FN_IMAGE, .pix = pix, .w = w, .h = h};
}

static void test_image_builtins(void **state)
{
    (void)state;
    double ones[400];
    for (int i = 0; i < 400; i++)
        ones[i] = 1;
    fn_value v = image(ones, 2, 2);
    assert_close(builtin("centroid_x", &v), 0);
    assert_close(builtin("centroid_y", &v), 0);
    assert_close(builtin("fwhm_x", &v), 0);
    assert_close(builtin("fwhm_y", &v), 0);
    assert_close(builtin("integrate", &v), 4);
    v = image(ones, 3, 3);
    assert_close(builtin("centroid_x", &v), 1);
    assert_close(builtin("centroid_y", &v), 1);
    assert_close(builtin("fwhm_x", &v), 0);
    assert_close(builtin("fwhm_y", &v), 0);
    v = image(ones, 1, 3); /* 3 rows, 1 column */
    assert_close(builtin("centroid_x", &v), 0);
    assert_close(builtin("centroid_y", &v), 1);

    double a[] = {0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 1, 0, 0, 1, 0, 0};
    v = image(a, 4, 4);
    assert_close(builtin("centroid_x", &v), 1);
    assert_close(builtin("centroid_y", &v), 2);
    assert_close(builtin("fwhm_x", &v), 2);
    assert_close(builtin("fwhm_y", &v), 2);

    double b[] = {0, 0, 0, 0, 0, 0, 1, 2, 1, 0, 0, 2, 8, 2, 0, 0, 1, 2, 1, 0, 0, 0, 0, 0, 1};
    v = image(b, 5, 5);
    assert_close(builtin("centroid_x", &v), 2);
    assert_close(builtin("centroid_y", &v), 2);
    assert_close(builtin("fwhm_x", &v), 4);
    assert_close(builtin("fwhm_y", &v), 4);
    assert_close(builtin("integrate", &v), 21);
    assert_close(builtin("background", &v), 0.84);

    double zeros[25] = {0};
    v = image(zeros, 5, 5);
    assert_close(builtin("background", &v), 0);
    double out;
    char err[FN_ERR_MAX];
    assert_int_equal(fn_builtin_call("centroid_x", &v, &out, err), -EINVAL);
    assert_string_equal(err, "'centroid_x' is undefined for an image whose pixels sum to zero");
    assert_int_equal(fn_builtin_call("fwhm_y", &v, &out, err), -EINVAL);

    double c[400];
    for (int r = 0; r < 20; r++)
        for (int k = 0; k < 20; k++)
            c[r * 20 + k] = (r < 5 && k < 5) ? 0 : 1;
    v = image(c, 20, 20);
    assert_close(builtin("background", &v), 0.75);

    v = image(ones, 0, 0);
    assert_int_equal(fn_builtin_call("integrate", &v, &out, err), -EINVAL);
    assert_string_equal(err, "'integrate' needs a non-empty image");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence),     cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_syntax_errors),  cmocka_unit_test(test_limits),
        cmocka_unit_test(test_variable_names), cmocka_unit_test(test_types),
        cmocka_unit_test(test_eval_arrays),    cmocka_unit_test(test_eval_errors),
        cmocka_unit_test(test_smooth),         cmocka_unit_test(test_waveform_builtins),
        cmocka_unit_test(test_image_builtins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
