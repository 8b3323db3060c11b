/*
 * config.c: the table of every configuration key, and the code that walks it.
 *
 * KEYS below describes each key once: section, name, type, flags, where it lives in
 * ogd_config, its default (written as the text an environment variable would carry) and
 * its range or allowed values. config_defaults, the YAML loader, the environment loader,
 * the checks of config_resolve, config_free and config_dump all walk that table, so a new
 * key is one line here, one field in config.h and one entry in config.yml.example.
 * Two keys hold structured values described by small tables of their own:
 * auth.oidc_providers (a map provider_id -> OIDC_KEYS) and backup.mail (MAIL_KEYS or null).
 *
 * Typing is strict, like the reference's pydantic Strict* types. A plain YAML scalar is
 * resolved by the YAML 1.2 core schema (null, true/false, integer, float, else string);
 * a quoted or block scalar is always a string. So `port: "8000"` is not an integer and
 * `reload: yes` is not a boolean. An environment value is text: string keys take it as
 * it is, other scalar keys resolve it like a plain YAML scalar, lists and pairs take
 * "a,b" or a YAML flow list "[a, b]", maps take YAML or JSON text.
 *
 * Errors are collected, not returned at the first: each goes through report(), which
 * prefixes "FILE:LINE: " (file), "VARIABLE: " (environment) or nothing (resolve), and
 * stops recording after CONFIG_MAX_ERRORS.
 *
 * Allocation failure aborts: this runs at start-up (and in the master on reload), before
 * any request is served, and a half-built configuration helps no one.
 */
#include "config/config.h"

#include "util/cron.h"
#include "util/buf.h"
#include "util/ipaddr.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define CONFIG_MAX_ERRORS 100
#define CONFIG_MAX_TABLE_KEYS 128 /* keys in one table (the seen[] array of a mapping) */
#define CONFIG_MAX_PATH 256       /* "section.key" / "auth.oidc_providers.ID.key" */
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the table ---- */

typedef enum {
    KT_STR,    /* char * */
    KT_INT,    /* int */
    KT_I64,    /* int64_t */
    KT_BOOL,   /* bool */
    KT_DOUBLE, /* double */
    KT_PAIR,   /* int[2] */
    KT_LIST,   /* char ** + size_t count (count_offset) */
    KT_MAP,    /* T * + size_t count: a map id -> T, T described by sub, T starts with id */
    KT_STRUCT, /* T *: one T described by sub (NULL = null) */
} key_type;

enum {
    KF_REQUIRED = 1 << 0,   /* must be set when its section (or struct) is present */
    KF_NULL = 1 << 1,       /* null allowed: ints store 0, bools false, structs NULL */
    KF_SECRET = 1 << 2,     /* masked in dumps, never quoted in error messages */
    KF_URL_SECRET = 1 << 3, /* a URL whose password is masked in dumps */
};

typedef struct key_table key_table;

typedef struct key_def {
    const char *section; /* top-level table: the section; sub-tables: NULL */
    const char *key;
    key_type type;
    unsigned flags;
    size_t offset;              /* into the struct the table describes */
    size_t count_offset;        /* KT_LIST, KT_MAP: where the size_t count lives */
    const char *def;            /* default as environment text; NULL = 0 / false / NULL */
    int64_t lo, hi;             /* KT_INT, KT_I64, KT_PAIR (each item): allowed range */
    double dlo, dhi;            /* KT_DOUBLE: allowed range */
    const char *const *choices; /* KT_STR: allowed values, NULL-terminated */
    const key_table *sub;       /* KT_MAP, KT_STRUCT: the keys of one element */
} key_def;

struct key_table {
    const key_def *keys;
    size_t count;
    size_t size; /* sizeof the struct the table describes */
};

/* Top-level keys: section S, key N (the field is ogd_config.S.N), default D, flags F.
 * Each expands to the designators of one key_def; the table wraps it in braces. */
#define KEY_(S, N, T, F, D)                                                                        \
    .section = #S, .key = #N, .type = T, .flags = F, .offset = offsetof(ogd_config, S.N), .def = D
