/*
 * filter.c: Mongo filter documents -> AST -> SQLite or PostgreSQL SQL, and sort entries ->
 * ORDER BY.
 *
 * Owns: the compile step (validation, field resolution, Mongo's type bracketing and
 * null/missing rules, date conversion of object-entry strings), the AST (allocated from
 * one arena per filter_t, freed all at once by filter_free), the emitter (one walker with
 * a SQLite and a PostgreSQL dialect), the sort compiler, and the sql_fragment container
 * the emitters fill in.
 *
 * Data flow: filter_compile walks the borrowed json_t once and builds nodes; every string
 * it keeps (values, channel names, JSON path keys) is copied into the arena, so the AST
 * does not borrow the document. Type decisions that depend only on the logical layout
 * (e.g. "shotnum is numeric, so a string operand never matches") are made here, which
 * leaves each emitter a mechanical walk. filter_emit_sqlite writes text with '?'
 * placeholders and pushes one sql_param per placeholder, in text order; sql_fragment owns
 * copies of the parameter strings.
 *
 * Three-valued logic: a positive leaf may evaluate to NULL in SQL (e.g. `r.shotnum > ?` on
 * a missing shotnum). Leaves and AND/OR are monotone, so NULL always means "false" there,
 * and WHERE treats it so; NOT is emitted as `(x) IS NOT TRUE`, which maps NULL to true, as
 * Mongo's negations require for missing fields.
 *
 * $expr comparisons follow the aggregation rules: each operand becomes an SQL row value
 * (type rank, value), rank by BSON order: missing 0 < null 1 < numbers 2 < strings 3 <
 * objects 4 < arrays 5 < booleans 8 < dates 9, and row values compare by rank, then by
 * value. Sorting uses the same ranks (missing and null tie, as in Mongo's sort).
 *
 * Cost: every channel condition is a correlated subquery on record_channels' primary key.
 * An OR of channel existence tests (the frontend's projection `$or`) is merged into one
 * subquery with `name IN (...)`. The SQL size model (sql_cost) keeps accepted filters
 * within SQLite's parser and expression limits.
 */
#include "store/filter.h"
#include "store/timestamp.h"
#include "util/arena.h"

#include <errno.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sqlite3.h>

#define SQL_TEXT_MAX ((size_t)16 << 20)
#define SQL_MAX_PARAMS 32766 /* SQLite's default SQLITE_MAX_VARIABLE_NUMBER */
#define NAME_SHOWN_MAX 80    /* bytes of a client name quoted in an error message */

/* Upper bounds on the parameters the emitters need per node; filter_compile sums them so
 * that an accepted filter can always be emitted within FILTER_MAX_PARAMS. */
#define COST_PRED 4
#define COST_XCMP 6
#define COST_XTRUTHY 3

/*
 * SQL size model. SQLite refuses an expression tree deeper than SQLITE_MAX_EXPR_DEPTH
 * (1000), and before 3.46 its parser has a fixed stack (YYSTACKDEPTH, 100 entries), which
 * nested parentheses and subqueries use up long before 1000. sql_cost bounds both for a
 * compiled filter, from per-leaf costs measured on the SQL this file emits (see
 * test_limits in tests/unit/test_filter.c, which checks the bound holds), and
 * filter_compile refuses filters over the limits, leaving room for the few levels the
 * store wraps around the filter.
 */
#define LIST_FLAT 16           /* members per flat AND/OR chain */
#define STACK_PER_LIST_LEVEL 3 /* `( a OR` */
#define STACK_NOT 1            /* `(` of `(x) IS NOT TRUE` */
#define STACK_PRED 22          /* the deepest field predicate (measured: 19) */
#define STACK_XPR 26           /* the deepest $expr operand or comparison (measured: 22) */
#define HEIGHT_PRED 16         /* measured: 13 */
#define HEIGHT_XPR 20
#define FILTER_MAX_SQL_STACK 72
#define FILTER_MAX_SQL_HEIGHT 800
/* SQLite's cost per row grows with the square of the correlated subqueries it evaluates
 * (each channel condition is one), so a filter may hold only so many. */
#define FILTER_MAX_SUBQUERIES 128

/* ================================================================ arena */

/* The AST lives in a util/arena; nodes are zeroed on allocation. */
#define FILTER_ARENA_MAX (64u << 20)
typedef arena_t ast_arena;

static void *ast_alloc(ast_arena *a, size_t n)
{
    void *p = arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

static void ast_arena_free(ast_arena *a)
{
    arena_free(a);
}

/* ================================================================ AST */

typedef enum field_kind {
    FK_MISSING,   /* a path that never exists in a record */
    FK_ID,        /* r.id, text, never missing */
    FK_VERSION,   /* r.version, number */
    FK_TIMESTAMP, /* r.ts_us, date */
    FK_SHOTNUM,   /* r.shotnum, number */
    FK_TEXT_COL,  /* r.<column>, text */
    FK_METADATA,  /* the whole metadata object */
    FK_META_JSON, /* a JSON value inside r.metadata at keys */
    FK_CHANNELS,  /* the whole channels object */
    FK_CHANNEL,   /* one whole channel sub-document */
    FK_CHAN_DATA, /* channels.<X>.data */
    FK_CHAN_JSON, /* a JSON value inside a channel body at keys */
} field_kind;

typedef struct field_ref {
    field_kind kind;
    const char *column;  /* FK_TEXT_COL: the column name (a constant, not client text) */
    const char *channel; /* FK_CHANNEL..FK_CHAN_JSON: arena copy, may hold NULs */
    size_t channel_len;
    const char **keys; /* FK_META_JSON, FK_CHAN_JSON: path below the JSON root */
    size_t *key_lens;
    size_t nkeys;
} field_ref;

typedef enum value_type { V_NULL, V_BOOL, V_INT, V_REAL, V_STRING, V_DATE } value_type;

typedef struct value {
    value_type type;
    int64_t i;     /* V_BOOL (0/1), V_INT, V_DATE (microseconds since the epoch) */
    double d;      /* V_REAL */
    const char *s; /* V_STRING: arena copy */
    size_t len;
} value;

typedef enum node_kind {
    N_TRUE,
    N_FALSE,
    N_AND,
    N_OR,
    N_NOT,
    N_PRED,    /* a positive predicate on one field */
    N_XCMP,    /* $expr comparison of two operands */
    N_XTRUTHY, /* $expr truthiness of one operand */
} node_kind;

typedef enum pred_kind {
    P_EXISTS,      /* the field is present (null included) */
    P_NONNULL,     /* the field is present and not null */
    P_CMP,         /* field <op> v; v is a number, string or date the field's type accepts */
    P_IN,          /* field equals one of vals (all numbers, or all strings, or all dates) */
    P_BOOL,        /* the field is a boolean in `bools` */
    P_ANY_CHANNEL, /* FK_CHANNEL: any of the channels named in vals (strings) exists */
} pred_kind;

typedef enum cmp_op { OP_EQ, OP_GT, OP_GTE, OP_LT, OP_LTE } cmp_op;

typedef struct operand {
    bool is_field;
    field_ref f;
    value v;
} operand;

typedef struct node node;
struct node {
    node_kind kind;
    node *kids; /* N_AND, N_OR, N_NOT: children, linked through next */
    node *next;
    pred_kind pk;
    cmp_op op; /* P_CMP, N_XCMP */
    field_ref f;
    value v;     /* P_CMP */
    value *vals; /* P_IN */
    size_t nvals;
    unsigned bools; /* P_BOOL: bit 0 = false matches, bit 1 = true matches */
    operand a, b;   /* N_XCMP; N_XTRUTHY uses a */
};

struct filter {
    ast_arena ar;
    node *root;
};

/* ================================================================ compile context */

typedef struct cctx {
    ast_arena *ar;
    bool convert_dates;
    size_t nnodes;
    size_t nparams; /* upper bound on emitted parameters */
    char *err;
    size_t errlen;
    int rc;
} cctx;

/* A client-supplied name made safe to quote in a message: at most NAME_SHOWN_MAX bytes,
 * control characters and invalid UTF-8 replaced by '?', "..." when cut. */
typedef struct shown {
    char s[NAME_SHOWN_MAX + 8];
} shown;

static size_t utf8_seq_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    size_t n;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4;
    else
        return 0;
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    }
    if (n == 3 && c == 0xe0 && p[1] < 0xa0)
        return 0; /* overlong */
    if (n == 3 && c == 0xed && p[1] >= 0xa0)
        return 0; /* surrogate */
    if (n == 4 && c == 0xf0 && p[1] < 0x90)
        return 0; /* overlong */
    if (n == 4 && c == 0xf4 && p[1] >= 0x90)
        return 0; /* past U+10FFFF */
    return n;
}

static shown show(const char *s, size_t len)
{
    shown out;
    size_t o = 0, i = 0;
    while (i < len) {
        const unsigned char *p = (const unsigned char *)s + i;
        size_t n = utf8_seq_len(p, len - i);
        if (o + (n ? n : 1) > NAME_SHOWN_MAX) {
            memcpy(out.s + o, "...", 3);
            o += 3;
            break;
        }
        if (n == 0 || (n == 1 && (p[0] < 0x20 || p[0] == 0x7f))) {
            out.s[o++] = '?';
            i++;
            continue;
        }
        memcpy(out.s + o, p, n);
        o += n;
        i += n;
    }
    out.s[o] = '\0';
    return out;
}

