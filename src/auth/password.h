/*
 * password: how local users' passwords are stored and checked.
 *
 * New passwords are stored as argon2id strings from libsodium's crypto_pwhash_str
 * ("$argon2id$v=19$m=...,t=...,p=...$salt$hash", interactive limits). The reference's
 * stored form, an unsalted SHA-256 hex digest, is still accepted so existing user
 * databases keep working; password_verify then says the stored value should be replaced,
 * and the login handler rewrites it as argon2id. Every comparison is constant-time.
 * Hashing costs ~50 ms of CPU and 64 MiB: call these on the thread pool, never on a loop.
 */
#ifndef OGD_AUTH_PASSWORD_H
#define OGD_AUTH_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#define PASSWORD_MAX_BYTES 4096 /* longer passwords are refused (bounded hashing cost) */
#define PASSWORD_HASH_BYTES 128 /* room for an argon2id string */

/* Initialises libsodium; call once before the others (idempotent). 0 or -1. */
int password_init(void);
/* Writes the argon2id string of password into out[PASSWORD_HASH_BYTES]. 0 or -1. */
int password_hash(const char *password, char out[PASSWORD_HASH_BYTES]);
/* True when password matches stored (argon2id string or legacy SHA-256 hex).
 * *upgrade (may be NULL) is set when stored is in a form that should be re-hashed. */
bool password_verify(const char *password, const char *stored, bool *upgrade);
/* Lower-case hex SHA-256 of s (the reference's form), out[65]. */
void password_sha256_hex(const char *s, char out[65]);

#endif
