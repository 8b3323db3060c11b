/*
 * config: ogd's configuration: the reference's config.yml (same sections and keys, so
 * an existing file loads unchanged) plus ogd's `server:` and `database:` sections and a
 * few keys of its own (see config.yml.example for every key with its default).
 *
 * Sources, in order: built-in defaults (config_defaults), the YAML file (config_load),
 * environment variables OGD_<SECTION>__<KEY> (config_apply_env), then config_resolve fills
 * derived values (paths under server.data_dir, workers = CPUs, bind -> host/port) and
 * validates ranges. Every key is described once in a table in config.c (type, default,
 * where it lives in the struct). Errors name the key and the line, and all of them are
 * reported together, one per line.
 *
 * The struct owns its strings (heap); config_free releases them.
 */
#ifndef OGD_CONFIG_CONFIG_H
#define OGD_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ogd_config {
    struct {
        char *bind; /** "host:port"; derived into host/port */
        char *host;
        int port;
        int64_t workers, worker_connections, max_requests, max_requests_jitter;
        int64_t timeout, graceful_timeout, keepalive;
        int64_t max_header_bytes, max_body_bytes, max_upload_bytes;
        int64_t header_timeout, body_timeout;
        char *data_dir, *log_file, *log_level;
    } server;
    struct {
        char *url;
        int64_t pool_size;
    } database;
    struct {
        char *host;
        int64_t port;
        bool reload;
        char *url_prefix, *maintenance_file, *scheduled_maintenance_file;
        char **cors_origins;
        size_t cors_origins_count;
    } app;
    struct {
        int64_t thumbnail_size[2];
        char *default_colour_map;
        int64_t colourbar_height_pixels;
        char *preferred_colour_map_pref_name;
    } images;
    struct {
        int64_t thumbnail_size[2];
        char *default_colour_map, *preferred_colour_map_pref_name;
    } float_images;
    struct {
        int64_t thumbnail_size[2];
        double line_width;
    } waveforms;
    struct {
        int64_t thumbnail_size[2];
        char *skip_pref_name, *limit_pref_name;
    } vectors;
    struct {
        char *url, *username, *access_key, *secret_key, *bucket_name, *region;
        int64_t expiry_days; /** 0 = unset */
        int64_t cache_maxsize, cache_max_bytes, max_connections, request_timeout, max_retries;
    } echo;
    struct {
        char *mongodb_url, *database_name; /** accepted for compatibility, unused */
        int64_t max_documents;
    } mongodb;
    struct {
        char *private_key_path, *public_key_path, *jwt_algorithm;
        int64_t access_token_validity_mins, refresh_token_validity_days;
        char *fedid_server_url, *fedid_server_ldap_realm;
        char *oidc_providers_json; /** the providers map as JSON text ("{}" when none) */
    } auth;
    struct {
        char *first_scheduler_contact_start_date;
        bool scheduler_background_task_enabled;
        char *scheduler_background_frequency, *scheduler_background_timezone;
        double scheduler_background_retry_mins;
        char *user_office_rest_api_url, *username, *password, *scheduler_wsdl_url;
        char **instrument_names;
        size_t instrument_names_count;
        char *worker_file_path;
    } experiments;
    struct {
        int64_t max_filesize_bytes, max_concurrency, max_buffer_bytes;
    } export_;
    struct {
        char *environment, *secret_key;
    } observability;
    struct {
        bool enabled; /** the section is present */
        char *cache_directory;
        int64_t warning_mark_percent;
        char *target_url, *copy_cron_string, *timezone_str, *worker_file_path, *auto_remove;
        char *keytab_file_path;
        char *mail_json; /** the mail map as JSON text, or NULL */
    } backup;
} ogd_config;

void config_defaults(ogd_config *c);
/* Loads path over the current values. 0, or -1 with *errors (caller frees) listing every
 * problem as "FILE:LINE: section.key: message". */
int config_load(ogd_config *c, const char *path, char **errors);
/* Applies OGD_<SECTION>__<KEY> variables from envp. 0, or -1 with *errors. */
int config_apply_env(ogd_config *c, char **envp, char **errors);
/* Derived values and validation. 0, or -1 with *errors. */
int config_resolve(ogd_config *c, char **errors);
void config_free(ogd_config *c);
/* Prints the effective configuration as YAML, secrets replaced by "***". */
void config_dump(const ogd_config *c, FILE *f);

#endif