static void *cfail(cctx *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void *cfail(cctx *c, int rc, const char *fmt, ...)
{
    if (c->rc)
        return NULL;
    c->rc = rc;
    if (c->err && c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    return NULL;
}

static void *oom(cctx *c)
{
    return cfail(c, -ENOMEM, "out of memory while compiling the filter");
}

static void *too_deep(cctx *c)
{
    return cfail(c, -E2BIG, "filter is nested too deeply (more than %d levels)", FILTER_MAX_DEPTH);
}

static bool key_is(const char *k, size_t kl, const char *lit)
{
    return kl == strlen(lit) && memcmp(k, lit, kl) == 0;
}

static const char *ast_strndup(cctx *c, const char *s, size_t n)
{
    char *p = ast_alloc(c->ar, n + 1);
    if (!p)
        return oom(c);
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* Counts a node (and its parameter cost) against the limits. */
static bool charge(cctx *c, size_t nodes, size_t params)
{
    c->nnodes += nodes;
    c->nparams += params;
    if (c->nnodes > FILTER_MAX_NODES) {
        cfail(c, -E2BIG, "filter is too complex (more than %d elements)", FILTER_MAX_NODES);
        return false;
    }
    if (c->nparams > FILTER_MAX_PARAMS) {
        cfail(c, -E2BIG, "filter is too complex (too many values)");
        return false;
    }
    return true;
}

static node *mk(cctx *c, node_kind k, size_t cost)
{
    if (!charge(c, 1, cost))
        return NULL;
    node *n = ast_alloc(c->ar, sizeof(*n));
    if (!n)
        return oom(c);
    n->kind = k;
    return n;
}

static node *mk_const(cctx *c, bool v)
{
    return mk(c, v ? N_TRUE : N_FALSE, 0);
}

static node *mk_not(cctx *c, node *x)
{
    if (!x)
        return NULL;
    if (x->kind == N_TRUE || x->kind == N_FALSE)
        return mk_const(c, x->kind == N_FALSE);
    if (x->kind == N_NOT)
        return x->kids; /* NOT NOT x == x: leaves are two-valued after IS NOT TRUE */
    node *n = mk(c, N_NOT, 0);
    if (n)
        n->kids = x;
    return n;
}

/* Builds an AND or OR, folding constants. */
typedef struct nlist {
    bool is_and;
    bool absorbed; /* a FALSE under AND, a TRUE under OR */
    node *head, *tail;
    size_t n;
} nlist;

static void nl_init(nlist *l, bool is_and)
{
    memset(l, 0, sizeof(*l));
    l->is_and = is_and;
}

static void nl_add(nlist *l, node *x)
{
    node_kind neutral = l->is_and ? N_TRUE : N_FALSE;
    if (x->kind == neutral)
        return;
    if (x->kind == N_TRUE || x->kind == N_FALSE) {
        l->absorbed = true;
        return;
    }
    node *first = x, *last = x;
    size_t count = 1;
    if (x->kind == (l->is_and ? N_AND : N_OR)) {
        /* (a AND b) AND c == a AND b AND c: splice the members in. */
        first = last = x->kids;
        while (last->next) {
            last = last->next;
            count++;
        }
    }
    last->next = NULL;
    if (l->tail)
        l->tail->next = first;
    else
        l->head = first;
    l->tail = last;
    l->n += count;
}

static bool is_channel_exists(const node *n)
{
    return n->kind == N_PRED && n->f.kind == FK_CHANNEL &&
           (n->pk == P_EXISTS || n->pk == P_NONNULL || n->pk == P_ANY_CHANNEL);
}

/* An OR of channel existence tests (the frontend's projection `$or`) becomes one
 * P_ANY_CHANNEL node, i.e. one subquery instead of one per channel. */
static void merge_channel_exists(cctx *c, nlist *l)
{
    size_t count = 0, names_needed = 0;
    for (node *k = l->head; k; k = k->next) {
        if (is_channel_exists(k)) {
            count++;
            names_needed += k->pk == P_ANY_CHANNEL ? k->nvals : 1;
        }
    }
    if (count < 2)
        return;
    value *names = ast_alloc(c->ar, names_needed * sizeof(*names));
    if (!names) {
        oom(c);
        return;
    }
    node *merged = NULL, *head = NULL, *tail = NULL;
    size_t n = 0, kept = 0;
    for (node *k = l->head, *next; k; k = next) {
        next = k->next;
        node *keep = k;
        if (is_channel_exists(k)) {
            if (k->pk == P_ANY_CHANNEL) {
                memcpy(names + n, k->vals, k->nvals * sizeof(*names));
                n += k->nvals;
            } else {
                names[n].type = V_STRING;
                names[n].s = k->f.channel;
                names[n].len = k->f.channel_len;
                n++;
            }
            if (merged)
                continue;
            merged = k; /* reuse the first one, in its place */
            merged->pk = P_ANY_CHANNEL;
            merged->vals = names;
            keep = merged;
        }
        keep->next = NULL;
        if (tail)
            tail->next = keep;
        else
            head = keep;
        tail = keep;
        kept++;
    }
    merged->nvals = n;
    l->head = head;
    l->tail = tail;
    l->n = kept;
}

static node *nl_finish(cctx *c, nlist *l)
{
    if (l->absorbed)
        return mk_const(c, !l->is_and);
    if (!l->is_and)
        merge_channel_exists(c, l);
    if (c->rc)
        return NULL;
    if (l->n == 0)
        return mk_const(c, l->is_and);
    if (l->n == 1)
        return l->head;
    node *n = mk(c, l->is_and ? N_AND : N_OR, 0);
    if (n)
        n->kids = l->head;
    return n;
}

/* ================================================================ field resolution */

/* A JSON path key SQLite can match portably: no '"', '\' or control characters. */
static bool json_key_ok(const char *k, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)k[i];
        if (ch < 0x20 || ch == '"' || ch == '\\')
            return false;
    }
    return true;
}

static const char *const TEXT_COLUMNS[] = {"active_area", "active_experiment",
                                           "epac_ops_data_version"};

/* Resolves a dotted path (path/len, not NUL-terminated necessarily) into *out. */
static bool resolve_field(cctx *c, const char *path, size_t len, field_ref *out)
{
    memset(out, 0, sizeof(*out));
    size_t ncomp = 1;
    for (size_t i = 0; i < len; i++) {
        if (path[i] == '.')
            ncomp++;
    }
    const char **comp = ast_alloc(c->ar, ncomp * sizeof(*comp));
    size_t *clen = ast_alloc(c->ar, ncomp * sizeof(*clen));
    if (!comp || !clen) {
        oom(c);
        return false;
    }
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || path[i] == '.') {
            if (i == start) {
                cfail(c, -EINVAL, "invalid field path \"%s\": empty field name", show(path, len).s);
                return false;
            }
            comp[k] = path + start;
            clen[k] = i - start;
            k++;
            start = i + 1;
        }
    }

    size_t keys_from = 0;
    if (key_is(comp[0], clen[0], "_id")) {
        out->kind = ncomp == 1 ? FK_ID : FK_MISSING;
        return true;
    }
    if (key_is(comp[0], clen[0], "version")) {
        out->kind = ncomp == 1 ? FK_VERSION : FK_MISSING;
        return true;
    }
    if (key_is(comp[0], clen[0], "metadata")) {
        if (ncomp == 1) {
            out->kind = FK_METADATA;
            return true;
        }
        if (key_is(comp[1], clen[1], "timestamp")) {
            out->kind = ncomp == 2 ? FK_TIMESTAMP : FK_MISSING;
            return true;
        }
        if (key_is(comp[1], clen[1], "shotnum")) {
            out->kind = ncomp == 2 ? FK_SHOTNUM : FK_MISSING;
            return true;
        }
        for (size_t i = 0; i < sizeof(TEXT_COLUMNS) / sizeof(TEXT_COLUMNS[0]); i++) {
            if (key_is(comp[1], clen[1], TEXT_COLUMNS[i])) {
                out->kind = ncomp == 2 ? FK_TEXT_COL : FK_MISSING;
                out->column = TEXT_COLUMNS[i];
                return true;
            }
        }
        out->kind = FK_META_JSON;
        keys_from = 1;
    } else if (key_is(comp[0], clen[0], "channels")) {
        if (ncomp == 1) {
            out->kind = FK_CHANNELS;
            return true;
        }
        out->channel = ast_strndup(c, comp[1], clen[1]);
        if (!out->channel)
            return false;
        out->channel_len = clen[1];
        if (ncomp == 2) {
            out->kind = FK_CHANNEL;
            return true;
        }
        if (ncomp == 3 && key_is(comp[2], clen[2], "data")) {
            out->kind = FK_CHAN_DATA;
            return true;
        }
        out->kind = FK_CHAN_JSON;
        keys_from = 2;
    } else {
        out->kind = FK_MISSING;
        return true;
    }

    out->nkeys = ncomp - keys_from;
    out->keys = ast_alloc(c->ar, out->nkeys * sizeof(*out->keys));
    out->key_lens = ast_alloc(c->ar, out->nkeys * sizeof(*out->key_lens));
    if (!out->keys || !out->key_lens) {
        oom(c);
        return false;
    }
    for (size_t i = 0; i < out->nkeys; i++) {
        const char *kp = comp[keys_from + i];
        size_t kn = clen[keys_from + i];
        if (!json_key_ok(kp, kn)) {
            cfail(c, -EINVAL,
                  "invalid field path \"%s\": field names containing quotes, backslashes or "
                  "control characters are not supported",
                  show(path, len).s);
            return false;
        }
        out->keys[i] = ast_strndup(c, kp, kn);
        if (!out->keys[i])
            return false;
        out->key_lens[i] = kn;
    }
    return true;
}

static bool field_is_whole(const field_ref *f)
{
    return f->kind == FK_METADATA || f->kind == FK_CHANNELS || f->kind == FK_CHANNEL;
}

static const char *whole_what(const field_ref *f)
{
    switch (f->kind) {
    case FK_METADATA:
        return "the whole metadata document";
    case FK_CHANNELS:
        return "the whole channels document";
    default:
        return "a whole channel";
    }
}

