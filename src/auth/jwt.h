/*
 * jwt: the RS256 JSON Web Tokens ogd issues and checks, and the RSA key pair that signs
 * them (OpenSSL).
 *
 * Keys are read once (not on every signature) from PEM files (PKCS#1 or PKCS#8 private
 * keys, SubjectPublicKeyInfo or PKCS#1 public keys) or from the OpenSSH formats the
 * reference deploys: an unencrypted "-----BEGIN OPENSSH PRIVATE KEY-----" file and an
 * "ssh-rsa AAAA... comment" public key line. jwt_keys_generate writes a new 2048-bit PEM
 * pair (for `make run` and tests). Tokens are header {"alg":"RS256","typ":"JWT"}, the
 * payload as given (key order kept), and an RSASSA-PKCS1-v1_5 SHA-256 signature, all
 * base64url without padding. Verification checks the header's alg, the signature and, when
 * asked, `exp` (zero leeway). Token *types* (access vs refresh) are the caller's business
 * (see api/auth.c); this module only signs and checks.
 */
#ifndef OGD_AUTH_JWT_H
#define OGD_AUTH_JWT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Caps: a token longer than this is refused before decoding. */
#define JWT_MAX_TOKEN_BYTES 16384
#define JWT_MAX_KEY_FILE_BYTES 65536

typedef struct jwt_keys jwt_keys;

/* Loads the pair. Either path may be NULL (then signing or verifying is unavailable).
 * 0, or -1 with a message in err naming the file. */
int jwt_keys_load(const char *private_path, const char *public_path, jwt_keys **out, char *err,
                  size_t errlen);
void jwt_keys_free(jwt_keys *k);
/* Writes a new RSA-2048 pair as PEM files (private mode 0600). 0 or -1 with err. */
int jwt_keys_generate(const char *private_path, const char *public_path, char *err, size_t errlen);

/* Signs payload (borrowed). Returns the token (malloc'd) or NULL. Thread-safe. */
char *jwt_sign(const jwt_keys *k, const json_t *payload);
/* Checks token; on success *payload (new reference) gets the claims. check_exp: refuse a
 * token whose `exp` is in the past (a token without exp is refused too). now: seconds
 * since the epoch. 0 or -1. Thread-safe. */
int jwt_verify(const jwt_keys *k, const char *token, bool check_exp, int64_t now, json_t **payload);

/* Decodes a token's header and payload without checking anything else (new references;
 * either out may be NULL). For choosing the key of a foreign token. 0 or -1. */
int jwt_peek(const char *token, json_t **header, json_t **payload);
/* Checks token's signature with a JSON Web Key (an RSA key: kty "RSA", n, e). The
 * algorithm comes from the key ("alg", default RS256 for kty RSA), never from the token;
 * only RS256 is supported and the token's header must say the same. 0 or -1. */
int jwt_verify_jwk(const json_t *jwk, const char *token);

#endif