#define STR(S, N, D, F) KEY_(S, N, KT_STR, F, D)
#define ENUM(S, N, D, CH) KEY_(S, N, KT_STR, 0, D), .choices = CH
#define INT(S, N, D, L, H, F) KEY_(S, N, KT_INT, F, D), .lo = L, .hi = H
#define I64(S, N, D, L, H) KEY_(S, N, KT_I64, 0, D), .lo = L, .hi = H
#define BOOL(S, N, D, F) KEY_(S, N, KT_BOOL, F, D)
#define DBL(S, N, D, L, H) KEY_(S, N, KT_DOUBLE, 0, D), .dlo = L, .dhi = H
#define PAIR(S, N, D, L, H) KEY_(S, N, KT_PAIR, 0, D), .lo = L, .hi = H
#define LIST(S, N, F) LIST_D(S, N, NULL, F)
#define LIST_D(S, N, D, F)                                                                         \
    KEY_(S, N, KT_LIST, F, D), .count_offset = offsetof(ogd_config, S.N##_count)
#define MAP(S, N, TB)                                                                              \
    KEY_(S, N, KT_MAP, 0, NULL), .count_offset = offsetof(ogd_config, S.N##_count), .sub = &TB
#define STRUCT(S, N, TB, F) KEY_(S, N, KT_STRUCT, F, NULL), .sub = &TB

/* Keys of a sub-struct T. */
#define SUB_(T, N, TY, F, D) .key = #N, .type = TY, .flags = F, .offset = offsetof(T, N), .def = D

static const char *const LOG_LEVELS[] = {"debug", "info", "warn", "error", NULL};
static const char *const JWT_ALGORITHMS[] = {"RS256", NULL};
static const char *const AUTO_REMOVE[] = {"cached", "backed_up", "never", NULL};

static const key_def OIDC_KEYS[] = {
    {SUB_(ogd_oidc_provider, display_name, KT_STR, KF_REQUIRED, NULL)},
    {SUB_(ogd_oidc_provider, configuration_url, KT_STR, KF_REQUIRED, NULL)},
    {SUB_(ogd_oidc_provider, client_id, KT_STR, KF_REQUIRED, NULL)},
    {SUB_(ogd_oidc_provider, verify_cert, KT_BOOL, 0, "true")},
    {SUB_(ogd_oidc_provider, mechanism, KT_STR, 0, "oidc")},
    {SUB_(ogd_oidc_provider, username_claim, KT_STR, 0, "email")},
};
static const key_table OIDC_TABLE = {OIDC_KEYS, ARRAY_LEN(OIDC_KEYS), sizeof(ogd_oidc_provider)};

static const key_def MAIL_KEYS[] = {
    {SUB_(ogd_mail_config, host, KT_STR, KF_REQUIRED, NULL)},
    {SUB_(ogd_mail_config, to_addrs, KT_LIST, KF_REQUIRED, NULL),
     .count_offset = offsetof(ogd_mail_config, to_addrs_count)},
    {SUB_(ogd_mail_config, from_addr, KT_STR, KF_REQUIRED, NULL)},
};
static const key_table MAIL_TABLE = {MAIL_KEYS, ARRAY_LEN(MAIL_KEYS), sizeof(ogd_mail_config)};

static const key_def KEYS[] = {
    {STR(server, bind, NULL, 0)},
    {INT(server, workers, "0", 0, 1024, 0)},
    {INT(server, worker_connections, "1000", 1, 1000000, 0)},
    {INT(server, max_connections_per_client, "64", 0, 1000000, 0)},
    {LIST_D(server, forwarded_allow_ips, "127.0.0.1,::1", 0)},
    {INT(server, threads, "2", 1, 128, 0)},
    {INT(server, max_heavy_per_user, "0", 0, 4096, 0)},
    {INT(server, max_pool_waiting, "256", 1, 1000000, 0)},
    {INT(server, maintenance_interval, "600", 10, 86400, 0)},
    {INT(server, max_requests, "0", 0, INT_MAX, 0)},
    {INT(server, max_requests_jitter, "0", 0, INT_MAX, 0)},
    {INT(server, timeout, "30", 1, 86400, 0)},
    {INT(server, graceful_timeout, "30", 0, 86400, 0)},
    {INT(server, keepalive, "5", 1, 3600, 0)},
    {STR(server, data_dir, "./var", 0)},
    {I64(server, max_header_bytes, "16384", 1024, 1 << 20)},
    {I64(server, max_body_bytes, "1048576", 1024, (int64_t)1 << 34)},
    {I64(server, max_upload_bytes, "536870912", 1024, (int64_t)1 << 40)},
    {INT(server, header_timeout, "10", 1, 3600, 0)},
    {INT(server, body_timeout, "60", 1, 86400, 0)},
    {STR(server, log_file, NULL, 0)},
    {ENUM(server, log_level, "info", LOG_LEVELS)},

    {STR(database, url, NULL, KF_URL_SECRET)},
    {INT(database, pool_size, "4", 1, 1024, 0)},

    {I64(ingest, max_decompressed_bytes, "268435456", 1, (int64_t)1 << 40)},
    {I64(ingest, max_file_decompressed_bytes, "4294967296", 1, (int64_t)1 << 44)},
    {INT(ingest, max_channels, "5000", 1, 1000000, 0)},

    {STR(app, host, NULL, 0)},
    {INT(app, port, NULL, 1, 65535, KF_NULL)},
    {BOOL(app, reload, NULL, KF_NULL)},
    {STR(app, url_prefix, "", 0)},
    {STR(app, maintenance_file, NULL, 0)},
    {STR(app, scheduled_maintenance_file, NULL, 0)},
    {BOOL(app, use_sub_second_timestamps, "false", 0)},
    {LIST(app, cors_origins, 0)},

    {PAIR(images, thumbnail_size, "50,50", 1, 4096)},
    {STR(images, default_colour_map, "viridis", 0)},
    {INT(images, colourbar_height_pixels, "16", 1, 4096, 0)},
    {INT(images, png_compression_level, "1", 0, 12, 0)},
    {STR(images, preferred_colour_map_pref_name, "PREFERRED_COLOUR_MAP", 0)},

    {PAIR(float_images, thumbnail_size, "50,50", 1, 4096)},
    {STR(float_images, default_colour_map, "bwr", 0)},
    {STR(float_images, preferred_colour_map_pref_name, "PREFERRED_FLOAT_COLOUR_MAP", 0)},

    {PAIR(waveforms, thumbnail_size, "100,100", 1, 4096)},
    {DBL(waveforms, line_width, "0.3", 0.01, 100)},

    {PAIR(vectors, thumbnail_size, "100,100", 1, 4096)},
    {STR(vectors, skip_pref_name, "VECTOR_SKIP", 0)},
    {STR(vectors, limit_pref_name, "VECTOR_LIMIT", 0)},

    {STR(echo, url, NULL, 0)},
    {STR(echo, username, NULL, 0)},
    {STR(echo, access_key, NULL, KF_SECRET)},
    {STR(echo, secret_key, NULL, KF_SECRET)},
    {STR(echo, bucket_name, NULL, 0)},
    {INT(echo, expiry_days, NULL, 1, 36500, KF_NULL)},
    {INT(echo, cache_maxsize, "128", 0, 1000000, 0)},
    {I64(echo, cache_max_bytes, "268435456", 0, (int64_t)1 << 40)},
    {INT(echo, max_connections, "128", 1, 100000, 0)},
    {STR(echo, region, "us-east-1", 0)},
    {INT(echo, request_timeout, "30", 1, 3600, 0)},
    {INT(echo, max_read_wait, "0", 0, 3600, 0)},
    {INT(echo, max_retries, "3", 0, 100, 0)},
    {INT(echo, max_in_flight_per_request, "0", 0, 100000, 0)},
    {INT(echo, uncertain_write_grace, "900", 1, 604800, 0)},
    {I64(echo, multipart_threshold, "67108864", (int64_t)5 << 20, (int64_t)5 << 30)},
    {BOOL(echo, create_bucket, "false", 0)},

    {STR(mongodb, mongodb_url, NULL, KF_SECRET)},
    {STR(mongodb, database_name, NULL, 0)},
    {I64(mongodb, max_documents, "1000", 0, 100000000)},

    {STR(auth, private_key_path, NULL, KF_REQUIRED)},
    {STR(auth, public_key_path, NULL, KF_REQUIRED)},
    {ENUM(auth, jwt_algorithm, "RS256", JWT_ALGORITHMS)},
    {INT(auth, access_token_validity_mins, "60", 1, 525600, 0)},
    {INT(auth, refresh_token_validity_days, "7", 1, 3650, 0)},
    {STR(auth, fedid_server_url, NULL, 0)},
    {STR(auth, fedid_server_ldap_realm, NULL, 0)},
    {STR(auth, fedid_bind_dn, NULL, 0)},
    {STR(auth, fedid_ca_file, NULL, 0)},
    {STR(auth, fedid_search_base, "dc=fed,dc=cclrc,dc=ac,dc=uk", 0)},
    {INT(auth, fedid_timeout_seconds, "5", 1, 300, 0)},
    {MAP(auth, oidc_providers, OIDC_TABLE)},

    {STR(experiments, first_scheduler_contact_start_date, NULL, 0)},
    {BOOL(experiments, scheduler_background_task_enabled, "false", 0)},
    {STR(experiments, scheduler_background_frequency, "0 9 * * 1", 0)},
    {STR(experiments, scheduler_background_timezone, "Europe/London", 0)},
    {DBL(experiments, scheduler_background_retry_mins, "20", 0, 10080)},
    {STR(experiments, user_office_rest_api_url, NULL, 0)},
    {STR(experiments, username, NULL, 0)},
    {STR(experiments, password, NULL, KF_SECRET)},
    {STR(experiments, scheduler_wsdl_url, NULL, 0)},
    {LIST(experiments, instrument_names, 0)},
    {STR(experiments, worker_file_path, NULL, 0)},
    {INT(experiments, request_timeout, "30", 1, 600, 0)},

    {I64(export, max_filesize_bytes, "1073741824", 1, INT64_MAX)},
    {INT(export, max_concurrency, "256", 1, 100000, 0)},
    {I64(export, max_buffer_bytes, "58720256", 65536, (int64_t)1 << 40)},

    {STR(observability, environment, NULL, 0)},
    {STR(observability, secret_key, NULL, KF_SECRET)},

    {STR(backup, cache_directory, NULL, KF_REQUIRED)},
    {INT(backup, warning_mark_percent, "50", 1, 99, 0)},
    {STR(backup, target_url, NULL, KF_REQUIRED)},
    {STR(backup, copy_cron_string, NULL, KF_REQUIRED)},
    {STR(backup, timezone_str, "Europe/London", 0)},
    {STR(backup, worker_file_path, NULL, 0)},
    {ENUM(backup, auto_remove, "backed_up", AUTO_REMOVE)},
    {STR(backup, keytab_file_path, NULL, 0)},
    {STRUCT(backup, mail, MAIL_TABLE, KF_NULL)},
};
static const key_table CONFIG_TABLE = {KEYS, ARRAY_LEN(KEYS), sizeof(ogd_config)};

_Static_assert(ARRAY_LEN(KEYS) <= CONFIG_MAX_TABLE_KEYS, "raise CONFIG_MAX_TABLE_KEYS");

/* The sections, in file and dump order; `present` is the first member of each. */
typedef struct section_def {
    const char *name;
    size_t present_offset;
} section_def;

#define SECTION(S) .name = #S, .present_offset = offsetof(ogd_config, S.present)
static const section_def SECTIONS[] = {
    {SECTION(server)}, {SECTION(database)},      {SECTION(ingest)},    {SECTION(app)},
    {SECTION(images)}, {SECTION(float_images)},  {SECTION(waveforms)}, {SECTION(vectors)},
    {SECTION(echo)},   {SECTION(mongodb)},       {SECTION(auth)},      {SECTION(experiments)},
    {SECTION(export)}, {SECTION(observability)}, {SECTION(backup)},
};
_Static_assert(ARRAY_LEN(SECTIONS) <= ARRAY_LEN(((ogd_config *)0)->section_lines),
               "ogd_config.section_lines is too small");

/* ---- memory ---- */

static void out_of_memory(void)
{
    fputs("ogd: out of memory while building the configuration\n", stderr);
    abort();
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        out_of_memory();
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (!p)
        out_of_memory();
    return p;
}

static char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

/* Returns a heap string (caller frees). */
static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        out_of_memory();
    return s;
}

/* ---- errors ---- */

typedef struct errlist {
    buf_t text;
    int count;
} errlist;

/* Where values come from, for the prefix of messages. */
typedef struct source {
    errlist *errs;
    const char *file; /* "FILE:LINE: " */
    const char *var;  /* "VARIABLE: " (environment); wins over file */
} source;

static void errlist_init(errlist *e)
{
    buf_init(&e->text, (size_t)64 * 1024);
    e->count = 0;
}

/* Hands the messages to *errors (caller frees) and returns -1, or returns 0 if none. */
static int errlist_finish(errlist *e, char **errors)
{
    if (e->count == 0) {
        buf_free(&e->text);
        return 0;
    }
    if (errors)
        *errors = buf_take(&e->text);
    else
        buf_free(&e->text);
    return -1;
}

static void vreport(const source *src, size_t line, const char *fmt, va_list ap)
{
    errlist *e = src->errs;
    e->count++;
    if (e->count > CONFIG_MAX_ERRORS) {
        if (e->count == CONFIG_MAX_ERRORS + 1)
            buf_puts(&e->text, "\n(further errors not shown)");
        return;
    }
    if (e->count > 1)
        buf_putc(&e->text, '\n');
    if (src->var)
        buf_printf(&e->text, "%s: ", src->var);
    else if (src->file && line)
        buf_printf(&e->text, "%s:%zu: ", src->file, line);
    else if (src->file)
        buf_printf(&e->text, "%s: ", src->file);
    buf_vprintf(&e->text, fmt, ap);
}

static void report_line(const source *src, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report_line(const source *src, size_t line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(src, line, fmt, ap);
    va_end(ap);
}

static size_t node_line(const yaml_node_t *n)
{
    return n ? n->start_mark.line + 1 : 0;
}

static void report(const source *src, const yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(const source *src, const yaml_node_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(src, node_line(at), fmt, ap);
    va_end(ap);
}

/* ---- field access ---- */

static void *field_at(void *base, const key_def *k)
{
    return (char *)base + k->offset;
}

static const void *cfield_at(const void *base, const key_def *k)
{
    return (const char *)base + k->offset;
}

static size_t *count_at(void *base, const key_def *k)
{
    return (size_t *)((char *)base + k->count_offset);
}

static bool key_nullable(const key_def *k)
{
    if (k->flags & KF_NULL)
        return true;
    /* A string with no default may be unset; null says so explicitly. */
    return k->type == KT_STR && !k->def && !(k->flags & KF_REQUIRED);
}

static void free_table(void *base, const key_table *t);

static void free_list(char **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
}

/* Releases one key's value and leaves its zero value (0, false, NULL, empty). */
static void clear_value(void *base, const key_def *k)
{
    void *p = field_at(base, k);
    switch (k->type) {
    case KT_STR:
        free(*(char **)p);
        *(char **)p = NULL;
        break;
    case KT_INT:
        *(int *)p = 0;
        break;
    case KT_I64:
        *(int64_t *)p = 0;
        break;
    case KT_BOOL:
        *(bool *)p = false;
        break;
    case KT_DOUBLE:
        *(double *)p = 0;
        break;
    case KT_PAIR:
        ((int *)p)[0] = ((int *)p)[1] = 0;
        break;
    case KT_LIST:
        free_list(*(char ***)p, *count_at(base, k));
        *(char ***)p = NULL;
        *count_at(base, k) = 0;
        break;
    case KT_MAP: {
        char *items = *(char **)p;
        for (size_t i = 0; i < *count_at(base, k); i++) {
            void *el = items + i * k->sub->size;
            free(*(char **)el); /* the id */
            free_table(el, k->sub);
        }
        free(items);
        *(char **)p = NULL;
        *count_at(base, k) = 0;
        break;
    }
    case KT_STRUCT: {
        void *el = *(void **)p;
        if (el) {
            free_table(el, k->sub);
            free(el);
        }
        *(void **)p = NULL;
        break;
    }
    }
}

static void free_table(void *base, const key_table *t)
{
    for (size_t i = 0; i < t->count; i++)
        clear_value(base, &t->keys[i]);
}

static int find_key(const key_table *t, const char *section, const char *name)
{
    for (size_t i = 0; i < t->count; i++) {
        const key_def *k = &t->keys[i];
        if ((!section || strcmp(k->section, section) == 0) && strcmp(k->key, name) == 0)
            return (int)i;
    }
    return -1;
}

static int find_section(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(SECTIONS); i++)
        if (strcmp(SECTIONS[i].name, name) == 0)
            return (int)i;
    return -1;
}

static bool *section_present(ogd_config *c, size_t idx)
{
    return (bool *)((char *)c + SECTIONS[idx].present_offset);
}

/* ---- scalars ---- */

typedef enum { SK_NULL, SK_BOOL, SK_INT, SK_FLOAT, SK_STR } scalar_kind;

static bool digits(const char **s)
{
    const char *p = *s;
    while (isdigit((unsigned char)**s))
        (*s)++;
    return *s > p;
}

/* YAML 1.2 core: [-+]?[0-9]+ */
static bool lex_int(const char *s)
{
    if (*s == '+' || *s == '-')
        s++;
    return digits(&s) && *s == '\0';
}

/* YAML 1.2 core: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? and .inf/.nan */
static bool lex_float(const char *s)
{
    static const char *const special[] = {".inf", ".Inf", ".INF", ".nan", ".NaN", ".NAN"};
    const char *body = (*s == '+' || *s == '-') ? s + 1 : s;
    for (size_t i = 0; i < ARRAY_LEN(special); i++)
        if (strcmp(body, special[i]) == 0 && (body == s || i < 3))
            return true;
    s = body;
    bool whole = digits(&s);
    bool frac = false;
    if (*s == '.') {
        s++;
        frac = digits(&s);
    }
    if (!whole && !frac)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!digits(&s))
            return false;
    }
    return *s == '\0';
}

