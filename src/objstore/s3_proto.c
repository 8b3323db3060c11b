/*
 * s3_proto.c: the S3 protocol of the S3 back end (see s3_internal.h): the URLs and query
 * strings of each exchange, the request headers and signing set-up of a curl easy
 * handle, the XML request bodies, the parsing of S3's XML answers (errors, listings,
 * multipart upload ids and part ETags) and the classification of failures. It knows
 * nothing of the back end's state: everything comes in as strings and buffers.
 *
 * Requests are signed by curl (CURLOPT_AWS_SIGV4) with x-amz-content-sha256 always
 * sent (curl 7.88 does not add it; servers refuse SigV4 without it), query strings
 * built sorted and RFC 3986-encoded (curl 7.88 signs them as given), credentials via
 * CURLOPT_USERNAME/PASSWORD (keys may contain ':'), path-style URLs, and no "Header:"
 * removal entries (curl 7.88 would sign an empty header it does not send).
 */
#include "objstore/s3_internal.h"

#include "util/error.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S3_LIST_PAGE 1000 /* keys per listing page and per batch delete */

/* ---- encoding ---- */

int s3_uri_encode(buf_t *b, const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
        int rc = plain ? buf_putc(b, (char)c) : buf_printf(b, "%%%c%c", hex[c >> 4], hex[c & 15]);
        if (rc)
            return rc;
    }
    return 0;
}

static int xml_escape(buf_t *b, const char *s)
{
    int rc = 0;
    for (; *s && !rc; s++) {
        switch (*s) {
        case '&':
            rc = buf_puts(b, "&amp;");
            break;
        case '<':
            rc = buf_puts(b, "&lt;");
            break;
        case '>':
            rc = buf_puts(b, "&gt;");
            break;
        case '"':
            rc = buf_puts(b, "&quot;");
            break;
        case '\'':
            rc = buf_puts(b, "&apos;");
            break;
        default:
            rc = buf_putc(b, *s);
        }
    }
    return rc;
}

/* The text of the first <tag>...</tag> at or after *pos, XML-unescaped (malloc'd), and
 * *pos moved past it; NULL when there is none. Only the five named entities and
 * numeric character references occur in S3 answers. */
static char *xml_next(const char *doc, const char **pos, const char *tag)
{
    char open[80], close[80];
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    const char *a = strstr(*pos ? *pos : doc, open);
    if (!a)
        return NULL;
    a += strlen(open);
    const char *e = strstr(a, close);
    if (!e)
        return NULL;
    *pos = e + strlen(close);
    char *out = malloc((size_t)(e - a) + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    for (const char *p = a; p < e;) {
        if (*p != '&') {
            out[n++] = *p++;
            continue;
        }
        static const struct {
            const char *ent;
            char ch;
        } ents[] = {
            {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
        bool done = false;
        for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
            size_t l = strlen(ents[i].ent);
            if ((size_t)(e - p) >= l && strncmp(p, ents[i].ent, l) == 0) {
                out[n++] = ents[i].ch;
                p += l;
                done = true;
                break;
            }
        }
        if (!done && p[1] == '#') {
            char *end;
            unsigned long cp = p[2] == 'x' ? strtoul(p + 3, &end, 16) : strtoul(p + 2, &end, 10);
            if (end < e && *end == ';' && cp > 0 && cp < 0x80) {
                out[n++] = (char)cp;
                p = end + 1;
                done = true;
            }
        }
        if (!done)
            out[n++] = *p++;
    }
    out[n] = '\0';
    return out;
}

static void hex_of(const unsigned char *d, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static void base64_of(const unsigned char *d, size_t n, char *out, size_t outlen)
{
    if (EVP_EncodeBlock((unsigned char *)out, d, (int)n) >= (int)outlen)
        out[outlen - 1] = '\0';
}

int s3_digest_body(const char *body, size_t len, char sha_hex[65], char md5_b64[32])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen;
    if (!EVP_Digest(body, len, md, &mdlen, EVP_sha256(), NULL))
        return -EIO;
    hex_of(md, mdlen, sha_hex);
    if (!EVP_Digest(body, len, md, &mdlen, EVP_md5(), NULL))
        return -EIO;
    base64_of(md, mdlen, md5_b64, 32);
    return 0;
}

/* ---- URLs and request bodies ---- */

int s3_object_url(buf_t *u, const char *endpoint, const char *bucket, const char *key,
                  const char *query)
{
    int rc = buf_printf(u, "%s/%s/", endpoint, bucket);
    if (!rc && key)
        rc = s3_uri_encode(u, key, true);
    if (!rc && query)
        rc = buf_printf(u, "?%s", query);
    return rc;
}

/* Query parameters in code-point order, values RFC 3986-encoded. */
int s3_list_query(buf_t *q, const char *token, const char *prefix)
{
    int rc = 0;
    if (token) {
        rc = buf_puts(q, "continuation-token=");
        if (!rc)
            rc = s3_uri_encode(q, token, false);
        if (!rc)
            rc = buf_putc(q, '&');
    }
    if (!rc)
        rc = buf_printf(q, "list-type=2&max-keys=%d&prefix=", S3_LIST_PAGE);
    if (!rc)
        rc = s3_uri_encode(q, prefix, false);
    return rc;
}

int s3_upload_query(buf_t *q, unsigned part, const char *upload_id)
{
    int rc = part ? buf_printf(q, "partNumber=%u&uploadId=", part) : buf_puts(q, "uploadId=");
    if (!rc)
        rc = s3_uri_encode(q, upload_id, false);
    return rc;
}

int s3_delete_body(buf_t *b, char *const *keys, size_t nkeys)
{
    int rc = buf_puts(b, "<Delete><Quiet>true</Quiet>");
    for (size_t i = 0; i < nkeys && !rc; i++) {
        rc = buf_puts(b, "<Object><Key>");
        if (!rc)
            rc = xml_escape(b, keys[i]);
        if (!rc)
            rc = buf_puts(b, "</Key></Object>");
    }
    if (!rc)
        rc = buf_puts(b, "</Delete>");
    return rc;
}

int s3_complete_body(buf_t *b, const char *parts)
{
    return buf_printf(b, "<CompleteMultipartUpload>%s</CompleteMultipartUpload>", parts);
}

int s3_lifecycle_body(buf_t *b, int expiry_days)
{
    return buf_printf(b,
                      "<LifecycleConfiguration><Rule><ID>expiry</ID><Filter><Prefix></Prefix>"
                      "</Filter><Status>Enabled</Status><Expiration><Days>%d</Days></Expiration>"
                      "</Rule></LifecycleConfiguration>",
                      expiry_days);
}

/* ---- requests ---- */

size_t s3_read_body(char *dst, size_t size, size_t nitems, void *userdata)
{
    reader *r = userdata;
    size_t n = size * nitems;
    if (n > r->len - r->off)
        n = r->len - r->off;
    if (n)
        memcpy(dst, r->p + r->off, n);
    r->off += n;
    return n;
}

int s3_setup_easy(CURL *easy, const conn_opts *co, const request *req, struct curl_slist **headers,
                  void *read_data)
{
    struct curl_slist *h = NULL;
    char line[160];
    snprintf(line, sizeof(line), "x-amz-content-sha256: %s",
             req->sha256 ? req->sha256 : "UNSIGNED-PAYLOAD");
    h = curl_slist_append(h, line);
    if (h && req->md5) {
        snprintf(line, sizeof(line), "Content-MD5: %s", req->md5);
        h = curl_slist_append(h, line);
    }
    if (h && req->content_type) {
        snprintf(line, sizeof(line), "Content-Type: %s", req->content_type);
        h = curl_slist_append(h, line);
    }
    if (!h)
        return -ENOMEM;
    *headers = h;
    curl_easy_setopt(easy, CURLOPT_URL, req->url);
    curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, co->sigv4);
    curl_easy_setopt(easy, CURLOPT_USERNAME, co->access_key);
    curl_easy_setopt(easy, CURLOPT_PASSWORD, co->secret_key);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(easy, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
    if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "PUT") == 0) {
        curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(easy, CURLOPT_READFUNCTION, s3_read_body);
        curl_easy_setopt(easy, CURLOPT_READDATA, read_data);
        curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
    } else if (strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(easy, CURLOPT_POST, 1L);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
    }
    return 0;
}

