/*
 * store/filter_internal.h: what the two halves of the filter module share. filter.c
 * compiles filter documents and order entries into the AST below; filter_sql.c writes SQL
 * for it. Only the store's own files include this header: filter.h is the contract for
 * callers.
 */
#ifndef OGD_STORE_FILTER_INTERNAL_H
#define OGD_STORE_FILTER_INTERNAL_H

#include "store/filter.h"
#include "util/arena.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Members per flat AND/OR chain: the emitter writes longer lists as a chain of at most
 * LIST_FLAT parenthesised sub-lists (emit_list), and filter.c's SQL size model (sql_cost)
 * counts on that shape. */
#define LIST_FLAT 16

/* ================================================================ arena */

/* The AST lives in a util/arena; nodes are zeroed on allocation. */
#define FILTER_ARENA_MAX (64u << 20)
typedef arena_t ast_arena;

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

/* ================================================================ field resolution */

/* A JSON path key SQLite can match portably: no '"', '\' or control characters. */
bool filter_json_key_ok(const char *k, size_t n);

/* ================================================================ sorting */

/* One `order` entry: the field to sort by and the direction. */
typedef struct sort_key {
    field_ref f;
    bool desc;
} sort_key;

/* Checks the number of order entries against SORT_MAX_ENTRIES: 0, or -E2BIG with a client
 * message in err. */
int sort_check_count(size_t n, char *err, size_t errlen);
/* Parses one order entry ("<field> <asc|desc>") into *out, its field resolved with the
 * filters' rules (path copies allocated from ar); whole documents are refused. 0, or
 * -EINVAL / -ENOMEM with a client message in err naming the entry. */
int sort_parse_entry(ast_arena *ar, const char *s, sort_key *out, char *err, size_t errlen);

#endif
