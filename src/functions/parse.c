/*
 * parse.c: lexer and Pratt parser of the functions language (docs/functions.md §2).
 *
 * The lexer is whitespace-exact: a binary operator is one of the strings " - ", " + ",
 * " * ", " / " (one space each side) or "**" (none); no other whitespace is allowed. A
 * variable is an ASCII letter followed by letters, digits, '_' or '-' (so `a-b` is one
 * name); a call is a C identifier immediately followed by '('; constants carry an optional
 * sign. The parser is a Pratt parser with conventional precedence (`**` right-associative
 * and tightest, then `*` `/`, then `+` `-`, left-associative) — ogd's documented deviation
 * from the reference's grouping. Two error texts exist, as in the reference: running out of
 * input where more was expected, and anything else unexpected.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "functions/functions.h"

typedef enum { T_END, T_NUM, T_VAR, T_CALL, T_OP, T_LPAREN, T_RPAREN, T_BAD } tok_kind;

typedef struct {
    tok_kind kind;
    const char *start;
    size_t len;
    char op; /* T_OP: + - * / ^ */
} token;

typedef struct {
    arena_t *arena;
    const char *expr;
    const char *p;
    token tok;
    int depth;
    char *err;
    bool failed;
} parser;

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_ident_char(char c)
{
    return is_alpha(c) || is_digit(c) || c == '_';
}

/* Length of a number (INT, INT., INT.INT, .INT, optional exponent) at s, sign excluded. */
static size_t number_len(const char *s)
{
    size_t i = 0, digits = 0;
    while (is_digit(s[i])) {
        i++;
        digits++;
    }
    if (s[i] == '.') {
        size_t j = i + 1, frac = 0;
        while (is_digit(s[j])) {
            j++;
            frac++;
        }
        if (digits == 0 && frac == 0)
            return 0;
        i = j;
        digits += frac;
    }
    if (digits == 0)
        return 0;
    if (s[i] == 'e' || s[i] == 'E') {
        size_t j = i + 1;
        if (s[j] == '+' || s[j] == '-')
            j++;
        if (is_digit(s[j])) {
            while (is_digit(s[j]))
                j++;
            i = j;
        }
    }
    return i;
}

/* Reads the token at p->p. `want_term`: a term may start here (signed constants allowed). */
static void lex(parser *p, bool want_term)
{
    const char *s = p->p;
    token *t = &p->tok;
    t->start = s;
    t->len = 0;
    if (*s == '\0') {
        t->kind = T_END;
        return;
    }
    if (!want_term) {
        if (s[0] == ' ' && (s[1] == '-' || s[1] == '+' || s[1] == '*' || s[1] == '/')) {
            if (s[2] == ' ') {
                t->kind = T_OP;
                t->op = s[1];
                t->len = 3;
                return;
            }
        } else if (s[0] == '*' && s[1] == '*') {
            t->kind = T_OP;
            t->op = '^';
            t->len = 2;
            return;
        } else if (s[0] == ')') {
            t->kind = T_RPAREN;
            t->len = 1;
            return;
        }
        t->kind = T_BAD;
        return;
    }
    if (s[0] == '(') {
        t->kind = T_LPAREN;
        t->len = 1;
        return;
    }
    size_t sign = (s[0] == '+' || s[0] == '-') ? 1 : 0;
    size_t n = number_len(s + sign);
    if (n > 0) {
        t->kind = T_NUM;
        t->len = sign + n;
        return;
    }
    if (sign) {
        t->kind = T_BAD;
        return;
    }
    if (is_alpha(s[0]) || s[0] == '_') {
        size_t i = 1;
        bool ident = true; /* a C identifier so far */
        while (is_ident_char(s[i]) || (s[i] == '-' && s[0] != '_')) {
            if (s[i] == '-')
                ident = false;
            i++;
        }
        if (s[i] == '(' && ident) {
            t->kind = T_CALL;
            t->len = i; /* the name; '(' is consumed by the parser */
            return;
        }
        if (s[0] == '_') {
            /* only a call may start with '_': its '(' is still to come */
            t->kind = s[i] == '\0' ? T_END : T_BAD;
            t->start = s + i;
            return;
        }
        t->kind = T_VAR;
        t->len = i;
        return;
    }
    t->kind = T_BAD;
}

static void fail(parser *p)
{
    if (p->failed)
        return;
    p->failed = true;
    if (p->tok.kind == T_END)
        snprintf(p->err, FN_ERR_MAX,
                 "expression '%s' has unexpected end-of-input, check all brackets are closed",
                 p->expr);
    else
        snprintf(p->err, FN_ERR_MAX,
                 "expression '%s' has unexpected character, check all brackets are opened",
                 p->expr);
}

static void fail_text(parser *p, const char *msg)
{
    if (p->failed)
        return;
    p->failed = true;
    snprintf(p->err, FN_ERR_MAX, "expression '%s' %s", p->expr, msg);
}