/* Whether values of type t can ever equal or order against the field. */
static bool field_accepts(const field_ref *f, value_type t)
{
    switch (f->kind) {
    case FK_ID:
    case FK_TEXT_COL:
        return t == V_STRING;
    case FK_VERSION:
    case FK_SHOTNUM:
        return t == V_INT || t == V_REAL;
    case FK_TIMESTAMP:
        return t == V_DATE;
    case FK_META_JSON:
    case FK_CHAN_DATA:
    case FK_CHAN_JSON:
        /* JSON holds no dates: the only date-typed field is metadata.timestamp. */
        return t == V_INT || t == V_REAL || t == V_STRING || t == V_BOOL;
    default:
        return false;
    }
}

/* ================================================================ values */

/* Converts a scalar JSON value. Strings that are object-entry values become dates when
 * conversion is on and they parse. Returns false for objects and arrays (no error set). */
static bool json_to_value(cctx *c, const json_t *j, bool object_value, value *out)
{
    memset(out, 0, sizeof(*out));
    switch (json_typeof(j)) {
    case JSON_NULL:
        out->type = V_NULL;
        return true;
    case JSON_TRUE:
    case JSON_FALSE:
        out->type = V_BOOL;
        out->i = json_is_true(j);
        return true;
    case JSON_INTEGER:
        out->type = V_INT;
        out->i = (int64_t)json_integer_value(j);
        return true;
    case JSON_REAL:
        out->type = V_REAL;
        out->d = json_real_value(j);
        return true;
    case JSON_STRING: {
        const char *s = json_string_value(j);
        size_t n = json_string_length(j);
        int64_t us;
        if (c->convert_dates && object_value && strlen(s) == n &&
            filter_parse_datetime(s, &us) == 0) {
            out->type = V_DATE;
            out->i = us;
            return true;
        }
        out->type = V_STRING;
        out->s = ast_strndup(c, s, n);
        out->len = n;
        return out->s != NULL || c->rc == 0; /* on OOM c->rc is set; caller checks */
    }
    default:
        return false;
    }
}

/* Mongo's truthiness of a $exists operand (BSONElement::trueValue). */
static bool json_truthy(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_NULL:
    case JSON_FALSE:
        return false;
    case JSON_INTEGER:
        return json_integer_value(j) != 0;
    case JSON_REAL:
        return json_real_value(j) != 0.0;
    default:
        return true;
    }
}

/* ================================================================ field predicates */

static node *mk_pred(cctx *c, const field_ref *f, pred_kind pk, size_t extra_cost)
{
    node *n = mk(c, N_PRED, COST_PRED + extra_cost);
    if (!n)
        return NULL;
    n->pk = pk;
    n->f = *f;
    return n;
}

/* Present and not null. */
static node *field_nonnull(cctx *c, const field_ref *f)
{
    if (f->kind == FK_MISSING)
        return mk_const(c, false);
    if (f->kind == FK_ID)
        return mk_const(c, true);
    return mk_pred(c, f, P_NONNULL, 0);
}

static node *field_exists(cctx *c, const field_ref *f, bool want)
{
    node *x;
    if (f->kind == FK_MISSING)
        x = mk_const(c, false);
    else if (f->kind == FK_ID)
        x = mk_const(c, true);
    else
        x = mk_pred(c, f, P_EXISTS, 0);
    return want ? x : mk_not(c, x);
}

static unsigned bool_mask(cmp_op op, bool v)
{
    const unsigned F = 1, T = 2;
    switch (op) {
    case OP_EQ:
        return v ? T : F;
    case OP_GT:
        return v ? 0 : T;
    case OP_GTE:
        return v ? T : F | T;
    case OP_LT:
        return v ? F : 0;
    case OP_LTE:
        return v ? F | T : F;
    }
    return 0;
}

/* The positive predicate `field <op> v` with Mongo's query semantics. */
static node *field_cmp(cctx *c, const field_ref *f, const char *fname, size_t fnlen, cmp_op op,
                       const value *v)
{
    if (v->type == V_NULL) {
        /* null equals missing or null; $gte/$lte null likewise; $gt/$lt null nothing. */
        if (op == OP_EQ || op == OP_GTE || op == OP_LTE)
            return mk_not(c, field_nonnull(c, f));
        return mk_const(c, false);
    }
    if (field_is_whole(f))
        return cfail(c, -EINVAL, "field \"%s\": comparison with %s is not supported",
                     show(fname, fnlen).s, whole_what(f));
    if (!field_accepts(f, v->type))
        return mk_const(c, false); /* type bracketing: never matches */
    if (v->type == V_BOOL) {
        unsigned m = bool_mask(op, v->i != 0);
        if (!m)
            return mk_const(c, false);
        node *n = mk_pred(c, f, P_BOOL, 0);
        if (n)
            n->bools = m;
        return n;
    }
    node *n = mk_pred(c, f, P_CMP, 0);
    if (n) {
        n->op = op;
        n->v = *v;
    }
    return n;
}

static void *unsupported_operand(cctx *c, const char *fname, size_t fnlen, const char *opname)
{
    return cfail(c, -EINVAL,
                 "unsupported value for %s on field \"%s\": comparison with an object or array "
                 "is not supported",
                 opname, show(fname, fnlen).s);
}

static node *field_cmp_json(cctx *c, const field_ref *f, const char *fname, size_t fnlen, cmp_op op,
                            const json_t *j, const char *opname)
{
    value v;
    if (!json_to_value(c, j, true, &v)) {
        if (c->rc)
            return NULL;
        return unsupported_operand(c, fname, fnlen, opname);
    }
    if (c->rc)
        return NULL;
    return field_cmp(c, f, fname, fnlen, op, &v);
}

/* Equality with several values of one type group. */
static node *field_in_group(cctx *c, const field_ref *f, const char *fname, size_t fnlen,
                            value *vals, size_t n)
{
    if (n == 0)
        return mk_const(c, false);
    if (n == 1)
        return field_cmp(c, f, fname, fnlen, OP_EQ, &vals[0]);
    if (field_is_whole(f))
        return cfail(c, -EINVAL, "field \"%s\": comparison with %s is not supported",
                     show(fname, fnlen).s, whole_what(f));
    if (!field_accepts(f, vals[0].type))
        return mk_const(c, false);
    node *x = mk_pred(c, f, P_IN, n);
    if (x) {
        x->vals = vals;
        x->nvals = n;
    }
    return x;
}

/* $in: equality with any element; elements are array members, so never date-converted. */
static node *field_in(cctx *c, const field_ref *f, const char *fname, size_t fnlen,
                      const json_t *arr, const char *opname)
{
    if (!json_is_array(arr))
        return cfail(c, -EINVAL, "%s needs an array (field \"%s\")", opname, show(fname, fnlen).s);
    size_t n = json_array_size(arr);
    if (!charge(c, n, 0))
        return NULL;
    value *nums = ast_alloc(c->ar, (n ? n : 1) * sizeof(value));
    value *strs = ast_alloc(c->ar, (n ? n : 1) * sizeof(value));
    value *dates = ast_alloc(c->ar, (n ? n : 1) * sizeof(value));
    if (!nums || !strs || !dates)
        return oom(c);
    size_t nn = 0, ns = 0, nd = 0;
    bool has_null = false;
    unsigned bools = 0;
    for (size_t i = 0; i < n; i++) {
        value v;
        if (!json_to_value(c, json_array_get(arr, i), false, &v)) {
            if (c->rc)
                return NULL;
            return unsupported_operand(c, fname, fnlen, opname);
        }
        if (c->rc)
            return NULL;
        switch (v.type) {
        case V_NULL:
            has_null = true;
            break;
        case V_BOOL:
            bools |= v.i ? 2u : 1u;
            break;
        case V_INT:
        case V_REAL:
            nums[nn++] = v;
            break;
        case V_STRING:
            strs[ns++] = v;
            break;
        case V_DATE:
            dates[nd++] = v;
            break;
        }
    }
    nlist l;
    nl_init(&l, false);
    if (has_null) {
        value vn = {.type = V_NULL};
        node *x = field_cmp(c, f, fname, fnlen, OP_EQ, &vn);
        if (!x)
            return NULL;
        nl_add(&l, x);
    }
    if (bools) {
        node *x;
        if (field_is_whole(f))
            return cfail(c, -EINVAL, "field \"%s\": comparison with %s is not supported",
                         show(fname, fnlen).s, whole_what(f));
        if (!field_accepts(f, V_BOOL)) {
            x = mk_const(c, false);
        } else {
            x = mk_pred(c, f, P_BOOL, 0);
            if (x)
                x->bools = bools;
        }
        if (!x)
            return NULL;
        nl_add(&l, x);
    }
    struct {
        value *v;
        size_t n;
    } groups[3] = {{nums, nn}, {strs, ns}, {dates, nd}};
    for (size_t g = 0; g < 3; g++) {
        if (!groups[g].n)
            continue;
        node *x = field_in_group(c, f, fname, fnlen, groups[g].v, groups[g].n);
        if (!x)
            return NULL;
        nl_add(&l, x);
    }
    return nl_finish(c, &l);
}

/* ================================================================ filter documents */

/* Operators Mongo has that this translator deliberately does not implement. */
static const char *const UNSUPPORTED_FIELD_OPS[] = {
    "$regex",      "$options",      "$elemMatch",    "$size",        "$type",
    "$mod",        "$all",          "$text",         "$where",       "$bitsAllSet",
    "$bitsAnySet", "$bitsAllClear", "$bitsAnyClear", "$geoWithin",   "$geoIntersects",
    "$near",       "$nearSphere",   "$maxDistance",  "$minDistance", "$within",
    "$box",        "$center",       "$centerSphere", "$polygon",     "$geometry",
    "$uniqueDocs", "$jsonSchema",   "$comment",
};
static const char *const UNSUPPORTED_TOP_OPS[] = {"$where", "$text", "$jsonSchema", "$sampleRate"};

static bool in_list(const char *k, size_t kl, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (key_is(k, kl, list[i]))
            return true;
    }
    return false;
}

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static node *compile_doc(cctx *c, const json_t *doc, int depth);

