/*
 * config.c: see config.h. One table (KEYS) describes every key; the YAML loader, the
 * environment loader, the defaults and the dump all walk it.
 *
 * YAML typing follows the reference's strictness: a plain scalar is resolved as YAML 1.1
 * core types (null, true/false, integer, float, else string); a quoted scalar is always a
 * string. So `port: "8000"` is not an integer and `reload: yes` is not a boolean.
 */
#include "config/config.h"

#include "util/buf.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define CONFIG_MAX_FILE (1u << 20)
#define CONFIG_MAX_LIST 1000

typedef enum {
    T_STR,       /* string */
    T_STR_NULL,  /* string or null */
    T_SECRET,    /* string, masked in dumps */
    T_INT,       /* integer */
    T_INT_NULL,  /* integer or null (null stored as 0) */
    T_BOOL,
    T_BOOL_NULL, /* bool or null (null = false) */
    T_DOUBLE,
    T_DATETIME,  /* YAML timestamp or string, kept as text */
    T_PAIR,      /* [int, int] */
    T_LIST,      /* list of strings */
    T_MAP,       /* a mapping, kept as JSON text */
    T_MAP_NULL,  /* a mapping or null */
} key_type;

typedef struct key_def {
    const char *section;
    const char *key;
    key_type type;
    size_t offset;
    size_t count_offset; /* T_LIST: where the count lives */
    const char *def;     /* default as text ("" = none / empty) */
    bool required;       /* required when its section is present in the file */
} key_def;

#define O(f) offsetof(ogd_config, f)
#define K(sec, key, type, field, def) {sec, key, type, O(field), 0, def, false}
#define R(sec, key, type, field, def) {sec, key, type, O(field), 0, def, true}
#define L(sec, key, field, def) {sec, key, T_LIST, O(field), O(field##_count), def, false}