static fn_node *node(parser *p, fn_node_kind kind)
{
    fn_node *n = arena_alloc(p->arena, sizeof *n);
    if (!n) {
        fail_text(p, "is too large to parse");
        return NULL;
    }
    memset(n, 0, sizeof *n);
    n->kind = kind;
    return n;
}

static void advance(parser *p, bool want_term)
{
    p->p = p->tok.start + p->tok.len;
    lex(p, want_term);
}

static int lbp(char op)
{
    switch (op) {
    case '+':
    case '-':
        return 10;
    case '*':
    case '/':
        return 20;
    default:
        return 30; /* ** */
    }
}

static fn_node *parse_expr(parser *p, int min_bp);

/* On entry p->tok is the first token of a term (lexed with want_term). */
static fn_node *parse_primary(parser *p)
{
    token t = p->tok;
    fn_node *n = NULL;
    switch (t.kind) {
    case T_NUM: {
        n = node(p, FN_CONST);
        if (!n)
            return NULL;
        char tmp[64];
        if (t.len >= sizeof tmp) {
            fail_text(p, "has a number literal that is too long");
            return NULL;
        }
        memcpy(tmp, t.start, t.len);
        tmp[t.len] = '\0';
        n->value = strtod(tmp, NULL);
        advance(p, false);
        return n;
    }
    case T_VAR:
        n = node(p, FN_VAR);
        if (!n)
            return NULL;
        n->name = arena_strndup(p->arena, t.start, t.len);
        advance(p, false);
        return n;
    case T_CALL:
    case T_LPAREN: {
        if (++p->depth > FN_MAX_DEPTH) {
            fail_text(p, "is nested too deeply (at most 50 levels of brackets and calls)");
            return NULL;
        }
        if (t.kind == T_CALL) {
            n = node(p, FN_CALL);
            if (!n)
                return NULL;
            n->name = arena_strndup(p->arena, t.start, t.len);
            p->tok.len = t.len + 1; /* the name and '(' */
        }
        advance(p, true);
        fn_node *inner = parse_expr(p, 0);
        if (!inner)
            return NULL;
        if (p->tok.kind != T_RPAREN) {
            fail(p);
            return NULL;
        }
        p->depth--;
        advance(p, false);
        if (n) {
            n->left = inner;
            return n;
        }
        return inner;
    }
    default:
        fail(p);
        return NULL;
    }
}

static fn_node *parse_expr(parser *p, int min_bp)
{
    fn_node *left = parse_primary(p);
    if (!left)
        return NULL;
    while (p->tok.kind == T_OP) {
        char op = p->tok.op;
        int bp = lbp(op);
        if (bp < min_bp)
            break;
        /* ** is right-associative: its right side may hold another ** */
        int next_min = op == '^' ? bp : bp + 1;
        if (op == '^' && ++p->depth > FN_MAX_DEPTH) {
            fail_text(p, "is nested too deeply (at most 50 levels of brackets and calls)");
            return NULL;
        }
        advance(p, true);
        fn_node *right = parse_expr(p, next_min);
        if (!right)
            return NULL;
        if (op == '^')
            p->depth--;
        fn_node *b = node(p, FN_BINOP);
        if (!b)
            return NULL;
        b->op = op;
        b->left = left;
        b->right = right;
        left = b;
    }
    return left;
}

int fn_parse(arena_t *a, const char *expr, fn_node **out, char *err)
{
    parser p = {.arena = a, .expr = expr, .p = expr, .err = err};
    err[0] = '\0';
    if (strlen(expr) > FN_MAX_EXPRESSION) {
        snprintf(err, FN_ERR_MAX, "expression is longer than %d characters", FN_MAX_EXPRESSION);
        return -EINVAL;
    }
    lex(&p, true);
    fn_node *n = parse_expr(&p, 0);
    if (n && p.tok.kind != T_END) {
        fail(&p);
        n = NULL;
    }
    if (!n) {
        if (!p.failed)
            fail(&p);
        return -EINVAL;
    }
    *out = n;
    return 0;
}

bool fn_is_variable_name(const char *name)
{
    if (!is_alpha(name[0]))
        return false;
    for (size_t i = 1; name[i]; i++)
        if (!is_ident_char(name[i]) && name[i] != '-')
            return false;
    return true;
}

void fn_variables(const fn_node *n, void (*cb)(void *ctx, const char *name), void *ctx)
{
    switch (n->kind) {
    case FN_VAR:
        cb(ctx, n->name);
        break;
    case FN_BINOP:
        fn_variables(n->left, cb, ctx);
        fn_variables(n->right, cb, ctx);
        break;
    case FN_CALL:
        fn_variables(n->left, cb, ctx);
        break;
    case FN_CONST:
        break;
    }
}