static bool text_is(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

static const char *const NULL_WORDS[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const TRUE_WORDS[] = {"true", "True", "TRUE", NULL};
static const char *const FALSE_WORDS[] = {"false", "False", "FALSE", NULL};

/* What a plain (unquoted) scalar is. */
static scalar_kind plain_kind(const char *s)
{
    if (text_is(s, NULL_WORDS))
        return SK_NULL;
    if (text_is(s, TRUE_WORDS) || text_is(s, FALSE_WORDS))
        return SK_BOOL;
    if (lex_int(s))
        return SK_INT;
    if (lex_float(s))
        return SK_FLOAT;
    return SK_STR;
}

/* Length of the UTF-8 sequence at s (1..4) with its code point in *cp, or 0 when the bytes
 * there are not valid UTF-8 (overlong forms, surrogates and values past U+10FFFF are not). */
static size_t utf8_next(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len = c < 0x80             ? 1
                 : (c & 0xE0) == 0xC0 ? 2
                 : (c & 0xF0) == 0xE0 ? 3
                 : (c & 0xF8) == 0xF0 ? 4
                                      : 0;
    if (len == 0)
        return 0;
    uint32_t v = len == 1 ? c : c & (0x7Fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) /* also stops at the terminator */
            return 0;
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

static bool utf8_valid(const char *s)
{
    uint32_t cp;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_next(p, &cp);
        if (n == 0)
            return false;
        p += n;
    }
    return true;
}

/* Writes at most 60 bytes of text for a message, quoted or not, control bytes as '?'. */
static void excerpt(char *out, size_t outlen, const char *text, bool quote)
{
    size_t len = strlen(text), cut = len > 60 ? 60 : len;
    /* do not split a UTF-8 sequence (at most 3 bytes back: text that is not UTF-8, e.g.
     * a variable's name, must not lose all but its first bytes) */
    for (int back = 0;
         back < 3 && cut < len && cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80; back++)
        cut--;
    size_t o = 0;
    if (quote && o + 1 < outlen)
        out[o++] = '"';
    for (size_t i = 0; i < cut && o + 1 < outlen; i++)
        out[o++] = (unsigned char)text[i] < 0x20 || text[i] == 0x7f ? '?' : text[i];
    const char *tail = cut < len ? (quote ? "...\"" : "...") : (quote ? "\"" : "");
    for (; *tail && o + 1 < outlen; tail++)
        out[o++] = *tail;
    out[o] = '\0';
}

/* "got ..." text for a scalar: null / nothing, 8000 / true, "four" (strings quoted).
 * Secrets are described by kind only. */
static void describe_scalar(char *out, size_t outlen, const char *text, scalar_kind kind,
                            bool secret)
{
    static const char *const kind_names[] = {"null", "a boolean", "an integer", "a number",
                                             "a string"};
    if (kind == SK_NULL)
        snprintf(out, outlen, "%s", *text ? "null" : "nothing");
    else if (secret)
        snprintf(out, outlen, "%s", kind_names[kind]);
    else
        excerpt(out, outlen, text, kind == SK_STR);
}

static const char *expectation(const key_def *k)
{
    bool n = key_nullable(k);
    switch (k->type) {
    case KT_STR:
        return n ? "a string or null" : "a string";
    case KT_INT:
    case KT_I64:
        return n ? "an integer or null" : "an integer";
    case KT_BOOL:
        return n ? "true, false or null" : "true or false";
    case KT_DOUBLE:
        return "a number";
    case KT_PAIR:
        return "a list of two integers";
    case KT_LIST:
        return "a list of strings";
    case KT_MAP:
        return "a mapping";
    case KT_STRUCT:
        return n ? "a mapping or null" : "a mapping";
    }
    return "?";
}

/* Does a plain scalar of this kind fit the key's type? */
static bool kind_fits(const key_def *k, scalar_kind kind)
{
    switch (k->type) {
    case KT_INT:
    case KT_I64:
        return kind == SK_INT;
    case KT_BOOL:
        return kind == SK_BOOL;
    case KT_DOUBLE:
        return kind == SK_INT || kind == SK_FLOAT;
    default:
        return false;
    }
}

static bool parse_i64(const char *text, int64_t *out)
{
    errno = 0;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (errno || !end || *end)
        return false;
    *out = v;
    return true;
}

static void report_choices(const source *src, const yaml_node_t *at, const char *path,
                           const key_def *k, const char *text)
{
    char list[200] = "";
    size_t used = 0;
    for (const char *const *ch = k->choices; *ch; ch++) {
        int n = snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "", *ch);
        if (n < 0 || (size_t)n >= sizeof(list) - used)
            break;
        used += (size_t)n;
    }
    char got[80];
    excerpt(got, sizeof(got), text, true);
    report(src, at, "%s: expected one of %s, got %s", path, list, got);
}

/* Sets a key from one scalar. kind: what the scalar is (a quoted scalar is SK_STR);
 * quoted: it was quoted in YAML (only used for the hint). Returns false on error. */
static bool assign_scalar(const source *src, const yaml_node_t *at, void *base, const key_def *k,
                          const char *path, const char *text, scalar_kind kind, bool quoted)
{
    void *p = field_at(base, k);
    bool secret = k->flags & KF_SECRET;
    if (kind == SK_NULL && key_nullable(k)) {
        clear_value(base, k);
        return true;
    }
    switch (k->type) {
    case KT_STR:
        if (kind != SK_STR && !(secret && (kind == SK_INT || kind == SK_FLOAT)))
            break;
        if (k->choices && !text_is(text, k->choices)) {
            report_choices(src, at, path, k, text);
            return false;
        }
        free(*(char **)p);
        *(char **)p = xstrdup(text);
        return true;
    case KT_INT:
    case KT_I64: {
        if (kind != SK_INT)
            break;
        int64_t v = 0;
        if (!parse_i64(text, &v) || v < k->lo || v > k->hi) {
            char got[80];
            excerpt(got, sizeof(got), text, false);
            report(src, at, "%s: %s is out of range (%lld..%lld%s)", path, got, (long long)k->lo,
                   (long long)k->hi, key_nullable(k) ? ", or null" : "");
            return false;
        }
        if (k->type == KT_INT)
            *(int *)p = (int)v;
        else
            *(int64_t *)p = v;
        return true;
    }
    case KT_BOOL:
        if (kind != SK_BOOL)
            break;
        *(bool *)p = text_is(text, TRUE_WORDS);
        return true;
    case KT_DOUBLE: {
        if (kind != SK_INT && kind != SK_FLOAT)
            break;
        double v = strtod(text, NULL);
        if (!isfinite(v) || v < k->dlo || v > k->dhi) {
            char got[80];
            excerpt(got, sizeof(got), text, false);
            report(src, at, "%s: %s is out of range (%g..%g)", path, got, k->dlo, k->dhi);
            return false;
        }
        *(double *)p = v;
        return true;
    }
    default:
        break;
    }
    char got[96];
    describe_scalar(got, sizeof(got), text, kind, secret);
    const char *hint = "";
    if (quoted && kind_fits(k, plain_kind(text)))
        hint = " (quoted, so a string)";
    else if (!quoted && k->type == KT_STR && kind != SK_NULL && !secret)
        hint = " (quote it to make it a string)";
    report(src, at, "%s: expected %s, got %s%s", path, expectation(k), got, hint);
    return false;
}

/* ---- structured values ---- */

/* One scalar of a list, from YAML or from a comma-separated environment value. */
typedef struct item {
    const char *text;
    scalar_kind kind;
    const yaml_node_t *at;
} item;

static void set_pair(const source *src, const yaml_node_t *at, void *base, const key_def *k,
                     const char *path, const item *items, size_t n)
{
    if (n != 2) {
        report(src, at, "%s: expected a list of two integers, got %zu item%s", path, n,
               n == 1 ? "" : "s");
        return;
    }
    int v[2];
    bool ok = true;
    for (size_t i = 0; i < 2; i++) {
        char ipath[CONFIG_MAX_PATH + 8];
        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        int64_t x = 0;
        char got[80];
        if (items[i].kind != SK_INT) {
            describe_scalar(got, sizeof(got), items[i].text, items[i].kind, false);
            report(src, items[i].at, "%s: expected an integer, got %s", ipath, got);
            ok = false;
        } else if (!parse_i64(items[i].text, &x) || x < k->lo || x > k->hi) {
            excerpt(got, sizeof(got), items[i].text, false);
            report(src, items[i].at, "%s: %s is out of range (%lld..%lld)", ipath, got,
                   (long long)k->lo, (long long)k->hi);
            ok = false;
        } else {
            v[i] = (int)x;
        }
    }
    if (ok) {
        ((int *)field_at(base, k))[0] = v[0];
        ((int *)field_at(base, k))[1] = v[1];
    }
}

static void set_list(const source *src, void *base, const key_def *k, const char *path,
                     const item *items, size_t n)
{
    char **list = xcalloc(n, sizeof(char *));
    size_t used = 0;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        if (items[i].kind != SK_STR) {
            char got[80];
            describe_scalar(got, sizeof(got), items[i].text, items[i].kind, false);
            report(src, items[i].at, "%s[%zu]: expected a string, got %s", path, i, got);
            ok = false;
            continue;
        }
        list[used++] = xstrdup(items[i].text);
    }
    if (!ok) {
        free_list(list, used);
        return;
    }
    clear_value(base, k);
    *(char ***)field_at(base, k) = list;
    *count_at(base, k) = used;
}

