/*
 * fuzz_filter: the query language of the data plane (src/store/filter.h and
 * src/store/projection.h): a `conditions` document compiled to the AST and emitted as SQL
 * for both dialects, `order` entries compiled for both dialects, projection paths
 * compiled and applied.
 *
 * Input: CONDITIONS %% ORDER %% PROJECTION, split at FZ_SEP. CONDITIONS is read as the
 * API reads the query parameter (JSON, duplicates rejected) and, when it is an object,
 * compiled with date conversion on and off; ORDER and PROJECTION hold one entry per line.
 * Checks, besides memory errors and UB:
 *  - SQLite: the WHERE text of every filter that compiles, with the ORDER BY of entries
 *    that compile, prepares against the real schema (a filter the server would turn into
 *    a 500 otherwise), has exactly as many '?' as parameters, binds and runs to the end on
 *    a small table of records and channels; ordering does not change the set of rows;
 *    {"$nor": [F]} selects exactly the records F does not (Mongo's negation, where
 *    SQL's three-valued logic could lose records with missing or null fields).
 *  - PostgreSQL (no server here): outside quoted literals the text has balanced
 *    parentheses, no ';' and no comment, and its $n placeholders are exactly the
 *    parameters' positions (emitted after a number of existing parameters, as the store
 *    does).
 *  - projections: `_id` is always kept, no top-level key the paths do not name survives,
 *    projection_channel_names lists strings only.
 */
#include "harness.h"

#include <jansson.h>
#include <sqlite3.h>

#include "store/filter.h"
#include "store/projection.h"

#define MAX_ENTRIES 64

static sqlite3 *db;

/* The tables of the store's first migration (src/store/sqlite.c), and a few records. */
static const char *const SCHEMA =
    "CREATE TABLE records (id TEXT PRIMARY KEY NOT NULL, version INTEGER, ts_us INTEGER,"
    " shotnum INTEGER, active_area TEXT, active_experiment TEXT, epac_ops_data_version TEXT,"
    " metadata TEXT NOT NULL DEFAULT '{}');"
    "CREATE INDEX records_ts ON records(ts_us);"
    "CREATE INDEX records_shotnum ON records(shotnum);"
    "CREATE TABLE record_channels (record_id TEXT NOT NULL, name TEXT NOT NULL,"
    " ord INTEGER NOT NULL, dtype TEXT, num REAL, str TEXT, body TEXT NOT NULL,"
    " PRIMARY KEY (record_id, name)) WITHOUT ROWID;"
    "CREATE INDEX record_channels_name ON record_channels(name, record_id);"
    "INSERT INTO records VALUES ('20230605080000', NULL, 1685952000000000, 100, 'las', 'e1',"
    " '1.0', '{\"shotnum\":100,\"timestamp\":\"2023-06-05T08:00:00\",\"active_area\":\"las\","
    "\"active_experiment\":\"e1\",\"epac_ops_data_version\":\"1.0\","
    "\"extra\":{\"n\":5,\"s\":\"abc\",\"b\":true,\"z\":null,\"a\":[1,2]}}');"
    "INSERT INTO records VALUES ('20230605080300', 2, 1685952180000000, 200, 'las', NULL,"
    " '1.1', '{\"shotnum\":200,\"active_area\":\"las\",\"epac_ops_data_version\":\"1.1\","
    "\"extra\":{\"n\":5.0,\"s\":\"abd\",\"b\":false}}');"
    "INSERT INTO records VALUES ('20230606120000', 1, 1686052800000000, NULL, 'ea1', 'e2',"
    " '1.1', '{\"active_area\":\"ea1\",\"extra\":{\"n\":\"5\"},\"x y\":{\"q\":1}}');"
    "INSERT INTO records (id) VALUES ('20230607000000');"
    "INSERT INTO records VALUES ('20230607000100', NULL, 1686096060000000, 300, 'las', NULL,"
    " '1.1', '{\"shotnum\":300,\"extra\":{\"n\":7},\"it''s\":\"q\"}');"
    "INSERT INTO record_channels VALUES"
    " ('20230605080000', 'A', 0, 'scalar', 4.2, NULL,"
    "  '{\"metadata\":{\"channel_dtype\":\"scalar\",\"units\":\"J\"},\"data\":4.2}'),"
    " ('20230605080000', 'S', 1, 'scalar', NULL, 'hello',"
    "  '{\"metadata\":{\"channel_dtype\":\"scalar\"},\"data\":\"hello\"}'),"
    " ('20230605080000', 'N', 2, 'scalar', NULL, NULL,"
    "  '{\"metadata\":{\"channel_dtype\":\"scalar\"},\"data\":null}'),"
    " ('20230605080000', 'BL', 3, 'scalar', NULL, NULL,"
    "  '{\"metadata\":{\"channel_dtype\":\"scalar\"},\"data\":true}'),"
    " ('20230605080000', 'IMG', 4, 'image', NULL, NULL,"
    "  '{\"metadata\":{\"channel_dtype\":\"image\",\"exposure_time_s\":0.5},"
    "\"image_path\":\"x.png\",\"thumbnail\":\"iVBOR\"}'),"
    " ('20230605080300', 'A', 0, 'scalar', 10, NULL,"
    "  '{\"metadata\":{\"channel_dtype\":\"scalar\"},\"data\":10}'),"
    " ('20230605080300', 'S', 1, 'scalar', NULL, 'world',"
    "  '{\"metadata\":{\"channel_dtype\":\"scalar\"},\"data\":\"world\"}'),"
    " ('20230605080300', 'W', 2, 'waveform', NULL, NULL,"
    "  '{\"metadata\":{\"channel_dtype\":\"waveform\",\"x_units\":\"s\"},"
    "\"waveform_path\":\"w.json\"}'),"
    " ('20230606120000', 'A', 0, 'scalar', NULL, 'text',"
    "  '{\"metadata\":{\"channel_dtype\":\"scalar\"},\"data\":\"text\"}'),"
    " ('20230607000100', 'x''y\"z) --;', 0, 'scalar', 1, NULL,"
    "  '{\"metadata\":{\"channel_dtype\":\"scalar\"},\"data\":1}');";

