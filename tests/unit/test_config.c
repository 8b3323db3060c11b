/* Unit tests for src/config/config.c: defaults, a reference-style file, strict types,
 * error messages with lines, environment overrides, resolve, and secret masking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

static char path[64];

static void write_file(const char *text)
{
    strcpy(path, "/tmp/ogd-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void test_defaults(void **state)
{
    (void)state;
    ogd_config c;
    config_defaults(&c);
    char *err = NULL;
    assert_int_equal(config_resolve(&c, &err), 0);
    assert_string_equal(c.server.host, "127.0.0.1");
    assert_int_equal(c.server.port, 8000);
    assert_true(c.server.workers >= 1);
    assert_string_equal(c.database.url, "sqlite://./var/ogd.sqlite3");
    assert_string_equal(c.echo.url, "file://./var/objects");
    assert_int_equal(c.echo.cache_maxsize, 128);
    assert_int_equal(c.mongodb.max_documents, 1000);
    assert_int_equal(c.images.thumbnail_size[0], 50);
    assert_int_equal(c.waveforms.thumbnail_size[1], 100);
    assert_string_equal(c.float_images.default_colour_map, "bwr");
    assert_int_equal(c.export_.max_filesize_bytes, 1073741824);
    config_free(&c);
}

static const char reference[] =
    "app:\n"
    "  host: 127.0.0.1\n"
    "  port: 8000\n"
    "  reload: true\n"
    "  url_prefix: \"\"\n"
    "  maintenance_file: maintenance/maintenance.json\n"
    "  scheduled_maintenance_file: maintenance/scheduled_maintenance.json\n"
    "images:\n"
    "  thumbnail_size: [50, 50]\n"
    "  default_colour_map: viridis\n"
    "  colourbar_height_pixels: 16\n"
    "  preferred_colour_map_pref_name: PREFERRED_COLOUR_MAP\n"
    "float_images:\n"
    "  thumbnail_size: [50, 50]\n"
    "  default_colour_map: bwr\n"
    "  preferred_colour_map_pref_name: PREFERRED_FLOAT_COLOUR_MAP\n"
    "waveforms:\n"
    "  thumbnail_size: [100, 100]\n"
    "  line_width: 0.3\n"
    "vectors:\n"
    "  thumbnail_size: [100, 100]\n"
    "echo:\n"
    "  url: https://s3.echo.stfc.ac.uk\n"
    "  username: operations-gateway\n"
    "  access_key: AKIAEXAMPLE\n"
    "  secret_key: s3cr3t\n"
    "  bucket_name: test-bucket\n"
    "  cache_maxsize: 128\n"
    "mongodb:\n"
    "  mongodb_url: mongodb://localhost:27017\n"
    "  database_name: opsgateway\n"
    "  max_documents: 1000\n"
    "auth:\n"
    "  private_key_path: /keys/id_rsa\n"
    "  public_key_path: /keys/id_rsa.pub\n"
    "  jwt_algorithm: RS256\n"
    "  access_token_validity_mins: 60\n"
    "  refresh_token_validity_days: 7\n"
    "  fedid_server_url: ldap://fed.cclrc.ac.uk:389\n"
    "  fedid_server_ldap_realm: FED.CCLRC.AC.UK\n"
    "  oidc_providers:\n"
    "    keycloak:\n"
    "      display_name: Keycloak\n"
    "      configuration_url: http://localhost:8081/realms/dev/.well-known/openid-configuration\n"
    "      client_id: operations-gateway\n"
    "      verify_cert: false\n"
    "      mechanism: oidc\n"
    "      username_claim: email\n"
    "experiments:\n"
    "  first_scheduler_contact_start_date: 2019-01-02T00:00:00Z\n"
    "  scheduler_background_task_enabled: false\n"
    "  scheduler_background_frequency: \"0 9 * * 1\"\n"
    "  scheduler_background_timezone: Europe/London\n"
    "  scheduler_background_retry_mins: 20\n"
    "  user_office_rest_api_url: https://example.invalid/uo\n"
    "  username: user\n"
    "  password: pass\n"
    "  scheduler_wsdl_url: https://example.invalid/wsdl\n"
    "  instrument_names:\n"
    "    - Gemini\n"
    "  worker_file_path: /dev/shm/og-experiment-background\n"
    "export:\n"
    "  max_filesize_bytes: 1073741824\n"
    "observability:\n"
    "  environment: dev\n"
    "  secret_key: obs\n";

static void test_reference_file_loads(void **state)
{
    (void)state;
    write_file(reference);
    ogd_config c;
    config_defaults(&c);
    char *err = NULL;
    assert_int_equal(config_load(&c, path, &err), 0);
    assert_null(err);
    assert_int_equal(config_resolve(&c, &err), 0);
    assert_string_equal(c.echo.bucket_name, "test-bucket");
    assert_int_equal(c.server.port, 8000); /* from app.port */
    assert_true(c.app.reload);
    assert_int_equal(c.experiments.instrument_names_count, 1);
    assert_string_equal(c.experiments.instrument_names[0], "Gemini");
    assert_non_null(strstr(c.auth.oidc_providers_json, "\"client_id\":\"operations-gateway\""));
    assert_false(c.backup.enabled);

    char *dump = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&dump, &len);
    config_dump(&c, f);
    fclose(f);
    assert_null(strstr(dump, "s3cr3t"));
    assert_null(strstr(dump, "AKIAEXAMPLE"));
    assert_null(strstr(dump, "mongodb://"));
    assert_non_null(strstr(dump, "secret_key: \"***\""));
    free(dump);
    config_free(&c);
    unlink(path);
}