/* An operator document for one field, e.g. {"$gte": 1, "$lt": 5}: the AND of its parts. */
static node *compile_ops(cctx *c, const field_ref *f, const char *fname, size_t fnlen,
                         const json_t *ops, int depth)
{
    if (depth > FILTER_MAX_DEPTH)
        return too_deep(c);
    nlist l;
    nl_init(&l, true);
    for (void *it = json_object_iter((json_t *)ops); it;
         it = json_object_iter_next((json_t *)ops, it)) {
        const char *k = json_object_iter_key(it);
        size_t kl = json_object_iter_key_len(it);
        const json_t *v = json_object_iter_value(it);
        node *x = NULL;
        if (kl == 0 || k[0] != '$') {
            return cfail(c, -EINVAL,
                         "field \"%s\": a document cannot mix operators ($...) with plain "
                         "field names",
                         show(fname, fnlen).s);
        } else if (key_is(k, kl, "$eq")) {
            x = field_cmp_json(c, f, fname, fnlen, OP_EQ, v, "$eq");
        } else if (key_is(k, kl, "$ne")) {
            x = mk_not(c, field_cmp_json(c, f, fname, fnlen, OP_EQ, v, "$ne"));
        } else if (key_is(k, kl, "$gt")) {
            x = field_cmp_json(c, f, fname, fnlen, OP_GT, v, "$gt");
        } else if (key_is(k, kl, "$gte")) {
            x = field_cmp_json(c, f, fname, fnlen, OP_GTE, v, "$gte");
        } else if (key_is(k, kl, "$lt")) {
            x = field_cmp_json(c, f, fname, fnlen, OP_LT, v, "$lt");
        } else if (key_is(k, kl, "$lte")) {
            x = field_cmp_json(c, f, fname, fnlen, OP_LTE, v, "$lte");
        } else if (key_is(k, kl, "$in")) {
            x = field_in(c, f, fname, fnlen, v, "$in");
        } else if (key_is(k, kl, "$nin")) {
            x = mk_not(c, field_in(c, f, fname, fnlen, v, "$nin"));
        } else if (key_is(k, kl, "$exists")) {
            x = field_exists(c, f, json_truthy(v));
        } else if (key_is(k, kl, "$not")) {
            bool ok = json_is_object(v) && json_object_size(v) > 0;
            for (void *vi = ok ? json_object_iter((json_t *)v) : NULL; vi;
                 vi = json_object_iter_next((json_t *)v, vi)) {
                if (json_object_iter_key_len(vi) == 0 || json_object_iter_key(vi)[0] != '$')
                    ok = false;
            }
            if (!ok)
                return cfail(c, -EINVAL, "$not needs a non-empty operator document (field \"%s\")",
                             show(fname, fnlen).s);
            x = mk_not(c, compile_ops(c, f, fname, fnlen, v, depth + 1));
        } else if (in_list(k, kl, UNSUPPORTED_FIELD_OPS, NELEM(UNSUPPORTED_FIELD_OPS))) {
            return cfail(c, -EINVAL, "operator %s is not supported", show(k, kl).s);
        } else {
            return cfail(c, -EINVAL, "unknown operator: %s", show(k, kl).s);
        }
        if (!x)
            return NULL;
        nl_add(&l, x);
    }
    return nl_finish(c, &l);
}

/* One `"field": condition` entry of a filter document. */
static node *compile_field(cctx *c, const char *k, size_t kl, const json_t *v, int depth)
{
    field_ref f;
    if (!resolve_field(c, k, kl, &f))
        return NULL;
    if (json_is_object(v) && json_object_size(v) > 0) {
        size_t ndollar = 0, total = json_object_size(v);
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            const char *ok = json_object_iter_key(it);
            if (json_object_iter_key_len(it) > 0 && ok[0] == '$')
                ndollar++;
        }
        if (ndollar == total)
            return compile_ops(c, &f, k, kl, v, depth + 1);
        if (ndollar > 0)
            return cfail(c, -EINVAL,
                         "field \"%s\": a document cannot mix operators ($...) with plain "
                         "field names",
                         show(k, kl).s);
    }
    return field_cmp_json(c, &f, k, kl, OP_EQ, v, "equality");
}

/* ---------------------------------------------------------------- $expr */

static bool parse_operand(cctx *c, const json_t *j, bool object_value, operand *out)
{
    memset(out, 0, sizeof(*out));
    if (json_is_string(j)) {
        const char *s = json_string_value(j);
        size_t n = json_string_length(j);
        if (n > 0 && s[0] == '$') {
            if (n > 1 && s[1] == '$') {
                cfail(c, -EINVAL, "$expr: variables such as \"%s\" are not supported",
                      show(s, n).s);
                return false;
            }
            if (!resolve_field(c, s + 1, n - 1, &out->f))
                return false;
            if (field_is_whole(&out->f)) {
                cfail(c, -EINVAL, "$expr: comparison with %s (\"%s\") is not supported",
                      whole_what(&out->f), show(s, n).s);
                return false;
            }
            out->is_field = true;
            return true;
        }
    }
    if (json_is_object(j)) {
        void *it = json_object_iter((json_t *)j);
        if (json_object_size(j) == 1 &&
            key_is(json_object_iter_key(it), json_object_iter_key_len(it), "$literal")) {
            j = json_object_iter_value(it);
            object_value = true;
        } else if (it && json_object_iter_key_len(it) > 0 && json_object_iter_key(it)[0] == '$') {
            cfail(c, -EINVAL, "$expr: operator %s is not supported as an operand",
                  show(json_object_iter_key(it), json_object_iter_key_len(it)).s);
            return false;
        }
    }
    if (!json_to_value(c, j, object_value, &out->v)) {
        if (!c->rc)
            cfail(c, -EINVAL, "$expr: object and array operands are not supported");
        return false;
    }
    return c->rc == 0;
}

static bool literal_truthy(const value *v)
{
    switch (v->type) {
    case V_NULL:
        return false;
    case V_BOOL:
    case V_INT:
        return v->i != 0;
    case V_REAL:
        return v->d != 0.0;
    default:
        return true;
    }
}

static node *compile_expr(cctx *c, const json_t *e, bool object_value, int depth);

static node *expr_list(cctx *c, const json_t *args, bool is_and, int depth)
{
    nlist l;
    nl_init(&l, is_and);
    if (json_is_array(args)) {
        for (size_t i = 0; i < json_array_size(args); i++) {
            node *x = compile_expr(c, json_array_get(args, i), false, depth + 1);
            if (!x)
                return NULL;
            nl_add(&l, x);
        }
    } else {
        node *x = compile_expr(c, args, true, depth + 1);
        if (!x)
            return NULL;
        nl_add(&l, x);
    }
    return nl_finish(c, &l);
}

static node *compile_expr(cctx *c, const json_t *e, bool object_value, int depth)
{
    if (depth > FILTER_MAX_DEPTH)
        return too_deep(c);
    if (!json_is_object(e)) {
        operand a;
        if (!parse_operand(c, e, object_value, &a))
            return NULL;
        if (!a.is_field)
            return mk_const(c, literal_truthy(&a.v));
        node *n = mk(c, N_XTRUTHY, COST_XTRUTHY);
        if (n)
            n->a = a;
        return n;
    }
    if (json_object_size(e) != 1) {
        void *it0 = json_object_iter((json_t *)e);
        if (it0 && json_object_iter_key_len(it0) > 0 && json_object_iter_key(it0)[0] == '$')
            return cfail(c, -EINVAL,
                         "$expr: an expression object must have exactly one "
                         "operator");
        return cfail(c, -EINVAL, "$expr: object literals are not supported");
    }
    void *it = json_object_iter((json_t *)e);
    const char *k = json_object_iter_key(it);
    size_t kl = json_object_iter_key_len(it);
    const json_t *args = json_object_iter_value(it);
    if (kl == 0 || k[0] != '$')
        return cfail(c, -EINVAL, "$expr: object literals are not supported");
    if (key_is(k, kl, "$literal")) {
        operand a;
        if (!parse_operand(c, e, object_value, &a))
            return NULL;
        return mk_const(c, literal_truthy(&a.v));
    }
    if (key_is(k, kl, "$and"))
        return expr_list(c, args, true, depth);
    if (key_is(k, kl, "$or"))
        return expr_list(c, args, false, depth);
    if (key_is(k, kl, "$not")) {
        if (json_is_array(args)) {
            if (json_array_size(args) != 1)
                return cfail(c, -EINVAL, "$expr: $not takes exactly one argument");
            return mk_not(c, compile_expr(c, json_array_get(args, 0), false, depth + 1));
        }
        return mk_not(c, compile_expr(c, args, true, depth + 1));
    }
    static const struct {
        const char *name;
        cmp_op op;
        bool negate;
    } cmps[] = {{"$eq", OP_EQ, false},   {"$ne", OP_EQ, true},  {"$gt", OP_GT, false},
                {"$gte", OP_GTE, false}, {"$lt", OP_LT, false}, {"$lte", OP_LTE, false}};
    for (size_t i = 0; i < NELEM(cmps); i++) {
        if (!key_is(k, kl, cmps[i].name))
            continue;
        if (!json_is_array(args) || json_array_size(args) != 2)
            return cfail(c, -EINVAL, "$expr: %s needs an array of exactly two operands",
                         cmps[i].name);
        node *n = mk(c, N_XCMP, COST_XCMP);
        if (!n)
            return NULL;
        n->op = cmps[i].op;
        if (!parse_operand(c, json_array_get(args, 0), false, &n->a) ||
            !parse_operand(c, json_array_get(args, 1), false, &n->b))
            return NULL;
        return cmps[i].negate ? mk_not(c, n) : n;
    }
    return cfail(c, -EINVAL, "$expr: operator %s is not supported", show(k, kl).s);
}

/* ---------------------------------------------------------------- documents */

