/*
 * test_fedid: the pure parts of src/auth/fedid.c: RFC 4514 (DN value) and RFC 4515
 * (filter value) escaping, the bind name in both forms, and the refusals that happen
 * before any connection (empty password, unconfigured server). The LDAP round trips are
 * tested against a real slapd in tests/api/test_ldap.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <string.h>

#include "auth/fedid.h"

static void test_dn_value_escaping(void **state)
{
    (void)state;
    char out[128];
    assert_int_equal(fedid_escape_dn_value("plain.user-1", out, sizeof(out)), 0);
    assert_string_equal(out, "plain.user-1");
    assert_int_equal(fedid_escape_dn_value("a,b+c\"d\\e<f>g;h=i", out, sizeof(out)), 0);
    assert_string_equal(out, "a\\,b\\+c\\\"d\\\\e\\<f\\>g\\;h\\=i");
    assert_int_equal(fedid_escape_dn_value("#lead", out, sizeof(out)), 0);
    assert_string_equal(out, "\\#lead");
    assert_int_equal(fedid_escape_dn_value(" both ", out, sizeof(out)), 0);
    assert_string_equal(out, "\\ both\\ ");
    assert_int_equal(fedid_escape_dn_value("mid#dle sp", out, sizeof(out)), 0);
    assert_string_equal(out, "mid#dle sp");
    assert_int_equal(fedid_escape_dn_value("nl\nx", out, sizeof(out)), 0);
    assert_string_equal(out, "nl\\0ax");
    assert_int_equal(fedid_escape_dn_value("uid=admin,dc=x", out, sizeof(out)), 0);
    assert_string_equal(out, "uid\\=admin\\,dc\\=x");
    /* too small: refused, not truncated */
    assert_int_equal(fedid_escape_dn_value("abc,", out, 5), -1);
    assert_int_equal(fedid_escape_dn_value("abcd", out, 4), -1);
    assert_int_equal(fedid_escape_dn_value("abc", out, 4), 0);
}

static void test_filter_value_escaping(void **state)
{
    (void)state;
    char out[128];
    assert_int_equal(fedid_escape_filter_value("fedtest", out, sizeof(out)), 0);
    assert_string_equal(out, "fedtest");
    assert_int_equal(fedid_escape_filter_value("*", out, sizeof(out)), 0);
    assert_string_equal(out, "\\2a");
    assert_int_equal(fedid_escape_filter_value("x)(|(cn=*)", out, sizeof(out)), 0);
    assert_string_equal(out, "x\\29\\28|\\28cn=\\2a\\29");
    assert_int_equal(fedid_escape_filter_value("a\\b", out, sizeof(out)), 0);
    assert_string_equal(out, "a\\5cb");
    assert_int_equal(fedid_escape_filter_value("**", out, 6), -1);
    assert_int_equal(fedid_escape_filter_value("**", out, 7), 0);
}

static void test_bind_name(void **state)
{
    (void)state;
    ogd_auth_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    char out[256];
    /* the reference's form */
    cfg.fedid_server_ldap_realm = "FED.CCLRC.AC.UK";
    assert_int_equal(fedid_bind_name(&cfg, "abc12345", out, sizeof(out)), 0);
    assert_string_equal(out, "abc12345@FED.CCLRC.AC.UK");
    const char *bad[] = {"", "a,b", "cn=x", "a@other", "a b", "a*", "a\\b", "a\nb", "#a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(fedid_bind_name(&cfg, bad[i], out, sizeof(out)), -1);
    assert_int_equal(fedid_bind_name(&cfg, "abc12345", out, 10), -1);
    /* no realm and no template: nothing to bind as */
    cfg.fedid_server_ldap_realm = NULL;
    assert_int_equal(fedid_bind_name(&cfg, "abc", out, sizeof(out)), -1);
    /* a DN template: every {username} replaced by the escaped name */
    cfg.fedid_bind_dn = "uid={username},ou=people,dc=x";
    assert_int_equal(fedid_bind_name(&cfg, "fed,user+1", out, sizeof(out)), 0);
    assert_string_equal(out, "uid=fed\\,user\\+1,ou=people,dc=x");
    assert_int_equal(fedid_bind_name(&cfg, "admin,dc=x", out, sizeof(out)), 0);
    assert_string_equal(out, "uid=admin\\,dc\\=x,ou=people,dc=x");
    cfg.fedid_bind_dn = "cn={username}+uid={username},dc=x";
    assert_int_equal(fedid_bind_name(&cfg, "u", out, sizeof(out)), 0);
    assert_string_equal(out, "cn=u+uid=u,dc=x");
    assert_int_equal(fedid_bind_name(&cfg, "", out, sizeof(out)), -1);
    assert_int_equal(fedid_bind_name(&cfg, "u", out, 12), -1);
}

static void test_refusals_before_any_connection(void **state)
{
    (void)state;
    ogd_auth_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    /* a URL nothing listens on: an empty password must not even try it */
    cfg.fedid_server_url = "ldap://127.0.0.1:1";
    cfg.fedid_server_ldap_realm = "R";
    cfg.fedid_timeout_seconds = 1;
    assert_int_equal(fedid_authenticate(&cfg, "u", ""), FEDID_REFUSED);
    assert_int_equal(fedid_authenticate(&cfg, "u", NULL), FEDID_REFUSED);
    /* a name the <username>@<realm> form cannot carry: refused, no connection */
    assert_int_equal(fedid_authenticate(&cfg, "cn=u,dc=x", "pw"), FEDID_REFUSED);
    /* the connection fails: a server error, not a refusal */
    assert_int_equal(fedid_authenticate(&cfg, "u", "pw"), FEDID_SERVER_ERROR);
    char email[FEDID_MAX_EMAIL_BYTES];
    assert_int_equal(fedid_find_email(&cfg, "u", email), FEDID_SERVER_ERROR);
    cfg.fedid_server_url = NULL;
    assert_int_equal(fedid_authenticate(&cfg, "u", "pw"), FEDID_SERVER_ERROR);
    assert_int_equal(fedid_find_email(&cfg, "u", email), FEDID_SERVER_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dn_value_escaping),
        cmocka_unit_test(test_filter_value_escaping),
        cmocka_unit_test(test_bind_name),
        cmocka_unit_test(test_refusals_before_any_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