#define NRECORDS 5

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_silence_logs();
    char *msg = NULL;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
        sqlite3_exec(db, SCHEMA, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "fuzz_filter: schema: %s\n", msg ? msg : sqlite3_errmsg(db));
        abort();
    }
    return 0;
}

/* Splits a part into its lines (NUL-terminated copies, freed by free_lines). */
static size_t split_lines(const fz_part *p, char **lines, size_t max)
{
    size_t n = 0;
    if (!p->data)
        return 0;
    const uint8_t *s = p->data, *end = p->data + p->size;
    while (s <= end && n < max) {
        const uint8_t *nl = memchr(s, '\n', (size_t)(end - s));
        const uint8_t *e = nl ? nl : end;
        char *line = fz_strndup(s, (size_t)(e - s));
        if (strlen(line) == (size_t)(e - s)) /* query values hold no NUL */
            lines[n++] = line;
        else
            free(line);
        if (!nl)
            break;
        s = nl + 1;
    }
    return n;
}

static void free_lines(char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
}

/* Runs SELECT r.id ... WHERE where [ORDER BY order]: bit i of the result is set when the
 * i-th record (by id) matched. Every failure is a finding. */
static unsigned run_sqlite(const sql_fragment *where, const sql_fragment *order)
{
    sql_fragment q;
    sql_fragment_init(&q);
    FZ_CHECK(buf_puts(&q.text, "SELECT r.id FROM records r WHERE ") == 0);
    FZ_CHECK(sql_fragment_append(&q, where) == 0);
    if (order && order->text.len) {
        FZ_CHECK(buf_puts(&q.text, " ORDER BY ") == 0);
        FZ_CHECK(sql_fragment_append(&q, order) == 0);
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, q.text.data, (int)q.text.len, &st, NULL);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "prepare: %s\nSQL: %s\n", sqlite3_errmsg(db), q.text.data);
        FZ_CHECK(rc == SQLITE_OK);
    }
    FZ_CHECK((size_t)sqlite3_bind_parameter_count(st) == q.nparams);
    FZ_CHECK(sql_fragment_bind_sqlite(&q, st, 1) == SQLITE_OK);
    unsigned rows = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        static const char *const ids[NRECORDS] = {"20230605080000", "20230605080300",
                                                  "20230606120000", "20230607000000",
                                                  "20230607000100"};
        const char *id = (const char *)sqlite3_column_text(st, 0);
        int k = -1;
        for (int i = 0; i < NRECORDS; i++)
            if (id && strcmp(id, ids[i]) == 0)
                k = i;
        FZ_CHECK(k >= 0 && !(rows & (1u << k))); /* a known record, once */
        rows |= 1u << k;
    }
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "step: %s\nSQL: %s\n", sqlite3_errmsg(db), q.text.data);
        FZ_CHECK(rc == SQLITE_DONE);
    }
    sqlite3_finalize(st);
    sql_fragment_free(&q);
    return rows;
}

