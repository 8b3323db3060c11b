/*
 * filter.c: Mongo filter documents -> the AST of filter_internal.h, and `order` entries ->
 * sort keys.
 *
 * Owns: the compile step (validation, field resolution, Mongo's type bracketing and
 * null/missing rules, date conversion of object-entry strings, filter_parse_datetime), the
 * AST's memory (one arena per filter_t, freed all at once by filter_free), the parsing of
 * order entries, and the SQL size model that refuses filters too large for SQLite. It
 * writes no SQL: filter_sql.c walks the AST for that.
 *
 * Data flow: filter_compile walks the borrowed json_t once and builds nodes; every string
 * it keeps (values, channel names, JSON path keys) is copied into the arena, so the AST
 * does not borrow the document. Type decisions that depend only on the logical layout
 * (e.g. "shotnum is numeric, so a string operand never matches") are made here, which
 * leaves each emitter a mechanical walk.
 *
 * Cost: every channel condition becomes a correlated subquery on record_channels' primary
 * key. An OR of channel existence tests (the frontend's projection `$or`) is merged into
 * one P_ANY_CHANNEL node, emitted as one subquery with `name IN (...)`. The SQL size
 * model (sql_cost) keeps accepted filters within SQLite's parser and expression limits.
 */
#include "store/filter_internal.h"
#include "store/timestamp.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NAME_SHOWN_MAX 80 /* bytes of a client name quoted in an error message */

/* Upper bounds on the parameters the emitters need per node; filter_compile sums them so
 * that an accepted filter can always be emitted within FILTER_MAX_PARAMS. */
#define COST_PRED 4
#define COST_XCMP 6
#define COST_XTRUTHY 3

/*
 * SQL size model. SQLite refuses an expression tree deeper than SQLITE_MAX_EXPR_DEPTH
 * (1000), and before 3.46 its parser has a fixed stack (YYSTACKDEPTH, 100 entries), which
 * nested parentheses and subqueries use up long before 1000. sql_cost bounds both for a
 * compiled filter, from per-leaf costs measured on the SQL filter_sql.c emits (see
 * test_limits in tests/unit/test_filter.c, which checks the bound holds), and
 * filter_compile refuses filters over the limits, leaving room for the few levels the
 * store wraps around the filter. Lists are counted in chains of LIST_FLAT members
 * (filter_internal.h).
 */
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

/* The AST lives in a util/arena (filter_internal.h); nodes are zeroed on allocation. */
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
bool filter_json_key_ok(const char *k, size_t n)
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
        if (!filter_json_key_ok(kp, kn)) {
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

/* ================================================================ order entries */

int sort_check_count(size_t n, char *err, size_t errlen)
{
    cctx c = {.err = err, .errlen = errlen};
    if (n > SORT_MAX_ENTRIES)
        cfail(&c, -E2BIG, "too many order entries (at most %d)", SORT_MAX_ENTRIES);
    return c.rc;
}

int sort_parse_entry(ast_arena *ar, const char *s, sort_key *out, char *err, size_t errlen)
{
    cctx c = {.ar = ar, .err = err, .errlen = errlen};
    size_t len = strlen(s);
    const char *sp = memchr(s, ' ', len);
    if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s))) {
        cfail(&c, -EINVAL,
              "invalid order entry \"%s\": expected \"<field> asc\" or \"<field> desc\"",
              show(s, len).s);
        return c.rc;
    }
    const char *dir = sp + 1;
    if (strcasecmp(dir, "asc") == 0) {
        out->desc = false;
    } else if (strcasecmp(dir, "desc") == 0) {
        out->desc = true;
    } else {
        cfail(&c, -EINVAL, "invalid order entry \"%s\": direction must be asc or desc",
              show(s, len).s);
        return c.rc;
    }
    size_t flen = (size_t)(sp - s);
    if (flen == 0 || s[0] == '$') {
        cfail(&c, -EINVAL, "invalid order entry \"%s\": invalid field name", show(s, len).s);
        return c.rc;
    }
    if (!resolve_field(&c, s, flen, &out->f))
        return c.rc ? c.rc : -ENOMEM;
    if (out->f.kind == FK_METADATA || out->f.kind == FK_CHANNELS) {
        cfail(&c, -EINVAL, "invalid order entry \"%s\": cannot sort by %s", show(s, len).s,
              whole_what(&out->f));
        return c.rc;
    }
    return 0;
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
