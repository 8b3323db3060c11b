/*
 * jwt.c: see jwt.h. Owns the loaded EVP_PKEYs, the OpenSSH key-format readers and the
 * base64url coding of tokens. OpenSSL 3: EVP_PKEY_fromdata builds keys from OpenSSH's
 * integers; EVP_DigestSign/Verify do RS256.
 */
#include "auth/jwt.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/base64.h"

struct jwt_keys {
    EVP_PKEY *priv;
    EVP_PKEY *pub;
};

/* ---------------------------------------------------------------- base64url */

static char *b64url_encode(const void *data, size_t len)
{
    size_t n;
    char *s = base64_encode(data, len, &n);
    if (!s)
        return NULL;
    while (n > 0 && s[n - 1] == '=')
        s[--n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+')
            s[i] = '-';
        else if (s[i] == '/')
            s[i] = '_';
    }
    return s;
}

static int b64url_decode(const char *s, size_t len, unsigned char **out, size_t *outlen)
{
    if (len % 4 == 1 || len > JWT_MAX_TOKEN_BYTES)
        return -EINVAL;
    char *t = malloc(len + 4);
    if (!t)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '+' || c == '/' || c == '=') {
            free(t);
            return -EINVAL;
        }
        t[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    size_t n = len;
    while (n % 4)
        t[n++] = '=';
    int rc = base64_decode(t, n, out, outlen);
    free(t);
    return rc;
}

/* ---------------------------------------------------------------- files */

static int read_file(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read key file %s: %s", path, strerror(errno));
        return -1;
    }
    char *data = malloc(JWT_MAX_KEY_FILE_BYTES + 1);
    size_t n = data ? fread(data, 1, JWT_MAX_KEY_FILE_BYTES + 1, f) : 0;
    fclose(f);
    if (!data || n > JWT_MAX_KEY_FILE_BYTES) {
        free(data);
        snprintf(err, errlen, "key file %s is too large", path);
        return -1;
    }
    data[n] = '\0';
    *out = data;
    *outlen = n;
    return 0;
}

/* ---------------------------------------------------------------- OpenSSH formats */

typedef struct {
    const unsigned char *p;
    size_t left;
} ssh_reader;

static bool ssh_string(ssh_reader *r, const unsigned char **s, size_t *len)
{
    if (r->left < 4)
        return false;
    size_t n = ((size_t)r->p[0] << 24) | ((size_t)r->p[1] << 16) | ((size_t)r->p[2] << 8) | r->p[3];
    if (n > r->left - 4)
        return false;
    *s = r->p + 4;
    *len = n;
    r->p += 4 + n;
    r->left -= 4 + n;
    return true;
}

static bool ssh_u32(ssh_reader *r, uint32_t *v)
{
    if (r->left < 4)
        return false;
    *v = ((uint32_t)r->p[0] << 24) | ((uint32_t)r->p[1] << 16) | ((uint32_t)r->p[2] << 8) | r->p[3];
    r->p += 4;
    r->left -= 4;
    return true;
}

static BIGNUM *ssh_mpint(ssh_reader *r)
{
    const unsigned char *s;
    size_t n;
    if (!ssh_string(r, &s, &n) || n > 2048)
        return NULL;
    return BN_bin2bn(s, (int)n, NULL);
}

static bool ssh_is(const unsigned char *s, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(s, want, n) == 0;
}

static EVP_PKEY *rsa_from_params(BIGNUM *n, BIGNUM *e, BIGNUM *d, BIGNUM *p, BIGNUM *q,
                                 BIGNUM *iqmp)
{
    EVP_PKEY *key = NULL;
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *dmp1 = BN_new(), *dmq1 = BN_new(), *t = BN_new();
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (!ctx || !dmp1 || !dmq1 || !t || !bld || !pctx)
        goto out;
    if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
        goto out;
    if (d) {
        if (!BN_sub(t, p, BN_value_one()) || !BN_mod(dmp1, d, t, ctx) ||
            !BN_sub(t, q, BN_value_one()) || !BN_mod(dmq1, d, t, ctx))
            goto out;
        if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, p) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, q) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, dmp1) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, dmq1) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, iqmp))
            goto out;
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    if (!params || EVP_PKEY_fromdata_init(pctx) <= 0 ||
        EVP_PKEY_fromdata(pctx, &key, d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) <= 0)
        key = NULL;
out:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(pctx);
    BN_clear_free(dmp1);
    BN_clear_free(dmq1);
    BN_clear_free(t);
    BN_CTX_free(ctx);
    return key;
}