/* The lexical checks of PostgreSQL text emitted after `base` existing parameters. */
static void check_pg(const sql_fragment *f, size_t base)
{
    const char *s = f->text.data ? f->text.data : "";
    FZ_CHECK(strlen(s) == f->text.len);
    size_t n = f->nparams;
    FZ_CHECK(n >= base);
    unsigned char *seen = calloc(n + 1, 1);
    if (!seen)
        abort();
    long depth = 0;
    for (size_t i = 0; s[i];) {
        char c = s[i];
        if (c == '\'' || c == '"') { /* a literal or identifier; doubled quotes escape */
            size_t j = i + 1;
            for (;;) {
                FZ_CHECK(s[j] != '\0'); /* closed */
                if (s[j] == c && s[j + 1] == c)
                    j += 2;
                else if (s[j] == c)
                    break;
                else
                    j++;
            }
            i = j + 1;
            continue;
        }
        FZ_CHECK(c != ';' && c != '?');
        FZ_CHECK(!(c == '-' && s[i + 1] == '-') && !(c == '/' && s[i + 1] == '*'));
        if (c == '(')
            depth++;
        if (c == ')')
            FZ_CHECK(--depth >= 0);
        if (c == '$') {
            size_t k = 0, j = i + 1;
            FZ_CHECK(s[j] >= '1' && s[j] <= '9');
            while (s[j] >= '0' && s[j] <= '9' && k <= n)
                k = k * 10 + (size_t)(s[j++] - '0');
            FZ_CHECK(k > base && k <= n);
            FZ_CHECK(s[j] == ':' && s[j + 1] == ':'); /* typed */
            seen[k] = 1;
            i = j;
            continue;
        }
        i++;
    }
    FZ_CHECK(depth == 0);
    for (size_t k = base + 1; k <= n; k++)
        FZ_CHECK(seen[k]);
    free(seen);
}

/* Emits f for PostgreSQL into a fragment that already holds `base` parameters. */
static void emit_pg(const filter_t *f, size_t base)
{
    sql_fragment q;
    sql_fragment_init(&q);
    for (size_t i = 0; i < base; i++) {
        sql_param p = {.type = SQLP_INT, .i = (int64_t)i};
        FZ_CHECK(buf_printf(&q.text, "$%zu::int8 AND ", i + 1) == 0);
        FZ_CHECK(sql_fragment_param(&q, &p) == 0);
    }
    int rc = filter_emit_pg(f, &q);
    FZ_CHECK(rc == 0 || rc == -E2BIG);
    if (rc == 0)
        check_pg(&q, 0);
    sql_fragment_free(&q);
}

static void check_filter(const json_t *cond, bool dates, const sql_fragment *order, size_t base)
{
    filter_t *f = NULL;
    char err[256] = "";
    int rc = filter_compile(cond, dates, &f, err, sizeof(err));
    if (rc != 0) {
        FZ_CHECK(rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM);
        FZ_CHECK(f == NULL && err[0] != '\0');
        return;
    }
    FZ_CHECK(f != NULL);
    sql_fragment where;
    sql_fragment_init(&where);
    rc = filter_emit_sqlite(f, &where);
    FZ_CHECK(rc == 0 || rc == -E2BIG);
    if (rc == 0) {
        unsigned all = run_sqlite(&where, NULL);
        if (order)
            FZ_CHECK(run_sqlite(&where, order) == all);
        /* the negation: every record the filter does not select, and no other */
        json_t *neg = json_pack("{s[O]}", "$nor", cond);
        filter_t *nf = NULL;
        if (neg && filter_compile(neg, dates, &nf, err, sizeof(err)) == 0) {
            sql_fragment nw;
            sql_fragment_init(&nw);
            if (filter_emit_sqlite(nf, &nw) == 0) {
                unsigned none = run_sqlite(&nw, NULL);
                if ((all ^ none) != (1u << NRECORDS) - 1) {
                    fprintf(stderr, "filter rows %#x, its $nor rows %#x\nSQL: %s\n$nor SQL: %s\n",
                            all, none, where.text.data, nw.text.data);
                    FZ_CHECK((all ^ none) == (1u << NRECORDS) - 1);
                }
            }
            sql_fragment_free(&nw);
            filter_free(nf);
        }
        json_decref(neg);
    }
    sql_fragment_free(&where);
    emit_pg(f, base);
    filter_free(f);
}