static node *compile_logical(cctx *c, const char *name, const json_t *arr, int depth)
{
    bool is_nor = strcmp(name, "$nor") == 0;
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return cfail(c, -EINVAL, "%s must be a nonempty array", name);
    nlist l;
    nl_init(&l, strcmp(name, "$and") == 0);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *d = json_array_get(arr, i);
        if (!json_is_object(d))
            return cfail(c, -EINVAL, "%s entries must be filter documents (objects)", name);
        node *x = compile_doc(c, d, depth + 1);
        if (!x)
            return NULL;
        nl_add(&l, x);
    }
    node *r = nl_finish(c, &l);
    return is_nor ? mk_not(c, r) : r;
}

static node *compile_doc(cctx *c, const json_t *doc, int depth)
{
    if (depth > FILTER_MAX_DEPTH)
        return too_deep(c);
    nlist l;
    nl_init(&l, true);
    for (void *it = json_object_iter((json_t *)doc); it;
         it = json_object_iter_next((json_t *)doc, it)) {
        const char *k = json_object_iter_key(it);
        size_t kl = json_object_iter_key_len(it);
        const json_t *v = json_object_iter_value(it);
        node *x;
        if (kl > 0 && k[0] == '$') {
            if (key_is(k, kl, "$and"))
                x = compile_logical(c, "$and", v, depth);
            else if (key_is(k, kl, "$or"))
                x = compile_logical(c, "$or", v, depth);
            else if (key_is(k, kl, "$nor"))
                x = compile_logical(c, "$nor", v, depth);
            else if (key_is(k, kl, "$expr"))
                x = compile_expr(c, v, true, depth + 1);
            else if (key_is(k, kl, "$comment"))
                continue; /* Mongo ignores comments */
            else if (in_list(k, kl, UNSUPPORTED_TOP_OPS, NELEM(UNSUPPORTED_TOP_OPS)))
                return cfail(c, -EINVAL, "operator %s is not supported", show(k, kl).s);
            else
                return cfail(c, -EINVAL, "unknown operator: %s", show(k, kl).s);
        } else {
            x = compile_field(c, k, kl, v, depth);
        }
        if (!x)
            return NULL;
        nl_add(&l, x);
    }
    return nl_finish(c, &l);
}

/* Upper bounds on the parser stack and expression height the SQLite text of n needs. */
typedef struct sql_cost_t {
    size_t stack, height;
    size_t subqueries; /* correlated subqueries, summed over the tree */
} sql_cost_t;

static bool in_channel(const field_ref *f)
{
    return f->kind == FK_CHANNELS || f->kind == FK_CHANNEL || f->kind == FK_CHAN_DATA ||
           f->kind == FK_CHAN_JSON;
}

static sql_cost_t sql_cost(const node *n)
{
    sql_cost_t c = {1, 1, 0};
    switch (n->kind) {
    case N_TRUE:
    case N_FALSE:
        return c;
    case N_PRED:
        c.stack = STACK_PRED;
        c.height = HEIGHT_PRED;
        c.subqueries = in_channel(&n->f);
        return c;
    case N_XCMP:
    case N_XTRUTHY:
        c.stack = STACK_XPR;
        c.height = HEIGHT_XPR;
        c.subqueries = (n->a.is_field && in_channel(&n->a.f)) +
                       (n->kind == N_XCMP && n->b.is_field && in_channel(&n->b.f));
        return c;
    case N_NOT:
        c = sql_cost(n->kids);
        c.stack += STACK_NOT;
        c.height += 1;
        return c;
    case N_AND:
    case N_OR: {
        size_t count = 0, levels = 1, span = LIST_FLAT;
        for (const node *k = n->kids; k; k = k->next) {
            sql_cost_t kc = sql_cost(k);
            if (kc.stack > c.stack)
                c.stack = kc.stack;
            if (kc.height > c.height)
                c.height = kc.height;
            c.subqueries += kc.subqueries;
            count++;
        }
        while (span < count) {
            span *= LIST_FLAT;
            levels++;
        }
        c.stack += STACK_PER_LIST_LEVEL * levels;
        c.height += LIST_FLAT * levels;
        return c;
    }
    }
    return c;
}

int filter_compile(const json_t *conditions, bool convert_dates, filter_t **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    filter_t *f = calloc(1, sizeof(*f));
    if (f)
        arena_init(&f->ar, FILTER_ARENA_MAX);
    if (!f) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory while compiling the filter");
        return -ENOMEM;
    }
    cctx c = {.ar = &f->ar, .convert_dates = convert_dates, .err = err, .errlen = errlen};
    if (!conditions)
        f->root = mk_const(&c, true);
    else if (!json_is_object(conditions))
        cfail(&c, -EINVAL, "conditions must be a JSON object");
    else
        f->root = compile_doc(&c, conditions, 1);
    if (f->root && !c.rc) {
        sql_cost_t cost = sql_cost(f->root);
        if (cost.stack > FILTER_MAX_SQL_STACK || cost.height > FILTER_MAX_SQL_HEIGHT)
            cfail(&c, -E2BIG, "filter is too complex (nested too deeply)");
        else if (cost.subqueries > FILTER_MAX_SUBQUERIES)
            cfail(&c, -E2BIG, "filter is too complex (more than %d conditions on channels)",
                  FILTER_MAX_SUBQUERIES);
    }
    if (c.rc || !f->root) {
        int rc = c.rc ? c.rc : -ENOMEM;
        filter_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

void filter_free(filter_t *f)
{
    if (!f)
        return;
    ast_arena_free(&f->ar);
    free(f);
}

/* ================================================================ sql_fragment */

void sql_fragment_init(sql_fragment *f)
{
    buf_init(&f->text, SQL_TEXT_MAX);
    f->params = NULL;
    f->nparams = f->cap = 0;
}

void sql_fragment_free(sql_fragment *f)
{
    for (size_t i = 0; i < f->nparams; i++)
        free(f->params[i].s);
    free(f->params);
    f->params = NULL;
    f->nparams = f->cap = 0;
    buf_free(&f->text);
}

/* Appends a copy of p (its string copied). */
static int frag_push(sql_fragment *f, const sql_param *p)
{
    if (f->nparams >= SQL_MAX_PARAMS)
        return -E2BIG;
    if (f->nparams == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 16;
        sql_param *np = realloc(f->params, ncap * sizeof(*np));
        if (!np)
            return -ENOMEM;
        f->params = np;
        f->cap = ncap;
    }
    sql_param q = *p;
    q.s = NULL;
    if (p->type == SQLP_TEXT) {
        q.s = malloc(p->len + 1);
        if (!q.s)
            return -ENOMEM;
        if (p->len)
            memcpy(q.s, p->s, p->len);
        q.s[p->len] = '\0';
    }
    f->params[f->nparams++] = q;
    return 0;
}

int sql_fragment_param(sql_fragment *f, const sql_param *p)
{
    return frag_push(f, p);
}

int sql_fragment_append(sql_fragment *dst, const sql_fragment *src)
{
    if (dst->nparams + src->nparams > SQL_MAX_PARAMS)
        return -E2BIG;
    int rc = buf_append(&dst->text, src->text.data ? src->text.data : "", src->text.len);
    for (size_t i = 0; rc == 0 && i < src->nparams; i++)
        rc = frag_push(dst, &src->params[i]);
    return rc;
}

int sql_fragment_bind_sqlite(const sql_fragment *f, struct sqlite3_stmt *st, int first)
{
    for (size_t i = 0; i < f->nparams; i++) {
        const sql_param *p = &f->params[i];
        int idx = first + (int)i;
        int rc;
        switch (p->type) {
        case SQLP_INT:
            rc = sqlite3_bind_int64(st, idx, p->i);
            break;
        case SQLP_REAL:
            rc = sqlite3_bind_double(st, idx, p->d);
            break;
        case SQLP_TEXT:
            rc = sqlite3_bind_text64(st, idx, p->s, p->len, SQLITE_TRANSIENT, SQLITE_UTF8);
            break;
        default:
            rc = sqlite3_bind_null(st, idx);
            break;
        }
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

/* ================================================================ JSON paths */

static int json_path_n(buf_t *out, const char *const *keys, const size_t *lens, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!json_key_ok(keys[i], lens[i]))
            return -EINVAL;
    }
    int rc = buf_putc(out, '$');
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = buf_append(out, ".\"", 2);
        if (rc == 0)
            rc = buf_append(out, keys[i], lens[i]);
        if (rc == 0)
            rc = buf_putc(out, '"');
    }
    return rc;
}

int sql_json_path(buf_t *out, const char *const *keys, size_t n)
{
    size_t stack_lens[16] = {0};
    size_t *lens = n <= 16 ? stack_lens : malloc(n * sizeof(*lens));
    if (!lens)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(keys[i]);
    int rc = json_path_n(out, keys, lens, n);
    if (lens != stack_lens)
        free(lens);
    return rc;
}

/* ================================================================ emitters */

/*
 * One walker serves both SQL dialects. What differs between SQLite and PostgreSQL is kept
 * in a `dialect`: how a parameter is written (`?` or a numbered, typed `$n`), the boolean
 * literals, NULL placement in ORDER BY, and the few expressions that read JSON (SQLite's
 * json_type/json_extract on text, PostgreSQL's jsonb operators). Everything else (the
 * shape of predicates, channel subqueries, Mongo's null/missing rules, $expr row values,
 * the sort compiler) is written once below.
 *
 * Row values for $expr and sorting are (rank, value...): SQLite compares dynamically typed
 * values, so one value column serves every type; PostgreSQL needs one type per column, so
 * a value is split into a number part (numbers, booleans as 0/1, dates) and a text part
 * (strings, and the JSON text of objects and arrays), the unused part being NULL (or its
 * zero inside an $expr row).
 */
typedef struct ectx ectx;