static void set_node(const source *src, void *base, const key_def *k, const char *path,
                     yaml_document_t *doc, yaml_node_t *v);

static void apply_defaults(void *base, const key_table *t);

/* Loads the keys of a YAML mapping into base (described by t; section: only that
 * section's keys of the top-level table, NULL for sub-tables). For sub-tables, required
 * keys are checked here; owner is the node their absence is reported at. */
static void load_mapping(const source *src, void *base, const key_table *t, const char *section,
                         const char *prefix, yaml_document_t *doc, yaml_node_t *map,
                         const yaml_node_t *owner)
{
    bool seen[CONFIG_MAX_TABLE_KEYS] = {false};
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *kn = yaml_document_get_node(doc, pair->key);
        yaml_node_t *vn = yaml_document_get_node(doc, pair->value);
        if (!kn || !vn)
            continue;
        if (kn->type != YAML_SCALAR_NODE) {
            report(src, kn, "%s: expected a key name, got a %s", prefix,
                   kn->type == YAML_SEQUENCE_NODE ? "list" : "mapping");
            continue;
        }
        const char *name = (const char *)kn->data.scalar.value;
        int idx = find_key(t, section, name);
        char kname[80];
        excerpt(kname, sizeof(kname), name, false);
        if (idx < 0) {
            report(src, kn, "unknown key \"%s.%s\"", prefix, kname);
            continue;
        }
        if (seen[idx]) {
            report(src, kn, "%s.%s: duplicate key", prefix, kname);
            continue;
        }
        seen[idx] = true;
        char path[CONFIG_MAX_PATH];
        snprintf(path, sizeof(path), "%s.%s", prefix, name);
        set_node(src, base, &t->keys[idx], path, doc, vn);
    }
    if (section)
        return; /* top-level required keys: config_resolve (the environment may set them) */
    for (size_t i = 0; i < t->count; i++)
        if ((t->keys[i].flags & KF_REQUIRED) && !seen[i])
            report(src, owner, "%s.%s: required key is missing", prefix, t->keys[i].key);
}