const char *s3_step_method(step_kind k)
{
    switch (k) {
    case STEP_GET:
    case STEP_LIST:
        return "GET";
    case STEP_HEAD:
        return "HEAD";
    case STEP_PUT:
    case STEP_MP_PART:
        return "PUT";
    case STEP_DELETE:
    case STEP_MP_ABORT:
        return "DELETE";
    case STEP_BATCH_DELETE:
    case STEP_MP_INIT:
    case STEP_MP_COMPLETE:
        return "POST";
    }
    return "GET";
}

/* ---- answers ---- */

int s3_list_truncation(const char *doc, bool *truncated, char **token)
{
    const char *pos = NULL;
    char *t = xml_next(doc, &pos, "IsTruncated");
    *truncated = t && strcmp(t, "true") == 0;
    free(t);
    pos = NULL;
    *token = *truncated ? xml_next(doc, &pos, "NextContinuationToken") : NULL;
    return *truncated && !*token ? -EIO : 0;
}

char **s3_list_keys(const char *doc, size_t *nkeys)
{
    char **keys = calloc(S3_LIST_PAGE + 1, sizeof(char *));
    if (!keys)
        return NULL;
    const char *pos = NULL;
    size_t n = 0;
    char *k;
    while (n < S3_LIST_PAGE + 1 && (k = xml_next(doc, &pos, "Key")))
        keys[n++] = k;
    *nkeys = n;
    return keys;
}

char *s3_upload_id(const char *doc)
{
    const char *pos = NULL;
    return xml_next(doc, &pos, "UploadId");
}

bool s3_has_error(const char *doc)
{
    return strstr(doc, "<Error>") != NULL;
}

void s3_error_code(const char *doc, char *out, size_t outlen)
{
    const char *pos = NULL;
    char *code = doc ? xml_next(doc, &pos, "Code") : NULL;
    snprintf(out, outlen, "%s", code ? code : "");
    free(code);
}

int s3_record_etag(CURL *easy, buf_t *etags, unsigned part)
{
    struct curl_header *h = NULL;
    if (curl_easy_header(easy, "ETag", 0, CURLH_HEADER, -1, &h) != CURLHE_OK || !h)
        return -EIO;
    int rc = buf_printf(etags, "<Part><PartNumber>%u</PartNumber><ETag>", part);
    if (!rc)
        rc = xml_escape(etags, h->value);
    if (!rc)
        rc = buf_puts(etags, "</ETag></Part>");
    return rc;
}

/* ---- failures ---- */

bool s3_status_retryable(long status)
{
    return status >= 500 || status == 429 || status == 408;
}

int s3_errno_for_status(long status)
{
    if (status == 404)
        return -ENOENT;
    if (status == 401 || status == 403)
        return -EACCES;
    if (s3_status_retryable(status))
        return OGD_EOBJ_UNAVAILABLE; /* after every retry the deadline allowed */
    return -EIO;
}

int s3_errno_for_curl(CURLcode cc)
{
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
        return -EHOSTUNREACH;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return -ECONNRESET;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    default:
        return -EIO;
    }
}