static const key_def KEYS[] = {
    K("server", "bind", T_STR_NULL, server.bind, ""),
    K("server", "workers", T_INT, server.workers, "0"),
    K("server", "worker_connections", T_INT, server.worker_connections, "1000"),
    K("server", "max_requests", T_INT, server.max_requests, "0"),
    K("server", "max_requests_jitter", T_INT, server.max_requests_jitter, "0"),
    K("server", "timeout", T_INT, server.timeout, "30"),
    K("server", "graceful_timeout", T_INT, server.graceful_timeout, "30"),
    K("server", "keepalive", T_INT, server.keepalive, "5"),
    K("server", "max_header_bytes", T_INT, server.max_header_bytes, "16384"),
    K("server", "max_body_bytes", T_INT, server.max_body_bytes, "1048576"),
    K("server", "max_upload_bytes", T_INT, server.max_upload_bytes, "536870912"),
    K("server", "header_timeout", T_INT, server.header_timeout, "10"),
    K("server", "body_timeout", T_INT, server.body_timeout, "60"),
    K("server", "data_dir", T_STR, server.data_dir, "./var"),
    K("server", "log_file", T_STR_NULL, server.log_file, ""),
    K("server", "log_level", T_STR, server.log_level, "info"),

    K("database", "url", T_SECRET, database.url, ""),
    K("database", "pool_size", T_INT, database.pool_size, "4"),

    K("app", "host", T_STR_NULL, app.host, ""),
    K("app", "port", T_INT_NULL, app.port, "0"),
    K("app", "reload", T_BOOL_NULL, app.reload, "false"),
    K("app", "url_prefix", T_STR, app.url_prefix, ""),
    K("app", "maintenance_file", T_STR, app.maintenance_file, ""),
    K("app", "scheduled_maintenance_file", T_STR, app.scheduled_maintenance_file, ""),
    L("app", "cors_origins", app.cors_origins, ""),

    K("images", "thumbnail_size", T_PAIR, images.thumbnail_size, "50,50"),
    K("images", "default_colour_map", T_STR, images.default_colour_map, "viridis"),
    K("images", "colourbar_height_pixels", T_INT, images.colourbar_height_pixels, "16"),
    K("images", "preferred_colour_map_pref_name", T_STR, images.preferred_colour_map_pref_name,
      "PREFERRED_COLOUR_MAP"),
    K("float_images", "thumbnail_size", T_PAIR, float_images.thumbnail_size, "50,50"),
    K("float_images", "default_colour_map", T_STR, float_images.default_colour_map, "bwr"),
    K("float_images", "preferred_colour_map_pref_name", T_STR,
      float_images.preferred_colour_map_pref_name, "PREFERRED_FLOAT_COLOUR_MAP"),
    K("waveforms", "thumbnail_size", T_PAIR, waveforms.thumbnail_size, "100,100"),
    K("waveforms", "line_width", T_DOUBLE, waveforms.line_width, "0.3"),
    K("vectors", "thumbnail_size", T_PAIR, vectors.thumbnail_size, "100,100"),
    K("vectors", "skip_pref_name", T_STR, vectors.skip_pref_name, "VECTOR_SKIP"),
    K("vectors", "limit_pref_name", T_STR, vectors.limit_pref_name, "VECTOR_LIMIT"),

    K("echo", "url", T_STR, echo.url, ""),
    K("echo", "username", T_STR, echo.username, ""),
    K("echo", "access_key", T_SECRET, echo.access_key, ""),
    K("echo", "secret_key", T_SECRET, echo.secret_key, ""),
    K("echo", "bucket_name", T_STR, echo.bucket_name, ""),
    K("echo", "region", T_STR, echo.region, "us-east-1"),
    K("echo", "expiry_days", T_INT_NULL, echo.expiry_days, "0"),
    K("echo", "cache_maxsize", T_INT, echo.cache_maxsize, "128"),
    K("echo", "cache_max_bytes", T_INT, echo.cache_max_bytes, "268435456"),
    K("echo", "max_connections", T_INT, echo.max_connections, "128"),
    K("echo", "request_timeout", T_INT, echo.request_timeout, "30"),
    K("echo", "max_retries", T_INT, echo.max_retries, "3"),

    K("mongodb", "mongodb_url", T_SECRET, mongodb.mongodb_url, ""),
    K("mongodb", "database_name", T_STR, mongodb.database_name, ""),
    K("mongodb", "max_documents", T_INT, mongodb.max_documents, "1000"),

    R("auth", "private_key_path", T_STR, auth.private_key_path, ""),
    R("auth", "public_key_path", T_STR, auth.public_key_path, ""),
    K("auth", "jwt_algorithm", T_STR, auth.jwt_algorithm, "RS256"),
    K("auth", "access_token_validity_mins", T_INT, auth.access_token_validity_mins, "60"),
    K("auth", "refresh_token_validity_days", T_INT, auth.refresh_token_validity_days, "7"),
    K("auth", "fedid_server_url", T_STR, auth.fedid_server_url, ""),
    K("auth", "fedid_server_ldap_realm", T_STR, auth.fedid_server_ldap_realm, ""),
    K("auth", "oidc_providers", T_MAP, auth.oidc_providers_json, "{}"),

    K("experiments", "first_scheduler_contact_start_date", T_DATETIME,
      experiments.first_scheduler_contact_start_date, ""),
    K("experiments", "scheduler_background_task_enabled", T_BOOL,
      experiments.scheduler_background_task_enabled, "false"),
    K("experiments", "scheduler_background_frequency", T_STR,
      experiments.scheduler_background_frequency, "0 9 * * 1"),
    K("experiments", "scheduler_background_timezone", T_STR,
      experiments.scheduler_background_timezone, "Europe/London"),
    K("experiments", "scheduler_background_retry_mins", T_DOUBLE,
      experiments.scheduler_background_retry_mins, "20"),
    K("experiments", "user_office_rest_api_url", T_STR, experiments.user_office_rest_api_url, ""),
    K("experiments", "username", T_STR, experiments.username, ""),
    K("experiments", "password", T_SECRET, experiments.password, ""),
    K("experiments", "scheduler_wsdl_url", T_STR, experiments.scheduler_wsdl_url, ""),
    L("experiments", "instrument_names", experiments.instrument_names, ""),
    K("experiments", "worker_file_path", T_STR, experiments.worker_file_path, ""),

    K("export", "max_filesize_bytes", T_INT, export_.max_filesize_bytes, "1073741824"),
    K("export", "max_concurrency", T_INT, export_.max_concurrency, "256"),
    K("export", "max_buffer_bytes", T_INT, export_.max_buffer_bytes, "67108864"),

    K("observability", "environment", T_STR, observability.environment, ""),
    K("observability", "secret_key", T_SECRET, observability.secret_key, ""),

    R("backup", "cache_directory", T_STR, backup.cache_directory, ""),
    K("backup", "warning_mark_percent", T_INT, backup.warning_mark_percent, "50"),
    R("backup", "target_url", T_STR, backup.target_url, ""),
    R("backup", "copy_cron_string", T_STR, backup.copy_cron_string, ""),
    K("backup", "timezone_str", T_STR, backup.timezone_str, "Europe/London"),
    R("backup", "worker_file_path", T_STR, backup.worker_file_path, ""),
    K("backup", "auto_remove", T_STR, backup.auto_remove, "backed_up"),
    K("backup", "keytab_file_path", T_STR_NULL, backup.keytab_file_path, ""),
    K("backup", "mail", T_MAP_NULL, backup.mail_json, ""),
};
#define NKEYS (sizeof(KEYS) / sizeof(KEYS[0]))

