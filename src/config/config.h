/*
 * config: ogd's configuration, owned here from file to typed struct.
 *
 * ogd reads the reference's config.yml unchanged (sections app, images, float_images,
 * waveforms, vectors, echo, mongodb, auth, experiments, export, observability, backup)
 * plus its own `server:`, `database:` and `ingest:` sections and a few keys of its own.
 * Every key, with its type, default, range and meaning, is listed in config.yml.example
 * at the repository root; the same list lives once, as a table, in config.c.
 *
 * Data flows through four steps, which the caller runs in this order:
 *   config_defaults   built-in defaults: ogd runs with no file at all;
 *   config_load       the YAML file, over the defaults (path NULL: nothing to load;
 *                     config_load_text: the same from memory);
 *   config_apply_env  OGD_<SECTION>__<KEY>=value variables, over the file;
 *   config_resolve    derived values (paths under server.data_dir, workers = CPUs,
 *                     server.bind split into server.host/server.port) and the checks
 *                     that need the whole picture (ranges, required keys, S3 credentials).
 * Each step that can fail returns 0, or -1 and sets *errors to every problem it found,
 * one per line ("config.yml:12: server.workers: expected an integer, got \"four\"");
 * the caller frees *errors. The struct stays valid (freeable) either way.
 *
 * Ownership: the struct owns every string, list and provider in it (heap); config_free
 * releases them all. Consumers borrow. Nothing here is thread-safe: build the struct
 * before starting threads and treat it as read-only afterwards.
 */
#ifndef OGD_CONFIG_CONFIG_H
#define OGD_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Caps on what grows from input. */
#define CONFIG_MAX_FILE_BYTES ((size_t)1 << 20) /* a bigger config file is refused */
#define CONFIG_MAX_ITEMS 1000                   /* items in one list or map */

/* One entry of auth.oidc_providers (a map provider_id -> provider). */
typedef struct ogd_oidc_provider {
    char *id;                /** the map key (provider_id); must stay the first member */
    char *display_name;      /** shown by the web client as a login option (required) */
    char *configuration_url; /** OIDC discovery document URL (required) */
    char *client_id;         /** (required) */
    bool verify_cert;        /** verify the provider's TLS certificate (default true) */
    char *mechanism;         /** free text (default "oidc") */
    char *username_claim;    /** claim matched to the user's email (default "email");
                                 scope = "openid " + it */
} ogd_oidc_provider;

/* backup.mail: plain SMTP notifications. */
typedef struct ogd_mail_config {
    char *host;      /** "host:port" (required) */
    char **to_addrs; /** (required) */
    size_t to_addrs_count;
    char *from_addr; /** (required) */
} ogd_mail_config;

/* Every section starts with `present`: the section was in the file (not null), or an
 * environment variable set one of its keys. Integers the reference allows to be null
 * hold 0 for null (app.port, echo.expiry_days). Strings without a default are NULL when
 * unset. Durations are in seconds. */

typedef struct ogd_server_config {
    bool present;
    char *bind;               /** "HOST:PORT", "[V6]:PORT" or "HOST"; resolve fills it */
    char *host;               /** derived from bind by config_resolve */
    int port;                 /** derived from bind by config_resolve, 1..65535 */
    int workers;              /** 0 in the file = CPUs; >= 1 after config_resolve */
    int worker_connections;   /** per-worker concurrency limit */
    int threads;              /** thread-pool threads per worker (CPU work, SQLite, files) */
    int max_heavy_per_user;   /** heavy requests one user runs at once per worker (0 = auto:
                                  threads - 1, at least 1); the rest wait their turn */
    int max_pool_waiting;     /** thread-pool backlog beyond which heavy requests get 503 */
    int maintenance_interval; /** seconds between the jobs process's database upkeep */
    int max_requests;         /** recycle a worker after this many requests (0 = never) */
    int max_requests_jitter;
    int timeout; /** loop watchdog: a worker blocked this long is replaced */
    int graceful_timeout;
    int keepalive;  /** idle keep-alive timeout (also the idle timeout) */
    char *data_dir; /** no trailing slash after config_resolve */
    int64_t max_header_bytes;
    int64_t max_body_bytes;   /** default per-route cap on JSON request bodies */
    int64_t max_upload_bytes; /** cap on HDF5 uploads */
    int header_timeout;
    int body_timeout;
    char *log_file;  /** NULL = stderr */
    char *log_level; /** debug | info | warn | error */
    /** open connections one client address may hold in a worker (0 = no cap) */
    int max_connections_per_client;
    /** peers (addresses or CIDR networks) whose X-Forwarded-For names the client */
    char **forwarded_allow_ips;
    size_t forwarded_allow_ips_count;
} ogd_server_config;

