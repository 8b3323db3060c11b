/*
 * multipart.c: boundary scanning with memmem; part headers are parsed only as far as
 * Content-Disposition's name and filename parameters.
 */
#include "http/multipart.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Copies the boundary parameter of a Content-Type into out (quotes removed): OK,
 * NOT_MULTIPART (another type, or no boundary parameter) or BAD_BOUNDARY. */
static multipart_status boundary_of(const char *ct, char *out, size_t outlen)
{
    if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0)
        return MULTIPART_NOT_MULTIPART;
    const char *p = ct + 19;
    while ((p = strchr(p, ';'))) {
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncasecmp(p, "boundary=", 9) != 0)
            continue;
        p += 9;
        size_t n = 0;
        if (*p == '"') {
            p++;
            while (p[n] && p[n] != '"')
                n++;
        } else {
            while (p[n] && p[n] != ';' && p[n] != ' ' && p[n] != '\t')
                n++;
        }
        if (n == 0 || n > MULTIPART_MAX_BOUNDARY || n + 1 > outlen)
            return MULTIPART_BAD_BOUNDARY;
        memcpy(out, p, n);
        out[n] = 0;
        return MULTIPART_OK;
    }
    return MULTIPART_NOT_MULTIPART;
}

/* The value of parameter `param` in a Content-Disposition line [s, end). */
static bool disposition_param(const char *s, const char *end, const char *param, char *out,
                              size_t outlen)
{
    size_t pl = strlen(param);
    for (const char *p = s; p + pl + 1 < end; p++) {
        if ((p == s || p[-1] == ';' || p[-1] == ' ') && strncasecmp(p, param, pl) == 0 &&
            p[pl] == '=') {
            const char *v = p + pl + 1;
            size_t n = 0;
            if (*v == '"') {
                v++;
                while (v + n < end && v[n] != '"')
                    n++;
            } else {
                while (v + n < end && v[n] != ';')
                    n++;
            }
            if (n + 1 > outlen)
                n = outlen - 1;
            memcpy(out, v, n);
            out[n] = 0;
            return true;
        }
    }
    return false;
}

multipart_status multipart_find_file(const char *content_type, const char *body, size_t len,
                                     const char *name, const char **data, size_t *data_len)
{
    char b[80], delim[90];
    multipart_status bs = boundary_of(content_type, b, sizeof(b));
    if (bs != MULTIPART_OK)
        return bs;
    int dl = snprintf(delim, sizeof(delim), "\r\n--%s", b);
    /* The first delimiter may start the body without the CRLF. */
    const char *end = body + len;
    const char *p;
    if (len >= (size_t)dl - 2 && memcmp(body, delim + 2, (size_t)dl - 2) == 0)
        p = body + dl - 2;
    else {
        p = memmem(body, len, delim, (size_t)dl);
        if (!p)
            return MULTIPART_MALFORMED;
        p += dl;
    }
    for (;;) {
        /* after a delimiter: "--" ends the body, else CRLF then headers */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return MULTIPART_MISSING;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return MULTIPART_MALFORMED;
        p += 2;
        size_t hl =
            (size_t)(end - p) < MULTIPART_MAX_HEADERS ? (size_t)(end - p) : MULTIPART_MAX_HEADERS;
        const char *hend = memmem(p, hl, "\r\n\r\n", 4);
        if (!hend)
            return MULTIPART_MALFORMED;
        const char *content = hend + 4;
        const char *next = memmem(content, (size_t)(end - content), delim, (size_t)dl);
        if (!next)
            return MULTIPART_MALFORMED;
        /* Content-Disposition of this part */
        char pname[256] = "", fname[8] = "";
        bool has_file = false;
        for (const char *line = p; line < hend;) {
            const char *eol = memmem(line, (size_t)(hend + 2 - line), "\r\n", 2);
            if (!eol)
                eol = hend;
            if ((size_t)(eol - line) > 20 && strncasecmp(line, "content-disposition:", 20) == 0) {
                disposition_param(line + 20, eol, "name", pname, sizeof(pname));
                has_file = disposition_param(line + 20, eol, "filename", fname, sizeof(fname));
            }
            line = eol + 2;
        }
        if (strcmp(pname, name) == 0) {
            if (!has_file)
                return MULTIPART_NOT_FILE;
            *data = content;
            *data_len = (size_t)(next - content);
            return MULTIPART_OK;
        }
        p = next + dl;
    }
}
