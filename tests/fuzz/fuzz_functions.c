/*
 * fuzz_functions: the functions language (src/functions/functions.h): lexer and Pratt
 * parser, type checker, and the evaluator with its builtins, on small synthetic channel
 * values.
 *
 * Input: EXPRESSION [%% VALUES]. The expression is parsed as POST /functions/validate
 * and `functions=` do. The channels it may name are those of tests/unit/test_functions.c:
 * s and TS-202-TSM-P1-CAM-2-CENX (scalars), a-b (a scalar with a '-' in its name), W (a
 * waveform), I and Ic (images; Ic as if another function's result), FI (float image) and
 * V (vector). VALUES (optional, binary) sizes and fills them: bytes 0-1 the lengths of
 * W's x and y (0..32 each, so they may differ, as a stored waveform's may), bytes 2-3
 * the image width and height (0..16), then doubles (little-endian) for s, x, y and the
 * pixels, in that order; missing bytes give small default values, so evaluation stays
 * bounded (at most 512 elements per array).
 * Checks, besides memory errors and UB: every failure comes with an error text; the
 * variables fn_variables reports are names the parser accepted (fn_is_variable_name
 * or a known channel); a tree that type-checks evaluates to a value of exactly the
 * checked type (or fails with a message); waveform and image results keep the shape of
 * the channel they derive from; the channels' own arrays are never modified.
 */
#include "harness.h"

#include <math.h>

#include "functions/functions.h"

#define MAX_WAVE 32
#define MAX_SIDE 16

typedef struct sym {
    const char *name;
    fn_value value;
    bool manifest;
} sym;

static double wx[MAX_WAVE], wy[MAX_WAVE], pix[MAX_SIDE * MAX_SIDE];
static double wx0[MAX_WAVE], wy0[MAX_WAVE], pix0[MAX_SIDE * MAX_SIDE];

static sym symbols[] = {
    {"s", {.type = FN_SCALAR}, true},
    {"W", {.type = FN_WAVEFORM, .x = wx, .y = wy, .x_units = "ns"}, true},
    {"I", {.type = FN_IMAGE, .pix = pix}, true},
    {"FI", {.type = FN_FLOAT_IMAGE}, true},
    {"V", {.type = FN_VECTOR}, true},
    {"a-b", {.type = FN_SCALAR, .scalar = 10}, true},
    {"TS-202-TSM-P1-CAM-2-CENX", {.type = FN_SCALAR, .scalar = 4.145480878063205}, true},
    {"Ic", {.type = FN_IMAGE, .pix = pix}, false},
};
#define NSYMS (sizeof symbols / sizeof symbols[0])

static const sym *find(const char *name)
{
    for (size_t i = 0; i < NSYMS; i++)
        if (strcmp(symbols[i].name, name) == 0)
            return &symbols[i];
    return NULL;
}

static bool type_lookup(void *ctx, const char *name, fn_typeinfo *out)
{
    (void)ctx;
    const sym *s = find(name);
    if (!s)
        return false;
    *out = (fn_typeinfo){s->value.type, s->manifest};
    return true;
}

static const fn_value *value_lookup(void *ctx, const char *name)
{
    (void)ctx;
    const sym *s = find(name);
    return s ? &s->value : NULL;
}

static void on_variable(void *ctx, const char *name)
{
    size_t *count = ctx;
    FZ_CHECK(name && name[0]);
    FZ_CHECK(fn_is_variable_name(name) || find(name));
    (*count)++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_silence_logs();
    return 0;
}