/* "-----BEGIN OPENSSH PRIVATE KEY-----" (unencrypted, one RSA key). */
static EVP_PKEY *openssh_private(const char *text, char *err, size_t errlen, const char *path)
{
    const char *begin = "-----BEGIN OPENSSH PRIVATE KEY-----";
    const char *end = "-----END OPENSSH PRIVATE KEY-----";
    const char *b = strstr(text, begin);
    /* the end marker after the whole begin marker: the two share their dashes */
    const char *e = b ? strstr(b + strlen(begin), end) : NULL;
    if (!e) {
        snprintf(err, errlen, "%s: not a PEM or OpenSSH private key", path);
        return NULL;
    }
    b += strlen(begin);
    char *clean = malloc((size_t)(e - b) + 1);
    if (!clean) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    size_t n = 0;
    for (const char *p = b; p < e; p++)
        if (*p != '\n' && *p != '\r' && *p != ' ' && *p != '\t')
            clean[n++] = *p;
    unsigned char *blob = NULL;
    size_t bloblen = 0;
    int rc = base64_decode(clean, n, &blob, &bloblen);
    free(clean);
    EVP_PKEY *key = NULL;
    BIGNUM *bn_n = NULL, *bn_e = NULL, *bn_d = NULL, *iqmp = NULL, *p = NULL, *q = NULL;
    if (rc != 0)
        goto bad;
    static const char magic[] = "openssh-key-v1";
    if (bloblen < sizeof(magic) || memcmp(blob, magic, sizeof(magic)) != 0)
        goto bad;
    ssh_reader r = {blob + sizeof(magic), bloblen - sizeof(magic)};
    const unsigned char *s;
    size_t sl;
    uint32_t nkeys, c1, c2;
    if (!ssh_string(&r, &s, &sl))
        goto bad;
    if (!ssh_is(s, sl, "none")) {
        snprintf(err, errlen, "%s: encrypted OpenSSH keys are not supported", path);
        goto out;
    }
    if (!ssh_string(&r, &s, &sl) || !ssh_string(&r, &s, &sl) || !ssh_u32(&r, &nkeys) ||
        nkeys != 1 || !ssh_string(&r, &s, &sl) || !ssh_string(&r, &s, &sl))
        goto bad;
    ssh_reader pr = {s, sl};
    if (!ssh_u32(&pr, &c1) || !ssh_u32(&pr, &c2) || c1 != c2 || !ssh_string(&pr, &s, &sl))
        goto bad;
    if (!ssh_is(s, sl, "ssh-rsa")) {
        snprintf(err, errlen, "%s: only RSA keys are supported", path);
        goto out;
    }
    bn_n = ssh_mpint(&pr);
    bn_e = ssh_mpint(&pr);
    bn_d = ssh_mpint(&pr);
    iqmp = ssh_mpint(&pr);
    p = ssh_mpint(&pr);
    q = ssh_mpint(&pr);
    if (!bn_n || !bn_e || !bn_d || !iqmp || !p || !q)
        goto bad;
    key = rsa_from_params(bn_n, bn_e, bn_d, p, q, iqmp);
    if (key)
        goto out;
bad:
    snprintf(err, errlen, "%s: malformed OpenSSH private key", path);
out:
    BN_free(bn_n);
    BN_free(bn_e);
    BN_clear_free(bn_d);
    BN_clear_free(iqmp);
    BN_clear_free(p);
    BN_clear_free(q);
    if (blob)
        OPENSSL_cleanse(blob, bloblen);
    free(blob);
    return key;
}

/* "ssh-rsa AAAA... comment" */
static EVP_PKEY *openssh_public(const char *text)
{
    const char *p = text;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    if (strncmp(p, "ssh-rsa ", 8) != 0)
        return NULL;
    p += 8;
    size_t n = strcspn(p, " \t\r\n");
    unsigned char *blob = NULL;
    size_t bloblen = 0;
    if (base64_decode(p, n, &blob, &bloblen) != 0)
        return NULL;
    ssh_reader r = {blob, bloblen};
    const unsigned char *s;
    size_t sl;
    EVP_PKEY *key = NULL;
    if (ssh_string(&r, &s, &sl) && ssh_is(s, sl, "ssh-rsa")) {
        BIGNUM *e = ssh_mpint(&r), *m = ssh_mpint(&r);
        if (e && m)
            key = rsa_from_params(m, e, NULL, NULL, NULL, NULL);
        BN_free(e);
        BN_free(m);
    }
    free(blob);
    return key;
}