static const char *const SECTIONS[] = {"server",      "database", "app",       "images",
                                       "float_images", "waveforms", "vectors",  "echo",
                                       "mongodb",     "auth",     "experiments", "export",
                                       "observability", "backup"};

static void *field(ogd_config *c, const key_def *k)
{
    return (char *)c + k->offset;
}

static void error_add(buf_t *errs, const char *file, long line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void error_add(buf_t *errs, const char *file, long line, const char *fmt, ...)
{
    if (errs->len)
        buf_putc(errs, '\n');
    if (file && line > 0)
        buf_printf(errs, "%s:%ld: ", file, line);
    else if (file)
        buf_printf(errs, "%s: ", file);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(errs, fmt, ap);
    va_end(ap);
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static void clear_value(ogd_config *c, const key_def *k)
{
    void *p = field(c, k);
    switch (k->type) {
    case T_STR:
    case T_STR_NULL:
    case T_SECRET:
    case T_DATETIME:
    case T_MAP:
    case T_MAP_NULL:
        free(*(char **)p);
        *(char **)p = NULL;
        break;
    case T_LIST: {
        size_t *count = (size_t *)((char *)c + k->count_offset);
        free_list(*(char ***)p, *count);
        *(char ***)p = NULL;
        *count = 0;
        break;
    }
    default:
        break;
    }
}

/* ---- scalar typing ---- */

static bool is_null_text(const char *s)
{
    return !*s || strcmp(s, "~") == 0 || strcasecmp(s, "null") == 0;
}

static bool parse_int_text(const char *s, int64_t *out)
{
    if (!*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool parse_double_text(const char *s, double *out)
{
    if (!*s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool parse_bool_text(const char *s, bool *out)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0) {
        *out = false;
        return true;
    }
    return false;
}

/* What a plain YAML scalar is. */
typedef enum { S_NULL, S_BOOL, S_INT, S_FLOAT, S_STRING } scalar_kind;

static scalar_kind plain_kind(const char *s)
{
    int64_t i;
    double d;
    bool b;
    if (is_null_text(s))
        return S_NULL;
    if (parse_bool_text(s, &b))
        return S_BOOL;
    if (parse_int_text(s, &i))
        return S_INT;
    if (parse_double_text(s, &d) && strpbrk(s, ".eE"))
        return S_FLOAT;
    return S_STRING;
}

static const char *kind_name(scalar_kind k)
{
    static const char *const names[] = {"null", "a boolean", "an integer", "a number",
                                        "a string"};
    return names[k];
}

/* Sets a scalar-typed key from text. quoted: the YAML scalar was quoted (or the text comes
 * from the environment, where everything is text: then pass env=true). Returns NULL or a
 * message. */
static const char *set_scalar(ogd_config *c, const key_def *k, const char *text, bool quoted,
                              bool env, char *msg, size_t msglen)
{
    void *p = field(c, k);
    scalar_kind kind = quoted ? S_STRING : plain_kind(text);
    if (env) {
        /* Environment values are text; take them as the key's type when they parse. */
        kind = plain_kind(text);
        if (k->type == T_STR || k->type == T_SECRET || k->type == T_DATETIME ||
            (k->type == T_STR_NULL && kind != S_NULL))
            kind = S_STRING;
    }
    switch (k->type) {
    case T_STR:
    case T_SECRET:
    case T_STR_NULL:
    case T_DATETIME:
        if (kind == S_NULL && k->type == T_STR_NULL) {
            clear_value(c, k);
            return NULL;
        }
        if (kind != S_STRING && !(k->type == T_DATETIME && !quoted)) {
            snprintf(msg, msglen, "expected a string, got %s \"%.60s\"", kind_name(kind), text);
            return msg;
        }
        clear_value(c, k);
        *(char **)p = strdup(text);
        return NULL;
    case T_INT:
    case T_INT_NULL:
        if (kind == S_NULL && k->type == T_INT_NULL) {
            *(int64_t *)p = 0;
            return NULL;
        }
        if (kind != S_INT || !parse_int_text(text, (int64_t *)p)) {
            snprintf(msg, msglen, "expected an integer, got %s \"%.60s\"", kind_name(kind),
                     text);
            return msg;
        }
        return NULL;
    case T_BOOL:
    case T_BOOL_NULL:
        if (kind == S_NULL && k->type == T_BOOL_NULL) {
            *(bool *)p = false;
            return NULL;
        }
        if (kind != S_BOOL || !parse_bool_text(text, (bool *)p)) {
            snprintf(msg, msglen, "expected true or false, got %s \"%.60s\"", kind_name(kind),
                     text);
            return msg;
        }
        return NULL;
    case T_DOUBLE:
        if ((kind != S_INT && kind != S_FLOAT) || !parse_double_text(text, (double *)p)) {
            snprintf(msg, msglen, "expected a number, got %s \"%.60s\"", kind_name(kind), text);
            return msg;
        }
        return NULL;
    default:
        snprintf(msg, msglen, "expected %s, got a scalar \"%.60s\"",
                 k->type == T_PAIR   ? "a list of two integers"
                 : k->type == T_LIST ? "a list of strings"
                                     : "a mapping",
                 text);
        return msg;
    }
}

/* "a,b" / "[a, b]" text for pairs and lists (defaults and environment values). */
static int split_list(const char *text, char ***out, size_t *n)
{
    char *copy = strdup(text);
    if (!copy)
        return -ENOMEM;
    char *s = copy;
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '[') {
        s++;
        char *close = strrchr(s, ']');
        if (close)
            *close = '\0';
    }
    char **items = NULL;
    size_t count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok))
            tok++;
        size_t len = strlen(tok);
        while (len && isspace((unsigned char)tok[len - 1]))
            tok[--len] = '\0';
        if (len >= 2 && (tok[0] == '"' || tok[0] == '\'') && tok[len - 1] == tok[0]) {
            tok[len - 1] = '\0';
            tok++;
        }
        if (!*tok || count >= CONFIG_MAX_LIST)
            continue;
        char **n2 = realloc(items, (count + 1) * sizeof(*items));
        if (!n2)
            break;
        items = n2;
        items[count++] = strdup(tok);
    }
    free(copy);
    *out = items;
    *n = count;
    return 0;
}

