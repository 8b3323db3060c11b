/*
 * filter_sql.c: compiled filters (the AST of filter_internal.h) -> SQLite or PostgreSQL
 * SQL, and order entries -> ORDER BY.
 *
 * Owns: the sql_fragment container the emitters fill in, SQLite JSON path text, the
 * emitter (one walker with a SQLite and a PostgreSQL dialect) and the ORDER BY half of the
 * sort compiler. Every decision about what a filter means was made by filter.c when it
 * built the AST; this file only writes it down. Binding the parameters to a statement is
 * the back ends' job (sql_fragment_bind_sqlite in sqlite.c, libpq arrays in pg.c).
 *
 * Data flow: filter_emit_sqlite writes text with '?' placeholders and pushes one sql_param
 * per placeholder, in text order; sql_fragment owns copies of the parameter strings.
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
 */
#include "store/filter_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQL_TEXT_MAX ((size_t)16 << 20)
#define SQL_MAX_PARAMS 32766 /* SQLite's default SQLITE_MAX_VARIABLE_NUMBER */

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

/* ================================================================ JSON paths */

static int json_path_n(buf_t *out, const char *const *keys, const size_t *lens, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!filter_json_key_ok(keys[i], lens[i]))
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
        if (!filter_json_key_ok(f->keys[i], f->key_lens[i]))
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

/* ORDER BY for order entries that filter.c parses one at a time (sort_parse_entry), each
 * written before the next is parsed. */
static int sort_compile(const dialect *d, const char *const *entries, size_t n, sql_fragment *out,
                        char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    ast_arena ar;
    arena_init(&ar, FILTER_ARENA_MAX);
    ectx e = {.out = out, .d = d};
    bool first = true;
    int rc = sort_check_count(n, err, errlen);
    for (size_t i = 0; i < n && !rc && !e.rc; i++) {
        sort_key k;
        rc = sort_parse_entry(&ar, entries[i], &k, err, errlen);
        if (rc)
            break;
        if (k.f.kind == FK_MISSING)
            continue; /* the same (missing) value in every record */
        if (!first)
            put(&e, ", ");
        first = false;
        if (typed_column(&k.f)) {
            /* Missing (NULL) sorts first ascending, as in Mongo. */
            putf(&e, "r.%s%s", typed_column(&k.f), k.desc ? d->nulls_desc : d->nulls_asc);
            continue;
        }
        for (unsigned p = 0; p <= d->nparts; p++) {
            if (p)
                put(&e, ", ");
            emit_field_rv(&e, &k.f, p, 1);
            put(&e, k.desc ? " DESC" : " ASC");
        }
    }
    arena_free(&ar);
    if (rc)
        return rc;
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
