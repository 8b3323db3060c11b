/*
 * fedid.c: FedID bind and e-mail lookup over LDAP with libldap's synchronous API (see
 * fedid.h for the rules). One call = one handle: ldap_initialize, per-handle options
 * (protocol v3, no referrals, network and operation timeouts, certificate demand, CA
 * file, then a fresh TLS context for this handle only), StartTLS, the bind or search,
 * unbind. Nothing here touches libldap's global options, so concurrent calls on the
 * thread pool do not interfere. Log lines name the failing step and libldap's error
 * text, never a password or the bind name.
 */
#include "auth/fedid.h"

#include "util/log.h"

#include <ldap.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

static const char *const DEFAULT_SEARCH_BASE = "dc=fed,dc=cclrc,dc=ac,dc=uk";

/* ---------------------------------------------------------------- escaping */

static bool put(char *out, size_t cap, size_t *n, char ch)
{
    if (*n + 1 >= cap)
        return false;
    out[(*n)++] = ch;
    return true;
}

static bool put_hex(char *out, size_t cap, size_t *n, unsigned char ch)
{
    static const char hex[] = "0123456789abcdef";
    return put(out, cap, n, '\\') && put(out, cap, n, hex[ch >> 4]) &&
           put(out, cap, n, hex[ch & 15]);
}

int fedid_escape_dn_value(const char *in, char *out, size_t cap)
{
    size_t n = 0, len = strlen(in);
    if (cap == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        bool ok;
        if (ch < 0x20 || ch == 0x7f)
            ok = put_hex(out, cap, &n, ch);
        else if (strchr(",+\"\\<>;=", ch) || (i == 0 && (ch == ' ' || ch == '#')) ||
                 (i == len - 1 && ch == ' '))
            ok = put(out, cap, &n, '\\') && put(out, cap, &n, (char)ch);
        else
            ok = put(out, cap, &n, (char)ch);
        if (!ok)
            return -1;
    }
    out[n] = '\0';
    return 0;
}

int fedid_escape_filter_value(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    if (cap == 0)
        return -1;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        bool ok = strchr("*()\\", *p) ? put_hex(out, cap, &n, *p) : put(out, cap, &n, (char)*p);
        if (!ok)
            return -1;
    }
    out[n] = '\0';
    return 0;
}

int fedid_bind_name(const ogd_auth_config *cfg, const char *username, char *out, size_t cap)
{
    if (!*username || strlen(username) >= FEDID_MAX_NAME_BYTES)
        return -1;
    const char *tpl = cfg->fedid_bind_dn;
    if (!tpl) {
        /* <username>@<realm>: no escaping exists in this form, so refuse what could make
         * the name read as a DN or another principal. */
        if (!cfg->fedid_server_ldap_realm)
            return -1;
        for (const unsigned char *p = (const unsigned char *)username; *p; p++)
            if (*p <= 0x20 || *p == 0x7f || strchr(",+\"\\<>;=#@*()/", *p))
                return -1;
        int w = snprintf(out, cap, "%s@%s", username, cfg->fedid_server_ldap_realm);
        return w < 0 || (size_t)w >= cap ? -1 : 0;
    }
    char esc[3 * FEDID_MAX_NAME_BYTES];
    if (fedid_escape_dn_value(username, esc, sizeof(esc)) != 0)
        return -1;
    size_t n = 0, elen = strlen(esc);
    static const char mark[] = "{username}";
    const size_t mlen = sizeof(mark) - 1;
    while (*tpl) {
        if (strncmp(tpl, mark, mlen) == 0) {
            if (n + elen >= cap)
                return -1;
            memcpy(out + n, esc, elen);
            n += elen;
            tpl += mlen;
        } else {
            if (n + 1 >= cap)
                return -1;
            out[n++] = *tpl++;
        }
    }
    out[n] = '\0';
    return 0;
}

/* ---------------------------------------------------------------- connections */

static bool url_is_ldaps(const char *url)
{
    return strncasecmp(url, "ldaps://", 8) == 0;
}

/* A handle to the configured server over verified TLS, or NULL (logged). */
static LDAP *fedid_connect(const ogd_auth_config *cfg, const char *what)
{
    LDAP *ld = NULL;
    int rc = ldap_initialize(&ld, cfg->fedid_server_url);
    if (rc != LDAP_SUCCESS || !ld) {
        log_warn("fedid %s: bad server URL: %s", what, ldap_err2string(rc));
        return NULL;
    }
    int v3 = LDAP_VERSION3, demand = LDAP_OPT_X_TLS_DEMAND, newctx = 0;
    struct timeval tv = {cfg->fedid_timeout_seconds > 0 ? cfg->fedid_timeout_seconds : 5, 0};
    const char *step = "options";
    if ((rc = ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3)) != LDAP_OPT_SUCCESS ||
        (rc = ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF)) != LDAP_OPT_SUCCESS ||
        (rc = ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv)) != LDAP_OPT_SUCCESS ||
        (rc = ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv)) != LDAP_OPT_SUCCESS ||
        (rc = ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand)) != LDAP_OPT_SUCCESS ||
        (cfg->fedid_ca_file && (rc = ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE,
                                                     cfg->fedid_ca_file)) != LDAP_OPT_SUCCESS) ||
        (rc = ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &newctx)) != LDAP_OPT_SUCCESS)
        goto fail;
    step = "StartTLS";
    if (!url_is_ldaps(cfg->fedid_server_url) &&
        (rc = ldap_start_tls_s(ld, NULL, NULL)) != LDAP_SUCCESS)
        goto fail;
    return ld;