typedef struct ogd_database_config {
    bool present;
    char *url;     /** "sqlite://" + path or postgresql://...; default
                       sqlite://<data_dir>/ogd.sqlite3 */
    int pool_size; /** connections per worker (PostgreSQL) */
} ogd_database_config;

/* (ogd) Limits on what one HDF5 upload may make the ingest do (issue 15). */
typedef struct ogd_ingest_config {
    bool present;
    int64_t max_decompressed_bytes;      /** one dataset's size as read; larger: channel rejected */
    int64_t max_file_decompressed_bytes; /** all datasets of a file; larger: file rejected */
    int max_channels;                    /** root members of a file; more: file rejected */
} ogd_ingest_config;

typedef struct ogd_app_config {
    bool present;
    char *host;             /** reference dev setting: the bind host if server.bind is unset */
    int port;               /** likewise the bind port; 0 = null */
    bool reload;            /** accepted, ignored (null = false) */
    char *url_prefix;       /** "" or "/prefix" (trailing slashes removed by resolve) */
    char *maintenance_file; /** default <data_dir>/maintenance.json */
    char *scheduled_maintenance_file; /** default <data_dir>/scheduled_maintenance.json */
    bool use_sub_second_timestamps;   /** newer reference key; accepted, not used yet */
    char **cors_origins; /** answered with their origin + credentials; others get `*` */
    size_t cors_origins_count;
} ogd_app_config;

typedef struct ogd_images_config {
    bool present;
    int thumbnail_size[2]; /** width, height */
    char *default_colour_map;
    int colourbar_height_pixels;
    int png_compression_level; /** libdeflate level 0..12 of rendered images (ogd only) */
    char *preferred_colour_map_pref_name;
} ogd_images_config;

typedef struct ogd_float_images_config {
    bool present;
    int thumbnail_size[2];
    char *default_colour_map;
    char *preferred_colour_map_pref_name;
} ogd_float_images_config;

typedef struct ogd_waveforms_config {
    bool present;
    int thumbnail_size[2];
    double line_width; /** points */
} ogd_waveforms_config;

typedef struct ogd_vectors_config {
    bool present;
    int thumbnail_size[2];
    char *skip_pref_name;
    char *limit_pref_name;
} ogd_vectors_config;

typedef struct ogd_echo_config {
    bool present;
    char *url;               /** file://DIR (default file://<data_dir>/objects) or http(s)://S3 */
    char *username;          /** accepted, not used for signing */
    char *access_key;        /** secret; required for http(s) */
    char *secret_key;        /** secret; required for http(s) */
    char *bucket_name;       /** required for http(s); a subdirectory for file:// when set */
    int expiry_days;         /** bucket lifecycle rule in days; 0 = null (none) */
    int cache_maxsize;       /** per-worker object cache, entries (0 disables) */
    int64_t cache_max_bytes; /** per-worker object cache, bytes */
    int max_connections;     /** S3 connections per worker */
    char *region;            /** SigV4 region */
    int request_timeout;     /** per S3 call */
    int max_read_wait;       /** (ogd) seconds an object read may wait in all (0 = auto) */
    int max_retries;
    int max_in_flight_per_request; /** S3 transfers one request may hold (0 = max_connections) */
    int uncertain_write_grace;     /** (ogd) seconds before a failed PUT's key may be swept */
    int64_t multipart_threshold;   /** larger puts use S3 multipart upload */
    bool create_bucket;            /** create a missing bucket at start-up */
} ogd_echo_config;

typedef struct ogd_mongodb_config {
    bool present;
    char *mongodb_url;     /** secret; accepted for drop-in compatibility, ignored */
    char *database_name;   /** accepted, ignored */
    int64_t max_documents; /** hard cap on any list query (0 = none) */
} ogd_mongodb_config;

typedef struct ogd_auth_config {
    bool present;
    char *private_key_path; /** PEM or OpenSSH; required when the section is present */
    char *public_key_path;  /** required when the section is present */
    char *jwt_algorithm;    /** RS256 */
    int access_token_validity_mins;
    int refresh_token_validity_days;
    char *fedid_server_url; /** NULL = FedID (LDAP) login not configured */
    char *fedid_server_ldap_realm;
    char *fedid_bind_dn;       /** DN template with {username}; NULL = <username>@<realm> */
    char *fedid_ca_file;       /** CA bundle for the directory's certificate; NULL = system CAs */
    char *fedid_search_base;   /** base of the e-mail lookup */
    int fedid_timeout_seconds; /** connect and each LDAP operation */
    ogd_oidc_provider *oidc_providers; /** in file order */
    size_t oidc_providers_count;
} ogd_auth_config;