static EVP_PKEY *load_private(const char *path, char *err, size_t errlen)
{
    char *text;
    size_t len;
    if (read_file(path, &text, &len, err, errlen) != 0)
        return NULL;
    EVP_PKEY *key = NULL;
    if (strstr(text, "-----BEGIN OPENSSH PRIVATE KEY-----")) {
        key = openssh_private(text, err, errlen, path);
    } else {
        BIO *bio = BIO_new_mem_buf(text, (int)len);
        key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (!key)
            snprintf(err, errlen, "%s: not a PEM or OpenSSH private key", path);
    }
    OPENSSL_cleanse(text, len);
    free(text);
    if (key && EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        snprintf(err, errlen, "%s: only RSA keys are supported (RS256)", path);
        EVP_PKEY_free(key);
        key = NULL;
    }
    return key;
}

static EVP_PKEY *load_public(const char *path, char *err, size_t errlen)
{
    char *text;
    size_t len;
    if (read_file(path, &text, &len, err, errlen) != 0)
        return NULL;
    EVP_PKEY *key = openssh_public(text);
    if (!key) {
        BIO *bio = BIO_new_mem_buf(text, (int)len);
        key = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
        if (!key) { /* "BEGIN RSA PUBLIC KEY" (PKCS#1) */
            OSSL_DECODER_CTX *dc = OSSL_DECODER_CTX_new_for_pkey(&key, "PEM", NULL, "RSA",
                                                                 EVP_PKEY_PUBLIC_KEY, NULL, NULL);
            const unsigned char *data = (const unsigned char *)text;
            size_t left = len;
            if (!dc || OSSL_DECODER_from_data(dc, &data, &left) != 1)
                key = NULL;
            OSSL_DECODER_CTX_free(dc);
        }
        BIO_free(bio);
    }
    free(text);
    if (!key)
        snprintf(err, errlen, "%s: not a PEM or ssh-rsa public key", path);
    else if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        snprintf(err, errlen, "%s: only RSA keys are supported (RS256)", path);
        EVP_PKEY_free(key);
        key = NULL;
    }
    return key;
}

int jwt_keys_load(const char *private_path, const char *public_path, jwt_keys **out, char *err,
                  size_t errlen)
{
    jwt_keys *k = calloc(1, sizeof(*k));
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if ((private_path && !(k->priv = load_private(private_path, err, errlen))) ||
        (public_path && !(k->pub = load_public(public_path, err, errlen)))) {
        jwt_keys_free(k);
        return -1;
    }
    if (k->priv && k->pub && EVP_PKEY_eq(k->priv, k->pub) != 1) {
        snprintf(err, errlen, "%s and %s are not one key pair", private_path, public_path);
        jwt_keys_free(k);
        return -1;
    }
    *out = k;
    return 0;
}

void jwt_keys_free(jwt_keys *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->priv);
    EVP_PKEY_free(k->pub);
    free(k);
}

int jwt_keys_generate(const char *private_path, const char *public_path, char *err, size_t errlen)
{
    EVP_PKEY *key = EVP_RSA_gen(2048);
    if (!key) {
        snprintf(err, errlen, "RSA key generation failed");
        return -1;
    }
    int rc = -1;
    int fd = open(private_path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "cannot create %s: %s", private_path, strerror(errno));
        goto out;
    }
    bool ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
    ok = fclose(f) == 0 && ok;
    FILE *g = ok ? fopen(public_path, "w") : NULL;
    if (g) {
        ok = PEM_write_PUBKEY(g, key) == 1;
        ok = fclose(g) == 0 && ok;
    } else {
        ok = false;
    }
    if (!ok) {
        snprintf(err, errlen, "cannot write the key pair %s, %s", private_path, public_path);
        unlink(private_path);
        goto out;
    }
    rc = 0;
out:
    EVP_PKEY_free(key);
    return rc;
}

/* ---------------------------------------------------------------- tokens */

char *jwt_sign(const jwt_keys *k, const json_t *payload)
{
    if (!k || !k->priv)
        return NULL;
    static const char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
    char *body = json_dumps(payload, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char *h = b64url_encode(header, sizeof(header) - 1);
    char *b = body ? b64url_encode(body, strlen(body)) : NULL;
    free(body);
    char *out = NULL;
    unsigned char sig[1024];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    buf_t t;
    buf_init(&t, JWT_MAX_TOKEN_BYTES);
    if (!h || !b || !md || buf_puts(&t, h) || buf_putc(&t, '.') || buf_puts(&t, b))
        goto done;
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k->priv) != 1 ||
        EVP_DigestSign(md, sig, &siglen, (const unsigned char *)t.data, t.len) != 1)
        goto done;
    char *s = b64url_encode(sig, siglen);
    if (s && buf_putc(&t, '.') == 0 && buf_puts(&t, s) == 0)
        out = buf_take(&t);
    free(s);
