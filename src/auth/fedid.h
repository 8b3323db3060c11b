/*
 * fedid: FedID users against an LDAP directory (docs/auth.md §4),
 * with the reference's defects fixed (docs/security.md item 19).
 *
 * Every connection is made to auth.fedid_server_url and is encrypted before any
 * credential or query goes over it: StartTLS on an ldap:// URL (ldaps:// is TLS from the
 * start), with the server certificate *verified* (LDAP_OPT_X_TLS_DEMAND: chain to
 * auth.fedid_ca_file or the system CAs, and host name). There is no way to switch the
 * check off. Connect and every operation are bounded by auth.fedid_timeout_seconds.
 *
 * fedid_authenticate: a simple bind as the user. The bind name is <username>@<realm> (the
 * reference's, for Active Directory) or, when auth.fedid_bind_dn is set, that template
 * with every "{username}" replaced by the RFC 4514-escaped user name. Empty passwords are
 * refused before any connection (an LDAP bind with an empty password is an
 * "unauthenticated bind", which some servers accept). In the <username>@<realm> form a
 * user name holding DN or UPN syntax characters is refused, as it cannot be escaped there.
 *
 * fedid_find_email: an anonymous search (over the verified TLS connection) under
 * auth.fedid_search_base for (cn=<username>), the value RFC 4515-escaped, reading `mail`.
 *
 * Both calls use libldap's synchronous API and block for up to a few timeouts: call them
 * on the thread pool (work_submit), never on a loop. They are thread-safe (each call has
 * its own handle and TLS context). Nothing secret is logged.
 */
#ifndef OGD_AUTH_FEDID_H
#define OGD_AUTH_FEDID_H

#include "config/config.h"

#include <stddef.h>

typedef enum {
    FEDID_OK = 0,
    FEDID_REFUSED = 1,       /* wrong credentials (or a refused user name / empty password) */
    FEDID_NOT_FOUND = 2,     /* fedid_find_email: no entry or no mail value */
    FEDID_SERVER_ERROR = -1, /* not configured, unreachable, TLS refused, timeout, ... */
} fedid_result;

#define FEDID_MAX_NAME_BYTES 1024 /* bind names, filters: longer user names are refused */
#define FEDID_MAX_EMAIL_BYTES 320

/* Binds as username with password, then unbinds. Blocking (thread pool only). */
fedid_result fedid_authenticate(const ogd_auth_config *cfg, const char *username,
                                const char *password);

/* Looks up the user's e-mail address into email[FEDID_MAX_EMAIL_BYTES]. Blocking. */
fedid_result fedid_find_email(const ogd_auth_config *cfg, const char *username,
                              char email[FEDID_MAX_EMAIL_BYTES]);

/* The bind name for username (see above) into out[cap]. 0, or -1 when the name cannot be
 * expressed safely or does not fit. */
int fedid_bind_name(const ogd_auth_config *cfg, const char *username, char *out, size_t cap);

/* RFC 4514 escaping of an attribute value of a DN: `,+"\<>;=` and a leading space or '#'
 * or a trailing space get a backslash; control bytes become \XX. 0, or -1 if out is
 * short. */
int fedid_escape_dn_value(const char *in, char *out, size_t cap);
/* RFC 4515 escaping of an assertion value in a search filter (`*()\` and NUL as \2a,
 * \28, \29, \5c, \00). 0, or -1 if out is short. */
int fedid_escape_filter_value(const char *in, char *out, size_t cap);

#endif