/* Fills the channel values from VALUES. */
static void set_values(const fz_part *p)
{
    fz_reader r = {p->data, p->size};
    size_t nx = p->data ? fz_u8(&r) % (MAX_WAVE + 1) : 3;
    size_t ny = p->data ? fz_u8(&r) % (MAX_WAVE + 1) : 3;
    size_t w = p->data ? fz_u8(&r) % (MAX_SIDE + 1) : 2;
    size_t h = p->data ? fz_u8(&r) % (MAX_SIDE + 1) : 2;
    symbols[0].value.scalar = r.left >= 8 ? fz_double(&r) : 4;
    for (size_t i = 0; i < nx; i++)
        wx[i] = r.left >= 8 ? fz_double(&r) : (double)i;
    for (size_t i = 0; i < ny; i++)
        wy[i] = r.left >= 8 ? fz_double(&r) : (double)((i * 7) % 5);
    for (size_t i = 0; i < w * h; i++)
        pix[i] = r.left >= 8 ? fz_double(&r) : (double)((i * 13) % 17);
    symbols[1].value.nx = nx;
    symbols[1].value.ny = ny;
    for (size_t k = 0; k < NSYMS; k++) { /* I and Ic */
        if (symbols[k].value.type == FN_IMAGE) {
            symbols[k].value.w = w;
            symbols[k].value.h = h;
        }
    }
    memcpy(wx0, wx, sizeof wx);
    memcpy(wy0, wy, sizeof wy);
    memcpy(pix0, pix, sizeof pix);
}

/* The channel a waveform or image result derives from has that shape. */
static void check_shape(const fn_value *v)
{
    if (v->type == FN_WAVEFORM) {
        FZ_CHECK(v->nx == symbols[1].value.nx && v->ny == symbols[1].value.ny);
        FZ_CHECK(v->ny == 0 || v->y);
        FZ_CHECK(v->nx == 0 || v->x);
        for (size_t i = 0; i < v->nx; i++) /* x is carried along unchanged */
            FZ_CHECK(memcmp(&v->x[i], &wx0[i], sizeof(double)) == 0);
    } else if (v->type == FN_IMAGE) {
        FZ_CHECK(v->w == symbols[2].value.w && v->h == symbols[2].value.h);
        FZ_CHECK(v->w * v->h == 0 || v->pix);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_part part[2];
    fz_split(data, size, part, 2);
    set_values(&part[1]);
    char *expr = fz_strndup(part[0].data, part[0].size);

    arena_t a;
    arena_init(&a, 1 << 20);
    fn_node *tree = NULL;
    char err[FN_ERR_MAX];
    err[0] = '\0';
    int rc = fn_parse(&a, expr, &tree, err);
    if (rc != 0) {
        FZ_CHECK(rc == -EINVAL && err[0] != '\0');
        FZ_CHECK(strlen(err) < FN_ERR_MAX);
        goto out;
    }
    FZ_CHECK(tree != NULL);
    size_t nvars = 0;
    fn_variables(tree, on_variable, &nvars);

    fn_typeinfo t;
    err[0] = '\0';
    rc = fn_typecheck(tree, type_lookup, NULL, &t, err);
    if (rc != 0) {
        FZ_CHECK(rc == -EINVAL && err[0] != '\0');
        goto out;
    }
    FZ_CHECK(t.type >= FN_SCALAR && t.type <= FN_VECTOR);
    fn_value v = {0};
    err[0] = '\0';
    rc = fn_eval(tree, value_lookup, NULL, &v, err);
    if (rc != 0) {
        FZ_CHECK((rc == -EINVAL || rc == -ENOMEM) && err[0] != '\0');
    } else {
        if (v.type != t.type) {
            fprintf(stderr, "'%s': checked as %s, evaluated to %s\n", expr, fn_type_name(t.type),
                    fn_type_name(v.type));
            FZ_CHECK(v.type == t.type);
        }
        check_shape(&v);
        fn_value copy;
        FZ_CHECK(fn_value_copy(&copy, &v) == 0);
        fn_value_free(&copy);
        fn_value_free(&v);
    }
    /* the channels' arrays are borrowed, never written */
    FZ_CHECK(memcmp(wx, wx0, sizeof wx) == 0 && memcmp(wy, wy0, sizeof wy) == 0);
    FZ_CHECK(memcmp(pix, pix0, sizeof pix) == 0);
out:
    arena_free(&a);
    free(expr);
    return 0;
}