static const char *set_from_text(ogd_config *c, const key_def *k, const char *text, bool env,
                                 char *msg, size_t msglen)
{
    void *p = field(c, k);
    if (k->type == T_PAIR || k->type == T_LIST) {
        char **items;
        size_t n;
        if (split_list(text, &items, &n) != 0)
            return "out of memory";
        if (k->type == T_LIST) {
            clear_value(c, k);
            *(char ***)p = items;
            *(size_t *)((char *)c + k->count_offset) = n;
            return NULL;
        }
        int64_t v[2];
        bool ok = n == 2 && parse_int_text(items[0], &v[0]) && parse_int_text(items[1], &v[1]);
        free_list(items, n);
        if (!ok) {
            snprintf(msg, msglen, "expected a list of two integers, got \"%.60s\"", text);
            return msg;
        }
        ((int64_t *)p)[0] = v[0];
        ((int64_t *)p)[1] = v[1];
        return NULL;
    }
    if (k->type == T_MAP || k->type == T_MAP_NULL) {
        if (k->type == T_MAP_NULL && is_null_text(text)) {
            clear_value(c, k);
            return NULL;
        }
        json_error_t e;
        json_t *j = json_loads(text, 0, &e);
        if (!json_is_object(j)) {
            json_decref(j);
            snprintf(msg, msglen, "expected a mapping (as JSON in the environment)");
            return msg;
        }
        json_decref(j);
        clear_value(c, k);
        *(char **)p = strdup(text);
        return NULL;
    }
    return set_scalar(c, k, text, false, env, msg, msglen);
}

void config_defaults(ogd_config *c)
{
    memset(c, 0, sizeof(*c));
    char msg[200];
    for (size_t i = 0; i < NKEYS; i++) {
        const key_def *k = &KEYS[i];
        if (!*k->def)
            continue;
        set_from_text(c, k, k->def, true, msg, sizeof(msg));
    }
}

void config_free(ogd_config *c)
{
    for (size_t i = 0; i < NKEYS; i++)
        clear_value(c, &KEYS[i]);
    free(c->server.host);
    c->server.host = NULL;
}

/* ---- YAML ---- */

static long node_line(const yaml_node_t *n)
{
    return (long)n->start_mark.line + 1;
}

static const char *scalar_text(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static bool scalar_quoted(const yaml_node_t *n)
{
    return n->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
           n->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
}

/* Converts a YAML node to JSON (for mappings kept as JSON text). */
static json_t *node_json(yaml_document_t *doc, yaml_node_t *n, int depth)
{
    if (!n || depth > 16)
        return json_null();
    if (n->type == YAML_SCALAR_NODE) {
        const char *t = scalar_text(n);
        if (scalar_quoted(n))
            return json_string(t);
        int64_t i = 0;
        double d = 0;
        bool b = false;
        switch (plain_kind(t)) {
        case S_NULL:
            return json_null();
        case S_BOOL:
            parse_bool_text(t, &b);
            return json_boolean(b);
        case S_INT:
            parse_int_text(t, &i);
            return json_integer(i);
        case S_FLOAT:
            parse_double_text(t, &d);
            return json_real(d);
        default:
            return json_string(t);
        }
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        json_t *a = json_array();
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             it < n->data.sequence.items.top; it++)
            json_array_append_new(a, node_json(doc, yaml_document_get_node(doc, *it), depth + 1));
        return a;
    }
    json_t *o = json_object();
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key);
        if (kn && kn->type == YAML_SCALAR_NODE)
            json_object_set_new(o, scalar_text(kn),
                                node_json(doc, yaml_document_get_node(doc, p->value), depth + 1));
    }
    return o;
}

