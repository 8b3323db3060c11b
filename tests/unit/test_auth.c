/*
 * test_auth: the JWT signer/verifier with PEM and OpenSSH keys, the password forms
 * (argon2id, the reference's SHA-256), and the login rate limiter (private and shared
 * between processes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth/jwt.h"
#include "auth/password.h"
#include "auth/ratelimit.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/ogd-test-auth-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return password_init();
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
}

static void roundtrip(jwt_keys *k)
{
    json_t *p = json_pack("{s:s, s:n, s:I}", "username", "u", "authorised_routes", "exp",
                          (json_int_t)2000000000);
    char *t = jwt_sign(k, p);
    assert_non_null(t);
    assert_int_equal(strncmp(t, "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.", 37), 0);
    json_t *out = NULL;
    assert_int_equal(jwt_verify(k, t, true, 1000, &out), 0);
    assert_true(json_equal(out, p));
    json_decref(out);
    /* key order is kept */
    char *dump = json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(dump, "{\"username\":\"u\",\"authorised_routes\":null,\"exp\":2000000000}");
    free(dump);
    /* expired, tampered, truncated */
    assert_int_equal(jwt_verify(k, t, true, 2000000000, &out), -1);
    assert_int_equal(jwt_verify(k, t, false, 2000000000, &out), 0);
    json_decref(out);
    size_t n = strlen(t);
    t[n - 2] = t[n - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(jwt_verify(k, t, true, 1000, &out), -1);
    assert_null(out);
    t[40] = '\0';
    assert_int_equal(jwt_verify(k, t, true, 1000, &out), -1);
    assert_int_equal(jwt_verify(k, "a.b", true, 1000, &out), -1);
    assert_int_equal(jwt_verify(k, "", true, 1000, &out), -1);
    free(t);
    json_decref(p);
}

