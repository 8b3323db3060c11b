/*
 * fuzz_jwt: RS256 tokens and keys (src/auth/jwt.h): decoding and verifying hostile
 * tokens, the sign/verify round trip, JWK verification and the key-file readers (PEM and
 * the hand-written OpenSSH formats).
 *
 * A 2048-bit key pair is generated once at start-up with jwt_keys_generate (into a
 * temporary directory, loaded, then deleted), so no token in the corpus carries a valid
 * signature for it. The first input byte picks the mode, the rest is its input:
 *   0  TOKEN: jwt_peek, and jwt_verify with and without the exp check; a token nobody
 *      signed with our key must never verify (no alg confusion, no unchecked signature).
 *   1  PAYLOAD [%% EDIT]: a JSON object is signed; the token must peek as RS256/JWT and
 *      verify to an equal payload, with the exp check passing exactly when exp is a
 *      number after `now`; EDIT (position, byte pairs) changes the token, which may then
 *      only verify if it still says the same (no forgery by editing).
 *   2  JWK %% TOKEN: jwt_verify_jwk with a hostile key description (the corpus holds a
 *      matching pair); a token it accepts is a well-formed RS256 token, the key RSA.
 *   3  KEYFILE: loaded (from a memfd) as a private and as a public key file; a public key
 *      that loads must not verify a token signed with our key.
 * Checks besides: no memory error, UB or leak.
 */
#include "harness.h"

#include <jansson.h>

#include "auth/jwt.h"

#define NOW 1700000000

static jwt_keys *keys;
static char *our_token; /* a token signed with our key, for mode 3 */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_silence_logs();
    char dir[] = "/tmp/ogd-fuzz-jwt-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    char priv[64], pub[64], err[256];
    snprintf(priv, sizeof(priv), "%s/key", dir);
    snprintf(pub, sizeof(pub), "%s/key.pub", dir);
    if (jwt_keys_generate(priv, pub, err, sizeof(err)) != 0 ||
        jwt_keys_load(priv, pub, &keys, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_jwt: %s\n", err);
        abort();
    }
    unlink(priv);
    unlink(pub);
    rmdir(dir);
    json_t *p = json_pack("{ss si}", "username", "fuzz", "exp", NOW + 3600);
    our_token = jwt_sign(keys, p);
    json_decref(p);
    if (!our_token)
        abort();
    return 0;
}

/* A token nobody signed with our key: decodes or not, never verifies. */
static void check_foreign(const char *token)
{
    json_t *h = NULL, *p = NULL;
    if (jwt_peek(token, &h, &p) == 0) {
        FZ_CHECK(json_is_object(h) && json_is_object(p));
        json_decref(h);
        json_decref(p);
    } else {
        FZ_CHECK(h == NULL && p == NULL);
    }
    json_t *claims = NULL;
    FZ_CHECK(jwt_verify(keys, token, false, NOW, &claims) != 0 && claims == NULL);
    FZ_CHECK(jwt_verify(keys, token, true, NOW, &claims) != 0 && claims == NULL);
}

static void mode_sign(const fz_part *payload, const fz_part *edit)
{
    json_t *p = json_loadb((const char *)payload->data, payload->size, 0, NULL);
    if (!json_is_object(p)) {
        json_decref(p);
        return;
    }
    char *token = jwt_sign(keys, p);
    if (!token) { /* only when the token would pass JWT_MAX_TOKEN_BYTES */
        json_decref(p);
        return;
    }
    size_t len = strlen(token);
    json_t *h = NULL, *peeked = NULL;
    FZ_CHECK(jwt_peek(token, &h, &peeked) == 0);
    FZ_CHECK(json_equal(peeked, p));
    const char *alg = json_string_value(json_object_get(h, "alg"));
    FZ_CHECK(alg && strcmp(alg, "RS256") == 0);
    json_decref(h);
    json_decref(peeked);
    json_t *claims = NULL;
    if (len > JWT_MAX_TOKEN_BYTES) {
        FZ_CHECK(jwt_verify(keys, token, false, NOW, &claims) != 0);
    } else {
        FZ_CHECK(jwt_verify(keys, token, false, NOW, &claims) == 0);
        FZ_CHECK(json_equal(claims, p));
        json_decref(claims);
        json_t *exp = json_object_get(p, "exp");
        bool live = json_is_number(exp) && json_number_value(exp) > (double)NOW;
        claims = NULL;
        FZ_CHECK((jwt_verify(keys, token, true, NOW, &claims) == 0) == live);
        json_decref(claims);
    }
    /* edits: (position, byte) pairs */
    fz_reader r = {edit->data, edit->size};
    bool changed = false;
    while (r.left >= 3) {
        size_t pos = (size_t)fz_uint(&r, 2) % len;
        char c = (char)fz_u8(&r);
        if (c == '\0')
            c = '.';
        changed |= token[pos] != c;
        token[pos] = c;
    }
    if (changed) {
        claims = NULL;
        if (jwt_verify(keys, token, false, NOW, &claims) == 0) {
            /* only an edit that decodes to the same bytes (base64's unused low bits) */
            FZ_CHECK(json_equal(claims, p));
            json_decref(claims);
        }
    }
    free(token);
    json_decref(p);
}

static void mode_jwk(const fz_part *jwk_text, const fz_part *token_text)
{
    json_t *jwk = json_loadb((const char *)jwk_text->data, jwk_text->size, 0, NULL);
    char *token = fz_strndup(token_text->data, token_text->size);
    if (jwt_verify_jwk(jwk, token) == 0) {
        /* a pair the input holds (the corpus has one): then it is a well-formed RS256
         * token and the key an RSA key */
        json_t *h = NULL;
        FZ_CHECK(jwt_peek(token, &h, NULL) == 0);
        const char *alg = json_string_value(json_object_get(h, "alg"));
        FZ_CHECK(alg && strcmp(alg, "RS256") == 0);
        FZ_CHECK(strcmp(json_string_value(json_object_get(jwk, "kty")), "RSA") == 0);
        json_decref(h);
    }
    free(token);
    json_decref(jwk);
}

static void mode_keyfile(const uint8_t *data, size_t size)
{
    char path[32], err[512];
    int fd = fz_memfd(data, size, path);
    jwt_keys *k = NULL;
    err[0] = '\0';
    if (jwt_keys_load(path, NULL, &k, err, sizeof(err)) == 0)
        jwt_keys_free(k);
    else
        FZ_CHECK(err[0] != '\0');
    k = NULL;
    err[0] = '\0';
    if (jwt_keys_load(NULL, path, &k, err, sizeof(err)) == 0) {
        json_t *claims = NULL;
        FZ_CHECK(jwt_verify(k, our_token, false, NOW, &claims) != 0);
        jwt_keys_free(k);
    } else {
        FZ_CHECK(err[0] != '\0');
    }
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int mode = data[0] % 4;
    data++;
    size--;
    fz_part part[2];
    switch (mode) {
    case 0: {
        char *token = fz_strndup(data, size);
        check_foreign(token);
        free(token);
        break;
    }
    case 1:
        fz_split(data, size, part, 2);
        mode_sign(&part[0], &part[1]);
        break;
    case 2:
        fz_split(data, size, part, 2);
        mode_jwk(&part[0], &part[1]);
        break;
    default:
        mode_keyfile(data, size);
        break;
    }
    return 0;
}