static bool id_ok(const char *id)
{
    if (!*id || strlen(id) > 64)
        return false;
    for (const char *p = id; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
            return false;
    return true;
}

static void set_map(const source *src, void *base, const key_def *k, const char *path,
                    yaml_document_t *doc, yaml_node_t *map)
{
    const key_table *sub = k->sub;
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    if (n > CONFIG_MAX_ITEMS) {
        report(src, map, "%s: more than %d entries", path, CONFIG_MAX_ITEMS);
        return;
    }
    char *items = xcalloc(n, sub->size);
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        yaml_node_pair_t *pair = &map->data.mapping.pairs.start[i];
        yaml_node_t *kn = yaml_document_get_node(doc, pair->key);
        yaml_node_t *vn = yaml_document_get_node(doc, pair->value);
        if (!kn || !vn)
            continue;
        const char *id = kn->type == YAML_SCALAR_NODE ? (const char *)kn->data.scalar.value : "";
        char shown[80];
        excerpt(shown, sizeof(shown), id, true);
        if (!id_ok(id)) {
            report(src, kn, "%s: name %s must be 1 to 64 letters, digits, '_', '-' or '.'", path,
                   shown);
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < used; j++)
            if (strcmp(*(char **)(items + j * sub->size), id) == 0)
                dup = true;
        char elpath[CONFIG_MAX_PATH];
        snprintf(elpath, sizeof(elpath), "%s.%s", path, id);
        if (dup) {
            report(src, kn, "%s: duplicate key", elpath);
            continue;
        }
        if (vn->type != YAML_MAPPING_NODE) {
            char got[96] = "a list";
            if (vn->type == YAML_SCALAR_NODE) {
                const char *t = (const char *)vn->data.scalar.value;
                bool q = vn->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
                describe_scalar(got, sizeof(got), t, q ? SK_STR : plain_kind(t), false);
            }
            report(src, vn, "%s: expected a mapping, got %s", elpath, got);
            continue;
        }
        void *el = items + used * sub->size;
        *(char **)el = xstrdup(id);
        apply_defaults(el, sub);
        used++;
        load_mapping(src, el, sub, NULL, elpath, doc, vn, kn);
    }
    clear_value(base, k);
    *(char **)field_at(base, k) = items;
    *count_at(base, k) = used;
}

static void set_struct(const source *src, void *base, const key_def *k, const char *path,
                       yaml_document_t *doc, yaml_node_t *map)
{
    void *el = xcalloc(1, k->sub->size);
    apply_defaults(el, k->sub);
    load_mapping(src, el, k->sub, NULL, path, doc, map, map);
    clear_value(base, k);
    *(void **)field_at(base, k) = el;
}

/* Collects the scalar items of a YAML sequence; false (reported) if one is not a scalar
 * or there are too many. *out: caller frees. */
static bool sequence_items(const source *src, const char *path, yaml_document_t *doc,
                           yaml_node_t *seq, item **out, size_t *n)
{
    size_t count = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    *out = NULL;
    *n = 0;
    if (count > CONFIG_MAX_ITEMS) {
        report(src, seq, "%s: more than %d items", path, CONFIG_MAX_ITEMS);
        return false;
    }
    item *items = xcalloc(count, sizeof(item));
    bool ok = true;
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *in = yaml_document_get_node(doc, seq->data.sequence.items.start[i]);
        if (!in || in->type != YAML_SCALAR_NODE) {
            report(src, in, "%s[%zu]: expected a single value, got a %s", path, i,
                   in && in->type == YAML_SEQUENCE_NODE ? "list" : "mapping");
            ok = false;
            continue;
        }
        const char *t = (const char *)in->data.scalar.value;
        items[i].text = t;
        items[i].kind = in->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? plain_kind(t) : SK_STR;
        items[i].at = in;
    }
    if (!ok) {
        free(items);
        return false;
    }
    *out = items;
    *n = count;
    return true;
}

static void set_node(const source *src, void *base, const key_def *k, const char *path,
                     yaml_document_t *doc, yaml_node_t *v)
{
    if (v->type == YAML_SCALAR_NODE) {
        const char *text = (const char *)v->data.scalar.value;
        bool quoted = v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        assign_scalar(src, v, base, k, path, text, quoted ? SK_STR : plain_kind(text), quoted);
        return;
    }
    if (v->type == YAML_SEQUENCE_NODE && (k->type == KT_PAIR || k->type == KT_LIST)) {
        item *items;
        size_t n;
        if (!sequence_items(src, path, doc, v, &items, &n))
            return;
        if (k->type == KT_PAIR)
            set_pair(src, v, base, k, path, items, n);
        else
            set_list(src, base, k, path, items, n);
        free(items);
        return;
    }
    if (v->type == YAML_MAPPING_NODE && k->type == KT_MAP) {
        set_map(src, base, k, path, doc, v);
        return;
    }
    if (v->type == YAML_MAPPING_NODE && k->type == KT_STRUCT) {
        set_struct(src, base, k, path, doc, v);
        return;
    }
    report(src, v, "%s: expected %s, got a %s", path, expectation(k),
           v->type == YAML_SEQUENCE_NODE ? "list" : "mapping");
}

/* ---- YAML text ---- */

static size_t line_of_offset(const char *text, size_t len, size_t offset)
{
    size_t line = 1;
    for (size_t i = 0; i < offset && i < len; i++)
        if (text[i] == '\n')
            line++;
    return line;
}

static void report_yaml_error(const source *src, const yaml_parser_t *p, const char *text,
                              size_t len)
{
    size_t line = p->error == YAML_READER_ERROR ? line_of_offset(text, len, p->problem_offset)
                                                : p->problem_mark.line + 1;
    const char *problem = p->problem ? p->problem : "cannot parse";
    if (p->context && p->context_mark.line + 1 != line)
        report_line(src, line, "invalid YAML: %s (%s started on line %zu)", problem, p->context,
                    p->context_mark.line + 1);
    else if (p->context)
        report_line(src, line, "invalid YAML: %s (%s)", problem, p->context);
    else
        report_line(src, line, "invalid YAML: %s", problem);
}

/* Parses text as exactly one YAML document into *doc (caller deletes it on true). */
static bool parse_yaml(const source *src, const char *text, size_t len, yaml_document_t *doc)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        out_of_memory();
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, doc)) {
        report_yaml_error(src, &parser, text, len);
        yaml_parser_delete(&parser);
        return false;
    }
    bool ok = true;
    yaml_document_t extra;
    if (!yaml_parser_load(&parser, &extra)) {
        report_yaml_error(src, &parser, text, len);
        ok = false;
    } else {
        yaml_node_t *root = yaml_document_get_root_node(&extra);
        if (root) {
            report(src, root, "more than one YAML document (a config file holds one)");
            ok = false;
        }
        yaml_document_delete(&extra);
    }
    yaml_parser_delete(&parser);
    if (!ok)
        yaml_document_delete(doc);
    return ok;
}

/* Reads a whole file of at most CONFIG_MAX_FILE_BYTES. *text: caller frees. */
static bool read_file(const source *src, const char *path, char **text, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        report_line(src, 0, "cannot open: %s", strerror(errno));
        return false;
    }
    char *data = xcalloc(CONFIG_MAX_FILE_BYTES + 1, 1);
    size_t n = fread(data, 1, CONFIG_MAX_FILE_BYTES + 1, f);
    bool ok = true;
    if (ferror(f)) {
        report_line(src, 0, "cannot read: %s", strerror(errno));
        ok = false;
    } else if (n > CONFIG_MAX_FILE_BYTES) {
        report_line(src, 0, "file is larger than %zu bytes", CONFIG_MAX_FILE_BYTES);
        ok = false;
    }
    fclose(f);
    if (!ok) {
        free(data);
        return false;
    }
    *text = data;
    *len = n;
    return true;
}

static bool is_null_node(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           plain_kind((const char *)n->data.scalar.value) == SK_NULL;
}

static void load_document(const source *src, ogd_config *c, yaml_document_t *doc)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (!root || is_null_node(root))
        return; /* an empty file: defaults */
    if (root->type != YAML_MAPPING_NODE) {
        report(src, root, "expected a mapping of sections at the top level, got a %s",
               root->type == YAML_SEQUENCE_NODE ? "list" : "single value");
        return;
    }
    bool seen[ARRAY_LEN(SECTIONS)] = {false};
    for (yaml_node_pair_t *pair = root->data.mapping.pairs.start;
         pair < root->data.mapping.pairs.top; pair++) {
        yaml_node_t *kn = yaml_document_get_node(doc, pair->key);
        yaml_node_t *vn = yaml_document_get_node(doc, pair->value);
        if (!kn || !vn)
            continue;
        if (kn->type != YAML_SCALAR_NODE) {
            report(src, kn, "expected a section name, got a %s",
                   kn->type == YAML_SEQUENCE_NODE ? "list" : "mapping");
            continue;
        }
        const char *name = (const char *)kn->data.scalar.value;
        int idx = find_section(name);
        char shown[80];
        excerpt(shown, sizeof(shown), name, true);
        if (idx < 0) {
            report(src, kn, "unknown section %s", shown);
            continue;
        }
        if (seen[idx]) {
            report(src, kn, "duplicate section %s", shown);
            continue;
        }
        seen[idx] = true;
        if (is_null_node(vn))
            continue; /* "backup:" with nothing under it: the section is off */
        if (vn->type != YAML_MAPPING_NODE) {
            report(src, vn, "%s: expected a mapping, got a %s", name,
                   vn->type == YAML_SEQUENCE_NODE ? "list" : "single value");
            continue;
        }
        *section_present(c, (size_t)idx) = true;
        c->section_lines[idx] = (int)node_line(kn);
        load_mapping(src, c, &CONFIG_TABLE, name, name, doc, vn, kn);
    }
}

