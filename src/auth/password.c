/*
 * password.c: see password.h. libsodium for argon2id and constant-time comparison,
 * OpenSSL for the legacy SHA-256 digests.
 */
#include "auth/password.h"

#include <openssl/sha.h>
#include <sodium.h>
#include <string.h>

int password_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

int password_hash(const char *password, char out[PASSWORD_HASH_BYTES])
{
    size_t len = strlen(password);
    if (len > PASSWORD_MAX_BYTES)
        return -1;
    _Static_assert(PASSWORD_HASH_BYTES >= crypto_pwhash_STRBYTES, "hash buffer too small");
    return crypto_pwhash_str_alg(out, password, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                 crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13);
}

void password_sha256_hex(const char *s, char out[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)s, strlen(s), d);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[64] = '\0';
}

static bool is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')))
            return false;
    return true;
}

bool password_verify(const char *password, const char *stored, bool *upgrade)
{
    if (upgrade)
        *upgrade = false;
    if (!password || !stored || strlen(password) > PASSWORD_MAX_BYTES)
        return false;
    if (strncmp(stored, "$argon2", 7) == 0) {
        bool ok = crypto_pwhash_str_verify(stored, password, strlen(password)) == 0;
        if (ok && upgrade)
            *upgrade = crypto_pwhash_str_needs_rehash(stored, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                                      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0;
        return ok;
    }
    if (!is_hex64(stored))
        return false;
    char want[65], have[65];
    password_sha256_hex(password, have);
    for (int i = 0; i < 64; i++) /* stored digests may be upper-case hex */
        want[i] = (char)((stored[i] >= 'A' && stored[i] <= 'F') ? stored[i] + 32 : stored[i]);
    want[64] = '\0';
    bool ok = sodium_memcmp(want, have, 64) == 0;
    if (ok && upgrade)
        *upgrade = true;
    return ok;
}
