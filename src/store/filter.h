/*
 * filter: MongoDB-style `conditions` documents and `order` entries, translated to SQL.
 *
 * This module owns the query language of the data plane. A client filter (a jansson
 * document) is compiled once into a back-end-neutral AST (filter_t): field paths are
 * resolved against the relational layout of records, Mongo's type bracketing and
 * null/missing rules are applied, and malformed or unsupported input is rejected with a
 * message fit for a 400 `{"detail": ...}` response. An emitter then walks the AST and
 * writes a SQL boolean expression for one dialect (filter_emit_sqlite, filter_emit_pg: one
 * walker, the dialects differ only in placeholders, literals and JSON access). Sort entries
 * are compiled straight to an ORDER BY list by sort_compile_sqlite / sort_compile_pg.
 *
 * Data flow: json_t conditions -> filter_compile -> filter_t -> filter_emit_sqlite ->
 * sql_fragment (text with '?' placeholders + typed parameters) -> the store back end, which
 * splices the text into `SELECT ... FROM records r WHERE <text>` and binds the parameters
 * in order (sql_fragment_bind_sqlite). No client string or number is ever written into
 * SQL text: values, channel names and JSON paths are all bound parameters.
 *
 * Relational layout the SQL refers to (the records table must be aliased `r`):
 *   records r(id, version, ts_us, shotnum, active_area, active_experiment,
 *             epac_ops_data_version, metadata), metadata = JSON text of the whole object;
 *   record_channels(record_id, name, dtype, num, str, body), body = JSON text of the
 *             whole channel sub-document, num/str = its data when a number/string.
 * Field paths: `_id` -> r.id; `version` -> r.version; `metadata.timestamp` -> r.ts_us
 * (the only date-typed field); `metadata.shotnum` -> r.shotnum; `metadata.active_area`,
 * `metadata.active_experiment`, `metadata.epac_ops_data_version` -> their text columns
 * (NULL = missing); other `metadata.<path>` -> the JSON value in r.metadata;
 * `channels.<X>` -> the existence of channel X; `channels.<X>.data` -> num/str (and the
 * JSON type of body.data for null/bool); `channels.<X>.<path>` -> JSON in the body;
 * `metadata` and `channels` alone support only existence and null tests; any other
 * top-level field is always missing. Every channel predicate is an EXISTS subquery, and
 * negations are NOT of the positive predicate, which gives Mongo's semantics for missing
 * fields ($ne, $nin, $not and $exists:false match records that lack the field).
 *
 * Deliberate approximations (see also filter.c and filter_sql.c): arrays stored in JSON
 * values are not traversed (Mongo would match if any element matched) and numeric path
 * components do not index arrays; object/array operands are rejected; JSON path keys may
 * not contain '"', '\' or control characters (rejected with a 400 message); in sorting,
 * `channels.<X>` alone sorts as `channels.<X>.data` (Mongo would compare the whole
 * sub-documents), and objects/arrays inside JSON values order by their JSON text within
 * their type rank.
 * Typed columns cannot tell a stored null from a missing field; `channels` exists when a
 * record has at least one channel; numeric channel data compares through the REAL column
 * (integers beyond 2^53 lose precision); $comment is ignored; dates accept ASCII digits
 * only (Python's strptime also takes other Unicode digits).
 */
#ifndef OGD_STORE_FILTER_H
#define OGD_STORE_FILTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Limits on hostile input; exceeding one is a 400-type error (-E2BIG) from the compile
 * calls. filter_compile also refuses filters whose SQL SQLite could not parse or would run
 * very slowly (too deeply nested for its parser, or more than 128 channel conditions);
 * in practice that allows about 15 levels of alternating $and/$or. */
#define FILTER_MAX_DEPTH 64     /* nesting of documents, arrays and operators */
#define FILTER_MAX_NODES 10000  /* AST nodes plus $in values */
#define FILTER_MAX_PARAMS 30000 /* bound parameters one filter may need (SQLite allows 32766) */
#define SORT_MAX_ENTRIES 32     /* Mongo's own limit on sort keys */

/* ---------------------------------------------------------------- SQL fragments */

typedef enum sql_param_type { SQLP_NULL, SQLP_INT, SQLP_REAL, SQLP_TEXT } sql_param_type;

typedef struct sql_param {
    sql_param_type type;
    int64_t i;  /* SQLP_INT */
    double d;   /* SQLP_REAL */
    char *s;    /* SQLP_TEXT: owned by the fragment; NUL-terminated but may hold NULs */
    size_t len; /* SQLP_TEXT: bytes in s */
} sql_param;

/* A piece of SQL: text with anonymous '?' placeholders and the parameters for them, in
 * text order. The fragment owns its text and every parameter string. */