/* ---- public: defaults, load, free ---- */

static void set_env_text(const source *src, void *base, const key_def *k, const char *path,
                         const char *text);

static void apply_defaults(void *base, const key_table *t)
{
    for (size_t i = 0; i < t->count; i++) {
        const key_def *k = &t->keys[i];
        if (!k->def)
            continue;
        errlist e;
        errlist_init(&e);
        source src = {.errs = &e, .var = k->key};
        set_env_text(&src, base, k, k->key, k->def);
        if (e.count) {
            /* A broken table is a bug, not an operator error. */
            fprintf(stderr, "ogd: bad built-in default: %s\n", e.text.data);
            abort();
        }
        buf_free(&e.text);
    }
}

void config_defaults(ogd_config *c)
{
    memset(c, 0, sizeof(*c));
    apply_defaults(c, &CONFIG_TABLE);
}

void config_free(ogd_config *c)
{
    free_table(c, &CONFIG_TABLE);
    free(c->server.host);
    free(c->path);
    memset(c, 0, sizeof(*c));
}

static void load_yaml_text(const source *src, ogd_config *c, const char *text, size_t len)
{
    yaml_document_t doc;
    if (parse_yaml(src, text, len, &doc)) {
        load_document(src, c, &doc);
        yaml_document_delete(&doc);
    }
}

int config_load(ogd_config *c, const char *path, char **errors)
{
    if (errors)
        *errors = NULL;
    if (!path)
        return 0;
    errlist e;
    errlist_init(&e);
    source src = {.errs = &e, .file = path};
    memset(c->section_lines, 0, sizeof(c->section_lines));
    free(c->path);
    c->path = xstrdup(path);
    char *text = NULL;
    size_t len = 0;
    if (read_file(&src, path, &text, &len)) {
        load_yaml_text(&src, c, text, len);
        free(text);
    }
    return errlist_finish(&e, errors);
}

int config_load_text(ogd_config *c, const char *name, const char *text, size_t len, char **errors)
{
    if (errors)
        *errors = NULL;
    errlist e;
    errlist_init(&e);
    source src = {.errs = &e, .file = name};
    memset(c->section_lines, 0, sizeof(c->section_lines));
    free(c->path);
    c->path = xstrdup(name);
    if (len > CONFIG_MAX_FILE_BYTES)
        report_line(&src, 0, "file is larger than %zu bytes", CONFIG_MAX_FILE_BYTES);
    else
        load_yaml_text(&src, c, text, len);
    return errlist_finish(&e, errors);
}

/* ---- environment ---- */

static bool empty_or_null(const char *text)
{
    return !*text || strcmp(text, "null") == 0;
}

/* Sets a key from environment text (also used for the table's defaults). */
static void set_env_text(const source *src, void *base, const key_def *k, const char *path,
                         const char *text)
{
    switch (k->type) {
    case KT_STR: {
        bool null = key_nullable(k) && empty_or_null(text);
        assign_scalar(src, NULL, base, k, path, text, null ? SK_NULL : SK_STR, true);
        return;
    }
    case KT_INT:
    case KT_I64:
    case KT_BOOL:
    case KT_DOUBLE:
        assign_scalar(src, NULL, base, k, path, text, plain_kind(text), false);
        return;
    case KT_PAIR:
    case KT_LIST: {
        while (isspace((unsigned char)*text))
            text++;
        if (*text == '[')
            break; /* a YAML flow list: parsed below */
        /* "a,b": split on commas, trim, drop empty items. */
        char *copy = xstrdup(text);
        item *items = xcalloc(CONFIG_MAX_ITEMS + 1, sizeof(item));
        size_t n = 0;
        char *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (isspace((unsigned char)*tok))
                tok++;
            size_t tl = strlen(tok);
            while (tl && isspace((unsigned char)tok[tl - 1]))
                tok[--tl] = '\0';
            if (!tl)
                continue;
            if (n == CONFIG_MAX_ITEMS) {
                n++;
                break;
            }
            items[n].text = tok;
            items[n].kind = k->type == KT_LIST ? SK_STR : plain_kind(tok);
            n++;
        }
        if (n > CONFIG_MAX_ITEMS)
            report_line(src, 0, "%s: more than %d items", path, CONFIG_MAX_ITEMS);
        else if (k->type == KT_PAIR)
            set_pair(src, NULL, base, k, path, items, n);
        else
            set_list(src, base, k, path, items, n);
        free(items);
        free(copy);
        return;
    }
    case KT_MAP:
    case KT_STRUCT:
        if (empty_or_null(text)) {
            if (k->type == KT_MAP || key_nullable(k)) {
                clear_value(base, k);
                return;
            }
        }
        break;
    }
    /* Structured text: parse it as YAML (JSON is YAML) and load it like a file value. */
    yaml_document_t doc;
    if (!parse_yaml(src, text, strlen(text), &doc))
        return;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root)
        set_node(src, base, k, path, &doc, root);
    else
        report_line(src, 0, "%s: expected %s, got nothing", path, expectation(k));
    yaml_document_delete(&doc);
}

/* Copies n bytes of a variable name in lower case, control bytes as '?'. */
static void lower_name(char *out, const char *name, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        out[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)tolower(ch);
    }
    out[n] = '\0';
}

int config_apply_env(ogd_config *c, char *const *envp, char **errors)
{
    if (errors)
        *errors = NULL;
    errlist e;
    errlist_init(&e);
    for (char *const *ep = envp; ep && *ep; ep++) {
        const char *entry = *ep;
        if (strncmp(entry, "OGD_", 4) != 0)
            continue;
        const char *eq = strchr(entry, '=');
        if (!eq)
            continue;
        const char *sep = strstr(entry + 4, "__");
        if (!sep || sep > eq)
            continue; /* not OGD_<SECTION>__<KEY>: e.g. OGD_CONFIG, not ours */
        char var[128];
        excerpt(var, sizeof(var), entry, false);
        if ((size_t)(eq - entry) < strlen(var))
            var[eq - entry] = '\0';
        source src = {.errs = &e, .var = var};
        char section[64], key[64];
        size_t sl = (size_t)(sep - (entry + 4)), kl = (size_t)(eq - (sep + 2));
        int sidx = -1, kidx = -1;
        if (sl < sizeof(section) && kl < sizeof(key)) {
            lower_name(section, entry + 4, sl);
            lower_name(key, sep + 2, kl);
            sidx = find_section(section);
            if (sidx >= 0)
                kidx = find_key(&CONFIG_TABLE, section, key);
        }
        if (kidx < 0) {
            if (sl >= sizeof(section) || kl >= sizeof(key))
                report_line(&src, 0, "no such setting");
            else if (sidx < 0)
                report_line(&src, 0, "unknown section \"%s\"", section);
            else
                report_line(&src, 0, "unknown key \"%s.%s\"", section, key);
            continue;
        }
        const char *value = eq + 1;
        char path[CONFIG_MAX_PATH];
        snprintf(path, sizeof(path), "%s.%s", section, key);
        if (strlen(value) > CONFIG_MAX_FILE_BYTES) {
            report_line(&src, 0, "%s: value is longer than %zu bytes", path, CONFIG_MAX_FILE_BYTES);
            continue;
        }
        /* a YAML file holds Unicode text only (libyaml refuses other bytes): so does a
         * variable, which keeps every string the struct holds printable by config_dump */
        if (!utf8_valid(value)) {
            report_line(&src, 0, "%s: value is not valid UTF-8", path);
            continue;
        }
        *section_present(c, (size_t)sidx) = true;
        set_env_text(&src, c, &KEYS[kidx], path, value);
    }
    return errlist_finish(&e, errors);
}

/* ---- resolve ---- */

static bool has_text(const char *s)
{
    return s && *s;
}

static void derive_path(char **slot, const char *fmt, const char *dir)
{
    if (has_text(*slot))
        return;
    free(*slot);
    *slot = xprintf(fmt, dir);
}

