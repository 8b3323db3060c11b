/*
 * ingest_cli.c: the `ogd ingest` command (see ingest_cli.h). Local mode drives the ingest
 * pipeline on a private loop, one file after another (each file's objects still go up
 * concurrently), each file mapped, not read, where it can be (the HDF5 reader and the
 * encoders then work from the page cache: no copy of the file is made); remote mode is a
 * plain blocking libcurl upload per file.
 */
#include "cli/ingest_cli.h"

#include "ingest/ingest.h"
#include "objstore/config.h"
#include "store/store.h"
#include "util/buf.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int read_file(const char *path, size_t max, buf_t *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    buf_init(out, max);
    char chunk[1 << 16];
    size_t n;
    int rc = 0;
    while (!rc && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = buf_append(out, chunk, n);
    if (!rc && ferror(f))
        rc = -EIO;
    fclose(f);
    if (rc)
        buf_free(out);
    return rc;
}

/* A file's bytes for the pipeline: mapped read-only when it is a non-empty regular file
 * (the HDF5 reader then maps the same file: nothing is copied), else read into a buffer
 * (pipes, empty files, or where mmap fails). */
typedef struct upload {
    int fd;    /* the mapped file, or -1 */
    void *map; /* its mapping, or NULL */
    size_t len;
    buf_t buf; /* the bytes when not mapped */
} upload;

static int upload_open(const char *path, size_t max, upload *u)
{
    memset(u, 0, sizeof(*u));
    u->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (u->fd < 0)
        return -errno;
    struct stat st;
    if (fstat(u->fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        if ((uint64_t)st.st_size > max) {
            close(u->fd);
            return -E2BIG;
        }
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, u->fd, 0);
        if (m != MAP_FAILED) {
            u->map = m;
            u->len = (size_t)st.st_size;
            return 0;
        }
    }
    close(u->fd);
    u->fd = -1;
    int rc = read_file(path, max, &u->buf);
    u->len = u->buf.len;
    return rc;
}

static const void *upload_bytes(const upload *u)
{
    return u->map ? u->map : u->buf.data ? (const void *)u->buf.data : "";
}

static void upload_close(upload *u)
{
    if (u->map)
        munmap(u->map, u->len);
    if (u->fd >= 0)
        close(u->fd);
    buf_free(&u->buf);
}

static int exit_for(int status)
{
    if (status == 200 || status == 201)
        return INGEST_EXIT_OK;
    return status >= 400 && status < 500 ? INGEST_EXIT_REJECTED : INGEST_EXIT_FAILED;
}

/* One progress line (and one per rejected channel) for a response body. */
static void report(FILE *log, const char *path, int status, const json_t *body)
{
    const json_t *resp = json_object_get(body, "response");
    if (resp) {
        const json_t *rej = json_object_get(resp, "rejected_channels");
        fprintf(log, "ingest: %s: %d %s: %zu accepted, %zu rejected\n", path, status,
                json_string_value(json_object_get(body, "message")),
                json_array_size(json_object_get(resp, "accepted_channels")), json_object_size(rej));
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)rej, k, v)
        {
            char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            fprintf(log, "ingest: %s:   %s: %s\n", path, k, t ? t : "?");
            free(t);
        }
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(resp, "warnings"), i, w)
            fprintf(log, "ingest: %s:   warning: %s\n", path, json_string_value(w));
    } else {
        const json_t *d = json_object_get(body, "detail");
        char *t = d ? json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        fprintf(log, "ingest: %s: %d %s\n", path, status, t ? t : "(no detail)");
        free(t);
    }
}

typedef struct one_file {
    FILE *log;
    const char *path;
    int status;
    bool done;
} one_file;

static void local_done(const ingest_result *res, void *data)
{
    one_file *f = data;
    f->status = res->status;
    f->done = true;
    report(f->log, f->path, res->status, res->body);
}