static void check_projection(char **paths, size_t n)
{
    projection_t *p = NULL;
    char err[256] = "";
    if (projection_compile((const char *const *)paths, n, &p, err, sizeof(err)) != 0) {
        FZ_CHECK(p == NULL && err[0] != '\0');
        return;
    }
    json_t *names = projection_channel_names(p);
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v) FZ_CHECK(json_is_string(v));
    json_decref(names);
    (void)projection_wants(p, "metadata");
    (void)projection_wants(p, "channels");
    json_t *rec =
        json_loads("{\"_id\":\"20230605080000\",\"version\":2,\"metadata\":{\"shotnum\":100,"
                   "\"timestamp\":\"2023-06-05T08:00:00\",\"extra\":{\"n\":5,\"a\":[1,{\"b\":2}]}},"
                   "\"channels\":{\"A\":{\"metadata\":{\"channel_dtype\":\"scalar\"},\"data\":4.2},"
                   "\"IMG\":{\"metadata\":{\"channel_dtype\":\"image\"},\"thumbnail\":\"iVBOR\"},"
                   "\"a.b\":{\"data\":1}}}",
                   0, NULL);
    FZ_CHECK(rec != NULL);
    projection_apply(p, rec);
    FZ_CHECK(json_is_string(json_object_get(rec, "_id")));
    const char *key;
    json_object_foreach(rec, key, v)
    {
        bool named = strcmp(key, "_id") == 0;
        size_t kl = strlen(key);
        for (size_t k = 0; k < n && !named; k++)
            named =
                strncmp(paths[k], key, kl) == 0 && (paths[k][kl] == '\0' || paths[k][kl] == '.');
        FZ_CHECK(named);
    }
    json_decref(rec);
    projection_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_part part[3];
    fz_split(data, size, part, 3);
    char *order_lines[MAX_ENTRIES], *proj_lines[MAX_ENTRIES];
    size_t norder = split_lines(&part[1], order_lines, MAX_ENTRIES);
    size_t nproj = split_lines(&part[2], proj_lines, MAX_ENTRIES);

    /* order entries: both dialects; the SQLite list runs with the filters below */
    sql_fragment order, pg_order;
    sql_fragment_init(&order);
    sql_fragment_init(&pg_order);
    char err[256] = "";
    bool order_ok = false;
    if (norder) {
        int rc =
            sort_compile_sqlite((const char *const *)order_lines, norder, &order, err, sizeof(err));
        FZ_CHECK(rc == 0 || ((rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM) && err[0]));
        order_ok = rc == 0;
        int rc2 =
            sort_compile_pg((const char *const *)order_lines, norder, &pg_order, err, sizeof(err));
        FZ_CHECK((rc2 == 0) == order_ok); /* the dialects accept the same entries */
        if (rc2 == 0)
            check_pg(&pg_order, 0);
    }

    json_t *cond = json_loadb((const char *)part[0].data, part[0].size,
                              JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (json_is_object(cond)) {
        size_t base = part[0].size % 3; /* parameters already in the PostgreSQL statement */
        check_filter(cond, true, order_ok ? &order : NULL, base);
        check_filter(cond, false, NULL, base);
    } else if (part[0].size == 0 && order_ok) {
        /* no conditions: the ORDER BY alone */
        sql_fragment all;
        sql_fragment_init(&all);
        FZ_CHECK(buf_puts(&all.text, "1") == 0);
        FZ_CHECK(run_sqlite(&all, &order) == (1u << NRECORDS) - 1);
        sql_fragment_free(&all);
    }
    json_decref(cond);

    if (nproj)
        check_projection(proj_lines, nproj);

    sql_fragment_free(&order);
    sql_fragment_free(&pg_order);
    free_lines(order_lines, norder);
    free_lines(proj_lines, nproj);
    return 0;
}
