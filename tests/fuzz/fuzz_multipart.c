/*
 * fuzz_multipart: the multipart/form-data scanner of POST /submit/hdf
 * (src/http/multipart.h), on a hostile Content-Type value and body.
 *
 * Input: CONTENT-TYPE %% BODY [%% NAME] (parts split at FZ_SEP; NAME defaults to "file",
 * the part the server asks for). The body is copied into a buffer of its exact size so
 * that ASan sees any read past it. Checks: no memory error or UB; on MULTIPART_OK the part
 * lies inside the body, is preceded by the blank line that ends its headers and is
 * followed by the CRLF "--" of a delimiter; the result does not depend on bytes past the
 * body (a second call with the body followed by junk in a larger buffer agrees).
 */
#include "harness.h"

#include "http/multipart.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_silence_logs();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_part part[3];
    fz_split(data, size, part, 3);
    char *ct = fz_strndup(part[0].data, part[0].size);
    char *name = part[2].data ? fz_strndup(part[2].data, part[2].size) : NULL;
    const char *want = name ? name : "file";
    size_t len = part[1].size;
    char *body = malloc(len ? len : 1);
    if (!body)
        abort();
    if (len)
        memcpy(body, part[1].data, len);

    const char *found = NULL;
    size_t found_len = 0;
    multipart_status st = multipart_find_file(ct, body, len, want, &found, &found_len);
    FZ_CHECK(st >= MULTIPART_OK && st <= MULTIPART_BAD_BOUNDARY);
    size_t off = 0;
    if (st == MULTIPART_OK) {
        FZ_CHECK(found >= body && found <= body + len);
        off = (size_t)(found - body);
        FZ_CHECK(found_len <= len - off);
        FZ_CHECK(off >= 4 && memcmp(found - 4, "\r\n\r\n", 4) == 0);
        FZ_CHECK(len - off - found_len >= 4 && memcmp(found + found_len, "\r\n--", 4) == 0);
    }

    /* the same body inside a larger buffer of other bytes: the same answer */
    char *big = malloc(len + 64);
    if (!big)
        abort();
    if (len)
        memcpy(big, body, len);
    memset(big + len, '-', 64);
    const char *found2 = NULL;
    size_t found2_len = 0;
    multipart_status st2 = multipart_find_file(ct, big, len, want, &found2, &found2_len);
    FZ_CHECK(st2 == st);
    if (st == MULTIPART_OK)
        FZ_CHECK((size_t)(found2 - big) == off && found2_len == found_len);

    free(big);
    free(body);
    free(name);
    free(ct);
    return 0;
}