typedef struct dialect {
    const char *yes, *no;                     /* boolean literals */
    const char *nulls_asc, *nulls_desc;       /* ORDER BY suffixes that put NULL (missing) lowest */
    unsigned nparts;                          /* value parts of a row value after the rank */
    const char *row_open;                     /* opens a row value */
    const char *part_open[3], *part_close[3]; /* wrap value part p (1-based) of a row */
    const char *zero[3];                      /* value part p of a missing or null operand */
    const char *falsy;                        /* `row NOT IN <falsy>`: missing, null, 0, false */
    bool channel_row_one_query;               /* a channel operand row comes from one subquery */
    void (*placeholder)(ectx *e, const sql_param *p);
    /* A predicate (P_EXISTS, P_NONNULL, P_BOOL, P_CMP, P_IN) on the JSON value at n->f's
     * path inside the JSON column col (constant SQL text). */
    void (*json_pred)(ectx *e, const node *n, const char *col);
    /* The type rank of the JSON value at f's path in col (missing -> missing_rank). */
    void (*json_rank)(ectx *e, const char *col, const field_ref *f, int missing_rank);
    /* Value part `part` (1..nparts) of the JSON value at f's path in col. */
    void (*json_part)(ectx *e, const char *col, const field_ref *f, unsigned part);
} dialect;

struct ectx {
    sql_fragment *out;
    const dialect *d;
    unsigned alias; /* next channel subquery alias number */
    int rc;
};

static void put(ectx *e, const char *s)
{
    if (e->rc == 0)
        e->rc = buf_puts(&e->out->text, s);
}

