/*
 * eval.c: evaluation of a type-checked expression tree over double arrays
 * (docs/functions.md §6). Scalars are doubles; waveform operators act on y and carry x
 * and x_units along; images are row-major double arrays. Array arithmetic follows IEEE /
 * numpy (x / 0 gives inf or NaN, NaN propagates through min/max/mean). Scalar-with-scalar
 * arithmetic that the reference rejects (division by zero, zero to a negative power, a
 * negative number to a fractional power) is an error here too, reported with a message
 * instead of a crash.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "functions/functions.h"

void fn_value_free(fn_value *v)
{
    free(v->x);
    free(v->y);
    free(v->pix);
    v->x = v->y = v->pix = NULL;
}

static double *dup_array(const double *a, size_t n, bool *ok)
{
    if (n == 0 || !a)
        return NULL;
    double *c = malloc(n * sizeof *c);
    if (!c) {
        *ok = false;
        return NULL;
    }
    memcpy(c, a, n * sizeof *c);
    return c;
}

int fn_value_copy(fn_value *dst, const fn_value *src)
{
    bool ok = true;
    *dst = *src;
    dst->x = dup_array(src->x, src->nx, &ok);
    dst->y = dup_array(src->y, src->ny, &ok);
    dst->pix = dup_array(src->pix, src->w * src->h, &ok);
    if (!ok) {
        fn_value_free(dst);
        return -ENOMEM;
    }
    return 0;
}

static int scalar_op(char op, double a, double b, double *out, char *err)
{
    switch (op) {
    case '+':
        *out = a + b;
        return 0;
    case '-':
        *out = a - b;
        return 0;
    case '*':
        *out = a * b;
        return 0;
    case '/':
        if (b == 0) {
            snprintf(err, FN_ERR_MAX, "division by zero");
            return -EINVAL;
        }
        *out = a / b;
        return 0;
    default:
        if (a == 0 && b < 0) {
            snprintf(err, FN_ERR_MAX, "division by zero (zero raised to a negative power)");
            return -EINVAL;
        }
        if (a < 0 && isfinite(b) && b != trunc(b)) {
            snprintf(err, FN_ERR_MAX, "a negative number raised to a fractional power");
            return -EINVAL;
        }
        *out = pow(a, b);
        return 0;
    }
}

static inline double array_op(char op, double a, double b)
{
    switch (op) {
    case '+':
        return a + b;
    case '-':
        return a - b;
    case '*':
        return a * b;
    case '/':
        return a / b;
    default:
        return pow(a, b);
    }
}

/* The array a value holds (y for waveforms, pixels for images) and its length. */
static double *array_of(fn_value *v, size_t *n)
{
    if (v->type == FN_WAVEFORM) {
        *n = v->ny;
        return v->y;
    }
    *n = v->w * v->h;
    return v->pix;
}

static int binop(char op, fn_value *l, fn_value *r, fn_value *out, char *err)
{
    if (l->type == FN_SCALAR && r->type == FN_SCALAR) {
        *out = (fn_value){.type = FN_SCALAR};
        return scalar_op(op, l->scalar, r->scalar, &out->scalar, err);
    }
    if (l->type != FN_SCALAR && r->type != FN_SCALAR) {
        snprintf(err, FN_ERR_MAX, "operation between a %s and a %s is not supported",
                 fn_type_name(l->type), fn_type_name(r->type));
        return -EINVAL;
    }
    /* reuse the array operand's storage for the result */
    bool array_left = l->type != FN_SCALAR;
    fn_value *arr = array_left ? l : r;
    double s = array_left ? r->scalar : l->scalar;
    size_t n;
    double *a = array_of(arr, &n);
    if (array_left)
        for (size_t i = 0; i < n; i++)
            a[i] = array_op(op, a[i], s);
    else
        for (size_t i = 0; i < n; i++)
            a[i] = array_op(op, s, a[i]);
    *out = *arr;
    *arr = (fn_value){0};
    return 0;
}

static int call(const fn_node *n, fn_value *arg, fn_value *out, char *err)
{
    const char *name = n->name;
    bool is_mean = strcmp(name, "mean") == 0, is_min = strcmp(name, "min") == 0,
         is_max = strcmp(name, "max") == 0;
    if (is_mean || is_min || is_max) {
        if (arg->type == FN_SCALAR) {
            *out = *arg;
            return 0;
        }
        size_t len;
        const double *a = array_of(arg, &len);
        if (len == 0) {
            if (!is_mean) {
                snprintf(err, FN_ERR_MAX, "'%s' of an empty %s", name, fn_type_name(arg->type));
                return -EINVAL;
            }
            *out = (fn_value){.type = FN_SCALAR, .scalar = NAN};
            return 0;
        }
        double acc = is_mean ? 0 : a[0];
        for (size_t i = 0; i < len; i++) {
            if (is_mean)
                acc += a[i];
            else if (isnan(a[i])) {
                acc = a[i];
                break;
            } else if (is_min ? a[i] < acc : a[i] > acc)
                acc = a[i];
        }
        *out = (fn_value){.type = FN_SCALAR, .scalar = is_mean ? acc / (double)len : acc};
        return 0;
    }
    if (strcmp(name, "log") == 0 || strcmp(name, "exp") == 0) {
        bool is_log = name[0] == 'l';
        if (arg->type == FN_SCALAR) {
            arg->scalar = is_log ? log(arg->scalar) : exp(arg->scalar);
        } else {
            size_t len;
            double *a = array_of(arg, &len);
            for (size_t i = 0; i < len; i++)
                a[i] = is_log ? log(a[i]) : exp(a[i]);
        }
        *out = *arg;
        *arg = (fn_value){0};
        return 0;
    }
    double v;
    int rc = fn_builtin_call(name, arg, &v, err);
    if (rc == -ENOENT) {
        snprintf(err, FN_ERR_MAX, "'%s' is not a recognised builtin function name", name);
        return -EINVAL;
    }
    if (rc)
        return rc;
    *out = (fn_value){.type = FN_SCALAR, .scalar = v};
    return 0;
}

int fn_eval(const fn_node *n, fn_value_lookup lookup, void *ctx, fn_value *out, char *err)
{
    switch (n->kind) {
    case FN_CONST:
        *out = (fn_value){.type = FN_SCALAR, .scalar = n->value};
        return 0;
    case FN_VAR: {
        const fn_value *v = lookup(ctx, n->name);
        if (!v) {
            snprintf(err, FN_ERR_MAX, "'%s' is not a recognised channel", n->name);
            return -EINVAL;
        }
        if (v->type == FN_FLOAT_IMAGE || v->type == FN_VECTOR) {
            snprintf(err, FN_ERR_MAX, "'%s' is a %s channel, which functions cannot read", n->name,
                     fn_type_name(v->type));
            return -EINVAL;
        }
        if (fn_value_copy(out, v)) {
            snprintf(err, FN_ERR_MAX, "out of memory");
            return -ENOMEM;
        }
        return 0;
    }
    case FN_BINOP: {
        fn_value l = {0}, r = {0};
        int rc = fn_eval(n->left, lookup, ctx, &l, err);
        if (rc == 0)
            rc = fn_eval(n->right, lookup, ctx, &r, err);
        if (rc == 0)
            rc = binop(n->op, &l, &r, out, err);
        fn_value_free(&l);
        fn_value_free(&r);
        return rc;
    }
    case FN_CALL: {
        fn_value a = {0};
        int rc = fn_eval(n->left, lookup, ctx, &a, err);
        if (rc == 0)
            rc = call(n, &a, out, err);
        fn_value_free(&a);
        return rc;
    }
    }
    return -EINVAL;
}
