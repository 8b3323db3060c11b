/*
 * functions: the expression language users write to derive channels from channels
 * (docs/functions.md). An expression goes through three steps, each a pure function:
 *
 *   fn_parse      text -> tree (lexer + Pratt parser; whitespace-exact lexical rules of
 *                 docs/functions.md §2.1, conventional precedence: `**` right-associative
 *                 and tightest, then `*` `/`, then `+` `-`, both left-associative)
 *   fn_typecheck  tree + a name -> type lookup -> result type (docs/functions.md §3), with
 *                 the exact error texts of POST /functions/validate
 *   fn_eval       tree + a name -> value lookup -> value (double arrays; numpy's NaN
 *                 semantics; builtins in builtins.c)
 *
 * Trees live in an arena the caller owns (util/arena.h). Values own their arrays
 * (fn_value_free). Nothing here does I/O or touches a loop, so evaluation may run on any
 * thread. Errors come back as text in a caller-provided buffer of FN_ERR_MAX bytes; the
 * caller wraps them in its HTTP status.
 */
#ifndef OGD_FUNCTIONS_FUNCTIONS_H
#define OGD_FUNCTIONS_FUNCTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "util/arena.h"

#define FN_ERR_MAX 512
/* Limits on hostile input: bytes of one expression, nesting of parentheses/calls/`**`. */
#define FN_MAX_EXPRESSION 1000
#define FN_MAX_DEPTH 50
/* Most elements an array value may have (a 4096 x 4096 image). */
#define FN_MAX_ELEMENTS ((size_t)4096 * 4096)

typedef enum {
    FN_SCALAR,
    FN_WAVEFORM,
    FN_IMAGE,
    FN_FLOAT_IMAGE,
    FN_VECTOR,
} fn_type_t;

/* "scalar", "waveform", "image", "float_image", "vector". */
const char *fn_type_name(fn_type_t t);
/* Manifest channel_dtype text -> type; false for unknown text. */
bool fn_type_parse(const char *s, fn_type_t *out);

typedef enum { FN_CONST, FN_VAR, FN_BINOP, FN_CALL } fn_node_kind;

typedef struct fn_node {
    fn_node_kind kind;
    double value;          /** FN_CONST */
    const char *name;      /** FN_VAR: variable; FN_CALL: function called */
    char op;               /** FN_BINOP: '+', '-', '*', '/', '^' (for `**`) */
    struct fn_node *left;  /** FN_BINOP left operand; FN_CALL argument */
    struct fn_node *right; /** FN_BINOP right operand */
} fn_node;

/* Parses `expr`; the tree is allocated from `a`. 0 or -EINVAL with the error text in err. */
int fn_parse(arena_t *a, const char *expr, fn_node **out, char *err);
/* True when `name` is a lone variable by the lexical rules (used to vet function names). */
bool fn_is_variable_name(const char *name);
/* Calls cb for each variable name in the tree (left to right, repeats included). */
void fn_variables(const fn_node *n, void (*cb)(void *ctx, const char *name), void *ctx);

/* The 22 tokens of GET /functions/tokens, in order. details is NULL for the operators. */
typedef struct fn_token {
    const char *symbol;
    const char *name;
    const char *details;
} fn_token;
extern const fn_token fn_tokens[];
extern const size_t fn_ntokens;
/* True when s is one of the token symbols. */
bool fn_is_token_symbol(const char *s);

/* A type as the checker sees it: `manifest` is true when it came straight from the channel
 * manifest (a channel, a bare-channel function, log/exp of one); it only changes how the
 * type prints in "Operation between types [...]" errors. */
typedef struct fn_typeinfo {
    fn_type_t type;
    bool manifest;
} fn_typeinfo;

/* Looks a variable up; false when the name is unknown. */
typedef bool (*fn_type_lookup)(void *ctx, const char *name, fn_typeinfo *out);

int fn_typecheck(const fn_node *n, fn_type_lookup lookup, void *ctx, fn_typeinfo *out, char *err);

/* A value. Waveforms: x[nx], y[ny] (operators act on y; x is carried along). Images: pix[h*w]
 * row-major. x_units is borrowed (it points into the channel metadata the caller keeps). */
typedef struct fn_value {
    fn_type_t type;
    double scalar;
    double *x, *y;
    size_t nx, ny;
    double *pix;
    size_t w, h;
    const char *x_units;
} fn_value;

void fn_value_free(fn_value *v);
/* Deep copy; 0 or -ENOMEM. */
int fn_value_copy(fn_value *dst, const fn_value *src);

/* Borrows the value of a variable; false when unknown. The value must outlive fn_eval. */
typedef const fn_value *(*fn_value_lookup)(void *ctx, const char *name);

/* Evaluates a type-checked tree into *out (caller frees with fn_value_free). 0 or -EINVAL
 * with the error text in err. */
int fn_eval(const fn_node *n, fn_value_lookup lookup, void *ctx, fn_value *out, char *err);

/* ---- builtins (builtins.c). Each works on a copy; the inputs are never modified. ---- */

/* Smoothing of docs/functions.md §7, in place on y[0..n). */
void fn_smooth(double *y, size_t n);
/* Half-maximum positions of docs/functions.md §7 (smooths and subtracts the minimum on a copy).
 * Needs n >= 1 and nx >= n. */
int fn_half_max(const double *x, size_t nx, const double *y, size_t n, double *left, double *right,
                char *err);

/* Calls builtin `name` on v. -ENOENT when there is no such builtin; -EINVAL with err for a
 * wrong argument or a value the builtin is undefined for. */
int fn_builtin_call(const char *name, const fn_value *v, double *out, char *err);
/* The argument types a builtin accepts (bit set of 1 << fn_type_t); 0 if no such builtin. */
unsigned fn_builtin_accepts(const char *name);

#endif
