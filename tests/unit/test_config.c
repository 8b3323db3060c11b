/*
 * Unit tests for src/config/config.c: built-in defaults, a full reference-style
 * config.yml, ogd's own sections, every kind of error with its exact message and line,
 * strict typing, required keys, input caps, environment overrides, config_resolve's
 * derived values and checks, and secret masking in config_dump.
 *
 * Files are written to /tmp (mkstemp) and removed by each test; messages name the file,
 * so expected texts are built with its path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

static char path[64];

/* Writes text to a new temporary file; its name is left in path. */
static void write_file(const char *text)
{
    strcpy(path, "/tmp/ogd-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* Formats the expected message with the temp file's path in place of every "$F". */
static char *expect(const char *templ)
{
    static char out[8192];
    size_t o = 0;
    for (const char *p = templ; *p && o + 64 < sizeof(out); p++) {
        if (p[0] == '$' && p[1] == 'F') {
            o += (size_t)snprintf(out + o, sizeof(out) - o, "%s", path);
            p++;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    return out;
}

/* Loads text as a config file over the defaults; returns config_load's result. */
static int load_text(ogd_config *c, const char *text, char **err)
{
    write_file(text);
    config_defaults(c);
    *err = NULL;
    int rc = config_load(c, path, err);
    unlink(path);
    return rc;
}

static char *dump_to_string(const ogd_config *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    config_dump(c, f);
    fclose(f);
    return text;
}

/* ---- defaults ---- */

static void test_defaults_need_no_file(void **state)
{
    (void)state;
    ogd_config c;
    config_defaults(&c);
    char *err = NULL;
    assert_int_equal(config_load(&c, NULL, &err), 0);
    assert_null(err);
    assert_int_equal(config_resolve(&c, &err), 0);
    assert_null(err);

    assert_string_equal(c.server.bind, "127.0.0.1:8000");
    assert_string_equal(c.server.host, "127.0.0.1");
    assert_int_equal(c.server.port, 8000);
    assert_true(c.server.workers >= 1);
    assert_int_equal(c.server.worker_connections, 1000);
    assert_int_equal(c.server.max_connections_per_client, 64);
    assert_int_equal(c.server.forwarded_allow_ips_count, 2);
    assert_string_equal(c.server.forwarded_allow_ips[0], "127.0.0.1");
    assert_string_equal(c.server.forwarded_allow_ips[1], "::1");
    assert_int_equal(c.server.max_requests, 0);
    assert_int_equal(c.server.max_requests_jitter, 0);
    assert_int_equal(c.server.timeout, 30);
    assert_int_equal(c.server.graceful_timeout, 30);
    assert_int_equal(c.server.keepalive, 5);
    assert_string_equal(c.server.data_dir, "./var");
    assert_int_equal(c.server.max_header_bytes, 16384);
    assert_int_equal(c.server.max_body_bytes, 1048576);
    assert_int_equal(c.server.max_upload_bytes, 536870912);
    assert_int_equal(c.server.header_timeout, 10);
    assert_int_equal(c.server.body_timeout, 60);
    assert_null(c.server.log_file);
    assert_string_equal(c.server.log_level, "info");

    assert_string_equal(c.database.url, "sqlite://./var/ogd.sqlite3");
    assert_int_equal(c.database.pool_size, 4);

    assert_string_equal(c.app.url_prefix, "");
    assert_string_equal(c.app.maintenance_file, "./var/maintenance.json");
    assert_string_equal(c.app.scheduled_maintenance_file, "./var/scheduled_maintenance.json");
    assert_int_equal(c.app.cors_origins_count, 0);
    assert_int_equal(c.app.port, 0);

    assert_int_equal(c.images.thumbnail_size[0], 50);
    assert_int_equal(c.images.thumbnail_size[1], 50);
    assert_string_equal(c.images.default_colour_map, "viridis");
    assert_int_equal(c.images.colourbar_height_pixels, 16);
    assert_string_equal(c.images.preferred_colour_map_pref_name, "PREFERRED_COLOUR_MAP");
    assert_int_equal(c.float_images.thumbnail_size[0], 50);
    assert_string_equal(c.float_images.default_colour_map, "bwr");
    assert_string_equal(c.float_images.preferred_colour_map_pref_name,
                        "PREFERRED_FLOAT_COLOUR_MAP");
    assert_int_equal(c.waveforms.thumbnail_size[0], 100);
    assert_int_equal(c.waveforms.thumbnail_size[1], 100);
    assert_true(c.waveforms.line_width == 0.3);
    assert_int_equal(c.vectors.thumbnail_size[1], 100);
    assert_string_equal(c.vectors.skip_pref_name, "VECTOR_SKIP");
    assert_string_equal(c.vectors.limit_pref_name, "VECTOR_LIMIT");

    assert_string_equal(c.echo.url, "file://./var/objects");
    assert_null(c.echo.access_key);
    assert_null(c.echo.bucket_name);
    assert_int_equal(c.echo.expiry_days, 0);
    assert_int_equal(c.echo.cache_maxsize, 128);
    assert_int_equal(c.echo.cache_max_bytes, 268435456);
    assert_int_equal(c.echo.max_connections, 128);
    assert_string_equal(c.echo.region, "us-east-1");
    assert_int_equal(c.echo.request_timeout, 30);
    assert_int_equal(c.echo.max_retries, 3);

    assert_int_equal(c.mongodb.max_documents, 1000);
    /* without an auth section the key pair lives in the data directory */
    assert_non_null(strstr(c.auth.private_key_path, "/jwt_rsa"));
    assert_non_null(strstr(c.auth.public_key_path, "/jwt_rsa.pub"));
    assert_string_equal(c.auth.jwt_algorithm, "RS256");
    assert_int_equal(c.auth.access_token_validity_mins, 60);
    assert_int_equal(c.auth.refresh_token_validity_days, 7);
    assert_int_equal(c.auth.oidc_providers_count, 0);
    assert_false(c.experiments.scheduler_background_task_enabled);
    assert_string_equal(c.experiments.scheduler_background_frequency, "0 9 * * 1");
    assert_int_equal(c.export.max_filesize_bytes, 1073741824);
    assert_int_equal(c.export.max_concurrency, 256);
    assert_int_equal(c.export.max_buffer_bytes, 58720256);
    assert_false(c.backup.present);
    assert_null(c.backup.mail);
    assert_false(c.auth.present);

    config_free(&c);
    config_free(&c); /* zeroed: a second free is harmless */
}

/* ---- a reference config.yml ---- */

static const char reference_config[] =
    "# a deployment file of the reference service, kept as it is\n"
    "app:\n"
    "  host: 127.0.0.1\n"
    "  port: 8123\n"
    "  reload: true\n"
    "  url_prefix: \"\"\n"
    "  maintenance_file: maint/maintenance.json\n"
    "  scheduled_maintenance_file: maint/scheduled_maintenance.json\n"
    "  use_sub_second_timestamps: false\n"
    "images:\n"
    "  thumbnail_size: [50, 50]\n"
    "  default_colour_map: viridis\n"
    "  colourbar_height_pixels: 16\n"
    "  preferred_colour_map_pref_name: PREFERRED_COLOUR_MAP\n"
    "float_images:\n"
    "  thumbnail_size: [60, 40]\n"
    "  default_colour_map: bwr\n"
    "  preferred_colour_map_pref_name: PREFERRED_FLOAT_COLOUR_MAP\n"
    "waveforms:\n"
    "  thumbnail_size: [100, 100]\n"
    "  line_width: 0.3\n"
    "vectors:\n"
    "  thumbnail_size: [100, 100]\n"
    "echo:\n"
    "  url: https://s3.example.org\n"
    "  username: og-service\n"
    "  access_key: AKIA-TEST-KEY\n"
    "  secret_key: s3cr3t-value\n"
    "  bucket_name: og-bucket\n"
    "  cache_maxsize: 64\n"
    "mongodb:\n"
    "  mongodb_url: mongodb://dbuser:dbpass@localhost:27017\n"
    "  database_name: opsgateway\n"
    "  max_documents: 500\n"
    "auth:\n"
    "  private_key_path: /keys/jwt\n"
    "  public_key_path: /keys/jwt.pub\n"
    "  jwt_algorithm: RS256\n"
    "  access_token_validity_mins: 180\n"
    "  refresh_token_validity_days: 7\n"
    "  fedid_server_url: ldap://ldap.example.org:389\n"
    "  fedid_server_ldap_realm: EXAMPLE.ORG\n"
    "  oidc_providers:\n"
    "    keycloak:\n"
    "      display_name: Keycloak login  # shown on the login page\n"
    "      configuration_url: http://localhost:8081/realms/r/.well-known/openid-configuration\n"
    "      client_id: og-client\n"
    "      verify_cert: false\n"
    "      mechanism: oidc\n"
    "      username_claim: email\n"
    "    azure:\n"
    "      display_name: Azure\n"
    "      configuration_url: https://login.example.com/.well-known/openid-configuration\n"
    "      client_id: og-azure\n"
    "      verify_cert: true\n"
    "      mechanism: oidc\n"
    "      username_claim: preferred_username\n"
    "experiments:\n"
    "  user_office_rest_api_url: https://uo.example.org/v1\n"
    "  scheduler_wsdl_url: https://sched.example.org/ws?wsdl\n"
    "  username: uo-user\n"
    "  password: uo-pass-word\n"
    "  first_scheduler_contact_start_date: 2019-01-02T00:00:00Z\n"
    "  scheduler_background_task_enabled: false\n"
    "  scheduler_background_frequency: 0 9 * * 1\n"
    "  scheduler_background_timezone: Europe/London\n"
    "  scheduler_background_retry_mins: 20\n"
    "  instrument_names:\n"
    "    - Gemini\n"
    "    - EPAC\n"
    "  worker_file_path: /dev/shm/og-experiments\n"
    "export:\n"
    "  max_filesize_bytes: 1073741824\n"
    "observability:\n"
    "  environment: dev\n"
    "  secret_key: apm-secret-token\n"
    "backup:\n"
    "  cache_directory: /srv/cache\n"
    "  warning_mark_percent: 70\n"
    "  target_url: root://tape.example.org:1094//og/\n"
    "  copy_cron_string: \"0 0 * * *\"\n"
    "  timezone_str: Europe/London\n"
    "  worker_file_path: /dev/shm/og-backup\n"
    "  auto_remove: never\n"
    "  keytab_file_path: /srv/og/.keytab\n"
    "  mail:\n"
    "    host: localhost:25\n"
    "    to_addrs:\n"
    "      - ops@example.org\n"
    "    from_addr: no-reply@example.org\n";

static void test_reference_config_loads(void **state)
{
    (void)state;
    ogd_config c;
    char *err = NULL;
    assert_int_equal(load_text(&c, reference_config, &err), 0);
    assert_null(err);
    assert_int_equal(config_apply_env(&c, (char *[]){NULL}, &err), 0);
    assert_int_equal(config_resolve(&c, &err), 0);
    assert_null(err);

    /* bind comes from app.host/app.port when server.bind is unset */
    assert_string_equal(c.server.bind, "127.0.0.1:8123");
    assert_string_equal(c.server.host, "127.0.0.1");
    assert_int_equal(c.server.port, 8123);
    assert_true(c.app.present);
    assert_false(c.server.present);
    assert_true(c.app.reload);
    assert_false(c.app.use_sub_second_timestamps);
    assert_string_equal(c.app.maintenance_file, "maint/maintenance.json");
    assert_int_equal(c.float_images.thumbnail_size[0], 60);
    assert_int_equal(c.float_images.thumbnail_size[1], 40);
    assert_string_equal(c.vectors.skip_pref_name, "VECTOR_SKIP");
    assert_string_equal(c.echo.url, "https://s3.example.org");
    assert_string_equal(c.echo.access_key, "AKIA-TEST-KEY");
    assert_string_equal(c.echo.bucket_name, "og-bucket");
    assert_int_equal(c.echo.cache_maxsize, 64);
    assert_int_equal(c.mongodb.max_documents, 500);
    assert_string_equal(c.mongodb.database_name, "opsgateway");
    assert_int_equal(c.auth.access_token_validity_mins, 180);
    assert_string_equal(c.auth.fedid_server_ldap_realm, "EXAMPLE.ORG");

    assert_int_equal(c.auth.oidc_providers_count, 2);
    const ogd_oidc_provider *kc = &c.auth.oidc_providers[0];
    assert_string_equal(kc->id, "keycloak");
    assert_string_equal(kc->display_name, "Keycloak login");
    assert_string_equal(kc->client_id, "og-client");
    assert_false(kc->verify_cert);
    assert_string_equal(kc->mechanism, "oidc");
    assert_string_equal(kc->username_claim, "email");
    assert_string_equal(c.auth.oidc_providers[1].id, "azure");
    assert_true(c.auth.oidc_providers[1].verify_cert);
    assert_string_equal(c.auth.oidc_providers[1].username_claim, "preferred_username");

    assert_string_equal(c.experiments.first_scheduler_contact_start_date, "2019-01-02T00:00:00Z");
    assert_string_equal(c.experiments.scheduler_background_frequency, "0 9 * * 1");
    assert_true(c.experiments.scheduler_background_retry_mins == 20.0);
    assert_int_equal(c.experiments.instrument_names_count, 2);
    assert_string_equal(c.experiments.instrument_names[1], "EPAC");
    assert_string_equal(c.experiments.password, "uo-pass-word");
    assert_int_equal(c.export.max_filesize_bytes, 1073741824);
    assert_string_equal(c.observability.environment, "dev");

    assert_true(c.backup.present);
    assert_int_equal(c.backup.warning_mark_percent, 70);
    assert_string_equal(c.backup.copy_cron_string, "0 0 * * *");
    assert_string_equal(c.backup.auto_remove, "never");
    assert_non_null(c.backup.mail);
    assert_string_equal(c.backup.mail->host, "localhost:25");
    assert_int_equal(c.backup.mail->to_addrs_count, 1);
    assert_string_equal(c.backup.mail->to_addrs[0], "ops@example.org");
    config_free(&c);
}

/* The reference CI file: no oidc_providers, no backup, echo without cache_maxsize. */
static void test_reference_ci_style_config_loads(void **state)
{
    (void)state;
    ogd_config c;
    char *err = NULL;
    assert_int_equal(load_text(&c,
                               "app:\n  url_prefix: \"\"\n"
                               "  maintenance_file: m.json\n"
                               "  scheduled_maintenance_file: s.json\n"
                               "echo:\n  url: http://127.0.0.1:9000\n  username: og\n"
                               "  access_key: minio\n  secret_key: minio\n"
                               "  bucket_name: og-test\n"
                               "auth:\n  private_key_path: /k\n  public_key_path: /k.pub\n"
                               "backup:\n",
                               &err),
                     0);
    assert_int_equal(config_resolve(&c, &err), 0);
    assert_int_equal(c.echo.cache_maxsize, 128);
    assert_int_equal(c.auth.oidc_providers_count, 0);
    assert_false(c.backup.present); /* "backup:" with nothing under it: off */
    assert_string_equal(c.server.bind, "127.0.0.1:8000");
    config_free(&c);
}

/* ---- ogd's own sections ---- */

static void test_ogd_sections(void **state)
{
    (void)state;
    ogd_config c;
    char *err = NULL;
    assert_int_equal(load_text(&c,
                               "server:\n"
                               "  bind: \"[::1]:9000\"\n"
                               "  workers: 3\n"
                               "  worker_connections: 50\n"
                               "  max_requests: 1000\n"
                               "  max_requests_jitter: 100\n"
                               "  timeout: 20\n"
                               "  graceful_timeout: 10\n"
                               "  keepalive: 7\n"
                               "  data_dir: /srv/ogd/\n"
                               "  max_header_bytes: 8192\n"
                               "  max_body_bytes: 2097152\n"
                               "  max_upload_bytes: 1073741824\n"
                               "  header_timeout: 5\n"
                               "  body_timeout: 120\n"
                               "  log_file: /var/log/ogd.log\n"
                               "  log_level: debug\n"
                               "database:\n"
                               "  pool_size: 8\n"
                               "app:\n"
                               "  url_prefix: /api/\n"
                               "  cors_origins: [\"https://og.example.org\", "
                               "\"http://localhost:3000\"]\n"
                               "echo:\n"
                               "  cache_max_bytes: 1000000\n"
                               "  max_connections: 16\n"
                               "  region: eu-west-2\n"
                               "  request_timeout: 9\n"
                               "  max_retries: 0\n"
                               "  expiry_days: 30\n"
                               "export:\n"
                               "  max_concurrency: 64\n"
                               "  max_buffer_bytes: 1048576\n",
                               &err),
                     0);
    assert_int_equal(config_resolve(&c, &err), 0);
    assert_string_equal(c.server.host, "::1");
    assert_int_equal(c.server.port, 9000);
    assert_int_equal(c.server.workers, 3);
    assert_int_equal(c.server.worker_connections, 50);
    assert_int_equal(c.server.max_requests, 1000);
    assert_int_equal(c.server.max_requests_jitter, 100);
    assert_int_equal(c.server.timeout, 20);
    assert_int_equal(c.server.graceful_timeout, 10);
    assert_int_equal(c.server.keepalive, 7);
    assert_string_equal(c.server.data_dir, "/srv/ogd");
    assert_int_equal(c.server.max_header_bytes, 8192);
    assert_int_equal(c.server.max_body_bytes, 2097152);
    assert_int_equal(c.server.max_upload_bytes, 1073741824);
    assert_int_equal(c.server.header_timeout, 5);
    assert_int_equal(c.server.body_timeout, 120);
    assert_string_equal(c.server.log_file, "/var/log/ogd.log");
    assert_string_equal(c.server.log_level, "debug");
    assert_string_equal(c.database.url, "sqlite:///srv/ogd/ogd.sqlite3");
    assert_int_equal(c.database.pool_size, 8);
    assert_string_equal(c.echo.url, "file:///srv/ogd/objects");
    assert_string_equal(c.app.maintenance_file, "/srv/ogd/maintenance.json");
    assert_string_equal(c.app.url_prefix, "/api");
    assert_int_equal(c.app.cors_origins_count, 2);
    assert_string_equal(c.app.cors_origins[1], "http://localhost:3000");
    assert_int_equal(c.echo.cache_max_bytes, 1000000);
    assert_int_equal(c.echo.max_connections, 16);
    assert_string_equal(c.echo.region, "eu-west-2");
    assert_int_equal(c.echo.request_timeout, 9);
    assert_int_equal(c.echo.max_retries, 0);
    assert_int_equal(c.echo.expiry_days, 30);
    assert_int_equal(c.export.max_concurrency, 64);
    assert_int_equal(c.export.max_buffer_bytes, 1048576);
    /* resolving again changes nothing */
    assert_int_equal(config_resolve(&c, &err), 0);
    assert_string_equal(c.database.url, "sqlite:///srv/ogd/ogd.sqlite3");
    config_free(&c);

    /* server.bind wins over app.host/app.port; a bare host gets port 8000 */
    assert_int_equal(load_text(&c,
                               "server:\n  bind: 0.0.0.0\n"
                               "app:\n  host: 10.0.0.1\n  port: 9999\n",
                               &err),
                     0);
    assert_int_equal(config_resolve(&c, &err), 0);
    assert_string_equal(c.server.host, "0.0.0.0");
    assert_int_equal(c.server.port, 8000);
    config_free(&c);

    /* workers 0 = CPUs; nullable keys take null */
    assert_int_equal(load_text(&c,
                               "server:\n  workers: 0\n  log_file: null\n"
                               "app:\n  host: ~\n  port: null\n  reload: null\n"
                               "echo:\n  expiry_days:\n",
                               &err),
                     0);
    assert_int_equal(config_resolve(&c, &err), 0);
    assert_int_equal(c.server.workers, (int)sysconf(_SC_NPROCESSORS_ONLN));
    assert_null(c.server.log_file);
    assert_int_equal(c.app.port, 0);
    assert_int_equal(c.server.port, 8000);
    config_free(&c);
}

/* ---- errors ---- */

static void test_every_error_kind_with_its_line(void **state)
{
    (void)state;
    ogd_config c;
    char *err = NULL;
    int rc = load_text(&c,
                       "server:\n"                                     /* 1 */
                       "  workers: four\n"                             /* 2 */
                       "  keepalive: \"5\"\n"                          /* 3 */
                       "  timeout:\n"                                  /* 4 */
                       "  max_requests: 1.5\n"                         /* 5 */
                       "app:\n"                                        /* 6 */
                       "  hots: x\n"                                   /* 7 */
                       "  reload: yes\n"                               /* 8 */
                       "  url_prefix: 8000\n"                          /* 9 */
                       "images:\n"                                     /* 10 */
                       "  thumbnail_size: [50]\n"                      /* 11 */
                       "nonsense:\n"                                   /* 12 */
                       "  a: 1\n"                                      /* 13 */
                       "server:\n"                                     /* 14 */
                       "  bind: x\n"                                   /* 15 */
                       "float_images:\n"                               /* 16 */
                       "  thumbnail_size:\n"                           /* 17 */
                       "    - 10\n"                                    /* 18 */
                       "    - ten\n"                                   /* 19 */
                       "echo:\n"                                       /* 20 */
                       "  cache_maxsize: -1\n"                         /* 21 */
                       "  access_key: true\n"                          /* 22 */
                       "  url: file:///x\n"                            /* 23 */
                       "  url: file:///y\n"                            /* 24 */
                       "experiments:\n"                                /* 25 */
                       "  instrument_names: [Gemini, 5]\n"             /* 26 */
                       "  scheduler_background_retry_mins: x\n"        /* 27 */
                       "auth:\n"                                       /* 28 */
                       "  jwt_algorithm: HS256\n"                      /* 29 */
                       "  oidc_providers:\n"                           /* 30 */
                       "    keycloak:\n"                               /* 31 */
                       "      display_name: K\n"                       /* 32 */
                       "      verify_cert: \"true\"\n"                 /* 33 */
                       "      extra: 1\n"                              /* 34 */
                       "    \"bad id\": {}\n"                          /* 35 */
                       "    other: 5\n"                                /* 36 */
                       "backup:\n"                                     /* 37 */
                       "  mail:\n"                                     /* 38 */
                       "    to_addrs: a@b\n"                           /* 39 */
                       "  warning_mark_percent: 100\n"                 /* 40 */
                       "export:\n"                                     /* 41 */
                       "  max_filesize_bytes: 99999999999999999999\n", /* 42 */
                       &err);
    assert_int_equal(rc, -1);
    assert_non_null(err);
    assert_string_equal(
        err, expect("$F:2: server.workers: expected an integer, got \"four\"\n"
                    "$F:3: server.keepalive: expected an integer, got \"5\" (quoted, so a string)\n"
                    "$F:4: server.timeout: expected an integer, got nothing\n"
                    "$F:5: server.max_requests: expected an integer, got 1.5\n"
                    "$F:7: unknown key \"app.hots\"\n"
                    "$F:8: app.reload: expected true, false or null, got \"yes\"\n"
                    "$F:9: app.url_prefix: expected a string, got 8000 (quote it to make it a "
                    "string)\n"
                    "$F:11: images.thumbnail_size: expected a list of two integers, got 1 item\n"
                    "$F:12: unknown section \"nonsense\"\n"
                    "$F:14: duplicate section \"server\"\n"
                    "$F:19: float_images.thumbnail_size[1]: expected an integer, got \"ten\"\n"
                    "$F:21: echo.cache_maxsize: -1 is out of range (0..1000000)\n"
                    "$F:22: echo.access_key: expected a string or null, got a boolean\n"
                    "$F:24: echo.url: duplicate key\n"
                    "$F:26: experiments.instrument_names[1]: expected a string, got 5\n"
                    "$F:27: experiments.scheduler_background_retry_mins: expected a number, got "
                    "\"x\"\n"
                    "$F:29: auth.jwt_algorithm: expected one of RS256, got \"HS256\"\n"
                    "$F:33: auth.oidc_providers.keycloak.verify_cert: expected true or false, got "
                    "\"true\" (quoted, so a string)\n"
                    "$F:34: unknown key \"auth.oidc_providers.keycloak.extra\"\n"
                    "$F:31: auth.oidc_providers.keycloak.configuration_url: required key is "
                    "missing\n"
                    "$F:31: auth.oidc_providers.keycloak.client_id: required key is missing\n"
                    "$F:35: auth.oidc_providers: name \"bad id\" must be 1 to 64 letters, digits, "
                    "'_', '-' or '.'\n"
                    "$F:36: auth.oidc_providers.other: expected a mapping, got 5\n"
                    "$F:39: backup.mail.to_addrs: expected a list of strings, got \"a@b\"\n"
                    "$F:39: backup.mail.host: required key is missing\n"
                    "$F:39: backup.mail.from_addr: required key is missing\n"
                    "$F:40: backup.warning_mark_percent: 100 is out of range (1..99)\n"
                    "$F:42: export.max_filesize_bytes: 99999999999999999999 is out of range "
                    "(1..9223372036854775807)"));
    free(err);
    config_free(&c);
}

static void test_malformed_yaml(void **state)
{
    (void)state;
    ogd_config c;
    char *err = NULL;
    assert_int_equal(load_text(&c, "server:\n  workers: [1\n", &err), -1);
    assert_string_equal(err, expect("$F:3: invalid YAML: did not find expected ',' or ']' "
                                    "(while parsing a flow sequence started on line 2)"));
    free(err);
    config_free(&c);

    assert_int_equal(load_text(&c, "server:\n\tworkers: 1\n", &err), -1);
    assert_string_equal(err, expect("$F:2: invalid YAML: found character that cannot start "
                                    "any token (while scanning for the next token)"));
    free(err);
    config_free(&c);

    assert_int_equal(load_text(&c, "server:\n  data_dir: \"\xff\"\n", &err), -1);
    assert_string_equal(err, expect("$F:2: invalid YAML: invalid leading UTF-8 octet"));
    free(err);
    config_free(&c);

    assert_int_equal(load_text(&c, "server: {}\n---\napp: {}\n", &err), -1);
    assert_string_equal(err, expect("$F:3: more than one YAML document (a config file holds "
                                    "one)"));
    free(err);
    config_free(&c);

    assert_int_equal(load_text(&c, "- server\n", &err), -1);
    assert_string_equal(err, expect("$F:1: expected a mapping of sections at the top level, "
                                    "got a list"));
    free(err);
    config_free(&c);

    assert_int_equal(load_text(&c, "server: 5\napp: [1]\n", &err), -1);
    assert_string_equal(err, expect("$F:1: server: expected a mapping, got a single value\n"
                                    "$F:2: app: expected a mapping, got a list"));
    free(err);
    config_free(&c);

    /* an empty file, or one with only comments, is all defaults */
    assert_int_equal(load_text(&c, "# nothing here\n", &err), 0);
    assert_null(err);
    config_free(&c);
}

static void test_strict_types(void **state)
{
    (void)state;
    ogd_config c;
    char *err = NULL;
    /* accepted: YAML 1.2 core spellings of booleans, an integer for a float, numbers for a
     * secret (passwords may be all digits), a quoted string for a string */
    assert_int_equal(load_text(&c,
                               "app:\n  reload: True\n  url_prefix: '/x'\n"
                               "waveforms:\n  line_width: 2\n"
                               "experiments:\n  password: 123456\n"
                               "auth:\n  private_key_path: k\n  public_key_path: \"p\"\n",
                               &err),
                     0);
    assert_true(c.app.reload);
    assert_true(c.waveforms.line_width == 2.0);
    assert_string_equal(c.experiments.password, "123456");
    assert_string_equal(c.auth.public_key_path, "p");
    config_free(&c);

    assert_int_equal(load_text(&c,
                               "app:\n  port: \"8000\"\n  reload: on\n"
                               "  use_sub_second_timestamps: \"true\"\n"
                               "server:\n  workers: 0x10\n  keepalive: 1_000\n"
                               "  log_level: [info]\n"
                               "waveforms:\n  line_width: .inf\n",
                               &err),
                     -1);
    assert_string_equal(
        err, expect("$F:2: app.port: expected an integer or null, got \"8000\" (quoted, so a "
                    "string)\n"
                    "$F:3: app.reload: expected true, false or null, got \"on\"\n"
                    "$F:4: app.use_sub_second_timestamps: expected true or false, got \"true\" "
                    "(quoted, so a string)\n"
                    "$F:6: server.workers: expected an integer, got \"0x10\"\n"
                    "$F:7: server.keepalive: expected an integer, got \"1_000\"\n"
                    "$F:8: server.log_level: expected a string, got a list\n"
                    "$F:10: waveforms.line_width: .inf is out of range (0.01..100)"));
    free(err);
    config_free(&c);

    /* a secret's value never appears in a message */
    assert_int_equal(load_text(&c, "echo:\n  secret_key: [hunter2]\n", &err), -1);
    assert_string_equal(err, expect("$F:2: echo.secret_key: expected a string or null, got a "
                                    "list"));
    free(err);
    config_free(&c);
}

static void test_required_keys(void **state)
{
    (void)state;
    ogd_config c;
    char *err = NULL;
    /* auth present without its key paths: reported by resolve, at the section's line */
    assert_int_equal(load_text(&c,
                               "server:\n  workers: 1\n"
                               "auth:\n  jwt_algorithm: RS256\n"
                               "backup:\n  cache_directory: /c\n  target_url: root://x//\n",
                               &err),
                     0);
    assert_true(c.auth.present);
    assert_int_equal(config_resolve(&c, &err), -1);
    assert_string_equal(err, expect("$F:3: auth.private_key_path: required key is missing\n"
                                    "$F:3: auth.public_key_path: required key is missing\n"
                                    "$F:5: backup.copy_cron_string: required key is missing"));
    free(err);

    /* the environment may supply them */
    char *env[] = {"OGD_AUTH__PRIVATE_KEY_PATH=/k", "OGD_BACKUP__COPY_CRON_STRING=0 0 * * *", NULL};
    assert_int_equal(config_apply_env(&c, env, &err), 0);
    assert_int_equal(config_resolve(&c, &err), -1);
    assert_string_equal(err, expect("$F:3: auth.public_key_path: required key is missing"));
    free(err);
    config_free(&c);

    /* a section set only from the environment has no line */
    config_defaults(&c);
    char *env2[] = {"OGD_BACKUP__TARGET_URL=root://x//", NULL};
    assert_int_equal(config_apply_env(&c, env2, &err), 0);
    assert_true(c.backup.present);
    assert_int_equal(config_resolve(&c, &err), -1);
    assert_string_equal(err, "backup.cache_directory: required key is missing\n"
                             "backup.copy_cron_string: required key is missing");
    free(err);
    config_free(&c);
}

static void test_input_caps(void **state)
{
    (void)state;
    ogd_config c;
    char *err = NULL;

    /* a file over 1 MiB */
    size_t big = CONFIG_MAX_FILE_BYTES + 10;
    char *text = malloc(big + 1);
    assert_non_null(text);
    memcpy(text, "server: {}\n", 11);
    memset(text + 11, '#', big - 11);
    text[big] = '\0';
    assert_int_equal(load_text(&c, text, &err), -1);
    assert_string_equal(err, expect("$F: file is larger than 1048576 bytes"));
    free(err);
    free(text);
    config_free(&c);

    /* a list over 1000 items */
    size_t cap = 32 + (CONFIG_MAX_ITEMS + 1) * 8;
    text = malloc(cap);
    assert_non_null(text);
    size_t o = (size_t)snprintf(text, cap, "app:\n  cors_origins:\n");
    for (int i = 0; i <= CONFIG_MAX_ITEMS; i++)
        o += (size_t)snprintf(text + o, cap - o, "  - x\n");
    assert_int_equal(load_text(&c, text, &err), -1);
    assert_string_equal(err, expect("$F:3: app.cors_origins: more than 1000 items"));
    free(err);
    free(text);
    config_free(&c);

    /* a file that is not there */
    config_defaults(&c);
    assert_int_equal(config_load(&c, "/nonexistent/ogd.yml", &err), -1);
    assert_string_equal(err, "/nonexistent/ogd.yml: cannot open: No such file or directory");
    free(err);
    /* errors may be dropped */
    assert_int_equal(config_load(&c, "/nonexistent/ogd.yml", NULL), -1);
    config_free(&c);
}

/* ---- environment ---- */

static void test_env_overrides(void **state)
{
    (void)state;
    ogd_config c;
    char *err = NULL;
    assert_int_equal(load_text(&c, "server:\n  workers: 2\n  log_file: /tmp/x.log\n", &err), 0);
    char *env[] = {
        "PATH=/usr/bin",
        "OGD_CONFIG=/etc/ogd.yml", /* not OGD_<SECTION>__<KEY>: not ours */
        "OGD_SERVER__WORKERS=4",
        "OGD_SERVER__LOG_FILE=", /* empty = null for a nullable string */
        "OGD_ECHO__URL=https://s3.example.org",
        "OGD_ECHO__ACCESS_KEY=AK",
        "OGD_ECHO__SECRET_KEY=SK",
        "OGD_ECHO__BUCKET_NAME=b",
        "OGD_APP__URL_PREFIX=/og",
        "OGD_APP__RELOAD=true",
        "OGD_APP__CORS_ORIGINS=https://a.example.org, https://b.example.org:8443",
        "OGD_IMAGES__THUMBNAIL_SIZE=64,32",
        "OGD_VECTORS__THUMBNAIL_SIZE=[10, 20]",
        "OGD_WAVEFORMS__LINE_WIDTH=1.5",
        "OGD_EXPERIMENTS__INSTRUMENT_NAMES=[Gemini, \"EPAC, 2\"]",
        "OGD_AUTH__OIDC_PROVIDERS={\"kc\": {\"display_name\": \"K\", \"configuration_url\": "
        "\"https://id/.well-known\", \"client_id\": \"og\", \"verify_cert\": false}}",
        "OGD_BACKUP__MAIL={host: \"smtp:25\", to_addrs: [a@b], from_addr: c@d}",
        "ogd_server__timeout=9", /* lower case is not ours */
        NULL,
    };
    assert_int_equal(config_apply_env(&c, env, &err), 0);
    assert_null(err);
    assert_int_equal(c.server.workers, 4);
    assert_null(c.server.log_file);
    assert_string_equal(c.echo.url, "https://s3.example.org");
    assert_string_equal(c.app.url_prefix, "/og");
    assert_true(c.app.reload);
    assert_int_equal(c.app.cors_origins_count, 2);
    assert_string_equal(c.app.cors_origins[1], "https://b.example.org:8443");
    assert_int_equal(c.images.thumbnail_size[0], 64);
    assert_int_equal(c.images.thumbnail_size[1], 32);
    assert_int_equal(c.vectors.thumbnail_size[1], 20);
    assert_true(c.waveforms.line_width == 1.5);
    assert_int_equal(c.experiments.instrument_names_count, 2);
    assert_string_equal(c.experiments.instrument_names[1], "EPAC, 2");
    assert_int_equal(c.auth.oidc_providers_count, 1);
    assert_string_equal(c.auth.oidc_providers[0].id, "kc");
    assert_false(c.auth.oidc_providers[0].verify_cert);
    assert_string_equal(c.auth.oidc_providers[0].username_claim, "email");
    assert_non_null(c.backup.mail);
    assert_string_equal(c.backup.mail->to_addrs[0], "a@b");
    assert_int_equal(c.server.timeout, 30);
    assert_true(c.echo.present);
    config_free(&c);
}

static void test_env_errors(void **state)
{
    (void)state;
    ogd_config c;
    config_defaults(&c);
    char *err = NULL;
    char *env[] = {
        "OGD_SERVER__WORKERS=many",
        "OGD_SERVER__NOPE=1",
        "OGD_NOPE__WORKERS=1",
        "OGD_APP__RELOAD=yes",
        "OGD_SERVER__TIMEOUT=",
        "OGD_SERVER__KEEPALIVE=99999",
        "OGD_IMAGES__THUMBNAIL_SIZE=64",
        "OGD_SERVER__LOG_LEVEL=loud",
        "OGD_AUTH__OIDC_PROVIDERS={kc: [",
        "OGD_ECHO__SECRET_KEY=fine-any-text-is-a-string",
        NULL,
    };
    assert_int_equal(config_apply_env(&c, env, &err), -1);
    assert_string_equal(
        err, "OGD_SERVER__WORKERS: server.workers: expected an integer, got \"many\"\n"
             "OGD_SERVER__NOPE: unknown key \"server.nope\"\n"
             "OGD_NOPE__WORKERS: unknown section \"nope\"\n"
             "OGD_APP__RELOAD: app.reload: expected true, false or null, got \"yes\"\n"
             "OGD_SERVER__TIMEOUT: server.timeout: expected an integer, got nothing\n"
             "OGD_SERVER__KEEPALIVE: server.keepalive: 99999 is out of range (1..3600)\n"
             "OGD_IMAGES__THUMBNAIL_SIZE: images.thumbnail_size: expected a list of two "
             "integers, got 1 item\n"
             "OGD_SERVER__LOG_LEVEL: server.log_level: expected one of debug, info, warn, "
             "error, got \"loud\"\n"
             "OGD_AUTH__OIDC_PROVIDERS: invalid YAML: did not find expected node content "
             "(while parsing a flow node)");
    free(err);
    /* the bad values left the defaults in place */
    assert_int_equal(c.server.timeout, 30);
    assert_string_equal(c.server.log_level, "info");
    config_free(&c);
}

/* ---- resolve ---- */

static void test_resolve_fedid_checks(void **state)
{
    (void)state;
    ogd_config c;
    char *err = NULL;
    config_defaults(&c);
    c.auth.fedid_server_url = strdup("http://fed.example.org");
    c.auth.fedid_bind_dn = strdup("cn=service,dc=example,dc=org");
    assert_int_equal(config_resolve(&c, &err), -1);
    assert_string_equal(err, "auth.fedid_bind_dn: must contain {username}\n"
                             "auth.fedid_server_url: expected ldap://HOST[:PORT] or ldaps://...");
    free(err);
    config_free(&c);
    config_defaults(&c);
    c.auth.fedid_server_url = strdup("LDAPS://fed.example.org:636");
    c.auth.fedid_bind_dn = strdup("uid={username},ou=people,dc=example,dc=org");
    err = NULL;
    assert_int_equal(config_resolve(&c, &err), 0);
    assert_int_equal(c.auth.fedid_timeout_seconds, 5);
    assert_string_equal(c.auth.fedid_search_base, "dc=fed,dc=cclrc,dc=ac,dc=uk");
    free(err);
    config_free(&c);
}

static void test_resolve_checks(void **state)
{
    (void)state;
    ogd_config c;
    char *err = NULL;
    config_defaults(&c);
    c.server.bind = strdup("localhost:99999");
    c.server.workers = 5000;
    free(c.echo.url);
    c.echo.url = strdup("https://s3.example.org");
    free(c.app.url_prefix);
    c.app.url_prefix = strdup("api");
    c.app.cors_origins = calloc(1, sizeof(char *));
    c.app.cors_origins[0] = strdup("https://og.example.org/");
    c.app.cors_origins_count = 1;
    c.experiments.scheduler_background_task_enabled = true;
    c.experiments.username = strdup("u");
    c.database.url = strdup("mysql://db");
    assert_int_equal(config_resolve(&c, &err), -1);
    assert_string_equal(err,
                        "database.url: expected sqlite://PATH or postgresql://...\n"
                        "echo.access_key: required when echo.url is http(s)\n"
                        "echo.secret_key: required when echo.url is http(s)\n"
                        "echo.bucket_name: required when echo.url is http(s)\n"
                        "server.bind: port 99999 is out of range (1..65535)\n"
                        "app.url_prefix: must be empty or start with \"/\"\n"
                        "app.cors_origins[0]: expected an origin like https://host[:port], got "
                        "\"https://og.example.org/\"\n"
                        "experiments.first_scheduler_contact_start_date: required when "
                        "experiments.scheduler_background_task_enabled is true\n"
                        "experiments.user_office_rest_api_url: required when "
                        "experiments.scheduler_background_task_enabled is true\n"
                        "experiments.password: required when "
                        "experiments.scheduler_background_task_enabled is true\n"
                        "experiments.scheduler_wsdl_url: required when "
                        "experiments.scheduler_background_task_enabled is true\n"
                        "server.workers: 5000 is out of range (0..1024)");
    free(err);
    config_free(&c);

    config_defaults(&c);
    c.server.bind = strdup("::1:80");
    c.experiments.first_scheduler_contact_start_date = strdup("02/01/2019");
    free(c.server.data_dir);
    c.server.data_dir = strdup("");
    assert_int_equal(config_resolve(&c, &err), -1);
    assert_string_equal(err, "server.data_dir: must not be empty\n"
                             "server.bind: expected HOST:PORT or [IPV6]:PORT, got \"::1:80\"\n"
                             "experiments.first_scheduler_contact_start_date: expected an ISO "
                             "8601 date-time like 2019-01-02T00:00:00Z");
    free(err);
    config_free(&c);

    /* postgresql URLs are accepted; an IPv6 app.host is bracketed into bind */
    config_defaults(&c);
    c.database.url = strdup("postgresql://og@db.example.org/og");
    c.app.host = strdup("::");
    c.app.port = 8080;
    assert_int_equal(config_resolve(&c, &err), 0);
    assert_string_equal(c.server.bind, "[::]:8080");
    assert_string_equal(c.server.host, "::");
    config_free(&c);
}

/* server.forwarded_allow_ips: addresses or networks, from the file or the environment;
 * anything else is reported with its index. */
static void test_forwarded_allow_ips(void **state)
{
    (void)state;
    ogd_config c;
    char *err = NULL;
    assert_int_equal(load_text(&c,
                               "server:\n  max_connections_per_client: 0\n"
                               "  forwarded_allow_ips: [\"10.0.0.0/8\", \"192.0.2.7\", "
                               "\"fd00::/8\", \"2001:db8::1\"]\n",
                               &err),
                     0);
    assert_int_equal(config_resolve(&c, &err), 0);
    assert_int_equal(c.server.max_connections_per_client, 0);
    assert_int_equal(c.server.forwarded_allow_ips_count, 4);
    assert_string_equal(c.server.forwarded_allow_ips[2], "fd00::/8");
    config_free(&c);

    assert_int_equal(load_text(&c,
                               "server:\n  forwarded_allow_ips: [\"10.0.0.1/8\", \"127.0.0.1\", "
                               "\"proxy.example.org\", \"*\"]\n",
                               &err),
                     0);
    assert_int_equal(config_resolve(&c, &err), -1);
    assert_string_equal(err, "server.forwarded_allow_ips[0]: expected an IP address or a "
                             "network like 10.0.0.0/8, got \"10.0.0.1/8\"\n"
                             "server.forwarded_allow_ips[2]: expected an IP address or a "
                             "network like 10.0.0.0/8, got \"proxy.example.org\"\n"
                             "server.forwarded_allow_ips[3]: expected an IP address or a "
                             "network like 10.0.0.0/8, got \"*\"");
    free(err);
    config_free(&c);

    /* an empty variable trusts no one */
    config_defaults(&c);
    char *env[] = {"OGD_SERVER__FORWARDED_ALLOW_IPS=", NULL};
    assert_int_equal(config_apply_env(&c, env, &err), 0);
    assert_int_equal(config_resolve(&c, &err), 0);
    assert_int_equal(c.server.forwarded_allow_ips_count, 0);
    config_free(&c);
}

/* ---- dump ---- */

static void test_dump_masks_secrets(void **state)
{
    (void)state;
    ogd_config c;
    char *err = NULL;
    assert_int_equal(load_text(&c, reference_config, &err), 0);
    free(c.database.url);
    c.database.url = strdup("postgresql://og:db-pass-word@db.example.org/og?password=qp-secret");
    assert_int_equal(config_resolve(&c, &err), 0);
    char *dump = dump_to_string(&c);
    const char *secrets[] = {"AKIA-TEST-KEY", "s3cr3t-value",     "dbpass",       "mongodb://",
                             "uo-pass-word",  "apm-secret-token", "db-pass-word", "qp-secret"};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        assert_null(strstr(dump, secrets[i]));
    assert_non_null(strstr(dump, "  access_key: \"***\"\n"));
    assert_non_null(strstr(dump, "  secret_key: \"***\"\n"));
    assert_non_null(strstr(dump, "  mongodb_url: \"***\"\n"));
    assert_non_null(strstr(dump, "  password: \"***\"\n"));
    assert_non_null(
        strstr(dump, "  url: \"postgresql://og:***@db.example.org/og?password=***\"\n"));
    /* everything else is shown */
    assert_non_null(strstr(dump, "  username: \"uo-user\"\n"));
    assert_non_null(strstr(dump, "  thumbnail_size: [60, 40]\n"));
    assert_non_null(strstr(dump, "  line_width: 0.3\n"));
    assert_non_null(strstr(dump, "    \"keycloak\":\n      display_name: \"Keycloak login\"\n"));
    assert_non_null(strstr(dump, "  mail:\n    host: \"localhost:25\"\n    to_addrs:\n"
                                 "      - \"ops@example.org\"\n"));
    assert_non_null(strstr(dump, "  expiry_days: null\n"));
    free(dump);
    config_free(&c);

    /* with no backup section, backup is null */
    config_defaults(&c);
    assert_int_equal(config_resolve(&c, &err), 0);
    dump = dump_to_string(&c);
    assert_non_null(strstr(dump, "\nbackup: null\n"));
    assert_non_null(strstr(dump, "  oidc_providers: {}\n"));
    free(dump);
    config_free(&c);
}

/* ---- config.yml.example ---- */

static char *read_example(void)
{
    /* __FILE__ is tests/unit/test_config.c; the example is at the repository root. */
    char name[4096];
    snprintf(name, sizeof(name), "%s", __FILE__);
    char *slash = strrchr(name, '/');
    assert_non_null(slash);
    snprintf(slash, sizeof(name) - (size_t)(slash - name), "/../../config.yml.example");
    FILE *f = fopen(name, "rb");
    assert_non_null(f);
    char *text = calloc(1, CONFIG_MAX_FILE_BYTES + 1);
    assert_non_null(text);
    size_t n = fread(text, 1, CONFIG_MAX_FILE_BYTES, f);
    fclose(f);
    assert_true(n > 0 && n < CONFIG_MAX_FILE_BYTES);
    return text;
}

/* The example, as shipped, sets every key to its default. */
static void test_example_is_the_defaults(void **state)
{
    (void)state;
    char *example = read_example();
    ogd_config c, d;
    char *err = NULL;
    if (load_text(&c, example, &err) != 0)
        fail_msg("config.yml.example: %s", err);
    assert_int_equal(config_resolve(&c, &err), 0);
    config_defaults(&d);
    assert_int_equal(config_resolve(&d, &err), 0);
    char *from_file = dump_to_string(&c);
    char *built_in = dump_to_string(&d);
    assert_string_equal(from_file, built_in);
    free(from_file);
    free(built_in);
    config_free(&c);
    config_free(&d);
    free(example);
}

/* With its commented-out sections (auth, backup) switched on, the example still loads,
 * and it names every key there is. */
static void test_example_names_every_key(void **state)
{
    (void)state;
    char *example = read_example();
    char *on = calloc(1, strlen(example) + 1);
    assert_non_null(on);
    bool in_block = false;
    size_t o = 0;
    for (char *line = example; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) + 1 : strlen(line);
        if (strncmp(line, "#auth:", 6) == 0 || strncmp(line, "#backup:", 8) == 0)
            in_block = true;
        else if (line[0] != '#')
            in_block = false;
        size_t skip = in_block ? 1 : 0;
        memcpy(on + o, line + skip, len - skip);
        o += len - skip;
        line += len;
    }
    ogd_config c;
    char *err = NULL;
    if (load_text(&c, on, &err) != 0)
        fail_msg("config.yml.example with auth and backup on: %s", err);
    assert_int_equal(config_resolve(&c, &err), 0);
    assert_null(err);
    assert_true(c.auth.present);
    assert_true(c.backup.present);
    assert_int_equal(c.auth.oidc_providers_count, 1);
    assert_non_null(c.backup.mail);

    /* every key the dump shows appears in the example as "key:" */
    char *dump = dump_to_string(&c);
    for (char *line = strtok(dump, "\n"); line; line = strtok(NULL, "\n")) {
        char *p = line;
        while (*p == ' ')
            p++;
        char *colon = strchr(p, ':');
        if (*p == '#' || *p == '-' || *p == '"' || !colon)
            continue;
        char key[80];
        snprintf(key, sizeof(key), " %.*s:", (int)(colon - p), p);
        if (!strstr(on, key) && !(p == line && strstr(on, key + 1)))
            fail_msg("config.yml.example does not mention %s", key + 1);
    }
    free(dump);
    config_free(&c);
    free(on);
    free(example);
}

static void test_experiments_schedule_checks(void **state)
{
    (void)state;
    ogd_config c;
    char *err = NULL;
    config_defaults(&c);
    free(c.experiments.scheduler_background_frequency);
    c.experiments.scheduler_background_frequency = strdup("0 9 * *");
    free(c.experiments.scheduler_background_timezone);
    c.experiments.scheduler_background_timezone = strdup("Mars/Olympus_Mons");
    assert_int_equal(config_resolve(&c, &err), -1);
    assert_string_equal(err, "experiments.scheduler_background_frequency: cron expression \"0 9 * "
                             "*\": expected 5 fields, got 4\n"
                             "scheduler_background_timezone is not a valid timezone: "
                             "Mars/Olympus_Mons");
    free(err);
    err = NULL;
    free(c.experiments.scheduler_background_frequency);
    c.experiments.scheduler_background_frequency = strdup("*/5 8-18 * * mon-fri");
    free(c.experiments.scheduler_background_timezone);
    c.experiments.scheduler_background_timezone = strdup("../../etc/passwd");
    assert_int_equal(config_resolve(&c, &err), -1);
    assert_string_equal(err,
                        "scheduler_background_timezone is not a valid timezone: ../../etc/passwd");
    free(err);
    err = NULL;
    free(c.experiments.scheduler_background_timezone);
    c.experiments.scheduler_background_timezone = strdup("America/New_York");
    assert_int_equal(config_resolve(&c, &err), 0);
    config_free(&c);
}

/* Found by tests/fuzz/fuzz_config: check-config's output must load again. An environment
 * value is not YAML-checked, so it must be valid UTF-8 (a file cannot hold other bytes
 * either), and the dump escapes what YAML does not allow raw (C0/C1 controls, DEL,
 * U+FFFE/U+FFFF). */
static void test_dump_loads_again(void **state)
{
    (void)state;
    ogd_config c;
    config_defaults(&c);
    char *err = NULL;
    char *bad[] = {"OGD_APP__CORS_ORIGINS=https://b\xbd.example.org", "OGD_APP__HOST=a\xc0\x80",
                   "OGD_AUTH__JWT_ALGORITHM=\xed\xa0\x80", NULL};
    assert_int_equal(config_apply_env(&c, bad, &err), -1);
    assert_string_equal(err, "OGD_APP__CORS_ORIGINS: app.cors_origins: value is not valid UTF-8\n"
                             "OGD_APP__HOST: app.host: value is not valid UTF-8\n"
                             "OGD_AUTH__JWT_ALGORITHM: auth.jwt_algorithm: value is not valid "
                             "UTF-8");
    free(err);
    assert_int_equal(c.app.cors_origins_count, 0);
    err = NULL;
    char *odd[] = {"OGD_APP__HOST=t\x01"
                   "a\x7f"
                   "b\xc2\x85"
                   "c\xef\xbf\xbe\xc3\xa9\"\\",
                   NULL};
    assert_int_equal(config_apply_env(&c, odd, &err), 0);
    assert_int_equal(config_resolve(&c, &err), 0);
    char *text = dump_to_string(&c);
    assert_non_null(strstr(
        text, "# resolved: host \"t\\x01a\\x7fb\\x85c\\ufffe\xc3\xa9\\\"\\\\\", port 8000\n"));
    assert_non_null(strstr(text, "  host: \"t\\x01a\\x7fb\\x85c\\ufffe\xc3\xa9\\\"\\\\\"\n"));
    ogd_config c2;
    assert_int_equal(load_text(&c2, text, &err), 0);
    assert_int_equal(config_resolve(&c2, &err), 0);
    assert_string_equal(c2.app.host, c.app.host);
    char *text2 = dump_to_string(&c2);
    assert_string_equal(text2, text);
    free(text);
    free(text2);
    config_free(&c);
    config_free(&c2);
}

/* config_load_text (the fuzzer's entry, tests/fuzz/fuzz_config.c) says what config_load
 * says of the same bytes in a file, needs no terminator, and has the file's size cap. */
static void test_load_text(void **state)
{
    (void)state;
    const char *text = "server:\n  workers: 3\n  bogus: 1\napp:\n  url_prefix: /og/\nX";
    size_t len = strlen(text) - 1; /* not the final X: no terminator needed */
    char *copy = strndup(text, len);
    write_file(copy);
    ogd_config a, b;
    char *ea = NULL, *eb = NULL;
    config_defaults(&a);
    config_defaults(&b);
    assert_int_equal(config_load(&a, path, &ea), -1);
    assert_int_equal(config_load_text(&b, path, text, len, &eb), -1);
    unlink(path);
    assert_non_null(strstr(eb, "server.bogus"));
    assert_string_equal(ea, eb);
    assert_int_equal(b.server.workers, 3);
    free(ea);
    free(eb);
    assert_int_equal(config_resolve(&a, &ea), 0);
    assert_int_equal(config_resolve(&b, &eb), 0);
    char *da = dump_to_string(&a), *db = dump_to_string(&b);
    assert_string_equal(da, db);
    free(da);
    free(db);
    free(copy);
    config_free(&a);
    config_free(&b);
    config_defaults(&b);
    assert_int_equal(config_load_text(&b, "big.yml", "", CONFIG_MAX_FILE_BYTES + 1, &eb), -1);
    assert_non_null(strstr(eb, "big.yml"));
    assert_non_null(strstr(eb, "larger than"));
    free(eb);
    config_free(&b);
}

/* Found by tests/fuzz/fuzz_config: the excerpt that names a variable in a message backed
 * off over every UTF-8 continuation byte, so a long name of such bytes was shown as
 * "OGD...". It backs off at most over one sequence. */
static void test_env_error_names_the_variable(void **state)
{
    (void)state;
    char name[200] = "OGD_";
    memset(name + 4, 0xa9, 100);
    strcpy(name + 104, "__URL=x");
    char *env[] = {name, NULL};
    ogd_config c;
    config_defaults(&c);
    char *err = NULL;
    assert_int_equal(config_apply_env(&c, env, &err), -1);
    assert_int_equal(strncmp(err, "OGD_\xa9\xa9", 6), 0);
    assert_non_null(strstr(err, "...: no such setting"));
    free(err);
    config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_experiments_schedule_checks),
        cmocka_unit_test(test_defaults_need_no_file),
        cmocka_unit_test(test_reference_config_loads),
        cmocka_unit_test(test_reference_ci_style_config_loads),
        cmocka_unit_test(test_ogd_sections),
        cmocka_unit_test(test_every_error_kind_with_its_line),
        cmocka_unit_test(test_malformed_yaml),
        cmocka_unit_test(test_strict_types),
        cmocka_unit_test(test_required_keys),
        cmocka_unit_test(test_input_caps),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_env_errors),
        cmocka_unit_test(test_resolve_checks),
        cmocka_unit_test(test_forwarded_allow_ips),
        cmocka_unit_test(test_resolve_fedid_checks),
        cmocka_unit_test(test_dump_masks_secrets),
        cmocka_unit_test(test_dump_loads_again),
        cmocka_unit_test(test_load_text),
        cmocka_unit_test(test_env_error_names_the_variable),
        cmocka_unit_test(test_example_is_the_defaults),
        cmocka_unit_test(test_example_names_every_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
