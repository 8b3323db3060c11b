/*
 * fuzz_config: the configuration loader (src/config/config.h) on a hostile config.yml:
 * YAML parsing, the key table (types, ranges, lists, pairs, maps, OIDC providers),
 * environment overrides, config_resolve's whole-picture checks, and config_dump.
 *
 * Input: YAML [%% ENVIRONMENT], split at FZ_SEP. The YAML goes through config_load_text
 * (config_load's parser, without the file: reading one zeroes a 1 MiB buffer, most of an
 * execution's time under ASan); ENVIRONMENT holds one OGD_<SECTION>__<KEY>=value per
 * line for config_apply_env. Then config_resolve and config_dump, as `ogd
 * check-config` runs them.
 * Checks, besides memory errors, UB and leaks: each step returns 0 or -1, with an error
 * text exactly when it returns -1 (one problem per line, each naming the file or the
 * variable); the struct stays freeable whatever failed; when everything succeeded, the
 * dump (the effective configuration, secrets masked) loads and resolves again without
 * errors and dumps to the same text: check-config's output is a valid config file.
 */
#include "harness.h"

#include "config/config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_silence_logs();
    return 0;
}

/* Every error text is non-empty lines, each naming where the problem is. */
static void check_errors(int rc, char *errors, const char *where)
{
    FZ_CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        FZ_CHECK(errors == NULL);
        return;
    }
    FZ_CHECK(errors != NULL && errors[0] != '\0');
    if (where)
        FZ_CHECK(strstr(errors, where) != NULL);
    free(errors);
}

static char *dump(const ogd_config *c, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    FZ_CHECK(f != NULL);
    config_dump(c, f);
    FZ_CHECK(fclose(f) == 0);
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_part part[2];
    fz_split(data, size, part, 2);

    /* the environment: NUL-terminated lines, as environ holds them */
    char *env_text = fz_strndup(part[1].data, part[1].size);
    char *envp[65];
    size_t nenv = 0;
    for (char *line = env_text, *next; line && nenv < 64; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (*line)
            envp[nenv++] = line;
    }
    envp[nenv] = NULL;

    static const char name[] = "fuzz.yml";
    ogd_config c;
    config_defaults(&c);
    char *errors = NULL;
    int rc = config_load_text(&c, name, (const char *)part[0].data, part[0].size, &errors);
    bool ok = rc == 0;
    check_errors(rc, errors, name);
    errors = NULL;
    rc = config_apply_env(&c, envp, &errors);
    ok = ok && rc == 0;
    check_errors(rc, errors, "OGD_");
    errors = NULL;
    rc = config_resolve(&c, &errors);
    ok = ok && rc == 0;
    check_errors(rc, errors, NULL);
    size_t len1 = 0;
    char *text1 = dump(&c, &len1);
    config_free(&c);

    if (ok) {
        /* the dump is a config file that says the same */
        ogd_config c2;
        config_defaults(&c2);
        errors = NULL;
        rc = config_load_text(&c2, name, text1, len1, &errors);
        if (rc == 0)
            rc = config_resolve(&c2, &errors);
        if (rc != 0)
            fprintf(stderr, "the dump does not load:\n%s\n--- dump:\n%s\n", errors, text1);
        FZ_CHECK(rc == 0);
        size_t len2 = 0;
        char *text2 = dump(&c2, &len2);
        if (len2 != len1 || memcmp(text1, text2, len1) != 0)
            fprintf(stderr, "--- dump:\n%s\n--- dump of the dump:\n%s\n", text1, text2);
        FZ_CHECK(len2 == len1 && memcmp(text1, text2, len1) == 0);
        free(text2);
        config_free(&c2);
    }
    free(text1);
    free(env_text);
    return 0;
}