fail:
    log_warn("fedid %s: %s failed: %s", what, step, ldap_err2string(rc));
    ldap_unbind_ext_s(ld, NULL, NULL);
    return NULL;
}

fedid_result fedid_authenticate(const ogd_auth_config *cfg, const char *username,
                                const char *password)
{
    if (!password || !*password)
        return FEDID_REFUSED;
    if (!cfg->fedid_server_url) {
        log_warn("fedid login: auth.fedid_server_url is not configured");
        return FEDID_SERVER_ERROR;
    }
    char name[4 * FEDID_MAX_NAME_BYTES];
    if (fedid_bind_name(cfg, username, name, sizeof(name)) != 0) {
        if (!cfg->fedid_bind_dn && !cfg->fedid_server_ldap_realm) {
            log_warn("fedid login: neither auth.fedid_bind_dn nor auth.fedid_server_ldap_realm "
                     "is configured");
            return FEDID_SERVER_ERROR;
        }
        return FEDID_REFUSED;
    }
    LDAP *ld = fedid_connect(cfg, "login");
    if (!ld)
        return FEDID_SERVER_ERROR;
    struct berval cred = {strlen(password), (char *)password};
    int rc = ldap_sasl_bind_s(ld, name, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
    ldap_unbind_ext_s(ld, NULL, NULL);
    if (rc == LDAP_SUCCESS)
        return FEDID_OK;
    if (rc == LDAP_INVALID_CREDENTIALS)
        return FEDID_REFUSED;
    log_warn("fedid login: bind failed: %s", ldap_err2string(rc));
    return FEDID_SERVER_ERROR;
}

fedid_result fedid_find_email(const ogd_auth_config *cfg, const char *username,
                              char email[FEDID_MAX_EMAIL_BYTES])
{
    email[0] = '\0';
    if (!cfg->fedid_server_url) {
        log_warn("fedid e-mail lookup: auth.fedid_server_url is not configured");
        return FEDID_SERVER_ERROR;
    }
    char esc[3 * FEDID_MAX_NAME_BYTES], filter[3 * FEDID_MAX_NAME_BYTES + 8];
    if (strlen(username) >= FEDID_MAX_NAME_BYTES ||
        fedid_escape_filter_value(username, esc, sizeof(esc)) != 0)
        return FEDID_NOT_FOUND;
    snprintf(filter, sizeof(filter), "(cn=%s)", esc);
    LDAP *ld = fedid_connect(cfg, "e-mail lookup");
    if (!ld)
        return FEDID_SERVER_ERROR;
    struct timeval tv = {cfg->fedid_timeout_seconds > 0 ? cfg->fedid_timeout_seconds : 5, 0};
    char *attrs[] = {"mail", NULL};
    LDAPMessage *res = NULL;
    const char *base = cfg->fedid_search_base ? cfg->fedid_search_base : DEFAULT_SEARCH_BASE;
    int rc =
        ldap_search_ext_s(ld, base, LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL, NULL, &tv, 1, &res);
    fedid_result out = FEDID_NOT_FOUND;
    if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED && rc != LDAP_NO_SUCH_OBJECT) {
        log_warn("fedid e-mail lookup: search failed: %s", ldap_err2string(rc));
        out = FEDID_SERVER_ERROR;
    } else {
        LDAPMessage *e = res ? ldap_first_entry(ld, res) : NULL;
        struct berval **vals = e ? ldap_get_values_len(ld, e, "mail") : NULL;
        if (vals && vals[0] && vals[0]->bv_len > 0 && vals[0]->bv_len < FEDID_MAX_EMAIL_BYTES &&
            !memchr(vals[0]->bv_val, '\0', vals[0]->bv_len)) {
            memcpy(email, vals[0]->bv_val, vals[0]->bv_len);
            email[vals[0]->bv_len] = '\0';
            out = FEDID_OK;
        }
        ldap_value_free_len(vals);
    }
    ldap_msgfree(res);
    ldap_unbind_ext_s(ld, NULL, NULL);
    return out;
}