static bool starts_with(const char *s, const char *prefix)
{
    return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

bool config_url_is_postgresql(const char *url)
{
    return url && (starts_with(url, "postgresql://") || starts_with(url, "postgres://"));
}

/* server.bind -> server.host / server.port. Forms: HOST:PORT, [V6]:PORT, HOST (port 8000). */
static void resolve_bind(const source *src, ogd_config *c)
{
    if (!has_text(c->server.bind)) {
        const char *host = has_text(c->app.host) ? c->app.host : "127.0.0.1";
        int port = c->app.port ? c->app.port : 8000;
        free(c->server.bind);
        if (strchr(host, ':') && host[0] != '[')
            c->server.bind = xprintf("[%s]:%d", host, port);
        else
            c->server.bind = xprintf("%s:%d", host, port);
    }
    const char *b = c->server.bind;
    const char *host = b, *port_text = NULL;
    size_t host_len = 0;
    if (b[0] == '[') {
        const char *close = strchr(b, ']');
        if (close && close[1] == ':') {
            host = b + 1;
            host_len = (size_t)(close - host);
            port_text = close + 2;
        }
    } else {
        const char *colon = strchr(b, ':');
        if (!colon) {
            host_len = strlen(b);
            port_text = "8000";
        } else if (!strchr(colon + 1, ':')) {
            host_len = (size_t)(colon - b);
            port_text = colon + 1;
        }
    }
    int64_t port = 0;
    char shown[80];
    excerpt(shown, sizeof(shown), b, true);
    if (!port_text || host_len == 0 || !lex_int(port_text) || !parse_i64(port_text, &port)) {
        report_line(src, 0, "server.bind: expected HOST:PORT or [IPV6]:PORT, got %s", shown);
        return;
    }
    if (port < 1 || port > 65535) {
        report_line(src, 0, "server.bind: port %lld is out of range (1..65535)", (long long)port);
        return;
    }
    free(c->server.host);
    c->server.host = xstrndup(host, host_len);
    c->server.port = (int)port;
}

static void check_ranges(const source *src, const ogd_config *c)
{
    for (size_t i = 0; i < ARRAY_LEN(KEYS); i++) {
        const key_def *k = &KEYS[i];
        char path[CONFIG_MAX_PATH];
        snprintf(path, sizeof(path), "%s.%s", k->section, k->key);
        const void *p = cfield_at(c, k);
        int64_t v[2];
        size_t n = 0;
        if (k->type == KT_INT) {
            v[n++] = *(const int *)p;
        } else if (k->type == KT_I64) {
            v[n++] = *(const int64_t *)p;
        } else if (k->type == KT_PAIR) {
            v[n++] = ((const int *)p)[0];
            v[n++] = ((const int *)p)[1];
        } else if (k->type == KT_DOUBLE) {
            double d = *(const double *)p;
            if (!isfinite(d) || d < k->dlo || d > k->dhi)
                report_line(src, 0, "%s: %g is out of range (%g..%g)", path, d, k->dlo, k->dhi);
        } else if (k->type == KT_STR && k->choices) {
            const char *s = *(char *const *)p;
            if (!s || !text_is(s, k->choices))
                report_choices(src, NULL, path, k, s ? s : "");
        }
        for (size_t j = 0; j < n; j++) {
            if (v[j] == 0 && key_nullable(k))
                continue;
            if (v[j] < k->lo || v[j] > k->hi)
                report_line(src, 0, "%s: %lld is out of range (%lld..%lld)", path, (long long)v[j],
                            (long long)k->lo, (long long)k->hi);
        }
    }
}

static void check_required(const source *src, ogd_config *c)
{
    for (size_t s = 0; s < ARRAY_LEN(SECTIONS); s++) {
        if (!*section_present(c, s))
            continue;
        source at = *src;
        at.file = c->section_lines[s] ? c->path : NULL;
        for (size_t i = 0; i < ARRAY_LEN(KEYS); i++) {
            const key_def *k = &KEYS[i];
            if (!(k->flags & KF_REQUIRED) || strcmp(k->section, SECTIONS[s].name) != 0)
                continue;
            bool set = k->type == KT_STR ? has_text(*(char *const *)cfield_at(c, k))
                                         : true; /* only strings are required today */
            if (!set)
                report_line(&at, (size_t)c->section_lines[s], "%s.%s: required key is missing",
                            k->section, k->key);
        }
    }
}

/* An origin is scheme://host[:port] with nothing after it. */
static bool origin_ok(const char *o)
{
    const char *rest = starts_with(o, "https://")  ? o + 8
                       : starts_with(o, "http://") ? o + 7
                                                   : NULL;
    if (!rest || !*rest)
        return false;
    for (const char *p = rest; *p; p++)
        if (*p == '/' || *p == '?' || *p == '#' || isspace((unsigned char)*p) ||
            (unsigned char)*p < 0x20)
            return false;
    return true;
}

/* A time zone name the C library can load: UTC, or a file under /usr/share/zoneinfo. */
static bool timezone_ok(const char *tz)
{
    if (strcmp(tz, "UTC") == 0)
        return true;
    if (!*tz || tz[0] == '/' || tz[0] == ':' || strstr(tz, "..") || strlen(tz) > 100)
        return false;
    for (const char *p = tz; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("/_+-", *p))
            return false;
    char path[160];
    snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", tz);
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool iso_date_ok(const char *s)
{
    /* YYYY-MM-DD, optionally followed by a time: the experiments module parses the rest. */
    for (int i = 0; i < 10; i++) {
        bool want_dash = i == 4 || i == 7;
        if (want_dash ? s[i] != '-' : !isdigit((unsigned char)s[i]))
            return false;
    }
    return s[10] == '\0' || s[10] == 'T' || s[10] == 't' || s[10] == ' ';
}

int config_resolve(ogd_config *c, char **errors)
{
    if (errors)
        *errors = NULL;
    errlist e;
    errlist_init(&e);
    source src = {.errs = &e};

    /* data_dir and the paths derived from it */
    if (!has_text(c->server.data_dir)) {
        report_line(&src, 0, "server.data_dir: must not be empty");
    } else {
        char *d = c->server.data_dir;
        size_t len = strlen(d);
        while (len > 1 && d[len - 1] == '/')
            d[--len] = '\0';
        derive_path(&c->database.url, "sqlite://%s/ogd.sqlite3", d);
        derive_path(&c->echo.url, "file://%s/objects", d);
        derive_path(&c->app.maintenance_file, "%s/maintenance.json", d);
        derive_path(&c->app.scheduled_maintenance_file, "%s/scheduled_maintenance.json", d);
        if (!c->auth.present) { /* generated on first start (auth/setup.h) */
            derive_path(&c->auth.private_key_path, "%s/jwt_rsa", d);
            derive_path(&c->auth.public_key_path, "%s/jwt_rsa.pub", d);
        }
    }
    if (c->database.url) {
        const char *u = c->database.url;
        bool sqlite = starts_with(u, "sqlite://") && u[9];
        if (!sqlite && !config_url_is_postgresql(u))
            report_line(&src, 0, "database.url: expected sqlite://PATH or postgresql://...");
    }
    if (c->echo.url) {
        const char *u = c->echo.url;
        bool s3 = starts_with(u, "http://") || starts_with(u, "https://");
        if (!(starts_with(u, "file://") && u[7]) && !s3) {
            char shown[80];
            excerpt(shown, sizeof(shown), u, true);
            report_line(&src, 0, "echo.url: expected file://DIR, http://... or https://..., got %s",
                        shown);
        }
        if (s3) {
            if (!has_text(c->echo.access_key))
                report_line(&src, 0, "echo.access_key: required when echo.url is http(s)");
            if (!has_text(c->echo.secret_key))
                report_line(&src, 0, "echo.secret_key: required when echo.url is http(s)");
            if (!has_text(c->echo.bucket_name))
                report_line(&src, 0, "echo.bucket_name: required when echo.url is http(s)");
        }
    }

    resolve_bind(&src, c);
    if (c->server.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->server.workers = n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
    }

    /* url_prefix: "" or "/x"; trailing slashes dropped ("/" alone means none). */
    if (c->app.url_prefix) {
        char *u = c->app.url_prefix;
        size_t len = strlen(u);
        while (len && u[len - 1] == '/')
            u[--len] = '\0';
        if (len && u[0] != '/')
            report_line(&src, 0, "app.url_prefix: must be empty or start with \"/\"");
    }
    /* FedID: a template without {username} would bind every user as one DN. */
    if (c->auth.fedid_bind_dn && !strstr(c->auth.fedid_bind_dn, "{username}"))
        report_line(&src, 0, "auth.fedid_bind_dn: must contain {username}");
    if (c->auth.fedid_server_url && strncasecmp(c->auth.fedid_server_url, "ldap://", 7) != 0 &&
        strncasecmp(c->auth.fedid_server_url, "ldaps://", 8) != 0)
        report_line(&src, 0, "auth.fedid_server_url: expected ldap://HOST[:PORT] or ldaps://...");
    for (size_t i = 0; i < c->server.forwarded_allow_ips_count; i++) {
        ip_net net;
        if (!ip_net_parse(c->server.forwarded_allow_ips[i], &net)) {
            char shown[80];
            excerpt(shown, sizeof(shown), c->server.forwarded_allow_ips[i], true);
            report_line(&src, 0,
                        "server.forwarded_allow_ips[%zu]: expected an IP address or a network "
                        "like 10.0.0.0/8, got %s",
                        i, shown);
        }
    }
    for (size_t i = 0; i < c->app.cors_origins_count; i++) {
        if (!origin_ok(c->app.cors_origins[i])) {
            char shown[80];
            excerpt(shown, sizeof(shown), c->app.cors_origins[i], true);
            report_line(&src, 0,
                        "app.cors_origins[%zu]: expected an origin like https://host[:port], "
                        "got %s",
                        i, shown);
        }
    }
    if (c->experiments.first_scheduler_contact_start_date &&
        !iso_date_ok(c->experiments.first_scheduler_contact_start_date))
        report_line(&src, 0,
                    "experiments.first_scheduler_contact_start_date: expected an "
                    "ISO 8601 date-time like 2019-01-02T00:00:00Z");
    {
        cron_expr cron;
        char why[160];
        const char *freq = c->experiments.scheduler_background_frequency;
        if (freq && cron_parse(freq, &cron, why, sizeof(why)) != 0)
            report_line(&src, 0, "experiments.scheduler_background_frequency: %s", why);
        const char *tz = c->experiments.scheduler_background_timezone;
        struct stat zi;
        bool have_zones = stat("/usr/share/zoneinfo", &zi) == 0 && S_ISDIR(zi.st_mode);
        if (tz && !have_zones && c->experiments.scheduler_background_task_enabled)
            report_line(&src, 0,
                        "experiments.scheduler_background_timezone: no time zone data in "
                        "/usr/share/zoneinfo (install tzdata)");
        else if (tz && have_zones && !timezone_ok(tz))
            report_line(&src, 0, "scheduler_background_timezone is not a valid timezone: %.80s",
                        tz);
    }
    if (c->experiments.scheduler_background_task_enabled) {
        const struct {
            const char *name;
            const char *value;
        } need[] = {
            {"first_scheduler_contact_start_date",
             c->experiments.first_scheduler_contact_start_date},
            {"user_office_rest_api_url", c->experiments.user_office_rest_api_url},
            {"username", c->experiments.username},
            {"password", c->experiments.password},
            {"scheduler_wsdl_url", c->experiments.scheduler_wsdl_url},
        };
        for (size_t i = 0; i < ARRAY_LEN(need); i++)
            if (!has_text(need[i].value))
                report_line(&src, 0,
                            "experiments.%s: required when "
                            "experiments.scheduler_background_task_enabled is true",
                            need[i].name);
    }

    check_ranges(&src, c);
    check_required(&src, c);
    return errlist_finish(&e, errors);
}

/* ---- dump ---- */

/* A double-quoted YAML scalar. Characters YAML does not allow raw in a file (C0 and C1
 * controls, DEL, U+FFFE, U+FFFF) are escaped, so the dump always loads again. Strings here
 * are valid UTF-8 (the file and the environment are checked); a stray byte would be
 * escaped as the code point of its value. */
static void dump_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        uint32_t cp;
        size_t n = utf8_next(p, &cp);
        if (n == 0) {
            cp = *p; /* read back as U+00xx */
            n = 1;
        }
        if (cp == '"' || cp == '\\')
            fprintf(f, "\\%c", (char)cp);
        else if (cp < 0x20 || (cp >= 0x7f && cp <= 0xff && n == 1) || (cp >= 0x80 && cp <= 0x9f))
            fprintf(f, "\\x%02x", (unsigned)cp);
        else if (cp == 0xFFFE || cp == 0xFFFF)
            fprintf(f, "\\u%04x", (unsigned)cp);
        else
            fwrite(p, 1, n, f);
        p += n;
    }
    fputc('"', f);
}

