/*
 * typecheck.c: result types of expressions (docs/functions.md §3) and the type error
 * texts of POST /functions/validate (docs/functions.md §4 item 6). Checking is bottom-up,
 * left operand first; the first error wins. A call's argument is checked before its name,
 * so `unknown(zz)` reports `zz`.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "functions/functions.h"

static const char *const type_enums[] = {"SCALAR", "WAVEFORM", "IMAGE", "FLOAT_IMAGE", "VECTOR"};

/* How the reference prints a type in "Operation between types [...]". */
static void type_repr(const fn_typeinfo *t, char *out, size_t n)
{
    if (t->manifest)
        snprintf(out, n, "<ChannelDtype.%s: '%s'>", type_enums[t->type], fn_type_name(t->type));
    else
        snprintf(out, n, "'%s'", fn_type_name(t->type));
}

static bool is_numeric_call(const char *name)
{
    return strcmp(name, "mean") == 0 || strcmp(name, "min") == 0 || strcmp(name, "max") == 0;
}

static bool is_elementwise_call(const char *name)
{
    return strcmp(name, "log") == 0 || strcmp(name, "exp") == 0;
}

/* "{'waveform', 'image'}" for a builtin's accepted set. */
static void accepts_repr(unsigned set, char *out, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    len += (size_t)snprintf(out + len, n - len, "{");
    bool first = true;
    for (int t = 0; t < 5; t++) {
        if (!(set & (1u << t)))
            continue;
        len += (size_t)snprintf(out + len, n - len, "%s'%s'", first ? "" : ", ",
                                fn_type_name((fn_type_t)t));
        first = false;
    }
    snprintf(out + len, n - len, "}");
}

int fn_typecheck(const fn_node *n, fn_type_lookup lookup, void *ctx, fn_typeinfo *out, char *err)
{
    switch (n->kind) {
    case FN_CONST:
        *out = (fn_typeinfo){FN_SCALAR, false};
        return 0;
    case FN_VAR:
        if (!lookup(ctx, n->name, out)) {
            snprintf(err, FN_ERR_MAX, "'%s' is not a recognised channel", n->name);
            return -EINVAL;
        }
        return 0;
    case FN_BINOP: {
        fn_typeinfo l, r;
        int rc = fn_typecheck(n->left, lookup, ctx, &l, err);
        if (rc == 0)
            rc = fn_typecheck(n->right, lookup, ctx, &r, err);
        if (rc)
            return rc;
        fn_type_t a = l.type, b = r.type;
        if (a == FN_SCALAR && b == FN_SCALAR)
            *out = (fn_typeinfo){FN_SCALAR, false};
        else if ((a == FN_IMAGE && b == FN_SCALAR) || (a == FN_SCALAR && b == FN_IMAGE))
            *out = (fn_typeinfo){FN_IMAGE, false};
        else if ((a == FN_WAVEFORM && b == FN_SCALAR) || (a == FN_SCALAR && b == FN_WAVEFORM))
            *out = (fn_typeinfo){FN_WAVEFORM, false};
        else {
            char ls[64], rs[64];
            type_repr(&l, ls, sizeof ls);
            type_repr(&r, rs, sizeof rs);
            snprintf(err, FN_ERR_MAX, "Operation between types [%s, %s] not supported", ls, rs);
            return -EINVAL;
        }
        return 0;
    }
    case FN_CALL: {
        fn_typeinfo arg;
        int rc = fn_typecheck(n->left, lookup, ctx, &arg, err);
        if (rc)
            return rc;
        if (is_numeric_call(n->name)) {
            *out = (fn_typeinfo){FN_SCALAR, false};
            return 0;
        }
        if (is_elementwise_call(n->name)) {
            *out = arg;
            return 0;
        }
        unsigned set = fn_builtin_accepts(n->name);
        if (set == 0) {
            snprintf(err, FN_ERR_MAX, "'%s' is not a recognised builtin function name", n->name);
            return -EINVAL;
        }
        if (!(set & (1u << arg.type))) {
            char s[64];
            accepts_repr(set, s, sizeof s);
            snprintf(err, FN_ERR_MAX, "'%s' accepts %s type(s), '%s' provided", n->name, s,
                     fn_type_name(arg.type));
            return -EINVAL;
        }
        *out = (fn_typeinfo){FN_SCALAR, false};
        return 0;
    }
    }
    return -EINVAL;
}