typedef struct sql_fragment {
    buf_t text;
    sql_param *params;
    size_t nparams, cap;
} sql_fragment;

void sql_fragment_init(sql_fragment *f);
void sql_fragment_free(sql_fragment *f);
/* Appends src's text and copies of its parameters to dst (src is borrowed).
 * 0, -ENOMEM or -E2BIG. */
int sql_fragment_append(sql_fragment *dst, const sql_fragment *src);
/* Adds a copy of p to f's parameters (the caller writes its placeholder). 0, -ENOMEM or
 * -E2BIG. */
int sql_fragment_param(sql_fragment *f, const sql_param *p);

struct sqlite3_stmt;
/* Binds f's parameters to st as indexes first, first+1, ... (first is 1-based).
 * Returns an SQLite result code (SQLITE_OK = 0). Defined by the SQLite back end (sqlite.c):
 * the filter code itself makes no SQLite calls. */
int sql_fragment_bind_sqlite(const sql_fragment *f, struct sqlite3_stmt *st, int first);

/* ---------------------------------------------------------------- filters */

typedef struct filter filter_t; /* the compiled AST; opaque, immutable after compile */

/*
 * Compiles a Mongo filter document. conditions is borrowed (not kept); NULL or {} compiles
 * to "match everything". When convert_dates is set, every string that is the value of an
 * object entry (at any depth, not a direct array element) and parses with
 * filter_parse_datetime is treated as a date, as the reference API does.
 * Returns 0 and *out (caller frees with filter_free), or a negative errno with a client
 * message in err: -EINVAL for invalid/unsupported filters, -E2BIG for the limits above,
 * -ENOMEM.
 */
int filter_compile(const json_t *conditions, bool convert_dates, filter_t **out, char *err,
                   size_t errlen);
/* Writes the filter as an SQLite boolean expression over `records r`, appending to out
 * (text and parameters). The text is self-contained: it can follow WHERE or AND without
 * extra parentheses, and leaves room for a few levels of wrapping by the caller. f is
 * borrowed and may be emitted any number of times. 0, or -ENOMEM / -E2BIG, after which
 * out holds partial text and must only be freed. */
int filter_emit_sqlite(const filter_t *f, sql_fragment *out);
/* The same for PostgreSQL over `records r` with jsonb metadata/body columns. Placeholders
 * are `$n::type`, numbered by the parameter's position in out (so emit into the
 * statement's final fragment; sql_fragment_append would not renumber them). JSON paths
 * are bound as text[] literals; text columns are expected to use the "C" collation (JSON
 * strings are compared with COLLATE "C"), which matches SQLite's binary comparison. */
int filter_emit_pg(const filter_t *f, sql_fragment *out);
void filter_free(filter_t *f);

/* ---------------------------------------------------------------- sorting */

/*
 * Compiles `order` entries ("<field> <asc|desc>", exactly one space, direction
 * case-insensitive) into an SQLite ORDER BY list without the keywords, appended to out.
 * entries are borrowed. Mongo order: missing and null first ascending, then numbers,
 * strings, objects, arrays, booleans, dates. `channels.<X>` alone sorts as
 * `channels.<X>.data`. Fields that are always missing add nothing, so the text may stay
 * empty (then the caller must omit ORDER BY). 0, or -EINVAL / -E2BIG / -ENOMEM with a
 * client message in err naming the entry.
 */
int sort_compile_sqlite(const char *const *entries, size_t n, sql_fragment *out, char *err,
                        size_t errlen);
/* The same for PostgreSQL (see filter_emit_pg for the placeholder numbering). Missing
 * values sort first ascending through NULLS FIRST / NULLS LAST. */
int sort_compile_pg(const char *const *entries, size_t n, sql_fragment *out, char *err,
                    size_t errlen);

/* ---------------------------------------------------------------- helpers */

/*
 * Parses s as Python's datetime.strptime(s, "%Y-%m-%dT%H:%M:%S") would: 4-digit year,
 * other fields 1 or 2 digits (day also " 5"), 'T' or 't', the whole string, no fraction,
 * zone or offset, calendar-valid. The result is naive and taken as UTC: microseconds since
 * the epoch in *us_out. Returns 0, or -EINVAL if s does not match.
 */
int filter_parse_datetime(const char *s, int64_t *us_out);

/*
 * Appends a quoted SQLite JSON path for keys to out, e.g. {"a", "b c"} -> $."a"."b c".
 * keys are borrowed. Returns 0, -EINVAL if a key contains '"', '\' or a control
 * character (not portably expressible in an SQLite path), or a buf error.
 */
int sql_json_path(buf_t *out, const char *const *keys, size_t n);

#endif