int ingest_cli_local(const ogd_config *cfg, char **files, int nfiles, FILE *log)
{
    signal(SIGPIPE, SIG_IGN); /* a helper that dies early must not kill us */
    char err[512];
    uv_loop_t loop;
    uv_loop_init(&loop);
    store_t *store = NULL;
    objstore_t *os = NULL;
    int worst = INGEST_EXIT_OK;
    objstore_options oo;
    objstore_options_from_config(cfg, &oo);
    oo.cache_max_entries = 0;
    if (store_migrate(cfg->database.url, err, sizeof(err)) != 0 ||
        store_open(cfg->database.url, &loop, &store, err, sizeof(err)) != 0 ||
        objstore_prepare(cfg->echo.url, &oo, err, sizeof(err)) != 0 ||
        objstore_open(cfg->echo.url, &oo, &loop, &os, err, sizeof(err)) != 0) {
        fprintf(log, "ingest: %s\n", err);
        worst = INGEST_EXIT_FAILED;
        goto out;
    }
    ingest_env env;
    memset(&env, 0, sizeof(env));
    env.loop = &loop;
    env.store = store;
    env.objstore = os;
    ingest_env_from_config(cfg, &env);
    env.limits.timeout_ms = 120000;
    for (int i = 0; i < nfiles; i++) {
        upload up;
        int rc = upload_open(files[i], (size_t)cfg->server.max_upload_bytes, &up);
        if (rc) {
            fprintf(log, "ingest: %s: %s\n", files[i],
                    rc == -E2BIG ? "larger than server.max_upload_bytes" : strerror(-rc));
            worst = worst > INGEST_EXIT_REJECTED ? worst : INGEST_EXIT_REJECTED;
            continue;
        }
        one_file f = {log, files[i], 0, false};
        rc = ingest_start(&env, upload_bytes(&up), up.len, up.fd, 0, local_done, &f, NULL);
        if (rc == 0)
            while (!f.done && uv_run(&loop, UV_RUN_ONCE))
                ;
        upload_close(&up);
        int e = rc || !f.done ? INGEST_EXIT_FAILED : exit_for(f.status);
        if (rc)
            fprintf(log, "ingest: %s: cannot start the HDF5 reader (%s)\n", files[i],
                    strerror(-rc));
        worst = e > worst ? e : worst;
    }
out:
    if (os) {
        objstore_close(os, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    store_close(store);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return worst;
}

static size_t collect(char *ptr, size_t size, size_t n, void *data)
{
    return buf_append(data, ptr, size * n) == 0 ? size * n : 0;
}

int ingest_cli_remote(const char *url, const char *token, char **files, int nfiles, FILE *log)
{
    int worst = INGEST_EXIT_OK;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (int i = 0; i < nfiles; i++) {
        CURL *c = curl_easy_init();
        if (!c)
            return INGEST_EXIT_FAILED;
        char target[2048];
        snprintf(target, sizeof(target), "%s/submit/hdf", url);
        curl_mime *mime = curl_mime_init(c);
        curl_mimepart *part = curl_mime_addpart(mime);
        curl_mime_name(part, "file");
        curl_mime_filedata(part, files[i]);
        struct curl_slist *hdrs = NULL;
        char auth[4096];
        if (token && *token) {
            snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
            hdrs = curl_slist_append(hdrs, auth);
        }
        buf_t body;
        buf_init(&body, 16 << 20);
        curl_easy_setopt(c, CURLOPT_URL, target);
        curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
        CURLcode cr = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        int e;
        if (cr != CURLE_OK) {
            fprintf(log, "ingest: %s: %s\n", files[i], curl_easy_strerror(cr));
            e = INGEST_EXIT_FAILED;
        } else {
            json_error_t je;
            json_t *doc = json_loadb(body.data ? body.data : "", body.len, 0, &je);
            report(log, files[i], (int)status, doc);
            json_decref(doc);
            e = exit_for((int)status);
        }
        worst = e > worst ? e : worst;
        buf_free(&body);
        curl_slist_free_all(hdrs);
        curl_mime_free(mime);
        curl_easy_cleanup(c);
    }
    curl_global_cleanup();
    return worst;
}