typedef struct ogd_experiments_config {
    bool present;
    char *first_scheduler_contact_start_date; /** ISO 8601 text as written (YYYY-MM-DD...) */
    bool scheduler_background_task_enabled;
    char *scheduler_background_frequency; /** 5-field cron */
    char *scheduler_background_timezone;
    double scheduler_background_retry_mins;
    char *user_office_rest_api_url;
    char *username;
    char *password; /** secret */
    char *scheduler_wsdl_url;
    char **instrument_names;
    size_t instrument_names_count;
    char *worker_file_path; /** accepted; ogd elects its jobs process itself */
    int request_timeout;    /** (ogd) seconds per user-office / Scheduler exchange */
} ogd_experiments_config;

typedef struct ogd_export_config {
    bool present;
    int64_t max_filesize_bytes;
    int max_concurrency;      /** object GETs in flight per export */
    int64_t max_buffer_bytes; /** memory one export may hold */
} ogd_export_config;

typedef struct ogd_observability_config {
    bool present;
    char *environment; /** accepted, not used */
    char *secret_key;  /** secret; accepted, not used */
} ogd_observability_config;

typedef struct ogd_backup_config {
    bool present;          /** the backup feature is on */
    char *cache_directory; /** required when present */
    int warning_mark_percent;
    char *target_url;       /** XRootD URL; required when present */
    char *copy_cron_string; /** required when present */
    char *timezone_str;
    char *worker_file_path; /** accepted; ogd elects its jobs process itself */
    char *auto_remove;      /** cached | backed_up | never */
    char *keytab_file_path; /** NULL = use $XrdSecSSSKT */
    ogd_mail_config *mail;  /** NULL = no mail */
} ogd_backup_config;

typedef struct ogd_config {
    ogd_server_config server;
    ogd_database_config database;
    ogd_ingest_config ingest;
    ogd_app_config app;
    ogd_images_config images;
    ogd_float_images_config float_images;
    ogd_waveforms_config waveforms;
    ogd_vectors_config vectors;
    ogd_echo_config echo;
    ogd_mongodb_config mongodb;
    ogd_auth_config auth;
    ogd_experiments_config experiments;
    ogd_export_config export;
    ogd_observability_config observability;
    ogd_backup_config backup;

    /* Kept by config_load so that config_resolve can place its messages; private. */
    char *path;            /** the file loaded last, or NULL (owned) */
    int section_lines[16]; /** line of each section's header in it (0: not in the file) */
} ogd_config;

/* Fills c with the built-in defaults. c need not be initialised: its previous contents
 * are overwritten, not freed. */
/* Whether a database URL names PostgreSQL (postgresql:// or postgres://): a database
 * several nodes may share (docs/deploy.md). */
bool config_url_is_postgresql(const char *url);

void config_defaults(ogd_config *c);

/* Loads the YAML file at path over the current values. path NULL: does nothing and
 * returns 0. Returns 0, or -1 with *errors (caller frees) listing every problem as
 * "PATH:LINE: section.key: message". errors may be NULL (messages dropped). */
int config_load(ogd_config *c, const char *path, char **errors);
/* The same for YAML already in memory (text[0..len), borrowed; no terminator needed);
 * name stands for the file in messages ("NAME:LINE: ..."). For tests and the fuzzer. */
int config_load_text(ogd_config *c, const char *name, const char *text, size_t len, char **errors);

/* Applies the OGD_<SECTION>__<KEY>=value entries of envp (NULL-terminated, e.g. environ;
 * borrowed), each parsed with its key's type. Variables without "__" after "OGD_" are
 * not ours and are skipped; one that names no key is an error. Returns 0, or -1 with
 * *errors (caller frees). */
int config_apply_env(ogd_config *c, char *const *envp, char **errors);

/* Fills derived values and validates the whole configuration. Safe to call again.
 * Returns 0, or -1 with *errors (caller frees). */
int config_resolve(ogd_config *c, char **errors);

/* Releases everything c owns and zeroes it. */
void config_free(ogd_config *c);

/* Prints the effective configuration as YAML, secrets replaced by "***" (and the
 * password of database.url). */
void config_dump(const ogd_config *c, FILE *f);

#endif