/* Prints a URL with the password of its user part and any password= parameter masked. */
static void dump_url_masked(FILE *f, const char *url)
{
    char *copy = xstrdup(url);
    buf_t out;
    buf_init(&out, BUF_UNLIMITED);
    const char *scheme_end = strstr(copy, "://");
    const char *p = copy;
    if (scheme_end) {
        const char *auth = scheme_end + 3;
        size_t auth_len = strcspn(auth, "/?#");
        const char *at = memchr(auth, '@', auth_len);
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon) {
            buf_append(&out, copy, (size_t)(colon + 1 - copy));
            buf_puts(&out, "***");
            p = at;
        }
    }
    while (*p) {
        const char *hit = strstr(p, "password=");
        if (!hit) {
            buf_puts(&out, p);
            break;
        }
        hit += strlen("password=");
        buf_append(&out, p, (size_t)(hit - p));
        buf_puts(&out, "***");
        p = hit + strcspn(hit, "&# ");
    }
    dump_string(f, out.data ? out.data : "");
    buf_free(&out);
    free(copy);
}

static void dump_double(FILE *f, double v)
{
    char text[64];
    snprintf(text, sizeof(text), "%.15g", v);
    if (strtod(text, NULL) != v)
        snprintf(text, sizeof(text), "%.17g", v);
    fputs(text, f);
}

static void dump_table(FILE *f, const void *base, const key_table *t, const char *section,
                       int indent);

static void dump_key(FILE *f, const void *base, const key_def *k, int indent)
{
    const void *p = cfield_at(base, k);
    fprintf(f, "%*s%s:", indent, "", k->key);
    switch (k->type) {
    case KT_STR: {
        const char *s = *(char *const *)p;
        fputc(' ', f);
        if (!s)
            fputs("null", f);
        else if ((k->flags & KF_SECRET) && *s)
            fputs("\"***\"", f);
        else if (k->flags & KF_URL_SECRET)
            dump_url_masked(f, s);
        else
            dump_string(f, s);
        fputc('\n', f);
        break;
    }
    case KT_INT:
        if (*(const int *)p == 0 && key_nullable(k))
            fputs(" null\n", f);
        else
            fprintf(f, " %d\n", *(const int *)p);
        break;
    case KT_I64:
        fprintf(f, " %lld\n", (long long)*(const int64_t *)p);
        break;
    case KT_BOOL:
        fprintf(f, " %s\n", *(const bool *)p ? "true" : "false");
        break;
    case KT_DOUBLE:
        fputc(' ', f);
        dump_double(f, *(const double *)p);
        fputc('\n', f);
        break;
    case KT_PAIR:
        fprintf(f, " [%d, %d]\n", ((const int *)p)[0], ((const int *)p)[1]);
        break;
    case KT_LIST: {
        char *const *items = *(char **const *)p;
        size_t n = *(const size_t *)((const char *)base + k->count_offset);
        fputs(n ? "\n" : " []\n", f);
        for (size_t i = 0; i < n; i++) {
            fprintf(f, "%*s- ", indent + 2, "");
            dump_string(f, items[i]);
            fputc('\n', f);
        }
        break;
    }
    case KT_MAP: {
        const char *items = *(const char *const *)p;
        size_t n = *(const size_t *)((const char *)base + k->count_offset);
        fputs(n ? "\n" : " {}\n", f);
        for (size_t i = 0; i < n; i++) {
            const void *el = items + i * k->sub->size;
            fprintf(f, "%*s", indent + 2, "");
            dump_string(f, *(char *const *)el);
            fputs(":\n", f);
            dump_table(f, el, k->sub, NULL, indent + 4);
        }
        break;
    }
    case KT_STRUCT: {
        const void *el = *(const void *const *)p;
        fputs(el ? "\n" : " null\n", f);
        if (el)
            dump_table(f, el, k->sub, NULL, indent + 2);
        break;
    }
    }
}

static void dump_table(FILE *f, const void *base, const key_table *t, const char *section,
                       int indent)
{
    for (size_t i = 0; i < t->count; i++)
        if (!section || strcmp(t->keys[i].section, section) == 0)
            dump_key(f, base, &t->keys[i], indent);
}

void config_dump(const ogd_config *c, FILE *f)
{
    fputs("# ogd effective configuration; secrets are shown as \"***\"\n", f);
    for (size_t s = 0; s < ARRAY_LEN(SECTIONS); s++) {
        const char *name = SECTIONS[s].name;
        if (strcmp(name, "backup") == 0 && !c->backup.present) {
            fputs("backup: null\n", f);
            continue;
        }
        fprintf(f, "%s:\n", name);
        dump_table(f, c, &CONFIG_TABLE, name, 2);
        if (strcmp(name, "server") == 0 && c->server.host) {
            /* a comment must be printable too: an odd host (from app.host) is escaped */
            const char *h = c->server.host;
            size_t plain = 0;
            while (h[plain] >= 0x20 && h[plain] < 0x7f)
                plain++;
            fputs("  # resolved: host ", f);
            if (h[plain])
                dump_string(f, h);
            else
                fputs(h, f);
            fprintf(f, ", port %d\n", c->server.port);
        }
    }
}