static void test_pem_keys(void **state)
{
    (void)state;
    char priv[128], pub[128], err[256];
    snprintf(priv, sizeof(priv), "%s/k", dir);
    snprintf(pub, sizeof(pub), "%s/k.pub", dir);
    assert_int_equal(jwt_keys_generate(priv, pub, err, sizeof(err)), 0);
    assert_int_equal(jwt_keys_generate(priv, pub, err, sizeof(err)), -1); /* never overwrites */
    jwt_keys *k = NULL;
    assert_int_equal(jwt_keys_load(priv, pub, &k, err, sizeof(err)), 0);
    roundtrip(k);
    jwt_keys_free(k);
    /* a pair that does not match is refused */
    char priv2[128], pub2[128];
    snprintf(priv2, sizeof(priv2), "%s/k2", dir);
    snprintf(pub2, sizeof(pub2), "%s/k2.pub", dir);
    assert_int_equal(jwt_keys_generate(priv2, pub2, err, sizeof(err)), 0);
    assert_int_equal(jwt_keys_load(priv, pub2, &k, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not one key pair"));
    assert_int_equal(jwt_keys_load("/nonexistent/key", pub, &k, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/key"));
}

static void test_openssh_keys(void **state)
{
    (void)state;
    char cmd[256], priv[128], pub[128], err[256];
    snprintf(priv, sizeof(priv), "%s/id_rsa", dir);
    snprintf(pub, sizeof(pub), "%s/id_rsa.pub", dir);
    snprintf(cmd, sizeof(cmd), "ssh-keygen -q -t rsa -b 2048 -N '' -f %s", priv);
    if (system(cmd) != 0)
        skip();
    jwt_keys *k = NULL;
    assert_int_equal(jwt_keys_load(priv, pub, &k, err, sizeof(err)), 0);
    roundtrip(k);
    jwt_keys_free(k);
    /* an ed25519 key is refused with a reason */
    char ed[128];
    snprintf(ed, sizeof(ed), "%s/id_ed", dir);
    snprintf(cmd, sizeof(cmd), "ssh-keygen -q -t ed25519 -N '' -f %s", ed);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(jwt_keys_load(ed, NULL, &k, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "RSA"));
    /* an encrypted key is refused with a reason */
    char enc[128];
    snprintf(enc, sizeof(enc), "%s/id_enc", dir);
    snprintf(cmd, sizeof(cmd), "ssh-keygen -q -t rsa -b 2048 -N 'pass' -f %s", enc);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(jwt_keys_load(enc, NULL, &k, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "encrypted"));
}

/* Writes text to dir/name; the path in out. */
static void write_key(const char *name, const char *text, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", dir, name);
    FILE *f = fopen(out, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Found by tests/fuzz/fuzz_jwt: an end marker that overlaps the begin marker's dashes
 * made the base64 span negative (a huge allocation). Malformed OpenSSH files are refused
 * with a message. */
static void test_openssh_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "-----BEGIN OPENSSH PRIVATE KEY-----END OPENSSH PRIVATE KEY-----\n",
        "-----BEGIN OPENSSH PRIVATE KEY-----\n-----END OPENSSH PRIVATE KEY-----\n",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n"
        "-----END OPENSSH PRIVATE KEY-----\n",
        "-----BEGIN OPENSSH PRIVATE KEY-----\n!!!!\n-----END OPENSSH PRIVATE KEY-----\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[128], err[256] = "";
        write_key("bad_openssh", bad[i], path, sizeof(path));
        jwt_keys *k = NULL;
        assert_int_equal(jwt_keys_load(path, NULL, &k, err, sizeof(err)), -1);
        assert_null(k);
        assert_non_null(strstr(err, path));
        assert_true(strstr(err, "malformed") || strstr(err, "not a PEM or OpenSSH"));
    }
}

static void test_passwords(void **state)
{
    (void)state;
    bool upgrade = false;
    char hex[65];
    password_sha256_hex("front", hex);
    assert_int_equal(strncmp(hex, "2d8d6931", 8), 0);
    assert_true(password_verify("front", hex, &upgrade));
    assert_true(upgrade);
    assert_false(password_verify("back", hex, &upgrade));
    assert_false(password_verify("front", "not-a-hash", &upgrade));
    char h[PASSWORD_HASH_BYTES];
    assert_int_equal(password_hash("s3cret", h), 0);
    assert_int_equal(strncmp(h, "$argon2id$", 10), 0);
    assert_true(password_verify("s3cret", h, &upgrade));
    assert_false(upgrade);
    assert_false(password_verify("s3cres", h, &upgrade));
    char h2[PASSWORD_HASH_BYTES];
    assert_int_equal(password_hash("s3cret", h2), 0);
    assert_string_not_equal(h, h2); /* salted */
}

static void test_ratelimit(void **state)
{
    (void)state;
    ratelimit_t *r = ratelimit_new(300);
    unsigned wait = 0;
    for (int i = 0; i < 3; i++) {
        assert_false(ratelimit_blocked(r, "u:a", 3, 1000, &wait));
        ratelimit_fail(r, "u:a", 1000 + (uint64_t)i);
    }
    assert_true(ratelimit_blocked(r, "u:a", 3, 1010, &wait));
    assert_int_equal(wait, 290);
    assert_false(ratelimit_blocked(r, "u:b", 3, 1010, &wait));
    assert_false(ratelimit_blocked(r, "u:a", 3, 1300, &wait)); /* the window has passed */
    ratelimit_clear(r, "u:a");
    assert_false(ratelimit_blocked(r, "u:a", 3, 1010, &wait));
    /* many keys: the table stays bounded and still works */
    char key[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof(key), "a:%d", i);
        ratelimit_fail(r, key, 2000);
    }
    for (int i = 0; i < 5; i++)
        ratelimit_fail(r, "u:z", 2000);
    assert_true(ratelimit_blocked(r, "u:z", 5, 2001, &wait));
    ratelimit_free(r);
}

/* The shared table: counts made in a child process (a worker) are seen by the parent
 * and by a sibling. */
static void test_ratelimit_shared(void **state)
{
    (void)state;
    assert_null(ratelimit_shared());
    assert_int_equal(ratelimit_shared_init(300), 0);
    ratelimit_t *r = ratelimit_shared();
    assert_non_null(r);
    for (int child = 0; child < 2; child++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            for (int i = 0; i < 5; i++)
                ratelimit_fail(ratelimit_shared(), "u:shared", 1000);
            _exit(0);
        }
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    unsigned wait = 0;
    assert_false(ratelimit_blocked(r, "u:shared", 11, 1001, &wait));
    assert_true(ratelimit_blocked(r, "u:shared", 10, 1001, &wait));
    assert_int_equal(wait, 299);
    ratelimit_clear(r, "u:shared");
    assert_false(ratelimit_blocked(r, "u:shared", 1, 1001, &wait));
    ratelimit_free(r);
    assert_null(ratelimit_shared());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pem_keys),          cmocka_unit_test(test_openssh_keys),
        cmocka_unit_test(test_openssh_malformed), cmocka_unit_test(test_passwords),
        cmocka_unit_test(test_ratelimit),         cmocka_unit_test(test_ratelimit_shared),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