static const char *const OIDC_KEYS[] = {"display_name", "configuration_url", "client_id",
                                        "verify_cert",  "mechanism",         "username_claim"};
static const char *const MAIL_KEYS[] = {"host", "to_addrs", "from_addr"};

static void set_node(ogd_config *c, const key_def *k, yaml_document_t *doc, yaml_node_t *v,
                     const char *file, buf_t *errs)
{
    char msg[256];
    long line = node_line(v);
    void *p = field(c, k);
    const char *problem = NULL;
    if (v->type == YAML_SCALAR_NODE) {
        if ((k->type == T_MAP_NULL || k->type == T_STR_NULL || k->type == T_INT_NULL ||
             k->type == T_BOOL_NULL) &&
            !scalar_quoted(v) && is_null_text(scalar_text(v))) {
            clear_value(c, k);
            if (k->type == T_INT_NULL)
                *(int64_t *)p = 0;
            return;
        }
        problem = set_scalar(c, k, scalar_text(v), scalar_quoted(v), false, msg, sizeof(msg));
    } else if (v->type == YAML_SEQUENCE_NODE && (k->type == T_PAIR || k->type == T_LIST)) {
        size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        if (n > CONFIG_MAX_LIST) {
            problem = "list too long";
        } else if (k->type == T_PAIR) {
            int64_t vals[2];
            bool ok = n == 2;
            for (size_t i = 0; ok && i < 2; i++) {
                yaml_node_t *it = yaml_document_get_node(doc, v->data.sequence.items.start[i]);
                ok = it && it->type == YAML_SCALAR_NODE && !scalar_quoted(it) &&
                     plain_kind(scalar_text(it)) == S_INT &&
                     parse_int_text(scalar_text(it), &vals[i]);
            }
            if (ok) {
                ((int64_t *)p)[0] = vals[0];
                ((int64_t *)p)[1] = vals[1];
            } else {
                problem = "expected a list of two integers";
            }
        } else {
            char **items = calloc(n ? n : 1, sizeof(char *));
            size_t count = 0;
            for (size_t i = 0; i < n && !problem; i++) {
                yaml_node_t *it = yaml_document_get_node(doc, v->data.sequence.items.start[i]);
                if (!it || it->type != YAML_SCALAR_NODE ||
                    (!scalar_quoted(it) && plain_kind(scalar_text(it)) != S_STRING))
                    problem = "expected a list of strings";
                else
                    items[count++] = strdup(scalar_text(it));
            }
            if (problem) {
                free_list(items, count);
            } else {
                clear_value(c, k);
                *(char ***)p = items;
                *(size_t *)((char *)c + k->count_offset) = count;
            }
        }
    } else if (v->type == YAML_MAPPING_NODE && (k->type == T_MAP || k->type == T_MAP_NULL)) {
        json_t *j = node_json(doc, v, 0);
        /* Check the known shapes: providers and mail. */
        bool oidc = strcmp(k->key, "oidc_providers") == 0;
        const char *const *known = oidc ? OIDC_KEYS : MAIL_KEYS;
        size_t nknown = oidc ? 6 : 3;
        const char *pk;
        json_t *pv;
        json_object_foreach(j, pk, pv)
        {
            json_t *obj = oidc ? pv : j;
            if (oidc && !json_is_object(pv)) {
                error_add(errs, file, line, "%s.%s.%s: expected a mapping", k->section, k->key,
                          pk);
                continue;
            }
            const char *ik;
            json_t *iv;
            json_object_foreach(obj, ik, iv)
            {
                bool ok = false;
                for (size_t i = 0; i < nknown; i++)
                    if (strcmp(ik, known[i]) == 0)
                        ok = true;
                if (!ok)
                    error_add(errs, file, line, "unknown key \"%s.%s%s%s.%s\"", k->section,
                              k->key, oidc ? "." : "", oidc ? pk : "", ik);
            }
            if (!oidc)
                break;
        }
        clear_value(c, k);
        *(char **)p = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(j);
    } else {
        snprintf(msg, sizeof(msg), "expected %s, got a %s",
                 k->type == T_PAIR   ? "a list of two integers"
                 : k->type == T_LIST ? "a list of strings"
                 : (k->type == T_MAP || k->type == T_MAP_NULL) ? "a mapping"
                                                              : "a single value",
                 v->type == YAML_SEQUENCE_NODE ? "list" : "mapping");
        problem = msg;
    }
    if (problem)
        error_add(errs, file, line, "%s.%s: %s", k->section, k->key, problem);
}

