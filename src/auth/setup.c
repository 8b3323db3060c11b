/*
 * setup.c: see setup.h.
 */
#include "auth/setup.h"

#include "auth/jwt.h"
#include "auth/password.h"
#include "util/log.h"

#include <stdio.h>
#include <unistd.h>

int auth_prepare_keys(const ogd_config *cfg, char *err, size_t errlen)
{
    const char *priv = cfg->auth.private_key_path, *pub = cfg->auth.public_key_path;
    if (password_init() != 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return -1;
    }
    if (!priv || !pub) {
        snprintf(err, errlen, "auth.private_key_path and auth.public_key_path are required");
        return -1;
    }
    if (!cfg->auth.present && access(priv, F_OK) != 0 && access(pub, F_OK) != 0) {
        if (config_url_is_postgresql(cfg->database.url)) {
            /* Every node of a cluster must sign and verify with one pair: a pair of its
             * own would make the other nodes' tokens invalid here and this node's there. */
            snprintf(err, errlen,
                     "a server on PostgreSQL signs with the cluster's key pair, it does not make "
                     "one: %s and %s must both exist (set auth.private_key_path and "
                     "auth.public_key_path)",
                     priv, pub);
            return -1;
        }
        if (jwt_keys_generate(priv, pub, err, errlen) != 0)
            return -1;
        log_info("generated a JWT signing key pair: %s, %s", priv, pub);
    }
    jwt_keys *k = NULL;
    if (jwt_keys_load(priv, pub, &k, err, errlen) != 0)
        return -1;
    jwt_keys_free(k);
    return 0;
}