static void putf(ectx *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void putf(ectx *e, const char *fmt, ...)
{
    if (e->rc)
        return;
    va_list ap;
    va_start(ap, fmt);
    e->rc = buf_vprintf(&e->out->text, fmt, ap);
    va_end(ap);
}

/* Writes a placeholder for p and adds p to the fragment's parameters. */
static void param(ectx *e, const sql_param *p)
{
    e->d->placeholder(e, p);
    if (e->rc == 0)
        e->rc = frag_push(e->out, p);
}

static void param_text(ectx *e, const char *s, size_t len)
{
    sql_param p = {.type = SQLP_TEXT, .s = (char *)s, .len = len};
    param(e, &p);
}

/* A literal: a parameter, or NULL for null. */
static void param_value(ectx *e, const value *v)
{
    sql_param p = {.type = SQLP_INT};
    switch (v->type) {
    case V_NULL:
        put(e, "NULL");
        return;
    case V_BOOL:
    case V_INT:
    case V_DATE:
        p.i = v->i;
        break;
    case V_REAL:
        p.type = SQLP_REAL;
        p.d = v->d;
        break;
    case V_STRING:
        p.type = SQLP_TEXT;
        p.s = (char *)v->s;
        p.len = v->len;
        break;
    }
    param(e, &p);
}

static const char *op_sql(cmp_op op)
{
    switch (op) {
    case OP_EQ:
        return "=";
    case OP_GT:
        return ">";
    case OP_GTE:
        return ">=";
    case OP_LT:
        return "<";
    case OP_LTE:
        return "<=";
    }
    return "=";
}

/* `lhs <op> ?` or `lhs IN (?, ...)` for P_CMP / P_IN. */
static void emit_cmp_rhs(ectx *e, const node *n)
{
    if (n->pk == P_CMP) {
        putf(e, " %s ", op_sql(n->op));
        param_value(e, &n->v);
        return;
    }
    put(e, " IN (");
    for (size_t i = 0; i < n->nvals; i++) {
        if (i)
            put(e, ", ");
        param_value(e, &n->vals[i]);
    }
    put(e, ")");
}

static value_type pred_value_type(const node *n)
{
    return n->pk == P_CMP ? n->v.type : n->vals[0].type;
}

/* Whether JSON access for f means the "data" key of a channel body (channels.<X>.data, and
 * channels.<X> alone in sorts) rather than f's own keys. */
static bool path_is_data(const field_ref *f)
{
    return f->kind != FK_META_JSON && f->kind != FK_CHAN_JSON;
}

/* ---------------------------------------------------------------- SQLite dialect */

static void sqlite_placeholder(ectx *e, const sql_param *p)
{
    (void)p;
    put(e, "?");
}

/* The SQLite JSON path of f: a bound `$."k1"."k2"`, or the constant data path. */
static void sqlite_path(ectx *e, const field_ref *f)
{
    if (path_is_data(f)) {
        put(e, "'$.\"data\"'");
        return;
    }
    buf_t b;
    buf_init(&b, SQL_TEXT_MAX);
    int rc = json_path_n(&b, f->keys, f->key_lens, f->nkeys);
    if (rc) {
        if (e->rc == 0)
            e->rc = rc;
    } else {
        param_text(e, b.data, b.len);
    }
    buf_free(&b);
}

static void sqlite_json_pred(ectx *e, const node *n, const char *col)
{
    switch (n->pk) {
    case P_EXISTS:
    case P_NONNULL:
        putf(e, "json_type(%s, ", col);
        sqlite_path(e, &n->f);
        put(e, n->pk == P_EXISTS ? ") IS NOT NULL" : ") <> 'null'");
        return;
    case P_BOOL:
        putf(e, "json_type(%s, ", col);
        sqlite_path(e, &n->f);
        put(e, n->bools == 3   ? ") IN ('false', 'true')"
               : n->bools == 2 ? ") = 'true'"
                               : ") = 'false'");
        return;
    case P_ANY_CHANNEL: /* only on FK_CHANNEL, never a JSON value */
        put(e, "0");
        return;
    case P_CMP:
    case P_IN: {
        value_type t = pred_value_type(n);
        if (t != V_INT && t != V_REAL && t != V_STRING) {
            put(e, "0");
            return;
        }
        putf(e, "(json_type(%s, ", col);
        sqlite_path(e, &n->f);
        put(e, t == V_STRING ? ") = 'text'" : ") IN ('integer', 'real')");
        putf(e, " AND json_extract(%s, ", col);
        sqlite_path(e, &n->f);
        put(e, ")");
        emit_cmp_rhs(e, n);
        put(e, ")");
        return;
    }
    }
}

static void sqlite_json_rank(ectx *e, const char *col, const field_ref *f, int missing_rank)
{
    putf(e, "CASE json_type(%s, ", col);
    sqlite_path(e, f);
    putf(e,
         ") WHEN 'null' THEN 1 WHEN 'integer' THEN 2 WHEN 'real' THEN 2 WHEN 'text' THEN 3"
         " WHEN 'object' THEN 4 WHEN 'array' THEN 5 WHEN 'true' THEN 8 WHEN 'false' THEN 8"
         " ELSE %d END",
         missing_rank);
}

static void sqlite_json_part(ectx *e, const char *col, const field_ref *f, unsigned part)
{
    (void)part;
    putf(e, "json_extract(%s, ", col);
    sqlite_path(e, f);
    put(e, ")");
}

static const dialect DIALECT_SQLITE = {
    .yes = "1",
    .no = "0",
    .nulls_asc = " ASC", /* SQLite orders NULL first ascending, as Mongo does */
    .nulls_desc = " DESC",
    .nparts = 1,
    .row_open = "(",
    .part_open = {"", "", ""},
    .part_close = {"", "", ""},
    .zero = {"0", "0", "0"},
    .falsy = " NOT IN (VALUES (0, 0), (1, 0), (2, 0), (8, 0)))",
    .channel_row_one_query = true,
    .placeholder = sqlite_placeholder,
    .json_pred = sqlite_json_pred,
    .json_rank = sqlite_json_rank,
    .json_part = sqlite_json_part,
};

/* ---------------------------------------------------------------- PostgreSQL dialect */

/* Placeholders are numbered by their position in the whole fragment, so a PostgreSQL
 * fragment must be emitted into the statement's final fragment (not appended later). */
static void pg_placeholder(ectx *e, const sql_param *p)
{
    static const char *const cast[] = {
        [SQLP_NULL] = "text", [SQLP_INT] = "int8", [SQLP_REAL] = "float8", [SQLP_TEXT] = "text"};
    putf(e, "$%zu::%s", e->out->nparams + 1, cast[p->type]);
}

/* Writes into x the jsonb expression for the value at f's path in col, binding the path
 * (a text[] literal such as {"a","b c"}) as one parameter that x may repeat. */
static void pg_json_ref(ectx *e, const char *col, const field_ref *f, char *x, size_t xlen)
{
    if (path_is_data(f)) {
        snprintf(x, xlen, "(%s -> 'data')", col);
        return;
    }
    buf_t b;
    buf_init(&b, SQL_TEXT_MAX);
    int rc = buf_putc(&b, '{');
    for (size_t i = 0; rc == 0 && i < f->nkeys; i++) {
        if (!json_key_ok(f->keys[i], f->key_lens[i]))
            rc = -EINVAL;
        if (rc == 0 && i)
            rc = buf_putc(&b, ',');
        if (rc == 0)
            rc = buf_putc(&b, '"');
        if (rc == 0)
            rc = buf_append(&b, f->keys[i], f->key_lens[i]);
        if (rc == 0)
            rc = buf_putc(&b, '"');
    }
    if (rc == 0)
        rc = buf_putc(&b, '}');
    size_t k = e->out->nparams + 1;
    snprintf(x, xlen, "(%s #> $%zu::text[])", col, k);
    sql_param p = {.type = SQLP_TEXT, .s = b.data, .len = b.len};
    if (rc == 0 && e->rc == 0)
        rc = frag_push(e->out, &p);
    if (rc && e->rc == 0)
        e->rc = rc;
    buf_free(&b);
}

static void pg_json_pred(ectx *e, const node *n, const char *col)
{
    char x[64];
    value_type t = n->pk == P_CMP || n->pk == P_IN ? pred_value_type(n) : V_NULL;
    if (n->pk == P_ANY_CHANNEL ||
        ((n->pk == P_CMP || n->pk == P_IN) && t != V_INT && t != V_REAL && t != V_STRING)) {
        put(e, "FALSE");
        return;
    }
    pg_json_ref(e, col, &n->f, x, sizeof(x));
    if (n->pk == P_EXISTS) {
        putf(e, "%s IS NOT NULL", x);
    } else if (n->pk == P_NONNULL) {
        putf(e, "jsonb_typeof(%s) <> 'null'", x);
    } else if (n->pk == P_BOOL) {
        putf(e, "%s %s", x,
             n->bools == 3   ? "IN ('false'::jsonb, 'true'::jsonb)"
             : n->bools == 2 ? "= 'true'::jsonb"
                             : "= 'false'::jsonb");
    } else if (t == V_STRING) {
        /* CASE, not AND: PostgreSQL may evaluate AND's operands in any order, and the
         * text of a non-string must not take part. */
        putf(e, "(CASE WHEN jsonb_typeof(%s) = 'string' THEN %s #>> '{}' END) COLLATE \"C\"", x, x);
        emit_cmp_rhs(e, n);
    } else {
        putf(e, "(CASE WHEN jsonb_typeof(%s) = 'number' THEN %s::float8 END)", x, x);
        emit_cmp_rhs(e, n);
    }
}

static void pg_json_rank(ectx *e, const char *col, const field_ref *f, int missing_rank)
{
    char x[64];
    pg_json_ref(e, col, f, x, sizeof(x));
    putf(e,
         "CASE jsonb_typeof(%s) WHEN 'null' THEN 1 WHEN 'number' THEN 2 WHEN 'string' THEN 3"
         " WHEN 'object' THEN 4 WHEN 'array' THEN 5 WHEN 'boolean' THEN 8 ELSE %d END",
         x, missing_rank);
}

static void pg_json_part(ectx *e, const char *col, const field_ref *f, unsigned part)
{
    char x[64];
    pg_json_ref(e, col, f, x, sizeof(x));
    if (part == 1)
        putf(e,
             "(CASE jsonb_typeof(%s) WHEN 'number' THEN %s::float8"
             " WHEN 'boolean' THEN %s::bool::int::float8 END)",
             x, x, x);
    else
        putf(e,
             "(CASE WHEN jsonb_typeof(%s) IN ('string', 'object', 'array') THEN %s #>> '{}' END)"
             " COLLATE \"C\"",
             x, x);
}

static const dialect DIALECT_PG = {
    .yes = "TRUE",
    .no = "FALSE",
    .nulls_asc = " ASC NULLS FIRST",
    .nulls_desc = " DESC NULLS LAST",
    .nparts = 2,
    .row_open = "ROW(",
    .part_open = {"", "CAST(", ""},
    .part_close = {"", " AS float8)", ""},
    .zero = {"0", "0::float8", "''::text"},
    .falsy = " NOT IN (VALUES (0, 0::float8, ''::text), (1, 0, ''), (2, 0, ''), (8, 0, '')))",
    .channel_row_one_query = false,
    .placeholder = pg_placeholder,
    .json_pred = pg_json_pred,
    .json_rank = pg_json_rank,
    .json_part = pg_json_part,
};

/* ---------------------------------------------------------------- the walker */

/* The body of a channel predicate, inside the EXISTS subquery aliased `al`. */
static void emit_channel_inner(ectx *e, const node *n, const char *al)
{
    char col[32];
    snprintf(col, sizeof(col), "%s.body", al);
    if (n->f.kind == FK_CHAN_DATA && (n->pk == P_CMP || n->pk == P_IN)) {
        /* Numbers and strings through the typed columns. */
        value_type t = pred_value_type(n);
        if (t == V_INT || t == V_REAL)
            putf(e, "%s.num", al);
        else if (t == V_STRING)
            putf(e, "%s.str", al);
        else {
            put(e, e->d->no);
            return;
        }
        emit_cmp_rhs(e, n);
        return;
    }
    e->d->json_pred(e, n, col);
}

static void emit_channel_from(ectx *e, const field_ref *f, const char *al)
{
    putf(e, " FROM record_channels %s WHERE %s.record_id = r.id AND %s.name = ", al, al, al);
    param_text(e, f->channel, f->channel_len);
}

static void next_alias(ectx *e, char *al, size_t n)
{
    snprintf(al, n, "c%u", ++e->alias);
}

/* The column of a field stored in a typed column of records, or NULL. */
static const char *typed_column(const field_ref *f)
{
    switch (f->kind) {
    case FK_ID:
        return "id";
    case FK_VERSION:
        return "version";
    case FK_TIMESTAMP:
        return "ts_us";
    case FK_SHOTNUM:
        return "shotnum";
    case FK_TEXT_COL:
        return f->column;
    default:
        return NULL;
    }
}

static void emit_pred(ectx *e, const node *n)
{
    const field_ref *f = &n->f;
    const char *col = typed_column(f);
    char al[16];
    if (col) {
        if (n->pk == P_EXISTS || n->pk == P_NONNULL) {
            putf(e, "r.%s IS NOT NULL", col);
        } else if (n->pk == P_CMP || n->pk == P_IN) {
            putf(e, "r.%s", col);
            emit_cmp_rhs(e, n);
        } else {
            put(e, e->d->no);
        }
        return;
    }
    switch (f->kind) {
    case FK_METADATA:
        put(e, n->pk == P_EXISTS || n->pk == P_NONNULL ? "r.metadata IS NOT NULL" : e->d->no);
        return;
    case FK_META_JSON:
        e->d->json_pred(e, n, "r.metadata");
        return;
    case FK_CHANNELS:
        next_alias(e, al, sizeof(al));
        putf(e, "EXISTS (SELECT 1 FROM record_channels %s WHERE %s.record_id = r.id)", al, al);
        return;
    case FK_CHANNEL:
    case FK_CHAN_DATA:
    case FK_CHAN_JSON:
        next_alias(e, al, sizeof(al));
        if (n->pk == P_ANY_CHANNEL) {
            putf(e,
                 "EXISTS (SELECT 1 FROM record_channels %s WHERE %s.record_id = r.id AND %s.name",
                 al, al, al);
            emit_cmp_rhs(e, n);
            put(e, ")");
            return;
        }
        put(e, "EXISTS (SELECT 1");
        emit_channel_from(e, f, al);
        if (f->kind != FK_CHANNEL) {
            put(e, " AND ");
            emit_channel_inner(e, n, al);
        }
        put(e, ")");
        return;
    default: /* FK_MISSING */
        put(e, e->d->no);
        return;
    }
}

static int literal_rank(const value *v)
{
    switch (v->type) {
    case V_NULL:
        return 1;
    case V_INT:
    case V_REAL:
        return 2;
    case V_STRING:
        return 3;
    case V_BOOL:
        return 8;
    case V_DATE:
        return 9;
    }
    return 0;
}

/* Which value part (1..nparts) holds values of type t (or of a typed column that is text
 * when is_text). */
static unsigned part_of(const ectx *e, bool is_text)
{
    return e->d->nparts == 1 ? 1 : is_text ? 2 : 1;
}

/* Emits the rank (part 0) or value part `part` of a field for $expr and sorting;
 * missing_rank is the rank of a missing value (0 in $expr, 1 in sorts). */
static void emit_field_rv(ectx *e, const field_ref *f, unsigned part, int missing_rank)
{
    char al[16];
    char col[32];
    const char *tcol = typed_column(f);
    if (tcol) {
        bool is_text = f->kind == FK_ID || f->kind == FK_TEXT_COL;
        int rank = is_text ? 3 : f->kind == FK_TIMESTAMP ? 9 : 2;
        if (part == 0 && f->kind == FK_ID)
            putf(e, "%d", rank);
        else if (part == 0)
            putf(e, "(CASE WHEN r.%s IS NULL THEN %d ELSE %d END)", tcol, missing_rank, rank);
        else if (part == part_of(e, is_text))
            putf(e, "%sr.%s%s", e->d->part_open[part], tcol, e->d->part_close[part]);
        else
            put(e, "NULL");
        return;
    }
    switch (f->kind) {
    case FK_META_JSON:
        if (part == 0) {
            put(e, "(");
            e->d->json_rank(e, "r.metadata", f, missing_rank);
            put(e, ")");
        } else {
            e->d->json_part(e, "r.metadata", f, part);
        }
        return;
    case FK_CHANNEL:
    case FK_CHAN_DATA:
    case FK_CHAN_JSON:
        next_alias(e, al, sizeof(al));
        snprintf(col, sizeof(col), "%s.body", al);
        if (part == 0) {
            put(e, "COALESCE((SELECT ");
            e->d->json_rank(e, col, f, missing_rank);
        } else {
            put(e, "(SELECT ");
            e->d->json_part(e, col, f, part);
        }
        emit_channel_from(e, f, al);
        if (part == 0)
            putf(e, "), %d)", missing_rank);
        else
            put(e, ")");
        return;
    default: /* missing; whole documents are rejected by the compilers */
        if (part == 0)
            putf(e, "%d", missing_rank);
        else
            put(e, "NULL");
        return;
    }
}

/* An $expr operand as the row value (rank, value parts), the parts at their zero for ranks
 * 0 and 1 so that missing = missing and null = null. Row values compare element by
 * element, which is exactly "by rank, then by value". */
static void emit_operand_row(ectx *e, const operand *o)
{
    const dialect *d = e->d;
    char al[16], col[32];
    put(e, d->row_open);
    if (!o->is_field) {
        if (o->v.type == V_NULL) {
            put(e, "1");
            for (unsigned p = 1; p <= d->nparts; p++)
                putf(e, ", %s", d->zero[p]);
            put(e, ")");
            return;
        }
        putf(e, "%d", literal_rank(&o->v));
        unsigned vp = part_of(e, o->v.type == V_STRING);
        for (unsigned p = 1; p <= d->nparts; p++) {
            if (p != vp) {
                putf(e, ", %s", d->zero[p]);
                continue;
            }
            putf(e, ", %s", d->part_open[p]);
            param_value(e, &o->v);
            put(e, d->part_close[p]);
        }
        put(e, ")");
        return;
    }
    const field_ref *f = &o->f;
    bool in_chan = f->kind == FK_CHAN_DATA || f->kind == FK_CHAN_JSON;
    if (!in_chan || !d->channel_row_one_query) {
        emit_field_rv(e, f, 0, 0);
        for (unsigned p = 1; p <= d->nparts; p++) {
            put(e, ", COALESCE(");
            emit_field_rv(e, f, p, 0);
            putf(e, ", %s)", d->zero[p]);
        }
        put(e, ")");
        return;
    }
    /* One aggregate subquery yields the whole row (it always returns one row). */
    next_alias(e, al, sizeof(al));
    snprintf(col, sizeof(col), "%s.body", al);
    put(e, "SELECT COALESCE(MAX(");
    d->json_rank(e, col, f, 0);
    put(e, "), 0)");
    for (unsigned p = 1; p <= d->nparts; p++) {
        put(e, ", COALESCE(MAX(");
        d->json_part(e, col, f, p);
        putf(e, "), %s)", d->zero[p]);
    }
    emit_channel_from(e, f, al);
    put(e, ")");
}

static void emit_xcmp(ectx *e, const node *n)
{
    put(e, "(");
    emit_operand_row(e, &n->a);
    putf(e, " %s ", op_sql(n->op));
    emit_operand_row(e, &n->b);
    put(e, ")");
}

static void emit_xtruthy(ectx *e, const node *n)
{
    put(e, "(");
    emit_operand_row(e, &n->a);
    put(e, e->d->falsy);
}

static void emit_node(ectx *e, const node *n);

/* Emits n list members joined by sep. Up to LIST_FLAT members form one flat chain
 * `(a OR b OR c)`, which SQLite parses with constant parser stack; longer lists become a
 * chain of at most LIST_FLAT parenthesised sub-lists, recursively, which keeps both the
 * parser stack (YYSTACKDEPTH, 100 in SQLite before 3.46) and the expression-tree height
 * (SQLITE_MAX_EXPR_DEPTH, 1000) within what sql_cost promises. */
static void emit_list(ectx *e, const node *first, size_t n, const char *sep)
{
    if (n == 1) {
        emit_node(e, first);
        return;
    }
    size_t part = 1;
    while (part * LIST_FLAT < n)
        part *= LIST_FLAT;
    put(e, "(");
    const node *k = first;
    for (size_t done = 0; done < n;) {
        size_t m = n - done < part ? n - done : part;
        if (done)
            put(e, sep);
        emit_list(e, k, m, sep);
        for (size_t i = 0; i < m; i++)
            k = k->next;
        done += m;
    }
    put(e, ")");
}

static void emit_node(ectx *e, const node *n)
{
    switch (n->kind) {
    case N_TRUE:
        put(e, e->d->yes);
        return;
    case N_FALSE:
        put(e, e->d->no);
        return;
    case N_AND:
    case N_OR: {
        size_t count = 0;
        for (const node *k = n->kids; k; k = k->next)
            count++;
        emit_list(e, n->kids, count, n->kind == N_AND ? " AND " : " OR ");
        return;
    }
    case N_NOT:
        /* IS binds tighter than AND/OR, so no outer parentheses are needed; a list
         * brings its own. */
        if (n->kids->kind == N_AND || n->kids->kind == N_OR) {
            emit_node(e, n->kids);
            put(e, " IS NOT TRUE");
        } else {
            put(e, "(");
            emit_node(e, n->kids);
            put(e, ") IS NOT TRUE");
        }
        return;
    case N_PRED:
        emit_pred(e, n);
        return;
    case N_XCMP:
        emit_xcmp(e, n);
        return;
    case N_XTRUTHY:
        emit_xtruthy(e, n);
        return;
    }
}

int filter_emit_sqlite(const filter_t *f, sql_fragment *out)
{
    ectx e = {.out = out, .d = &DIALECT_SQLITE};
    emit_node(&e, f->root);
    return e.rc;
}

int filter_emit_pg(const filter_t *f, sql_fragment *out)
{
    ectx e = {.out = out, .d = &DIALECT_PG};
    emit_node(&e, f->root);
    return e.rc;
}

/* ================================================================ sorting */

static int sort_compile(const dialect *d, const char *const *entries, size_t n, sql_fragment *out,
                        char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    ast_arena ar;
    arena_init(&ar, FILTER_ARENA_MAX);
    cctx c = {.ar = &ar, .err = err, .errlen = errlen};
    ectx e = {.out = out, .d = d};
    bool first = true;
    if (n > SORT_MAX_ENTRIES) {
        cfail(&c, -E2BIG, "too many order entries (at most %d)", SORT_MAX_ENTRIES);
        goto done;
    }
    for (size_t i = 0; i < n && !c.rc && !e.rc; i++) {
        const char *s = entries[i];
        size_t len = strlen(s);
        const char *sp = memchr(s, ' ', len);
        if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s))) {
            cfail(&c, -EINVAL,
                  "invalid order entry \"%s\": expected \"<field> asc\" or \"<field> desc\"",
                  show(s, len).s);
            break;
        }
        const char *dir = sp + 1;
        bool desc;
        if (strcasecmp(dir, "asc") == 0) {
            desc = false;
        } else if (strcasecmp(dir, "desc") == 0) {
            desc = true;
        } else {
            cfail(&c, -EINVAL, "invalid order entry \"%s\": direction must be asc or desc",
                  show(s, len).s);
            break;
        }
        size_t flen = (size_t)(sp - s);
        if (flen == 0 || s[0] == '$') {
            cfail(&c, -EINVAL, "invalid order entry \"%s\": invalid field name", show(s, len).s);
            break;
        }
        field_ref f;
        if (!resolve_field(&c, s, flen, &f))
            break;
        if (f.kind == FK_METADATA || f.kind == FK_CHANNELS) {
            cfail(&c, -EINVAL, "invalid order entry \"%s\": cannot sort by %s", show(s, len).s,
                  whole_what(&f));
            break;
        }
        if (f.kind == FK_MISSING)
            continue; /* the same (missing) value in every record */
        if (!first)
            put(&e, ", ");
        first = false;
        if (typed_column(&f)) {
            /* Missing (NULL) sorts first ascending, as in Mongo. */
            putf(&e, "r.%s%s", typed_column(&f), desc ? d->nulls_desc : d->nulls_asc);
            continue;
        }
        for (unsigned p = 0; p <= d->nparts; p++) {
            if (p)
                put(&e, ", ");
            emit_field_rv(&e, &f, p, 1);
            put(&e, desc ? " DESC" : " ASC");
        }
    }