static bool section_known(const char *s)
{
    for (size_t i = 0; i < sizeof(SECTIONS) / sizeof(SECTIONS[0]); i++)
        if (strcmp(SECTIONS[i], s) == 0)
            return true;
    return false;
}

int config_load(ogd_config *c, const char *path, char **errors)
{
    buf_t errs;
    buf_init(&errs, 1 << 16);
    *errors = NULL;
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f) {
        error_add(&errs, path, 0, "cannot open: %s", strerror(errno));
        goto out;
    }
    if (fstat(fileno(f), &st) == 0 && st.st_size > (off_t)CONFIG_MAX_FILE) {
        error_add(&errs, path, 0, "file too large (over %u bytes)", CONFIG_MAX_FILE);
        fclose(f);
        goto out;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        error_add(&errs, path, (long)parser.problem_mark.line + 1, "invalid YAML: %s",
                  parser.problem ? parser.problem : "parse error");
        yaml_parser_delete(&parser);
        fclose(f);
        goto out;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && root->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *sp = root->data.mapping.pairs.start;
             sp < root->data.mapping.pairs.top; sp++) {
            yaml_node_t *sk = yaml_document_get_node(&doc, sp->key);
            yaml_node_t *sv = yaml_document_get_node(&doc, sp->value);
            if (!sk || sk->type != YAML_SCALAR_NODE)
                continue;
            const char *sec = scalar_text(sk);
            if (!section_known(sec)) {
                error_add(&errs, path, node_line(sk), "unknown section \"%s\"", sec);
                continue;
            }
            if (sv->type == YAML_SCALAR_NODE && is_null_text(scalar_text(sv)) &&
                strcmp(sec, "backup") == 0)
                continue; /* backup: null = off */
            if (sv->type != YAML_MAPPING_NODE) {
                error_add(&errs, path, node_line(sv), "%s: expected a mapping", sec);
                continue;
            }
            if (strcmp(sec, "backup") == 0)
                c->backup.enabled = true;
            bool seen[NKEYS] = {false};
            for (yaml_node_pair_t *kp = sv->data.mapping.pairs.start;
                 kp < sv->data.mapping.pairs.top; kp++) {
                yaml_node_t *kk = yaml_document_get_node(&doc, kp->key);
                yaml_node_t *kv = yaml_document_get_node(&doc, kp->value);
                if (!kk || kk->type != YAML_SCALAR_NODE)
                    continue;
                const key_def *k = NULL;
                size_t idx = 0;
                for (size_t i = 0; i < NKEYS; i++) {
                    if (strcmp(KEYS[i].section, sec) == 0 &&
                        strcmp(KEYS[i].key, scalar_text(kk)) == 0) {
                        k = &KEYS[i];
                        idx = i;
                    }
                }
                if (!k) {
                    error_add(&errs, path, node_line(kk), "unknown key \"%s.%s\"", sec,
                              scalar_text(kk));
                    continue;
                }
                seen[idx] = true;
                set_node(c, k, &doc, kv, path, &errs);
            }
            for (size_t i = 0; i < NKEYS; i++)
                if (KEYS[i].required && !seen[i] && strcmp(KEYS[i].section, sec) == 0)
                    error_add(&errs, path, node_line(sk), "%s.%s: required key is missing",
                              sec, KEYS[i].key);
        }
    } else if (root) {
        error_add(&errs, path, node_line(root), "expected a mapping of sections");
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
out:
    if (errs.len) {
        *errors = buf_take(&errs);
        return -1;
    }
    buf_free(&errs);
    return 0;
}