done:
    buf_free(&t);
    EVP_MD_CTX_free(md);
    free(h);
    free(b);
    return out;
}

int jwt_verify(const jwt_keys *k, const char *token, bool check_exp, int64_t now, json_t **payload)
{
    *payload = NULL;
    if (!k || !k->pub || !token)
        return -1;
    size_t len = strnlen(token, JWT_MAX_TOKEN_BYTES + 1);
    if (len > JWT_MAX_TOKEN_BYTES)
        return -1;
    const char *d1 = strchr(token, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d2 || strchr(d2 + 1, '.'))
        return -1;
    int rc = -1;
    unsigned char *hdr = NULL, *body = NULL, *sig = NULL;
    size_t hl, bl, sl;
    json_t *h = NULL, *p = NULL;
    EVP_MD_CTX *md = NULL;
    if (b64url_decode(token, (size_t)(d1 - token), &hdr, &hl) ||
        b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &body, &bl) ||
        b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - token), &sig, &sl))
        goto out;
    h = json_loadb((const char *)hdr, hl, 0, NULL);
    const char *alg = json_string_value(json_object_get(h, "alg"));
    if (!alg || strcmp(alg, "RS256") != 0)
        goto out;
    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->pub) != 1 ||
        EVP_DigestVerify(md, sig, sl, (const unsigned char *)token, (size_t)(d2 - token)) != 1)
        goto out;
    p = json_loadb((const char *)body, bl, JSON_DECODE_ANY, NULL);
    if (!json_is_object(p))
        goto out;
    if (check_exp) {
        json_t *exp = json_object_get(p, "exp");
        if (!json_is_number(exp) || json_number_value(exp) <= (double)now)
            goto out;
    }
    *payload = p;
    p = NULL;
    rc = 0;
out:
    EVP_MD_CTX_free(md);
    json_decref(h);
    json_decref(p);
    free(hdr);
    free(body);
    free(sig);
    return rc;
}

int jwt_peek(const char *token, json_t **header, json_t **payload)
{
    if (header)
        *header = NULL;
    if (payload)
        *payload = NULL;
    size_t len = token ? strnlen(token, JWT_MAX_TOKEN_BYTES + 1) : 0;
    const char *d1 = token ? strchr(token, '.') : NULL;
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (len > JWT_MAX_TOKEN_BYTES || !d2 || strchr(d2 + 1, '.'))
        return -1;
    unsigned char *h = NULL, *p = NULL;
    size_t hl, pl;
    json_t *hj = NULL, *pj = NULL;
    int rc = -1;
    if (b64url_decode(token, (size_t)(d1 - token), &h, &hl) ||
        b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &p, &pl))
        goto out;
    hj = json_loadb((const char *)h, hl, 0, NULL);
    pj = json_loadb((const char *)p, pl, 0, NULL);
    if (!json_is_object(hj) || !json_is_object(pj))
        goto out;
    if (header)
        *header = json_incref(hj);
    if (payload)
        *payload = json_incref(pj);
    rc = 0;
out:
    json_decref(hj);
    json_decref(pj);
    free(h);
    free(p);
    return rc;
}

static BIGNUM *jwk_bn(const json_t *jwk, const char *name)
{
    const char *s = json_string_value(json_object_get(jwk, name));
    unsigned char *b = NULL;
    size_t n = 0;
    if (!s || b64url_decode(s, strlen(s), &b, &n) != 0 || n == 0 || n > 1024) {
        free(b);
        return NULL;
    }
    BIGNUM *bn = BN_bin2bn(b, (int)n, NULL);
    free(b);
    return bn;
}

int jwt_verify_jwk(const json_t *jwk, const char *token)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *alg = json_string_value(json_object_get(jwk, "alg"));
    if (!kty || strcmp(kty, "RSA") != 0 || (alg && strcmp(alg, "RS256") != 0))
        return -1;
    BIGNUM *n = jwk_bn(jwk, "n"), *e = jwk_bn(jwk, "e");
    jwt_keys k = {0};
    k.pub = n && e ? rsa_from_params(n, e, NULL, NULL, NULL, NULL) : NULL;
    BN_free(n);
    BN_free(e);
    if (!k.pub)
        return -1;
    json_t *claims = NULL;
    int rc = jwt_verify(&k, token, false, 0, &claims);
    json_decref(claims);
    EVP_PKEY_free(k.pub);
    return rc;
}