done:
    ast_arena_free(&ar);
    if (c.rc)
        return c.rc;
    if (e.rc && err && errlen)
        snprintf(err, errlen, "the sort could not be built");
    return e.rc;
}

int sort_compile_sqlite(const char *const *entries, size_t n, sql_fragment *out, char *err,
                        size_t errlen)
{
    return sort_compile(&DIALECT_SQLITE, entries, n, out, err, errlen);
}

int sort_compile_pg(const char *const *entries, size_t n, sql_fragment *out, char *err,
                    size_t errlen)
{
    return sort_compile(&DIALECT_PG, entries, n, out, err, errlen);
}

/* ================================================================ dates */

/* Reads a run of ASCII digits (at most 3 counted) at *p; returns its length. */
static int digit_run(const char **p, int *val)
{
    int n = 0, v = 0;
    while (**p >= '0' && **p <= '9') {
        if (n < 3)
            v = v * 10 + (**p - '0');
        n++;
        (*p)++;
    }
    *val = v;
    return n;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int filter_parse_datetime(const char *s, int64_t *us_out)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s;
    int year = 0, month, day, hour, minute, second, n;

    /* %Y: exactly four digits. */
    for (int i = 0; i < 4; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -EINVAL;
        year = year * 10 + (p[i] - '0');
    }
    p += 4;
    if (*p++ != '-')
        return -EINVAL;
    /* %m: 1-9 or 01-12. */
    n = digit_run(&p, &month);
    if (n < 1 || n > 2 || month < 1 || month > 12)
        return -EINVAL;
    if (*p++ != '-')
        return -EINVAL;
    /* %d: 1-9, 01-31 or " 1"-" 9". */
    if (*p == ' ') {
        p++;
        n = digit_run(&p, &day);
        if (n != 1 || day < 1)
            return -EINVAL;
    } else {
        n = digit_run(&p, &day);
        if (n < 1 || n > 2 || day < 1 || day > 31)
            return -EINVAL;
    }
    if (*p != 'T' && *p != 't') /* strptime matches case-insensitively */
        return -EINVAL;
    p++;
    /* %H: 0-9 or 00-23. */
    n = digit_run(&p, &hour);
    if (n < 1 || n > 2 || hour > 23)
        return -EINVAL;
    if (*p++ != ':')
        return -EINVAL;
    /* %M: 0-59. */
    n = digit_run(&p, &minute);
    if (n < 1 || n > 2 || minute > 59)
        return -EINVAL;
    if (*p++ != ':')
        return -EINVAL;
    /* %S: the regex takes 0-61, but datetime() then rejects 60 and 61. */
    n = digit_run(&p, &second);
    if (n < 1 || n > 2 || second > 59)
        return -EINVAL;
    if (*p != '\0')
        return -EINVAL;
    if (year < 1)
        return -EINVAL;
    int dim = mdays[month - 1] + (month == 2 && is_leap(year));
    if (day > dim)
        return -EINVAL;
    int64_t days = timestamp_days_from_civil(year, month, day);
    *us_out = ((days * 86400) + hour * 3600 + minute * 60 + second) * (int64_t)1000000;
    return 0;
}