int config_apply_env(ogd_config *c, char **envp, char **errors)
{
    buf_t errs;
    buf_init(&errs, 1 << 16);
    *errors = NULL;
    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, "OGD_", 4) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        const char *sep = strstr(*e, "__");
        if (!eq || !sep || sep > eq)
            continue;
        char sec[64], key[96];
        size_t sl = (size_t)(sep - (*e + 4)), kl = (size_t)(eq - (sep + 2));
        if (sl >= sizeof(sec) || kl >= sizeof(key))
            continue;
        for (size_t i = 0; i < sl; i++)
            sec[i] = (char)tolower((unsigned char)(*e)[4 + i]);
        sec[sl] = '\0';
        for (size_t i = 0; i < kl; i++)
            key[i] = (char)tolower((unsigned char)sep[2 + i]);
        key[kl] = '\0';
        const key_def *k = NULL;
        for (size_t i = 0; i < NKEYS; i++)
            if (strcmp(KEYS[i].section, sec) == 0 && strcmp(KEYS[i].key, key) == 0)
                k = &KEYS[i];
        if (!k) {
            error_add(&errs, NULL, 0, "%.*s: no such setting %s.%s", (int)(eq - *e), *e, sec,
                      key);
            continue;
        }
        char msg[256];
        const char *problem = set_from_text(c, k, eq + 1, true, msg, sizeof(msg));
        if (problem)
            error_add(&errs, NULL, 0, "%.*s: %s", (int)(eq - *e), *e, problem);
        if (strcmp(sec, "backup") == 0)
            c->backup.enabled = true;
    }
    if (errs.len) {
        *errors = buf_take(&errs);
        return -1;
    }
    buf_free(&errs);
    return 0;
}

static void default_path(char **slot, const char *dir, const char *fmt)
{
    if (*slot && **slot)
        return;
    free(*slot);
    size_t n = strlen(dir) + strlen(fmt) + 16;
    *slot = malloc(n);
    if (*slot)
        snprintf(*slot, n, fmt, dir);
}

int config_resolve(ogd_config *c, char **errors)
{
    buf_t errs;
    buf_init(&errs, 1 << 16);
    *errors = NULL;
    const char *dir = c->server.data_dir && *c->server.data_dir ? c->server.data_dir : "./var";
    default_path(&c->database.url, dir, "sqlite://%s/ogd.sqlite3");
    default_path(&c->echo.url, dir, "file://%s/objects");
    default_path(&c->app.maintenance_file, dir, "%s/maintenance.json");
    default_path(&c->app.scheduled_maintenance_file, dir, "%s/scheduled_maintenance.json");

    /* bind: server.bind, else app.host/app.port (the reference's dev settings). */
    if (!c->server.bind || !*c->server.bind) {
        char tmp[300];
        snprintf(tmp, sizeof(tmp), "%s:%lld",
                 c->app.host && *c->app.host ? c->app.host : "127.0.0.1",
                 (long long)(c->app.port ? c->app.port : 8000));
        free(c->server.bind);
        c->server.bind = strdup(tmp);
    }
    const char *b = c->server.bind;
    const char *colon = strrchr(b, ':');
    free(c->server.host);
    c->server.host = NULL;
    int64_t port = 0;
    if (!colon || !parse_int_text(colon + 1, &port) || port < 1 || port > 65535) {
        error_add(&errs, NULL, 0, "server.bind: expected HOST:PORT, got \"%.80s\"", b);
    } else {
        const char *h = b;
        size_t hl = (size_t)(colon - b);
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
            h++;
            hl -= 2;
        }
        c->server.host = strndup(h, hl);
        c->server.port = (int)port;
    }
    if (c->server.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->server.workers = n > 0 ? n : 1;
    }
    struct {
        const char *name;
        int64_t v, lo, hi;
    } ranges[] = {
        {"server.workers", c->server.workers, 1, 256},
        {"server.worker_connections", c->server.worker_connections, 1, 1000000},
        {"server.max_requests", c->server.max_requests, 0, INT64_MAX},
        {"server.max_requests_jitter", c->server.max_requests_jitter, 0, INT64_MAX},
        {"server.timeout", c->server.timeout, 0, 86400},
        {"server.graceful_timeout", c->server.graceful_timeout, 0, 86400},
        {"server.keepalive", c->server.keepalive, 1, 86400},
        {"server.max_header_bytes", c->server.max_header_bytes, 1024, 1 << 20},
        {"server.max_body_bytes", c->server.max_body_bytes, 1024, (int64_t)1 << 34},
        {"server.max_upload_bytes", c->server.max_upload_bytes, 1024, (int64_t)1 << 36},
        {"server.header_timeout", c->server.header_timeout, 1, 3600},
        {"server.body_timeout", c->server.body_timeout, 1, 86400},
        {"database.pool_size", c->database.pool_size, 1, 1024},
        {"images.thumbnail_size[0]", c->images.thumbnail_size[0], 1, 4096},
        {"images.thumbnail_size[1]", c->images.thumbnail_size[1], 1, 4096},
        {"float_images.thumbnail_size[0]", c->float_images.thumbnail_size[0], 1, 4096},
        {"float_images.thumbnail_size[1]", c->float_images.thumbnail_size[1], 1, 4096},
        {"waveforms.thumbnail_size[0]", c->waveforms.thumbnail_size[0], 1, 4096},
        {"waveforms.thumbnail_size[1]", c->waveforms.thumbnail_size[1], 1, 4096},
        {"vectors.thumbnail_size[0]", c->vectors.thumbnail_size[0], 1, 4096},
        {"vectors.thumbnail_size[1]", c->vectors.thumbnail_size[1], 1, 4096},
        {"images.colourbar_height_pixels", c->images.colourbar_height_pixels, 1, 4096},
        {"echo.expiry_days", c->echo.expiry_days, 0, 100000},
        {"echo.cache_maxsize", c->echo.cache_maxsize, 0, 100000000},
        {"echo.cache_max_bytes", c->echo.cache_max_bytes, 0, (int64_t)1 << 40},
        {"echo.max_connections", c->echo.max_connections, 1, 100000},
        {"mongodb.max_documents", c->mongodb.max_documents, 0, 100000000},
        {"export.max_filesize_bytes", c->export_.max_filesize_bytes, 1, INT64_MAX},
        {"export.max_concurrency", c->export_.max_concurrency, 1, 100000},
        {"backup.warning_mark_percent", c->backup.warning_mark_percent, 1, 99},
    };
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
        if (ranges[i].v < ranges[i].lo || ranges[i].v > ranges[i].hi)
            error_add(&errs, NULL, 0, "%s: %lld is out of range [%lld, %lld]", ranges[i].name,
                      (long long)ranges[i].v, (long long)ranges[i].lo, (long long)ranges[i].hi);
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    bool level_ok = false;
    for (int i = 0; i < 4; i++)
        if (c->server.log_level && strcmp(c->server.log_level, levels[i]) == 0)
            level_ok = true;
    if (!level_ok)
        error_add(&errs, NULL, 0, "server.log_level: expected debug, info, warn or error");
    if (strncmp(c->echo.url, "http://", 7) == 0 || strncmp(c->echo.url, "https://", 8) == 0) {
        if (!c->echo.access_key || !c->echo.secret_key || !c->echo.bucket_name ||
            !*c->echo.bucket_name)
            error_add(&errs, NULL, 0,
                      "echo: access_key, secret_key and bucket_name are required for an S3 "
                      "url");
    }
    if (c->backup.enabled && c->backup.auto_remove &&
        strcmp(c->backup.auto_remove, "cached") != 0 &&
        strcmp(c->backup.auto_remove, "backed_up") != 0 &&
        strcmp(c->backup.auto_remove, "never") != 0)
        error_add(&errs, NULL, 0, "backup.auto_remove: expected cached, backed_up or never");
    if (errs.len) {
        *errors = buf_take(&errs);
        return -1;
    }
    buf_free(&errs);
    return 0;
}