static void test_errors_name_key_and_line(void **state)
{
    (void)state;
    write_file("server:\n"
               "  workers: four\n"
               "  keepalive: \"5\"\n"
               "app:\n"
               "  hots: x\n"
               "  reload: yes\n"
               "images:\n"
               "  thumbnail_size: [50]\n"
               "nonsense:\n"
               "  a: 1\n"
               "auth:\n"
               "  jwt_algorithm: RS256\n");
    ogd_config c;
    config_defaults(&c);
    char *err = NULL;
    assert_int_equal(config_load(&c, path, &err), -1);
    char want[256];
    snprintf(want, sizeof(want), "%s:2: server.workers: expected an integer, got a string \"four\"",
             path);
    assert_non_null(strstr(err, want));
    snprintf(want, sizeof(want), "%s:3: server.keepalive: expected an integer", path);
    assert_non_null(strstr(err, want));
    snprintf(want, sizeof(want), "%s:5: unknown key \"app.hots\"", path);
    assert_non_null(strstr(err, want));
    snprintf(want, sizeof(want), "%s:6: app.reload: expected true or false", path);
    assert_non_null(strstr(err, want));
    snprintf(want, sizeof(want), "%s:8: images.thumbnail_size: expected a list of two integers",
             path);
    assert_non_null(strstr(err, want));
    snprintf(want, sizeof(want), "%s:9: unknown section \"nonsense\"", path);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "auth.private_key_path: required key is missing"));
    free(err);
    config_free(&c);
    unlink(path);

    write_file("server: [\n");
    config_defaults(&c);
    assert_int_equal(config_load(&c, path, &err), -1);
    assert_non_null(strstr(err, "invalid YAML"));
    free(err);
    config_free(&c);
    unlink(path);
}

static void test_env_overrides(void **state)
{
    (void)state;
    ogd_config c;
    config_defaults(&c);
    char *env[] = {"OGD_SERVER__WORKERS=3", "OGD_ECHO__URL=file:///tmp/x",
                   "OGD_IMAGES__THUMBNAIL_SIZE=64,32", "OGD_APP__CORS_ORIGINS=http://a,http://b",
                   "PATH=/bin", NULL};
    char *err = NULL;
    assert_int_equal(config_apply_env(&c, env, &err), 0);
    assert_int_equal(c.server.workers, 3);
    assert_string_equal(c.echo.url, "file:///tmp/x");
    assert_int_equal(c.images.thumbnail_size[0], 64);
    assert_int_equal(c.app.cors_origins_count, 2);
    assert_string_equal(c.app.cors_origins[1], "http://b");
    char *bad[] = {"OGD_SERVER__WORKERS=many", "OGD_SERVER__NOPE=1", NULL};
    assert_int_equal(config_apply_env(&c, bad, &err), -1);
    assert_non_null(strstr(err, "OGD_SERVER__WORKERS: expected an integer"));
    assert_non_null(strstr(err, "OGD_SERVER__NOPE: no such setting server.nope"));
    free(err);
    config_free(&c);
}

static void test_resolve_validation(void **state)
{
    (void)state;
    ogd_config c;
    config_defaults(&c);
    free(c.server.bind);
    c.server.bind = strdup("[::1]:9000");
    char *err = NULL;
    assert_int_equal(config_resolve(&c, &err), 0);
    assert_string_equal(c.server.host, "::1");
    assert_int_equal(c.server.port, 9000);
    config_free(&c);

    config_defaults(&c);
    c.server.bind = strdup("localhost:99999");
    c.server.workers = 1000;
    free(c.echo.url);
    c.echo.url = strdup("https://s3.example");
    assert_int_equal(config_resolve(&c, &err), -1);
    assert_non_null(strstr(err, "server.bind"));
    assert_non_null(strstr(err, "server.workers: 1000 is out of range"));
    assert_non_null(strstr(err, "bucket_name are required"));
    free(err);
    config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_reference_file_loads),
        cmocka_unit_test(test_errors_name_key_and_line),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_resolve_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