void config_dump(const ogd_config *c, FILE *f)
{
    const char *section = "";
    for (size_t i = 0; i < NKEYS; i++) {
        const key_def *k = &KEYS[i];
        if (strcmp(k->section, "backup") == 0 && !c->backup.enabled)
            continue;
        if (strcmp(section, k->section) != 0) {
            section = k->section;
            fprintf(f, "%s:\n", section);
        }
        const void *p = (const char *)c + k->offset;
        fprintf(f, "  %s: ", k->key);
        switch (k->type) {
        case T_SECRET: {
            const char *s = *(char *const *)p;
            fprintf(f, "%s\n", s && *s ? "\"***\"" : "\"\"");
            break;
        }
        case T_STR:
        case T_STR_NULL:
        case T_DATETIME:
        case T_MAP:
        case T_MAP_NULL: {
            const char *s = *(char *const *)p;
            if (!s)
                fprintf(f, "null\n");
            else if (k->type == T_MAP || k->type == T_MAP_NULL)
                fprintf(f, "%s\n", s);
            else
                fprintf(f, "\"%s\"\n", s);
            break;
        }
        case T_INT:
        case T_INT_NULL:
            fprintf(f, "%lld\n", (long long)*(const int64_t *)p);
            break;
        case T_BOOL:
        case T_BOOL_NULL:
            fprintf(f, "%s\n", *(const bool *)p ? "true" : "false");
            break;
        case T_DOUBLE:
            fprintf(f, "%g\n", *(const double *)p);
            break;
        case T_PAIR:
            fprintf(f, "[%lld, %lld]\n", (long long)((const int64_t *)p)[0],
                    (long long)((const int64_t *)p)[1]);
            break;
        case T_LIST: {
            char *const *items = *(char **const *)p;
            size_t n = *(const size_t *)((const char *)c + k->count_offset);
            fprintf(f, "[");
            for (size_t j = 0; j < n; j++)
                fprintf(f, "%s\"%s\"", j ? ", " : "", items[j]);
            fprintf(f, "]\n");
            break;
        }
        }
    }
}
